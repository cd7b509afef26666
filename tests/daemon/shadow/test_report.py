"""`summarise`, the table, the JSON and the picture, from real stores the helpers filled."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from defectd.daemon.shadow.report import (
    LIVE_ONLY,
    OVERLAP,
    SHADOW_ONLY,
    NoSuchRun,
    ShadowSummary,
    format_table,
    summarise,
    summary_json,
)
from defectd.daemon.shadow.report_picture import (
    METRICS,
    PICTURE_WIDTH,
    bar_x,
    montage_cells,
    report_picture,
)
from defectd.daemon.shadow.store import LIVE_COLOUR, SHADOW_COLOUR, ShadowStore
from tests.daemon.shadow.helpers import CLASSES, fill

DICE_COLOUR = METRICS[0][2]


def _summary(directory: Path, run_id: int | None = None) -> ShadowSummary:
    store = ShadowStore.open_existing(directory)
    try:
        return summarise(store, run_id)
    finally:
        store.close()


@pytest.fixture
def missing_scratches(tmp_path: Path) -> Path:
    """A shadow model that misses class 2 on three of four frames (helpers' docstring)."""
    fill(tmp_path / "missing")
    return tmp_path / "missing"


@pytest.fixture
def live_vs_live(tmp_path: Path) -> Path:
    """The live model against itself on the same frames."""
    fill(tmp_path / "same", shadow_is_live=True)
    return tmp_path / "same"


def test_summary_sums_every_class(missing_scratches: Path) -> None:
    summary = _summary(missing_scratches)
    assert [run.run_id for run in summary.runs] == [1] and summary.class_names == CLASSES
    assert (summary.live_model, summary.shadow_model, summary.share) == (
        "unet-v7", "unet-v8", "25%"
    )  # fmt: skip
    assert summary.frames == 4
    assert summary.disagreements == 5  # 2 on 11, 1 and 2 on 12, 2 and 3 on 13
    assert summary.with_pictures == 5
    scratches = summary.tallies[2]
    assert (scratches.live_px, scratches.shadow_px, scratches.both_px) == (32, 8, 8)
    assert scratches.dice == pytest.approx(0.4)  # 2 × 8 / (32 + 8)
    assert summary.tallies[1].dice == pytest.approx(60 / 72)
    assert summary.tallies[4].dice is None


def test_worst_disagreements_come_first(missing_scratches: Path) -> None:
    worst = _summary(missing_scratches).worst
    # One model alone first (the most pixels first, then in the order written), then overlaps.
    assert [(d.seq, d.class_id, d.outcome) for d in worst] == [
        (11, 2, LIVE_ONLY),
        (12, 2, LIVE_ONLY),
        (13, 2, LIVE_ONLY),
        (13, 3, SHADOW_ONLY),
        (12, 1, OVERLAP),
    ]
    assert worst[-1].dice == pytest.approx(1 / 3)  # 2 × 3 / (9 + 9)
    assert worst[0].picture == "pictures/run1-top-0-11.png" and worst[0].class_name == "scratches"
    assert worst[3].describe() == "3 inclusions: shadow only, 4 px"


def test_the_montage_shows_each_class_first(missing_scratches: Path) -> None:
    worst = _summary(missing_scratches).worst
    # Two pictures: scratches' worst (seq 11), then inclusions' (seq 13), not scratches' next.
    cells = montage_cells(worst, 2)
    assert [cell.seq for cell in cells] == [11, 13]
    assert [(d.class_id, d.outcome) for d in cells[1].rows] == [(2, LIVE_ONLY), (3, SHADOW_ONLY)]
    assert [cell.seq for cell in montage_cells(worst)] == [11, 12, 13]


def test_the_shadow_that_misses_scores_below_the_live_model_itself(
    missing_scratches: Path, live_vs_live: Path
) -> None:
    missing, same = _summary(missing_scratches), _summary(live_vs_live)
    assert same.tallies[2].dice == 1.0 and same.tallies[1].dice == 1.0
    assert missing.tallies[2].dice is not None and missing.tallies[2].dice < 0.5
    assert same.disagreements == 0 and same.worst == ()


def test_table(missing_scratches: Path) -> None:
    lines = format_table(_summary(missing_scratches)).splitlines()
    assert lines[0] == (
        "shadow run 1 on line1: live model unet-v7 vs shadow model unet-v8 (25% of frames); "
        "4 frames compared, 5 disagreements (5 with a picture)"
    )
    head = lines.index(next(line for line in lines if line.startswith("class  name")))
    rows = [line.split() for line in lines[head + 1 : head + 5]]
    assert rows == [
        ["1", "pits", "4", "4", "0", "0", "1.00", "0.83", "0.83", "0.83"],
        ["2", "scratches", "4", "1", "3", "0", "0.25", "0.40", "0.25", "1.00"],
        ["3", "inclusions", "1", "0", "0", "1", "0.00", "0.00", "-", "0.00"],
        ["4", "patches", "0", "0", "0", "0", "-", "-", "-", "-"],
    ]
    verdict = lines[-4:]
    assert verdict[0].startswith("class 1 pits: the shadow model disagrees: Dice 0.83 < 0.90")
    assert verdict[1].startswith(
        "class 2 scratches: the shadow model disagrees: Dice 0.40 < 0.90, "
        "frame agreement 0.25 < 0.90 (frames: live only 3, shadow only 0, both 1"
    )
    assert verdict[2].startswith("class 3 inclusions: the shadow model disagrees: Dice 0.00")
    assert verdict[3] == "not compared (neither model found them): class 4 patches"
    assert any("top-0 seq 11 (run 1): 2 scratches: live only, 8 px" in line for line in lines)


def test_table_when_the_models_agree(live_vs_live: Path) -> None:
    text = format_table(_summary(live_vs_live))
    assert "live model unet-v7 vs shadow model unet-v7" in text
    assert text.splitlines()[-2:] == [
        "the shadow model agrees with the live one on every class",
        "not compared (neither model found them): class 3 inclusions, 4 patches",
    ]
    assert "worst disagreements" not in text


def test_json(missing_scratches: Path) -> None:
    document = json.loads(json.dumps(summary_json(_summary(missing_scratches))))
    assert document["frames"] == 4 and document["runs"][0]["shadow_model"] == "unet-v8"
    scratches = document["classes"][1]
    assert scratches["class_name"] == "scratches" and scratches["dice"] == pytest.approx(0.4)
    assert (scratches["found_both"], scratches["live_only"], scratches["agrees"]) == (1, 3, False)
    assert document["classes"][3]["dice"] is None and document["classes"][3]["agrees"]
    assert document["worst"][0]["picture"] == "pictures/run1-top-0-11.png"
    assert document["thresholds"] == {"dice": 0.9, "frame_agreement": 0.9}
    assert document["verdict"][-1].startswith("not compared")


def test_runs_one_or_all(tmp_path: Path) -> None:
    fill(tmp_path)  # run 1: the shadow misses scratches
    fill(tmp_path, shadow_is_live=True)  # run 2: the live model against itself
    second = _summary(tmp_path, 2)
    assert second.run_id == 2 and second.tallies[2].dice == 1.0 and second.frames == 4
    both = _summary(tmp_path)
    assert both.frames == 8 and both.mixed_models  # seq 10..13 in each run
    scratches = both.tallies[2]
    assert (scratches.live_px, scratches.shadow_px, scratches.both_px) == (64, 40, 40)
    assert scratches.dice == pytest.approx(80 / 104)
    text = format_table(both)
    assert text.startswith("shadow runs 1, 2 on line1: live model unet-v7 vs shadow model ")
    assert "these runs compare different models; name one with --run ID" in text
    with pytest.raises(NoSuchRun, match=r"no shadow run 3 in .*; its runs are 1, 2: name one"):
        _summary(tmp_path, 3)


def test_a_run_with_no_frames_yet(tmp_path: Path) -> None:
    store = ShadowStore(tmp_path)
    with pytest.raises(NoSuchRun, match="holds no shadow run yet"):
        summarise(store)
    store.begin("line1", "a", "b", 0.1, CLASSES)
    summary = summarise(store)
    store.close()
    assert summary.frames == 0
    assert format_table(summary).endswith("no frames compared yet: no verdict")
    assert report_picture(summary, tmp_path).shape[1] == PICTURE_WIDTH


def _dice_bar_ends(picture: npt.NDArray[np.uint8]) -> list[int]:
    """The right end of each Dice bar, top to bottom (the legend's swatch left out)."""
    bars = np.all(picture == DICE_COLOUR, axis=2)
    bars[:, : bar_x(0.0)] = False
    ends, inside = [], False
    for row in bars:
        if row.any() and not inside:
            ends.append(int(np.flatnonzero(row).max()))
        inside = bool(row.any())
    return ends


def test_picture_bars_and_montage(tmp_path: Path) -> None:
    fill(tmp_path / "missing", scale=10)
    fill(tmp_path / "same", scale=10, shadow_is_live=True)
    missing = report_picture(_summary(tmp_path / "missing"), tmp_path / "missing")
    same = report_picture(_summary(tmp_path / "same"), tmp_path / "same")
    assert missing.dtype == np.uint8 and missing.shape[1] == PICTURE_WIDTH
    # Dice: 0.83 for pits, 0.40 for scratches, no bar at 0.00 (inclusions) or undefined.
    assert _dice_bar_ends(missing) == [bar_x(60 / 72), bar_x(0.4)]
    assert _dice_bar_ends(same) == [bar_x(1.0), bar_x(1.0)]
    # The montage shows the stored pictures: the live outline green, the shadow's magenta.
    assert np.all(missing == LIVE_COLOUR, axis=2).sum() > 100
    assert np.all(missing == SHADOW_COLOUR, axis=2).sum() > 100
    assert not np.all(same == LIVE_COLOUR, axis=2).any()
    assert missing.shape[0] > same.shape[0] + 200
    path = tmp_path / "report.png"
    assert cv2.imwrite(str(path), missing)
    read = cv2.imread(str(path))
    assert read is not None and np.array_equal(read, missing)


def test_picture_with_a_missing_file(tmp_path: Path) -> None:
    fill(tmp_path, scale=10)
    (tmp_path / "pictures" / "run1-top-0-11.png").unlink()
    picture = report_picture(_summary(tmp_path), tmp_path)
    grey = np.all(picture == (200, 200, 200), axis=2)
    assert grey.sum() > 10_000  # the box that says "picture missing"
    assert np.all(picture == SHADOW_COLOUR, axis=2).any()  # the others are still there
