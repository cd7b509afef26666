"""Tiny data sets on disk for the format tests: a few small PNG/JPEG files written with cv2.

Images are noise (so no two are alike unless a test makes them so); label maps hold a block
of each class given; binary masks are 0/255 with a soft edge.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[3]
SHARED = Path(os.environ.get("DEFECTD_SHARED", REPO.parent / "shared"))


def noise(height: int, width: int, seed: int) -> npt.NDArray[np.uint8]:
    """A grey image no other seed gives."""
    return np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)


def write_image(path: Path, height: int = 8, width: int = 12, seed: int = 0) -> Path:
    """A noise image at `path` (format from its suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), noise(height, width, seed))
    return path


def label_map(height: int, width: int, classes: Sequence[int]) -> npt.NDArray[np.uint8]:
    """A label map with a 2-row band of each class in `classes` (0 elsewhere)."""
    labels = np.zeros((height, width), dtype=np.uint8)
    for index, class_id in enumerate(classes):
        labels[2 * index : 2 * index + 2, 1:5] = class_id
    return labels


def write_mask(path: Path, mask: npt.NDArray[np.uint8]) -> Path:
    """`mask` as a PNG at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask)
    return path


def binary_mask(height: int, width: int, on: bool = True) -> npt.NDArray[np.uint8]:
    """0/255 with a soft edge (values 40 and 200 around a 255 block), as magnetic-tile has."""
    mask = np.zeros((height, width), dtype=np.uint8)
    if on:
        mask[1:5, 1:5] = 40
        mask[2:4, 2:4] = 255
        mask[2:4, 4] = 200
    return mask


def image_mask_folders(
    root: Path,
    classes: Sequence[Sequence[int]] = ((1,), (2, 3), ()),
    sizes: Sequence[tuple[int, int]] | None = None,
) -> Path:
    """``images/00000N.png`` + ``masks/00000N.png`` label maps, one image per entry of
    `classes` (the classes its mask holds), at `sizes` (default 8×12 each)."""
    for index, present in enumerate(classes):
        height, width = sizes[index] if sizes else (8, 12)
        name = f"{index + 1:06d}"
        write_image(root / "images" / f"{name}.png", height, width, seed=index)
        write_mask(root / "masks" / f"{name}.png", label_map(height, width, present))
    return root


def side_by_side(root: Path, count: int = 3) -> Path:
    """``x.jpg`` + ``x.png`` (label map with class 1) in one folder."""
    for index in range(count):
        write_image(root / f"frame{index}.jpg", seed=index)
        write_mask(root / f"frame{index}.png", label_map(8, 12, (1,)))
    return root


def class_folders(root: Path, sub: str = "Imgs") -> Path:
    """magnetic-tile's shape: MT_Blowhole (2 images), MT_Crack (1), MT_Free (2, zero masks),
    each ``MT_<Class>/<sub>/<name>.jpg`` + ``<name>.png``; sizes differ per image."""
    layout = {"MT_Blowhole": 2, "MT_Crack": 1, "MT_Free": 2}
    seed = 0
    for folder, count in layout.items():
        for index in range(count):
            seed += 1
            height, width = 8 + seed, 10 + 2 * seed
            base = root / folder / sub / f"exp_{index}"
            write_image(base.with_suffix(".jpg"), height, width, seed)
            write_mask(base.with_suffix(".png"), binary_mask(height, width, folder != "MT_Free"))
    return root


def severstal(root: Path, rows: str = "a.jpg,1,1 10\nb.jpg,3,5 20\n") -> Path:
    """train.csv + train_images/ with a.jpg, b.jpg and clean.jpg at 1600×256."""
    for index, name in enumerate(("a.jpg", "b.jpg", "clean.jpg")):
        write_image(root / "train_images" / name, 256, 1600, seed=index)
    (root / "train.csv").write_text("ImageId,ClassId,EncodedPixels\n" + rows, encoding="utf-8")
    return root


def shared(name: str, marker: str) -> Path:
    """The real data set ``../shared/<name>`` (or $DEFECTD_SHARED/<name>), when there."""
    import pytest

    folder = SHARED / name
    if not (folder / marker).exists():
        pytest.skip(f"real data set {folder} not found (set DEFECTD_SHARED to its parent folder)")
    return folder
