"""Harmless marks change the picture but are never labelled."""

from __future__ import annotations

import numpy as np

from defectd.engines.synth import SynthConfig, SyntheticLine


def test_marks_paint_the_image_but_leave_masks_empty() -> None:
    clean = SyntheticLine(3, SynthConfig(defect_free_share=1.0, mark_rate=0.0))
    marked = SyntheticLine(3, SynthConfig(defect_free_share=1.0, mark_rate=6.0))
    painted = 0
    for index in range(20):
        a, b = clean.frame(index), marked.frame(index)
        assert not b.masks.any() and b.classes == ()
        diff = np.abs(a.image.astype(np.int16) - b.image.astype(np.int16))
        # Same background (marks draw from their own random stream); changes only at marks,
        # up to soft tails a few grey levels deep where two marks' tails add up.
        assert diff[b.marks == 0].max() <= 3
        if b.marks.any():
            painted += 1
            assert diff[b.marks == 1].mean() > 3
    assert painted >= 15


def test_marks_never_touch_labels() -> None:
    line = SyntheticLine(4, SynthConfig(defect_free_share=0.0, mark_rate=4.0))
    marks = 0
    for frame in line.frames(60):
        assert not np.any(frame.marks & frame.masks.any(axis=0))
        marks += int(frame.marks.any())
    assert marks > 40
