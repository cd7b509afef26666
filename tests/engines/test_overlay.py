"""Overlays colour exactly the kept defects and write a readable picture."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from defectd.engines.overlay import inspection_panel, overlay, write_panels
from defectd.engines.postprocess import PostprocessConfig, postprocess
from defectd.engines.synth import CLASS_COLOURS


def test_overlay_tints_defects_only(tmp_path: Path) -> None:
    image = np.full((64, 128), 120, np.uint8)
    probs = np.zeros((4, 64, 128), np.float32)
    probs[2, 20:40, 30:90] = 0.9
    defects = postprocess(probs, [1, 1, 1, 1], PostprocessConfig())
    drawn = overlay(image, defects)
    assert drawn.shape == (64, 128, 3)
    inside = drawn[30, 60].astype(int)
    blue = np.array(CLASS_COLOURS[3])
    assert np.abs(inside - 120).sum() > 30  # tinted
    assert np.argmax(inside) == np.argmax(blue)  # towards class 3's colour
    assert (drawn[5, 5] == 120).all()  # far from the defect: untouched grey

    panel = inspection_panel(image, defects, "frame.jpg")
    assert panel.shape[1] == 128 and panel.shape[0] > 64
    out = tmp_path / "overlay.png"
    write_panels([panel, panel], out)
    written = cv2.imread(str(out))
    assert written is not None and written.shape[0] == 2 * panel.shape[0] + 8
