"""The null backend finds nothing, checks its input like a real engine, and allocates nothing."""

from __future__ import annotations

import numpy as np
import pytest

from defectd.engines.backends.null_backend import NullEngine
from defectd.engines.inference import Predictor
from defectd.engines.postprocess import PostprocessConfig


def test_no_defects_for_any_frame() -> None:
    engine = NullEngine()
    frames = np.full((3, 256, 1600), 255, np.uint8)
    out = engine.infer(frames)
    assert out.probs.shape == (3, 4, 256, 1600) and out.presence.shape == (3, 4)
    assert not out.probs.flags.writeable  # a view of one zero, not 3×4×256×1600 floats
    defects = Predictor(engine, PostprocessConfig()).defects(out, 2)
    assert defects.classes == () and not defects.masks.any()


def test_checks_input_like_a_real_engine() -> None:
    with pytest.raises(ValueError, match=r"expects N×1×256×1600 uint8 frames"):
        NullEngine().infer(np.zeros((1, 128, 128), np.uint8))
    with pytest.raises(ValueError, match="at least one class"):
        NullEngine(classes=())
