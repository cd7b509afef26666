"""Sizes from file headers agree with decoding; other files fall back to decoding."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from defectd.engines.datasets.imagesize import header_size, image_size
from defectd.engines.errors import InvalidInput
from tests.engines.datasets.helpers import write_image


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp"])
@pytest.mark.parametrize("size", [(8, 12), (256, 1600), (403, 103)])
def test_header_sizes_match_the_pixels(suffix: str, size: tuple[int, int], tmp_path: Path) -> None:
    path = write_image(tmp_path / f"x{suffix}", *size)
    assert header_size(path) == size
    assert image_size(path) == cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[:2]


def test_colour_and_progressive_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "p.jpg"
    colour = np.zeros((30, 50, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), colour, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert header_size(path) == (30, 50)


def test_other_files_are_decoded(tmp_path: Path) -> None:
    path = write_image(tmp_path / "x.tif", 9, 7)
    assert header_size(path) is None and image_size(path) == (9, 7)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n")  # a signature and nothing else
    with pytest.raises(InvalidInput, match=r"broken\.png: cannot be read as an image"):
        image_size(broken)
