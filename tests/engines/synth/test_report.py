"""measure_line counts what the line generates."""

from __future__ import annotations

import numpy as np
import pytest

from defectd.engines.synth import SyntheticLine
from defectd.engines.synth.report import measure_line


def test_measure_line_matches_a_direct_count() -> None:
    line = SyntheticLine(seed=11)
    stats = measure_line(line, 25)
    frames = list(line.frames(25))
    assert stats.defect_free == sum(not f.classes for f in frames)
    for c in range(4):
        areas = [int(f.masks[c].sum()) for f in frames if c + 1 in f.classes]
        assert stats.class_frames[c] == len(areas)
        expected = float(np.median(areas)) if areas else None
        assert stats.area_medians[c] == expected
    assert stats.overlapping_pixels == 0


def test_measure_line_rejects_zero_frames() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        measure_line(SyntheticLine(seed=1), 0)
