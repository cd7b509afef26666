"""A tiny label-map data set (image-mask-folders) for the exclusive-class tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def make_label_map_set(root: Path, count: int = 12, size: int = 64, seed: int = 0) -> Path:
    """`count` grey size×size images with squares of class 1 and discs of class 2, their
    masks label maps (0 background); every third image is clean."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for index in range(count):
        image = rng.normal(120, 8, (size, size)).clip(0, 255).astype(np.uint8)
        labels = np.zeros((size, size), np.uint8)
        if index % 3 != 2:
            side = int(rng.integers(10, 18))
            top, left = rng.integers(2, size // 2 - side // 2, size=2)
            labels[top : top + side, left : left + side] = 1
            image[labels == 1] = 40
            cy, cx = rng.integers(size // 2 + 6, size - 10, size=2)
            disc = np.zeros_like(labels)
            cv2.circle(disc, (int(cx), int(cy)), int(rng.integers(5, 9)), 1, -1)
            labels[disc == 1] = 2
            image[disc == 1] = 220
        cv2.imwrite(str(root / "images" / f"{index:03d}.png"), image)
        cv2.imwrite(str(root / "masks" / f"{index:03d}.png"), labels)
    (root / "dataset.yaml").write_text("classes: [square, disc]\n", encoding="utf-8")
    return root
