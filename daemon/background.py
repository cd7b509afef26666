"""A function run in a thread of its own, its result or its exception handed to the caller.

The simulator command, the demo, the benchmarks, the loopback harness and the OPC UA server
send, read or serve in a thread while the calling thread waits, shows progress or samples; an
exception in that thread must surface in the caller, not end up as a line on stderr. Threads
are daemon threads: one stuck in a blocking send never holds the interpreter open at exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """`function()` in a daemon thread named `name`; `result` returns what it returned or
    raises what it raised, in the calling thread.

    >>> sender = Background(lambda: 6 * 7, "answer").start()
    >>> sender.result(timeout_s=5)
    42
    """

    def __init__(self, function: Callable[[], T], name: str) -> None:
        self.name = name
        self._function = function
        self._value: list[T] = []  # empty until it returned
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Background[T]:
        """Start the thread; `self`, to write ``Background(f, "name").start()``."""
        self._thread.start()
        return self

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def is_alive(self) -> bool:
        """Whether the function is still running."""
        return self._thread.is_alive()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Until the function returned or raised (True), or `timeout_s` passed (False)."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def result(self, timeout_s: float | None = None) -> T:
        """What the function returned, once it has; what it raised is raised here.
        TimeoutError when it still runs after `timeout_s` (None: wait as long as it takes)."""
        if not self.wait(timeout_s):
            raise TimeoutError(f"thread {self.name} still running after {timeout_s:g} s")
        if self._error is not None:
            raise self._error
        return self._value[0]

    def _run(self) -> None:
        try:
            self._value.append(self._function())
        except BaseException as exc:  # handed to the caller in `result`
            self._error = exc
