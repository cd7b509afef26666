"""Facts about C×H×W class-mask stacks, shared by datasets, the synthetic line and training."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def present_classes(masks: npt.NDArray[np.uint8]) -> tuple[int, ...]:
    """1-based ids of the classes (planes of `masks`) with at least one set pixel."""
    return tuple(int(c) + 1 for c in np.flatnonzero(masks.reshape(len(masks), -1).any(axis=1)))
