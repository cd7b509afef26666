"""A coil's report: the map's pixels where the records put them, and every file written."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from defectd.daemon.coils.model import ClassCount, CoilRecord, CoverageGap, StripDefect
from defectd.daemon.coils.report import (
    CSV_COLUMNS,
    HATCH,
    MAP_WIDTH,
    coil_map,
    map_layout,
    marker_radius,
    write_report,
)
from defectd.engines.classes import class_colour

CLASSES = ("pits", "scratches", "patches")


def defect(
    n: int, class_id: int, along: tuple[float, float], across: tuple[float, float],
    crop: str | None = None, coil_id: str = "C1",
) -> StripDefect:  # fmt: skip
    area = (along[1] - along[0]) * 1000.0 * (across[1] - across[0])
    return StripDefect(
        defect_id=f"line1/{coil_id}/top/{n}/{class_id}/0",
        line="line1",
        coil_id=coil_id,
        class_id=class_id,
        class_name=CLASSES[class_id - 1],
        across_mm=across,
        along_m=along,
        area_mm2=area,
        area_px=round(area),
        max_score=0.9,
        mean_score=0.8,
        first_camera="top",
        first_seq=n,
        last_camera="bottom" if n % 2 else "top",
        last_seq=n + 1,
        cameras=("top", "bottom") if n % 2 else ("top",),
        frames=2,
        capture_ns=1_764_000_000_000_000_000 + n,
        crop=crop,
    )


# 30 defects of 3 classes on 120 m × 1500 mm; the probes (pit 0, the scratch) stand alone.
PIT = defect(0, 1, (10.0, 10.004), (300.0, 305.0))
SCRATCH = defect(1, 2, (40.0, 48.0), (600.0, 606.0), crop="2025-12-01/C1/scratch.jpg")
PATCH_CROP = "2025-12-01/C1/patch.jpg"
PATCH = defect(2, 3, (100.0, 100.08), (1200.0, 1260.0), crop=PATCH_CROP)
DEFECTS = (
    PIT,
    SCRATCH,
    PATCH,
    *(defect(3 + i, 1, (15.0 + 3.7 * i, 15.003 + 3.7 * i), (100.0 + 45 * i, 104.0 + 45 * i))
      for i in range(14)),
    *(defect(17 + i, 3, (52.0 + 6.1 * i, 52.02 + 6.1 * i), (900.0, 920.0 + 5 * i))
      for i in range(10)),
    *(defect(27 + i, 2, (20.0 + 30 * i, 20.4 + 30 * i), (1400.0, 1402.0)) for i in range(3)),
)  # fmt: skip
GAPS = (
    CoverageGap("line1", "C1", "top", 70.0, 74.0, 40, "missing"),
    CoverageGap("line1", "C1", "bottom", 90.5, 91.0, 5, "missing"),
)


def counts(defects: tuple[StripDefect, ...]) -> tuple[ClassCount, ...]:
    out = []
    for class_id, name in enumerate(CLASSES, start=1):
        n = sum(d.class_id == class_id for d in defects)
        area = sum(d.area_mm2 for d in defects if d.class_id == class_id)
        out.append(ClassCount(name, n, area, n * 100.0 / 116.0, n / (116.0 * 1.5)))
    return tuple(out)


COIL = CoilRecord(
    line="line1",
    coil_id="C1",
    started_ns=1_764_000_000_000_000_000,
    ended_ns=1_764_000_060_000_000_000,
    end_reason="next_coil",
    head_m=0.0,
    tail_m=120.0,
    inspected_m=116.0,
    width_mm=1500.0,
    frames=2400,
    defects=len(DEFECTS),
    classes=counts(DEFECTS),
    gap_m=4.0,
    largest=(SCRATCH.defect_id, PATCH.defect_id, DEFECTS[-1].defect_id),
    grade="B",
    grade_reasons=("scratches count 4 > 3 → B",),
    anomalies=(("seq_back", 1),),
)


def colour_at(image: np.ndarray, x: int, y: int) -> tuple[int, int, int]:
    b, g, r = (int(v) for v in image[y, x])
    return b, g, r


def test_the_map_is_wide_and_puts_each_defect_in_its_class_colour() -> None:
    image = coil_map(COIL, DEFECTS, GAPS, CLASSES)
    layout = map_layout(COIL, DEFECTS, GAPS, CLASSES)
    assert image.dtype == np.uint8 and image.shape == (layout.height, MAP_WIDTH, 3)
    assert 500 < layout.height < 1000
    assert layout.along_m == (0.0, 120.0) and layout.across_mm == (0.0, 1500.0)
    assert colour_at(image, *layout.px(10.002, 302.5)) == class_colour(1)
    # The 8 m scratch is drawn as its rectangle: its colour all along, not just one marker.
    for along in (40.2, 44.0, 47.8):
        assert colour_at(image, *layout.px(along, 603.0)) == class_colour(2)
    x0, x1 = layout.px(40.0, 0)[0], layout.px(48.0, 0)[0]
    assert x1 - x0 > 2 * marker_radius(SCRATCH.area_mm2)
    # Plain strip between defects is the grey band; off the strip is paper.
    assert colour_at(image, *layout.px(6.3, 1030.0)) == (224, 224, 224)


def test_coverage_gaps_are_hatched_over_the_whole_width() -> None:
    image = coil_map(COIL, DEFECTS, GAPS, CLASSES)
    layout = map_layout(COIL, DEFECTS, GAPS, CLASSES)
    (x0, top), (x1, bottom) = layout.px(71.5, 1500.0), layout.px(73.9, 0.0)
    region = image[top : bottom + 1, x0 : x1 + 1]
    hatch = np.all(region == HATCH, axis=2)
    assert hatch.mean() > 0.1
    assert hatch[:20].any() and hatch[-20:].any()  # top edge to bottom edge
    # Diagonal lines: every hatch pixel has the next one of its line down-left of it.
    assert np.array_equal(hatch[:-1, 1:], hatch[1:, :-1])
    outside = image[top : bottom + 1, layout.px(60.0, 0)[0] : layout.px(65.0, 0)[0]]
    assert not np.all(outside == HATCH, axis=2).any()


@pytest.fixture
def crops_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "crops"
    crop = directory / PATCH_CROP
    crop.parent.mkdir(parents=True)
    image = np.full((40, 60), 90, np.uint8)
    cv2.rectangle(image, (10, 10), (50, 30), 200, -1)
    assert cv2.imwrite(str(crop), image)
    return directory  # the scratch's crop is missing


def test_write_report_writes_every_file_with_its_rows(tmp_path: Path, crops_dir: Path) -> None:
    out = tmp_path / "report"
    files = write_report(out, COIL, DEFECTS, GAPS, CLASSES, crops_dir)
    assert files.out_dir == out
    for path in (files.map_png, files.coil_json, files.defects_csv, files.gaps_csv):
        assert path.parent == out and path.stat().st_size > 0
    picture = cv2.imread(str(files.map_png))
    assert picture is not None and picture.shape[1] == MAP_WIDTH

    with files.defects_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(DEFECTS) and tuple(rows[0]) == CSV_COLUMNS
    assert {"along_from_m", "across_from_mm", "area_mm2", "class_name", "max_score"} <= set(rows[0])
    scratch = rows[1]
    assert (scratch["defect_id"], scratch["class_name"]) == (SCRATCH.defect_id, "scratches")
    assert float(scratch["along_to_m"]) == 48.0 and scratch["cameras"] == "top+bottom"
    assert rows[0]["crop"] == "" and scratch["crop"] == SCRATCH.crop
    with files.gaps_csv.open(newline="") as handle:
        gaps = list(csv.DictReader(handle))
    assert [(g["camera"], float(g["length_m"])) for g in gaps] == [("top", 4.0), ("bottom", 0.5)]

    document = json.loads(files.coil_json.read_text())
    assert set(document) == {"record_schema", "coil", "defects", "gaps"}
    assert set(document["coil"]) == set(COIL.to_dict())
    assert CoilRecord.from_dict(document["coil"]) == COIL
    assert tuple(StripDefect.from_dict(d) for d in document["defects"]) == DEFECTS
    assert tuple(CoverageGap.from_dict(g) for g in document["gaps"]) == GAPS

    # The one real crop is copied and linked; the missing one is named, not fatal.
    assert [p.name for p in files.crops] == ["02-patch.jpg"]
    assert (out / "crops" / "02-patch.jpg").read_bytes() == (crops_dir / PATCH_CROP).read_bytes()
    report = files.report_md.read_text()
    assert report.startswith("# Coil C1: grade B")
    assert "scratches count 4 > 3 → B" in report
    assert "**4.0 m not inspected**" in report
    assert "![Defect map of coil C1](map.png)" in report
    assert "(crops/02-patch.jpg)" in report
    assert f"crop missing: {SCRATCH.crop}" in report
    assert "| scratches | 4 |" in report and "seq_back: 1" in report
    assert "no crop saved" in report  # the third largest never had one


def test_an_empty_coil_of_zero_length_still_writes_every_file(tmp_path: Path) -> None:
    empty = replace(
        COIL, head_m=0.0, tail_m=0.0, inspected_m=0.0, width_mm=0.0, frames=0, defects=0,
        classes=(), gap_m=0.0, largest=(), grade="A", grade_reasons=(), anomalies=(),
    )  # fmt: skip
    files = write_report(tmp_path / "empty", empty, (), (), CLASSES, None)
    for path in (files.map_png, files.coil_json, files.defects_csv, files.gaps_csv):
        assert path.stat().st_size > 0
    assert files.defects_csv.read_text().splitlines() == [",".join(CSV_COLUMNS)]
    assert len(files.gaps_csv.read_text().splitlines()) == 1
    assert json.loads(files.coil_json.read_text())["defects"] == []
    report = files.report_md.read_text()
    assert "grade A" in report and "**0.0 m not inspected**" in report
    assert files.crops == ()


def test_bad_records_are_left_off_the_map_and_said_so(tmp_path: Path) -> None:
    nan = float("nan")
    bad = (
        PIT,
        replace(PIT, defect_id="outside", along_m=(500.0, 500.1)),
        replace(PIT, defect_id="nan", across_mm=(nan, 3.0), area_mm2=nan, max_score=nan),
    )
    coil = replace(COIL, defects=3, gap_m=nan, largest=("nan", "unknown"))
    image = coil_map(coil, bad, (CoverageGap("line1", "C1", "top", nan, 2.0, 0, "x"),), CLASSES)
    layout = map_layout(coil, bad, (), CLASSES)
    assert colour_at(image, *layout.px(10.002, 302.5)) == class_colour(1)
    files = write_report(tmp_path, coil, bad, (), CLASSES, tmp_path)
    document = json.loads(files.coil_json.read_text())  # strict JSON: NaN became null
    assert document["defects"][2]["area_mm2"] is None and document["coil"]["gap_m"] is None
    assert len(files.defects_csv.read_text().splitlines()) == 4
    report = files.report_md.read_text()
    assert "1 defect(s) outside head..tail" in report
    assert "1 defect(s) with no finite position" in report
    assert "not among this report's defects" in report


def test_a_zero_length_coil_takes_its_axis_from_its_defects() -> None:
    coil = replace(COIL, head_m=5.0, tail_m=5.0)
    layout = map_layout(coil, DEFECTS, GAPS, CLASSES)
    assert layout.along_m == (10.0, max(d.along_m[1] for d in DEFECTS))
    image = coil_map(coil, DEFECTS, GAPS, CLASSES)
    assert colour_at(image, *layout.px(10.002, 302.5)) == class_colour(1)


def test_ten_thousand_defects_on_a_five_km_coil_render() -> None:
    rng = np.random.default_rng(7)
    along = rng.uniform(0.0, 5000.0, 10_000)
    across = rng.uniform(0.0, 1800.0, 10_000)
    classes = rng.integers(1, 4, 10_000)
    many = tuple(
        defect(i, int(c), (float(a), float(a) + 0.01), (float(x), float(x) + 5.0), coil_id="K")
        for i, (a, x, c) in enumerate(zip(along, across, classes, strict=True))
    )
    coil = replace(COIL, coil_id="K", tail_m=5000.0, inspected_m=5000.0, width_mm=1800.0)
    image = coil_map(
        coil, many, (CoverageGap("line1", "K", "top", 2000.0, 2100.0, 9, "m"),), CLASSES
    )
    assert image.shape[1] == MAP_WIDTH
    layout = map_layout(coil, many, (), CLASSES)
    assert layout.along_m == (0.0, 5000.0) and math.isclose(layout.across_mm[1], 1805.0, abs_tol=1)
