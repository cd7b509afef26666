"""A live one-line status on a stream: rewritten in place on a terminal, else one plain line
every `log_every_s` (logs under systemd or CI would fill with carriage returns)."""

from __future__ import annotations

import time
from typing import TextIO


class LiveLine:
    """`show(text)` as often as you like; `finish()` ends the line on a terminal."""

    def __init__(self, stream: TextIO, log_every_s: float = 10.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.log_every_s = log_every_s
        self._last_log = time.monotonic()
        self._shown = False

    def show(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self._shown = True
        elif time.monotonic() - self._last_log >= self.log_every_s:
            self.stream.write(text + "\n")
            self._last_log = time.monotonic()
        self.stream.flush()

    def finish(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
