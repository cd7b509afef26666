"""Frame payload → the uint8 H×W grey picture the engine takes.

``mono8`` costs nothing: the result is a view on the payload, not a copy (a received ZeroMQ
frame stays alive as long as the view does; the view is read-only when the payload is
``bytes``), to be copied once, into the engine's batch slot. ``bgr8`` is converted to grey;
``jpeg`` and ``png`` are decoded to grey by OpenCV.

Compressed payloads are checked before OpenCV sees them: the signature, that the file is
complete, and that the size written in the file's own header is the size the frame header
claims. A 1 KB PNG that unpacks to 60000×60000 is rejected before a byte is allocated, and a
frame's pixel count is bounded by ``max_pixels`` before any decoding at all.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from defectd.daemon.protocol import FrameHeader, Rejected

DEFAULT_MAX_PIXELS = 2**26  # 64 Mpx: 160 full 1600×256 frames; a bound, not a frame size
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the empty IEND chunk every PNG ends with
JPEG_START = b"\xff\xd8"
JPEG_END = b"\xff\xd9"
# Start-of-frame markers (baseline, progressive, lossless, arithmetic); not DHT, JPG, DAC.
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
_JPEG_PADDING = 64  # trailing NUL bytes tolerated after EOI (some encoders pad)
# IGNORE_ORIENTATION: pixels as the sensor delivered them, never rotated by an EXIF tag.
_IMREAD = cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION

UInt8Array = npt.NDArray[np.uint8]


def decode_frame(
    header: FrameHeader,
    payload: memoryview | bytes,
    expected: tuple[int, int],
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> UInt8Array:
    """The frame as a uint8 H×W grey array; `Rejected` when it cannot be used.

    `expected` is the cameras' configured (height, width). For ``mono8`` the array is a view
    on `payload`, not a copy: copy it before the payload's buffer is reused. Reasons:
    ``too_large`` (header pixel count over `max_pixels`), ``wrong_frame_size`` (the camera's
    frame size is not the configured one), ``size_mismatch`` (payload or picture size
    disagrees with the header), ``undecodable``.
    """
    camera = header.camera_id
    if header.pixels > max_pixels:
        raise Rejected(
            "too_large",
            f"{header.width}×{header.height} is {header.pixels} pixels, the limit is "
            f"{max_pixels}: send smaller frames",
            camera,
        )
    height, width = expected
    if (header.height, header.width) != (height, width):
        raise Rejected(
            "wrong_frame_size",
            f"camera sends {header.width}×{header.height}, the config says {width}×{height}: "
            f"set the camera to {width}×{height}, or its width and height in the config to "
            f"{header.width}×{header.height} (any size is tiled into the model's input)",
            camera,
        )
    data = payload if isinstance(payload, memoryview) else memoryview(payload)
    if header.encoding in ("mono8", "bgr8"):
        channels = 1 if header.encoding == "mono8" else 3
        if data.nbytes != header.pixels * channels:
            raise Rejected(
                "size_mismatch",
                f"{header.encoding} {header.width}×{header.height} is "
                f"{header.pixels * channels} bytes, the payload is {data.nbytes}",
                camera,
            )
        pixels = np.frombuffer(data, np.uint8)
        if channels == 1:
            return pixels.reshape(header.height, header.width)
        grey = cv2.cvtColor(pixels.reshape(header.height, header.width, 3), cv2.COLOR_BGR2GRAY)
        return np.asarray(grey, np.uint8)
    try:
        size = _png_size(data) if header.encoding == "png" else _jpeg_size(data)
    except ValueError as exc:
        raise Rejected(
            "undecodable", f"{header.encoding} payload {exc}{_other_format(header, data)}", camera
        ) from None
    if size != (header.width, header.height):
        raise Rejected(
            "size_mismatch",
            f"the {header.encoding} picture is {size[0]}×{size[1]}, the header says "
            f"{header.width}×{header.height}: send the picture's own width and height",
            camera,
        )
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), _IMREAD)
    except cv2.error as exc:
        raise Rejected(
            "undecodable", f"OpenCV cannot decode the {header.encoding}: {exc}", camera
        ) from None
    if decoded is None:
        raise Rejected(
            "undecodable",
            f"OpenCV cannot decode the {header.encoding} payload (damaged data?)",
            camera,
        )
    # Checked again after decoding: the decoded picture, not the file's header, is what runs.
    if decoded.shape != (header.height, header.width) or decoded.dtype != np.uint8:
        got = "×".join(map(str, decoded.shape[1::-1]))
        raise Rejected(
            "size_mismatch",
            f"the {header.encoding} decodes to {got} {decoded.dtype}, the header says "
            f"{header.width}×{header.height} 8-bit",
            camera,
        )
    return np.asarray(decoded, np.uint8)


def _other_format(header: FrameHeader, data: memoryview) -> str:
    """A hint when the payload is the other compressed format than the header says."""
    head = bytes(data[:8])
    if header.encoding == "jpeg" and head.startswith(PNG_SIGNATURE):
        return ": the payload is a PNG; set encoding png"
    if header.encoding == "png" and head.startswith(JPEG_START):
        return ": the payload is a JPEG; set encoding jpeg"
    return ""


def _png_size(data: memoryview) -> tuple[int, int]:
    """(width, height) from the IHDR chunk of a complete PNG; ValueError saying what is wrong."""
    if bytes(data[:8]) != PNG_SIGNATURE or bytes(data[12:16]) != b"IHDR":
        raise ValueError("does not start with the PNG signature and IHDR")
    if bytes(data[-12:]) != PNG_END:
        raise ValueError("does not end with IEND (truncated?)")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _jpeg_size(data: memoryview) -> tuple[int, int]:
    """(width, height) from the first start-of-frame segment of a complete JPEG; ValueError
    saying what is wrong. Walks the marker segments before the scan data: a handful of steps."""
    if bytes(data[:2]) != JPEG_START:
        raise ValueError("does not start with the JPEG marker FF D8")
    if not bytes(data[-_JPEG_PADDING:]).rstrip(b"\x00").endswith(JPEG_END):
        raise ValueError("does not end with the JPEG marker FF D9 (truncated?)")
    end = data.nbytes
    at = 2
    while at + 4 <= end:
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker in _JPEG_STANDALONE:
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            break
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if marker in _JPEG_SOF:
            if length < 7 or at + 9 > end:
                break
            height = int.from_bytes(data[at + 5 : at + 7], "big")
            width = int.from_bytes(data[at + 7 : at + 9], "big")
            if height == 0:  # height set later by a DNL marker: size unknown up front
                raise ValueError("declares height 0 (DNL); not supported")
            return width, height
        if length < 2:
            break
        at += 2 + length
    raise ValueError("has no readable frame header (SOF)")
