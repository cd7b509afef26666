"""Camera timestamps on the host's wall clock, drift included.

A GigE Vision camera stamps each frame with its own clock (ticks since it powered up); the host
stamps the same buffer when its last packet arrived. ``host − device`` is the offset between
the clocks plus the transfer delay, and the delay is never negative: the smallest offset seen
over recent frames is the best estimate of the clocks' true offset. A camera's oscillator is
off by tens of ppm (50 ppm is 180 ms a day), so one offset taken at the first frame drifts;
`ClockMap` keeps the minimum over a sliding window of the last `window` frames, so the map
follows the drift within one window while a late, delayed frame never moves it.
"""

from __future__ import annotations

from collections import deque

DEFAULT_WINDOW = 256  # frames: at 50 fps, about 5 s


class ClockMap:
    """Map a camera's device timestamps to host (wall-clock) nanoseconds."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError(f"clock window must be at least 1 frame, got {window}")
        self._window = window
        # (index, offset) with increasing offsets: the front is the window's minimum
        self._offsets: deque[tuple[int, int]] = deque()
        self._index = 0

    def reset(self) -> None:
        """Forget the offsets: a reopened camera's clock starts again."""
        self._offsets.clear()

    @property
    def offset_ns(self) -> int | None:
        """The current estimate of ``host − device``; None before the first frame."""
        return self._offsets[0][1] if self._offsets else None

    def capture_ns(self, device_ns: int, host_ns: int) -> int:
        """The frame's capture time on the host clock, learning from this frame's offset."""
        offset = host_ns - device_ns
        index = self._index
        self._index += 1
        while self._offsets and self._offsets[-1][1] >= offset:
            self._offsets.pop()
        self._offsets.append((index, offset))
        while self._offsets[0][0] <= index - self._window:
            self._offsets.popleft()
        return device_ns + self._offsets[0][1]
