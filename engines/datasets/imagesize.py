"""An image's height and width from its file header, without decoding the pixels.

PNG, JPEG and BMP headers are read directly (a few hundred bytes at most); any other file,
or a header that cannot be parsed, is decoded with OpenCV instead.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2

from defectd.engines.errors import InvalidInput

_PNG = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, …); C4, C8, CC are not frames.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers without a length field.
_STANDALONE = {0x01, *range(0xD0, 0xD9)}


def _png_size(head: bytes) -> tuple[int, int] | None:
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(height), int(width)


def _bmp_size(head: bytes) -> tuple[int, int] | None:
    if len(head) < 26:
        return None
    width, height = struct.unpack("<ii", head[18:26])
    return abs(int(height)), int(width)  # negative height: rows stored top-down


def _jpeg_size(path: Path) -> tuple[int, int] | None:
    with path.open("rb") as handle:
        if handle.read(2) != b"\xff\xd8":
            return None
        while True:
            byte = handle.read(1)
            if not byte:
                return None
            if byte != b"\xff":
                continue
            marker = handle.read(1)
            while marker == b"\xff":  # fill bytes
                marker = handle.read(1)
            if not marker:
                return None
            code = marker[0]
            if code in _STANDALONE:
                continue
            if code == 0xD9:  # end of image before any frame
                return None
            length_bytes = handle.read(2)
            if len(length_bytes) < 2:
                return None
            (length,) = struct.unpack(">H", length_bytes)
            if code in _SOF:
                frame = handle.read(5)
                if len(frame) < 5:
                    return None
                _, height, width = struct.unpack(">BHH", frame)
                return int(height), int(width)
            handle.seek(length - 2, 1)


def header_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from the header of a PNG, JPEG or BMP file; None when not one of those."""
    with path.open("rb") as handle:
        head = handle.read(32)
    size: tuple[int, int] | None = None
    if head.startswith(_PNG):
        size = _png_size(head)
    elif head.startswith(b"\xff\xd8"):
        size = _jpeg_size(path)
    elif head.startswith(b"BM"):
        size = _bmp_size(head)
    return size if size is not None and size[0] > 0 and size[1] > 0 else None


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of the image at `path`: from its header where cheap, else decoded.

    Raises `InvalidInput` naming the file when it cannot be read as an image.
    """
    try:
        size = header_size(path)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if size is not None:
        return size
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InvalidInput(f"{path}: cannot be read as an image")
    return int(image.shape[0]), int(image.shape[1])
