"""A camera buffer as the 8-bit grey frame the protocol carries (pure numpy).

Mono8 passes through. Mono10, Mono12 and Mono16 arrive unpacked, one little-endian 16-bit
word per pixel (GenICam's ``MonoN`` formats; the packed ``MonoNp`` ones are refused), and are
mapped to 8 bit through a window: values at or below ``low`` become 0, at or above ``high``
255, linearly between — so an integrator picks the grey range that matters on the strip
instead of throwing the low bits away. Without a window the full range of the format is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from defectd.engines.errors import InvalidInput, InvalidSetting

BITS = {"Mono8": 8, "Mono10": 10, "Mono12": 12, "Mono16": 16}


@dataclass(frozen=True)
class Window:
    """The input range mapped onto 0…255."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not 0 <= self.low < self.high:
            raise InvalidSetting(f"window: need 0 ≤ low < high, got {self.low}…{self.high}")


def full_window(pixel_format: str) -> Window:
    return Window(0, (1 << bits(pixel_format)) - 1)


def bits(pixel_format: str) -> int:
    if pixel_format not in BITS:
        raise InvalidSetting(
            f"pixel format {pixel_format!r}: the gateway takes {', '.join(BITS)} "
            "(unpacked grey); set the camera to one of them"
        )
    return BITS[pixel_format]


def to_mono8(
    data: bytes | memoryview,
    pixel_format: str,
    width: int,
    height: int,
    window: Window | None = None,
) -> npt.NDArray[np.uint8]:
    """The H×W uint8 frame of one buffer (module docstring)."""
    depth = bits(pixel_format)
    size = width * height * (1 if depth == 8 else 2)
    if len(data) < size:
        raise InvalidInput(
            f"{pixel_format} {width}×{height} needs {size} bytes, the buffer has {len(data)}"
        )
    if depth == 8 and window is None:
        return np.frombuffer(data, np.uint8, width * height).reshape(height, width).copy()
    dtype = np.uint8 if depth == 8 else np.dtype("<u2")
    values = np.frombuffer(data, dtype, width * height).reshape(height, width)
    scale = window or full_window(pixel_format)
    span = float(scale.high - scale.low)
    mapped = (values.astype(np.float32) - scale.low) * (255.0 / span)
    frame: npt.NDArray[np.uint8] = np.clip(np.rint(mapped), 0, 255).astype(np.uint8)
    return frame


class LineAssembler:
    """Line-scan cameras: buffers of a few lines each, gathered into frames of
    ``lines_per_frame`` lines (what the model and the daemon see)."""

    def __init__(self, lines_per_frame: int) -> None:
        if lines_per_frame < 1:
            raise InvalidSetting(f"lines_per_frame must be at least 1, got {lines_per_frame}")
        self.lines_per_frame = lines_per_frame
        self._rows: list[npt.NDArray[np.uint8]] = []
        self._count = 0

    def add(self, lines: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.uint8]]:
        """Add a buffer's lines; the frames completed by them (oldest first)."""
        self._rows.append(lines)
        self._count += len(lines)
        done = []
        while self._count >= self.lines_per_frame:
            stacked = np.concatenate(self._rows)
            done.append(stacked[: self.lines_per_frame])
            rest = stacked[self.lines_per_frame :]
            self._rows = [rest] if len(rest) else []
            self._count = len(rest)
        return done
