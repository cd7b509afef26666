"""present_classes reads class ids off a mask stack."""

from __future__ import annotations

import numpy as np

from defectd.engines.masks import present_classes


def test_present_classes_are_one_based_and_ordered() -> None:
    masks = np.zeros((4, 3, 5), np.uint8)
    assert present_classes(masks) == ()
    masks[3, 2, 4] = 1
    masks[1, 0, 0] = 1
    assert present_classes(masks) == (2, 4)
