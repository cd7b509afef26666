"""The shadow store: a real SQLite file and real PNGs in tmp_path, written and read back."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from defectd.daemon.shadow.compare import compare_frame
from defectd.daemon.shadow.store import (
    LIVE_COLOUR,
    SHADOW_COLOUR,
    ShadowStore,
    disagreement_picture,
)
from tests.daemon.shadow.helpers import CLASSES, fill, grey_frame, live_frame, shadow_frame


def test_runs_and_comparisons_read_back(tmp_path: Path) -> None:
    run_id = fill(tmp_path)
    store = ShadowStore.open_existing(tmp_path)
    try:
        (run,) = store.runs()
        assert run.run_id == run_id and run.line == "line1"
        assert (run.live_model, run.shadow_model, run.share) == ("unet-v7", "unet-v8", 0.25)
        assert run.classes == CLASSES
        stored = list(store.comparisons())
        assert len(stored) == 4 * 4  # every class of every frame
        assert [s.seq for s in stored[::4]] == [10, 11, 12, 13]
        seq12 = [s for s in stored if s.seq == 12]
        assert tuple(s.row for s in seq12) == compare_frame(live_frame(12), shadow_frame(12))
        # The picture goes with the disagreeing classes only.
        assert [s.picture for s in seq12] == ["pictures/run1-top-0-12.png"] * 2 + [None, None]
        assert all(s.picture is None for s in stored if s.seq == 10)  # agreed
        assert list(store.comparisons(run_id + 1)) == []
    finally:
        store.close()
    pictures = sorted(p.name for p in (tmp_path / "pictures").iterdir())
    assert pictures == ["run1-top-0-11.png", "run1-top-0-12.png", "run1-top-0-13.png"]


def test_max_saved_bounds_the_pictures(tmp_path: Path) -> None:
    fill(tmp_path, max_saved=1)
    store = ShadowStore.open_existing(tmp_path)
    try:
        saved = {s.picture for s in store.comparisons()} - {None}
    finally:
        store.close()
    assert saved == {"pictures/run1-top-0-11.png"}
    assert [p.name for p in (tmp_path / "pictures").iterdir()] == ["run1-top-0-11.png"]


def test_open_existing_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no shadow\.db here; it is shadow\.dir of a daemon"):
        ShadowStore.open_existing(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()  # reading makes no store


def test_disagreement_picture_outlines_both_models(tmp_path: Path) -> None:
    scale = 10  # 80×80 frame: class 2 is rows 50-69, columns 0-39
    live, shadow = live_frame(11, scale), shadow_frame(11, scale)
    picture = disagreement_picture(grey_frame(scale), live, shadow, (2,))
    # Cut to the class's pixels plus a 24 px margin: rows 26..80, columns 0..64.
    panel_h, panel_w = 80 - 26, 64
    assert picture.shape == (2 * (18 + panel_h), panel_w, 3)
    top, bottom = picture[: 18 + panel_h], picture[18 + panel_h :]
    assert np.all(top[18:] == LIVE_COLOUR, axis=2).sum() > 40  # the live outline
    assert not np.all(bottom[18:] == SHADOW_COLOUR, axis=2).any()  # the shadow found none
    assert cv2.imwrite(str(tmp_path / "p.png"), picture)
    read = cv2.imread(str(tmp_path / "p.png"))
    assert read is not None and np.array_equal(read, picture)
