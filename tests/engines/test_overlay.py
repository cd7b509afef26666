"""Overlays colour exactly the kept defects and write a readable picture."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from defectd.engines.classes import SEVERSTAL_NAMES, class_colour
from defectd.engines.overlay import inspection_panel, overlay, write_panels
from defectd.engines.postprocess import PostprocessConfig, postprocess


def test_overlay_tints_defects_only(tmp_path: Path) -> None:
    image = np.full((64, 128), 120, np.uint8)
    probs = np.zeros((4, 64, 128), np.float32)
    probs[2, 20:40, 30:90] = 0.9
    defects = postprocess(probs, [1, 1, 1, 1], PostprocessConfig())
    drawn = overlay(image, defects)
    assert drawn.shape == (64, 128, 3)
    inside = drawn[30, 60].astype(int)
    blue = np.array(class_colour(3))
    assert np.abs(inside - 120).sum() > 30  # tinted
    assert np.argmax(inside) == np.argmax(blue)  # towards class 3's colour
    assert (drawn[5, 5] == 120).all()  # far from the defect: untouched grey

    panel = inspection_panel(image, defects, "frame.jpg", SEVERSTAL_NAMES)
    assert panel.shape[1] == 128 and panel.shape[0] > 64
    out = tmp_path / "overlay.png"
    write_panels([panel, panel], out)
    written = cv2.imread(str(out))
    assert written is not None and written.shape[0] == 2 * panel.shape[0] + 8


def test_every_class_up_to_64_has_its_own_colour() -> None:
    colours = [class_colour(c) for c in range(1, 65)]
    assert len(set(colours)) == 64
    assert all(0 <= v <= 255 for c in colours for v in c)
