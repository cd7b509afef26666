"""Kaggle run-length encoding, exactly as the Severstal competition used it.

Pixels are numbered 1..H*W in column-major order (down the first column, then the next),
and a mask is written as space-separated "start length" pairs, starts ascending.
An empty mask is the empty string.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from defectd.engines.errors import UserError

SEVERSTAL_SHAPE: tuple[int, int] = (256, 1600)


class RLEError(UserError, ValueError):
    """A malformed run-length string; the message names the offending token and why."""


def encode(mask: npt.ArrayLike) -> str:
    """Encode a 2-D mask (any dtype, non-zero = set) as a Kaggle RLE string."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"encode expects a 2-D H×W mask, got shape {array.shape}")
    # Transposing then ravelling in C order walks the pixels column-major.
    flat = np.empty(array.size + 2, dtype=np.int8)
    flat[0] = flat[-1] = 0
    flat[1:-1] = array.T.reshape(-1) != 0
    edges = np.flatnonzero(flat[1:] != flat[:-1])
    if edges.size == 0:
        return ""
    runs = edges.reshape(-1, 2)
    runs[:, 1] -= runs[:, 0]
    runs[:, 0] += 1
    return " ".join(map(str, runs.ravel().tolist()))


def _parse_values(rle: str) -> npt.NDArray[np.int64]:
    tokens = rle.split()
    try:
        return np.array(tokens, dtype=np.int64)
    except (ValueError, OverflowError):
        pass
    for index, token in enumerate(tokens):
        try:
            int(token)
        except ValueError:
            kind = "start" if index % 2 == 0 else "length"
            raise RLEError(f"token {index + 1} ({token!r}, a {kind}) is not an integer") from None
    raise RLEError("a value does not fit in a 64-bit integer")


def decode_runs(rle: str, size: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Validated (starts, lengths) of `rle` for an image of `size` pixels; starts are 0-based.

    Raises RLEError naming the token for an odd number of values, non-integers, starts below 1,
    lengths below 1, runs past the last pixel, and runs that overlap or go backwards.
    """
    values = _parse_values(rle)
    if values.size % 2:
        raise RLEError(
            f"odd number of values ({values.size}): the last start, token {values.size} "
            f"({values[-1]}), has no length"
        )
    starts, lengths = values[0::2], values[1::2]
    bad = np.flatnonzero(starts < 1)
    if bad.size:
        i = int(bad[0])
        raise RLEError(f"token {2 * i + 1}: start {starts[i]} is below 1 (starts are 1-based)")
    bad = np.flatnonzero(lengths < 1)
    if bad.size:
        i = int(bad[0])
        raise RLEError(f"token {2 * i + 2}: run length {lengths[i]} must be at least 1")
    ends = starts + lengths - 1  # last pixel of each run, 1-based
    bad = np.flatnonzero(ends > size)
    if bad.size:
        i = int(bad[0])
        raise RLEError(
            f"token {2 * i + 1}: run {starts[i]}+{lengths[i]} ends at pixel {ends[i]}, "
            f"past the last pixel {size} of the image"
        )
    bad = np.flatnonzero(starts[1:] <= ends[:-1])
    if bad.size:
        i = int(bad[0]) + 1
        what = "overlaps" if starts[i] >= starts[i - 1] else "starts before"
        raise RLEError(
            f"token {2 * i + 1}: run starting at {starts[i]} {what} the previous run "
            f"{starts[i - 1]}..{ends[i - 1]} (runs must ascend without overlap)"
        )
    return starts - 1, lengths


def decode(rle: str, shape: tuple[int, int] = SEVERSTAL_SHAPE) -> npt.NDArray[np.uint8]:
    """Decode a Kaggle RLE string into an H×W uint8 mask of 0/1.

    Raises RLEError (a ValueError) for malformed strings; nothing is clipped or skipped.
    """
    height, width = shape
    if height < 1 or width < 1:
        raise ValueError(f"shape must be positive, got {shape}")
    size = height * width
    starts, lengths = decode_runs(rle, size)
    if starts.size == 0:
        return np.zeros(shape, dtype=np.uint8)
    # Alternate background gaps and runs, then expand them with one np.repeat:
    # gap0, run0, gap1, run1, ..., final gap.
    ends = starts + lengths
    segments = np.empty(2 * starts.size + 1, dtype=np.int64)
    segments[0:-1:2] = starts - np.concatenate(([0], ends[:-1]))
    segments[1::2] = lengths
    segments[-1] = size - ends[-1]
    values = np.zeros(segments.size, dtype=np.uint8)
    values[1::2] = 1
    column_major = np.repeat(values, segments)
    return np.ascontiguousarray(column_major.reshape(width, height).T)
