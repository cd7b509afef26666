"""Warnings that repeat per frame, logged at most once per period per key.

A camera that sends a bad header sends it 50 times a second; journald should show the first
one at once, then one line per period saying how many more there were:

    camera cam2: size_mismatch: mono8 1600×256 is 409600 bytes, the payload is 409599
    camera cam2: size_mismatch: ... (499 more since last)

Occurrences after the last line of a burst are only reported when the key fires again; the
metrics, not the log, are the exact count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """Logs the first message per key, then at most one per `period_s` with a count of the
    ones held back. `clock` (seconds, monotonic) is injectable for tests.

    At most `max_keys` keys are remembered (keys may come from the network, e.g. unknown
    camera ids): past that, the key logged longest ago is forgotten and may log again early.
    """

    def __init__(
        self,
        logger: logging.Logger,
        period_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1024,
    ) -> None:
        if period_s <= 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be ≥ 1, got {max_keys}")
        self._logger = logger
        self._period = period_s
        self._clock = clock
        self._max_keys = max_keys
        # key → (time of the last line logged, occurrences held back since); oldest first
        self._state: dict[str, tuple[float, int]] = {}

    def log(self, level: int, key: str, msg: str, *args: object) -> bool:
        """Log `msg % args` at `level` unless `key` logged less than a period ago; True when
        a line was written."""
        return self._log(level, key, msg, args)

    def warning(self, key: str, msg: str, *args: object) -> bool:
        """`log` at WARNING."""
        return self._log(logging.WARNING, key, msg, args)

    def error(self, key: str, msg: str, *args: object) -> bool:
        """`log` at ERROR."""
        return self._log(logging.ERROR, key, msg, args)

    def _log(self, level: int, key: str, msg: str, args: tuple[object, ...]) -> bool:
        now = self._clock()
        last = self._state.get(key)
        if last is not None and now - last[0] < self._period:
            self._state[key] = (last[0], last[1] + 1)
            return False
        held = last[1] if last is not None else 0
        self._state.pop(key, None)  # re-inserted last: the dict stays ordered by last line
        self._state[key] = (now, 0)
        if len(self._state) > self._max_keys:
            del self._state[next(iter(self._state))]
        # stacklevel 3: the record names the caller of warning()/error()/log(), not this file.
        if held:
            text = msg % args if args else msg
            self._logger.log(level, "%s (%d more since last)", text, held, stacklevel=3)
        else:
            self._logger.log(level, msg, *args, stacklevel=3)
        return True

    def held(self, key: str) -> int:
        """Occurrences of `key` held back since its last line."""
        state = self._state.get(key)
        return state[1] if state is not None else 0
