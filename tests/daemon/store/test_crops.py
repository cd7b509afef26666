"""Crops: JPEGs under date/coil folders, safe names, removal, a byte limit; `crop_box`."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from defectd.daemon.store.crops import CropStore, crop_box, crop_file_name
from defectd.engines.errors import InvalidInput
from tests.daemon.store.helpers import T0


def _image(seed: int = 0, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (9, 9), 3)
    return np.asarray(smooth, dtype=np.uint8)


def test_a_crop_is_a_jpeg_under_its_day_and_coil(tmp_path: Path) -> None:
    crops = CropStore(tmp_path, max_bytes=10**6)
    image = _image()
    relative = crops.save("L1/C 7/cam1/120/3/0", image, coil_id="C 7", capture_ns=T0)
    assert relative.startswith("2023-11-14/C_7/") and relative.endswith(".jpg")  # T0 in UTC
    data = (tmp_path / relative).read_bytes()
    assert data[:2] == b"\xff\xd8"  # JPEG
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert back is not None
    assert back.shape == image.shape
    assert np.abs(back.astype(int) - image.astype(int)).mean() < 3  # quality 90
    assert list(tmp_path.rglob("*.part")) == []


def test_names_are_safe_and_distinct() -> None:
    names = {crop_file_name(i) for i in ("a/b", "a_b", "../../etc/passwd", "x" * 500, "é ü")}
    assert len(names) == 5
    for name in names:
        assert "/" not in name and not name.startswith(".") and len(name) < 100
        assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name)


def test_a_crop_without_coil_or_time_uses_the_clock(tmp_path: Path) -> None:
    crops = CropStore(tmp_path, max_bytes=10**6, now_ns=lambda: T0 + 86_400 * 10**9)
    assert crops.save("d1", _image()).startswith("2023-11-15/no-coil/")


@pytest.mark.parametrize(
    "image",
    [np.zeros((8, 8), np.float32), np.zeros((8, 8, 3), np.uint8), np.zeros((0, 8), np.uint8)],
)
def test_only_grey_uint8_images_are_crops(tmp_path: Path, image: np.ndarray) -> None:
    with pytest.raises(InvalidInput, match="uint8 height × width grey"):
        CropStore(tmp_path, max_bytes=10**6).save("d1", image)


def test_removed_crops_take_their_empty_folders(tmp_path: Path) -> None:
    crops = CropStore(tmp_path, max_bytes=10**6)
    a = crops.save("a", _image(), coil_id="C1", capture_ns=T0)
    b = crops.save("b", _image(), coil_id="C2", capture_ns=T0)
    assert crops.remove([a, "2023-11-14/C1/missing.jpg", "../outside.jpg"]) == 1
    assert not (tmp_path / a).parent.exists()
    assert (tmp_path / b).is_file()
    assert tmp_path.is_dir()


def test_the_byte_limit_deletes_the_oldest(tmp_path: Path) -> None:
    crops = CropStore(tmp_path, max_bytes=10**6)
    paths = [crops.save(f"d{n}", _image(n), capture_ns=T0) for n in range(6)]
    for n, relative in enumerate(paths):  # d0 the oldest
        os.utime(tmp_path / relative, ns=(T0 + n, T0 + n))
    sizes = [(tmp_path / p).stat().st_size for p in paths]
    limited = CropStore(tmp_path, max_bytes=sum(sizes[3:]))
    assert limited.enforce_limit() == 3
    assert [(tmp_path / p).exists() for p in paths] == [False] * 3 + [True] * 3
    assert limited.total_bytes() <= sum(sizes[3:])
    assert limited.enforce_limit() == 0


def test_crop_box_grows_by_the_margin_and_stays_in_the_frame() -> None:
    assert crop_box((100, 50, 20, 10), (256, 1600), 8) == (92, 42, 128, 68)
    assert crop_box((2, 3, 20, 10), (256, 1600), 8) == (0, 0, 30, 21)
    assert crop_box((1590, 250, 20, 10), (256, 1600, 1), 8) == (1582, 242, 1600, 256)
    with pytest.raises(ValueError, match="outside"):
        crop_box((2000, 10, 5, 5), (256, 1600), 0)
    with pytest.raises(ValueError, match="empty"):
        crop_box((10, 10, 0, 5), (256, 1600), 4)
