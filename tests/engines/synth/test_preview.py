"""Contact sheet: a PNG with frames stacked and labels outlined in class colours."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from defectd.engines.synth import SynthConfig, SyntheticLine, write_contact_sheet

LEGEND, CAPTION, PANEL = 28, 22, 128  # px at scale 0.5


def _saturated(pixels: np.ndarray) -> npt.NDArray[np.bool_]:
    spread = pixels.max(axis=-1).astype(int) - pixels.min(axis=-1).astype(int)
    return np.asarray(spread > 80)


def test_contact_sheet_outlines_labels_in_colour(tmp_path: Path) -> None:
    defective = SyntheticLine(1, SynthConfig(defect_free_share=0.0)).frame(0)
    clean = SyntheticLine(1, SynthConfig(defect_free_share=1.0, mark_rate=0.0)).frame(0)
    path = tmp_path / "sheet.png"
    write_contact_sheet(path, [defective, clean], show_marks=False)

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sheet = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert sheet is not None
    assert sheet.shape == (LEGEND + 2 * (CAPTION + PANEL), 800, 3)
    first = sheet[LEGEND + CAPTION : LEGEND + CAPTION + PANEL]
    second = sheet[LEGEND + 2 * CAPTION + PANEL :]
    assert _saturated(first).sum() > 20, "labels of the defective frame are outlined"
    assert not _saturated(second).any(), "a clean frame has no outlines"
    # The outlines sit where the labels are (half-scale coordinates, a pixel of slack).
    labelled = cv2.resize(defective.masks.max(axis=0), (800, 128), interpolation=cv2.INTER_NEAREST)
    near = cv2.dilate(labelled, np.ones((5, 5), np.uint8)).astype(bool)
    assert _saturated(first)[~near].sum() == 0


def test_contact_sheet_needs_png_and_frames(tmp_path: Path) -> None:
    frame = SyntheticLine(1).frame(0)
    with pytest.raises(ValueError, match=r"\.png"):
        write_contact_sheet(tmp_path / "sheet.jpg", [frame])
    with pytest.raises(ValueError, match="at least one frame"):
        write_contact_sheet(tmp_path / "sheet.png", [])
