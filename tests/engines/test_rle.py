"""Kaggle RLE: format, round trips (property-based), and malformed input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from defectd.engines.rle import RLEError, decode, encode


def test_column_major_one_based_pairs() -> None:
    mask = np.array([[1, 0, 0], [1, 1, 0]], dtype=np.uint8)  # 2 rows × 3 columns
    # Column-major pixel numbers: (0,0)=1 (1,0)=2 (0,1)=3 (1,1)=4 (0,2)=5 (1,2)=6
    assert encode(mask) == "1 2 4 1"
    np.testing.assert_array_equal(decode("1 2 4 1", (2, 3)), mask)


def test_empty_full_first_and_last_pixel() -> None:
    shape = (256, 1600)
    assert encode(np.zeros(shape)) == ""
    assert decode("", shape).sum() == 0
    assert decode("   ", shape).sum() == 0
    assert encode(np.ones(shape)) == f"1 {256 * 1600}"
    first = np.zeros(shape, np.uint8)
    first[0, 0] = 1
    last = np.zeros(shape, np.uint8)
    last[-1, -1] = 1
    assert encode(first) == "1 1"
    assert encode(last) == f"{256 * 1600} 1"
    np.testing.assert_array_equal(decode(f"{256 * 1600} 1", shape), last)


def test_decode_returns_c_contiguous_uint8() -> None:
    mask = decode("3 4", (5, 7))
    assert mask.dtype == np.uint8 and mask.flags.c_contiguous and mask.shape == (5, 7)


def test_touching_runs_decode_and_encode_merged() -> None:
    mask = decode("1 2 3 2", (2, 3))
    assert mask.sum() == 4
    assert encode(mask) == "1 4"


def test_encode_rejects_non_2d() -> None:
    with pytest.raises(ValueError, match="2-D"):
        encode(np.zeros((2, 3, 4)))


@settings(max_examples=200, deadline=None)
@given(
    arrays(
        np.bool_,
        st.tuples(st.integers(1, 40), st.integers(1, 40)),
        elements=st.booleans(),
    )
)
def test_round_trip_any_shape(mask: np.ndarray) -> None:
    rle = encode(mask)
    np.testing.assert_array_equal(decode(rle, mask.shape), mask.astype(np.uint8))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 30)), max_size=20))
def test_canonical_strings_round_trip(gaps_and_runs: list[tuple[int, int]]) -> None:
    # A canonical string: ascending runs separated by at least one background pixel
    # (touching runs would be merged by encode).
    values: list[int] = []
    position = 1  # first pixel not yet used, 1-based
    for gap, length in gaps_and_runs:
        start = position + gap + (1 if values else 0)
        values += [start, length]
        position = start + length
    size = max(position, 1)
    rle = " ".join(map(str, values))
    assert encode(decode(rle, (1, size))) == rle


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ("1 2 3", r"odd number of values \(3\).*token 3"),
        ("1 x", r"token 2 \('x', a length\) is not an integer"),
        ("1.5 2", r"token 1 \('1.5', a start\) is not an integer"),
        ("0 3", r"token 1: start 0 is below 1"),
        ("-4 3", r"token 1: start -4 is below 1"),
        ("1 0", r"token 2: run length 0 must be at least 1"),
        ("1 -2", r"token 2: run length -2 must be at least 1"),
        ("1 2 2 2", r"token 3: run starting at 2 overlaps the previous run 1..2"),
        ("5 2 1 1", r"token 3: run starting at 1 starts before the previous run 5..6"),
        ("5 3", r"token 1: run 5\+3 ends at pixel 7, past the last pixel 6"),
    ],
)
def test_malformed_rle_names_token_and_reason(rle: str, message: str) -> None:
    with pytest.raises(RLEError, match=message):
        decode(rle, (2, 3))


def test_rle_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        decode("7 1", (2, 3))


def test_bad_shape() -> None:
    with pytest.raises(ValueError, match="positive"):
        decode("", (0, 3))
