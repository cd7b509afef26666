"""Dynamic batching for the inference process: full batches at once, partial ones on a deadline.

Like Triton's ``max_queue_delay`` and DeepStream's batched push timeout: a batch goes as soon
as ``max_batch`` frames are pending, or when the oldest pending frame has waited
``max_wait_ms`` since it reached the batcher. Frames from all cameras share batches; they leave
in arrival order, so each camera's order is kept.

`Batcher` is pure logic with an injectable clock; the inference stage feeds it from its socket
and polls it at the deadline `next_deadline` names.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    """Groups items into batches of at most ``max_batch``; see the module docstring."""

    def __init__(
        self,
        max_batch: int,
        max_wait_ms: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be 0 or more, got {max_wait_ms}")
        self._max_batch = max_batch
        self._max_wait = max_wait_ms / 1000.0
        self._clock = clock
        self._pending: deque[tuple[float, T]] = deque()  # (arrival time, item), oldest first

    @property
    def max_batch(self) -> int:
        return self._max_batch

    @property
    def max_wait_ms(self) -> float:
        return self._max_wait * 1000.0

    @max_wait_ms.setter
    def max_wait_ms(self, value: float) -> None:
        """A new longest wait (a reload); it applies to the items pending too."""
        if value < 0:
            raise ValueError(f"max_wait_ms must be 0 or more, got {value}")
        self._max_wait = value / 1000.0

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, item: T, now: float | None = None) -> None:
        """Queue an item; its wait starts ``now`` (default: the clock)."""
        self._pending.append((self._clock() if now is None else now, item))

    def next_deadline(self) -> float | None:
        """Clock time at which the pending partial batch is due; None when nothing is pending.

        A full batch is due at once: this is then a time in the past.
        """
        if not self._pending:
            return None
        if len(self._pending) >= self._max_batch:
            return float("-inf")
        return self._pending[0][0] + self._max_wait

    def poll(self, now: float | None = None) -> list[T] | None:
        """The next batch if one is due at ``now`` (default: the clock), else None.

        Call again until None: several batches can be due at once.
        """
        deadline = self.next_deadline()
        if deadline is None:
            return None
        if deadline > (self._clock() if now is None else now):
            return None
        return self._take()

    def flush(self) -> list[list[T]]:
        """Everything pending as batches, due or not (at shutdown)."""
        batches = []
        while self._pending:
            batches.append(self._take())
        return batches

    def hand_over(self) -> list[tuple[float, T]]:
        """Everything pending with its arrival time, oldest first, and nothing left here (a
        model swap moves pending frames to the new engine's batcher, their waits kept)."""
        pending = list(self._pending)
        self._pending.clear()
        return pending

    def _take(self) -> list[T]:
        count = min(self._max_batch, len(self._pending))
        return [self._pending.popleft()[1] for _ in range(count)]
