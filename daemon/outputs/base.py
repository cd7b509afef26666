"""What an output is to the stage that runs it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class OutputStats:
    """Counts an output keeps; the stage exports them as metrics."""

    received: int = 0  # events from the feed
    delivered: int = 0  # sent on to the output's consumers (messages, node writes, ...)
    dropped: dict[str, int] = field(default_factory=dict)  # reason → events never delivered
    buffered: int = 0  # waiting for a consumer that is away
    connected: bool = False  # the broker / clients / server side is up

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count


class Output(Protocol):
    """One output: started once, fed every event, ticked about every second, closed once."""

    @property
    def stats(self) -> OutputStats: ...

    def start(self) -> None:
        """Open sockets, servers, connections; raise a `UserError` naming the fix when it
        cannot (a broker that is merely down is not an error: it is retried)."""

    def handle(self, topic: str, payload: dict[str, Any]) -> None:
        """One event (`daemon.events.decode_message`'s dict); must not block for long."""

    def tick(self) -> None:
        """Periodic work: reconnects, flushing buffers, housekeeping."""

    def close(self) -> None:
        """Flush what can be flushed within a second or two, then stop."""
