"""Server-sent events to every open page: the latest update, to each client at its own pace.

An update is the whole live part of the line page (`pages.live_update`), so a client that
falls behind needs only the newest one, never the ones it missed: `Broadcast` keeps one
numbered message, and each event-stream thread waits for a number past the one it sent last.
No queue per client, nothing to overflow, and a slow browser never holds up the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Broadcast:
    """The newest message and its number; `wait` blocks until a newer one or a timeout."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._number = 0
        self._message = ""
        self._closed = False
        self.clients = 0  # event streams open now
        self.sent = 0  # messages written to clients, all together

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, message: str) -> int:
        """Make `message` the newest; its number."""
        with self._condition:
            self._number += 1
            self._message = message
            self._condition.notify_all()
            return self._number

    def latest(self) -> tuple[int, str]:
        """The newest message and its number (0, "" before the first)."""
        with self._condition:
            return self._number, self._message

    def wait(self, after: int, timeout_s: float) -> tuple[int, str] | None:
        """The newest message once its number is past `after`; None after `timeout_s`
        without one, or once closed."""
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while self._number <= after and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._condition.wait(remaining)
            if self._closed:
                return None
            return self._number, self._message

    def close(self) -> None:
        """Wake every waiting stream; they end."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def stream(
        self, write: Callable[[str], None], keepalive_s: float, retry_ms: int = 3000
    ) -> None:
        """Write server-sent events with `write` until closed or `write` raises (the client
        went away: OSError): the newest update at once, then each newer one; a comment line
        every `keepalive_s` so proxies and the browser keep the connection."""
        with self._condition:
            self.clients += 1
        try:
            write(f"retry: {retry_ms}\n\n")
            number, message = self.latest()
            if number:
                write(sse("update", message))
                self._count()
            while not self._closed:
                got = self.wait(number, keepalive_s)
                if got is None:
                    if self._closed:
                        return
                    write(": keepalive\n\n")
                    continue
                number, message = got
                write(sse("update", message))
                self._count()
        finally:
            with self._condition:
                self.clients -= 1

    def _count(self) -> None:
        with self._condition:
            self.sent += 1


def sse(event: str, data: str) -> str:
    """One server-sent event: its name and its data, a ``data:`` line per line of `data`."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n"
