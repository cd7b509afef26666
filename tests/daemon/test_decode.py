"""Payload → grey frame, with real JPEG/PNG bytes made by OpenCV."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defectd.daemon.decode import decode_frame
from defectd.daemon.protocol import FrameHeader, Rejected

H, W = 24, 40


def grey_frame() -> np.ndarray:
    """A smooth gradient with a bright square: compresses well and survives JPEG."""
    y, x = np.mgrid[0:H, 0:W]
    frame = (x * 4 + y * 2).astype(np.uint8)
    frame[8:16, 10:20] = 250
    return frame


FRAME = grey_frame()


def header(encoding: str, width: int = W, height: int = H, **changes: Any) -> FrameHeader:
    return FrameHeader("cam1", 1, 0, encoding, width, height, **changes)


def encoded(ext: str, image: np.ndarray = FRAME) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return bytes(data.tobytes())


JPEG = encoded(".jpg")
PNG = encoded(".png")


def reason(encoding: str, payload: bytes, width: int = W, height: int = H, **kw: Any) -> str:
    with pytest.raises(Rejected) as info:
        decode_frame(header(encoding, width, height), payload, (H, W), **kw)
    assert info.value.camera_id == "cam1"
    return f"{info.value.reason}: {info.value.detail}"


def test_mono8_is_a_view_on_the_payload() -> None:
    payload = bytearray(FRAME.tobytes())
    frame = decode_frame(header("mono8"), memoryview(payload), (H, W))
    assert frame.shape == (H, W) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, FRAME)
    payload[0] = 99
    assert frame[0, 0] == 99  # no copy was made


def test_mono8_from_bytes_is_read_only() -> None:
    frame = decode_frame(header("mono8"), FRAME.tobytes(), (H, W))
    assert not frame.flags.writeable


def test_bgr8_to_grey() -> None:
    bgr = np.dstack([FRAME, FRAME, FRAME])
    frame = decode_frame(header("bgr8"), bgr.tobytes(), (H, W))
    np.testing.assert_array_equal(frame, FRAME)  # equal channels: grey is the channel


def test_bgr8_channel_weights() -> None:
    bgr = np.zeros((H, W, 3), np.uint8)
    bgr[..., 2] = 255  # pure red
    frame = decode_frame(header("bgr8"), bgr.tobytes(), (H, W))
    assert frame[0, 0] == cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[0, 0] == 76


def test_png_is_lossless() -> None:
    np.testing.assert_array_equal(decode_frame(header("png"), PNG, (H, W)), FRAME)


def test_jpeg_decodes_close() -> None:
    frame = decode_frame(header("jpeg"), memoryview(JPEG), (H, W))
    assert frame.shape == (H, W) and frame.dtype == np.uint8
    assert np.abs(frame.astype(int) - FRAME).mean() < 4


def test_colour_and_16_bit_files_become_8_bit_grey() -> None:
    colour = encoded(".jpg", np.dstack([FRAME, FRAME, FRAME]))
    assert decode_frame(header("jpeg"), colour, (H, W)).shape == (H, W)
    deep = encoded(".png", FRAME.astype(np.uint16) * 257)
    np.testing.assert_array_equal(decode_frame(header("png"), deep, (H, W)), FRAME)


def test_progressive_jpeg() -> None:
    ok, data = cv2.imencode(".jpg", FRAME, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    assert decode_frame(header("jpeg"), data.tobytes(), (H, W)).shape == (H, W)


def test_jpeg_with_trailing_padding() -> None:
    assert decode_frame(header("jpeg"), JPEG + b"\x00" * 6, (H, W)).shape == (H, W)


def test_wrong_frame_size_names_both_sizes() -> None:
    small = np.zeros((H, W // 2), np.uint8)
    text = reason("mono8", small.tobytes(), width=W // 2)
    assert text.startswith("wrong_frame_size: camera sends 20×24, the config says 40×24")


def test_too_large_before_decoding() -> None:
    assert reason("png", PNG, max_pixels=W * H - 1).startswith("too_large")


@pytest.mark.parametrize("encoding", ["mono8", "bgr8"])
def test_raw_size_mismatch(encoding: str) -> None:
    assert reason(encoding, FRAME.tobytes()[:-1]).startswith("size_mismatch")


@pytest.mark.parametrize(("ext", "encoding"), [(".jpg", "jpeg"), (".png", "png")])
def test_picture_size_differs_from_header(ext: str, encoding: str) -> None:
    other = encoded(ext, np.zeros((H, W + 8), np.uint8))
    text = reason(encoding, other)
    assert text.startswith(f"size_mismatch: the {encoding} picture is 48×24, the header says 40×24")


def test_decompression_bomb_is_refused_unread() -> None:
    """A PNG whose IHDR claims 60000×60000 is rejected before OpenCV allocates anything."""
    bomb = bytearray(PNG)
    bomb[16:24] = (60000).to_bytes(4, "big") * 2
    assert reason("png", bytes(bomb)).startswith("size_mismatch: the png picture is 60000×60000")


def test_truncated_jpeg_and_png() -> None:
    assert "truncated" in reason("jpeg", JPEG[: len(JPEG) // 2])
    assert "truncated" in reason("jpeg", JPEG[:-2])
    assert "truncated" in reason("png", PNG[: len(PNG) // 2])
    assert "truncated" in reason("png", PNG[:-1])


def test_swapped_formats_are_named() -> None:
    assert "the payload is a PNG; set encoding png" in reason("jpeg", PNG)
    assert "the payload is a JPEG; set encoding jpeg" in reason("png", JPEG)


@pytest.mark.parametrize("encoding", ["jpeg", "png"])
@pytest.mark.parametrize("payload", [b"", b"\x00", b"not an image at all"])
def test_garbage_is_undecodable(encoding: str, payload: bytes) -> None:
    assert reason(encoding, payload).startswith("undecodable")


def test_jpeg_without_frame_header() -> None:
    # Start, a comment segment, then the end: well-formed markers but no SOF.
    data = b"\xff\xd8" + b"\xff\xfe\x00\x04hi" + b"\xff\xd9"
    assert "no readable frame header" in reason("jpeg", data)


def test_jpeg_with_zero_height() -> None:
    at = JPEG.index(b"\xff\xc0")
    data = bytearray(JPEG)
    data[at + 5 : at + 7] = b"\x00\x00"
    assert "height 0" in reason("jpeg", bytes(data))


def test_corrupt_png_data_is_undecodable() -> None:
    """Signature, IHDR and IEND intact, the compressed pixel data destroyed."""
    data = bytearray(PNG)
    start = PNG.index(b"IDAT") + 4
    data[start : start + 20] = b"\x55" * 20
    assert reason("png", bytes(data)).startswith("undecodable")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(["jpeg", "png"]))
def test_arbitrary_payload_only_rejects(payload: bytes, encoding: str) -> None:
    try:
        decode_frame(header(encoding), payload, (H, W))
    except Rejected as error:
        assert error.reason in ("undecodable", "size_mismatch")


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_damaged_files_only_reject(data: st.DataObject) -> None:
    """Real files with bytes flipped or cut anywhere: a frame of the right size, or Rejected."""
    encoding, original = data.draw(st.sampled_from([("jpeg", JPEG), ("png", PNG)]))
    damaged = bytearray(original)
    for at in data.draw(st.lists(st.integers(0, len(damaged) - 1), max_size=4)):
        damaged[at] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(damaged)))
    try:
        frame = decode_frame(header(encoding), bytes(damaged[:cut]), (H, W))
    except Rejected as error:
        assert error.reason in ("undecodable", "size_mismatch")
    else:
        assert frame.shape == (H, W) and frame.dtype == np.uint8
