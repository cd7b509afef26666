"""Every frame accounted for: received = processed + dropped{reason} + in flight, per camera.

The supervisor feeds a `FrameAccount` with `FrameEvent`s from its children: a receiver reports
each frame it receives, and whoever finishes a frame reports it processed or dropped. Events
from different processes arrive in no guaranteed order (a post-processing worker's "processed"
can overtake the receiver's "received"), so the account keeps a per-frame ledger and lets a
completion wait for its receipt.

With events alone the identity holds by construction; what can actually go wrong is a frame
completed twice, a frame completed but never received, and a frame stuck in flight. `check`
finds the first two, `overdue` the third.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Literal

DROP_REASONS = (
    "queue_full",  # no free slot: backpressure policy dropped it
    "worker_crash",  # its slot was reclaimed from a dead process
    "bad_frame",  # malformed message or wrong frame size
    "engine_error",  # inference failed for its batch
    "timeout",  # in flight too long (see FrameAccount.overdue)
    "shutdown",  # still in flight when the daemon stopped
)

FrameKey = tuple[str, int]  # (camera, seq)
EventKind = Literal["received", "processed", "dropped"]
_MAX_ANOMALIES = 100


class AccountingError(AssertionError):
    """The frame accounting identity does not hold."""


@dataclass(frozen=True)
class FrameEvent:
    """One frame's step, sent to the supervisor (small, picklable)."""

    kind: EventKind
    camera: str
    seq: int
    time: float = 0.0  # seconds (time.monotonic in the daemon)
    reason: str | None = None  # dropped only: one of DROP_REASONS


@dataclass(frozen=True)
class CameraCounts:
    """A camera's counters at one moment."""

    received: int = 0
    processed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> frames
    in_flight: int = 0  # received, not yet completed
    unmatched: int = 0  # completed, receipt not yet seen

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def balanced(self) -> bool:
        """received + unmatched = processed + dropped + in_flight."""
        return (
            self.received + self.unmatched == self.processed + self.dropped_total + self.in_flight
        )


@dataclass
class _Entry:
    balance: int  # receipts minus completions of this key
    since: float  # time of the event that made the balance non-zero


@dataclass
class _Camera:
    received: int = 0
    processed: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    unmatched: int = 0
    ledger: dict[int, _Entry] = field(default_factory=dict)  # seq -> entry, non-zero only


class FrameAccount:
    """Per-camera frame counters with a per-frame ledger (pure Python, no locking)."""

    def __init__(self) -> None:
        self._cameras: dict[str, _Camera] = {}
        self._anomalies: deque[str] = deque(maxlen=_MAX_ANOMALIES)

    # -- events --------------------------------------------------------------------------

    def apply(self, event: FrameEvent) -> None:
        """Count one event."""
        if event.kind == "received":
            self.on_received(event.camera, event.seq, event.time)
        elif event.kind == "processed":
            self.on_processed(event.camera, event.seq, event.time)
        elif event.kind == "dropped":
            if event.reason is None:
                raise ValueError(f"dropped event without a reason; choose from {DROP_REASONS}")
            self.on_dropped(event.camera, event.seq, event.reason, event.time)
        else:
            raise ValueError(
                f"unknown frame event kind {event.kind!r}; choose received, processed, dropped"
            )

    def on_received(self, camera: str, seq: int, time: float = 0.0) -> None:
        """A receiver got the frame (before it asked for a slot)."""
        state = self._camera(camera)
        state.received += 1
        entry = state.ledger.get(seq)
        if entry is None:
            state.ledger[seq] = _Entry(1, time)
            state.in_flight += 1
            return
        if entry.balance >= 0:  # the camera reused a seq still in flight (it restarted?)
            state.in_flight += 1
        else:
            state.unmatched -= 1
        self._move(state, seq, entry, +1)

    def on_processed(self, camera: str, seq: int, time: float = 0.0) -> None:
        """The frame went all the way through the pipeline."""
        state = self._camera(camera)
        state.processed += 1
        self._complete(camera, state, seq, time, "processed")

    def on_dropped(self, camera: str, seq: int, reason: str, time: float = 0.0) -> None:
        """The frame was given up for ``reason`` (one of DROP_REASONS)."""
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason!r}; choose from {DROP_REASONS}")
        state = self._camera(camera)
        state.dropped[reason] += 1
        self._complete(camera, state, seq, time, f"dropped ({reason})")

    # -- reading -------------------------------------------------------------------------

    def cameras(self) -> tuple[str, ...]:
        return tuple(sorted(self._cameras))

    def counts(self, camera: str) -> CameraCounts:
        """One camera's counters (all zero for a camera never seen)."""
        state = self._cameras.get(camera)
        if state is None:
            return CameraCounts()
        return CameraCounts(
            received=state.received,
            processed=state.processed,
            dropped=dict(state.dropped),
            in_flight=state.in_flight,
            unmatched=state.unmatched,
        )

    def totals(self) -> CameraCounts:
        """All cameras together."""
        dropped: Counter[str] = Counter()
        received = processed = in_flight = unmatched = 0
        for state in self._cameras.values():
            received += state.received
            processed += state.processed
            dropped.update(state.dropped)
            in_flight += state.in_flight
            unmatched += state.unmatched
        return CameraCounts(received, processed, dict(dropped), in_flight, unmatched)

    def overdue(self, now: float, max_age: float) -> list[FrameKey]:
        """Frames in flight since before ``now - max_age``, oldest first.

        The supervisor drops them as "timeout": a frame lost where no slot tracked it (say,
        results queued by a process that then died) otherwise stays in flight for ever.
        """
        late = [
            (entry.since, camera, seq)
            for camera, state in self._cameras.items()
            for seq, entry in state.ledger.items()
            if entry.balance > 0 and entry.since < now - max_age
        ]
        return [(camera, seq) for _, camera, seq in sorted(late)]

    @property
    def anomalies(self) -> tuple[str, ...]:
        """The last few completions that did not match a receipt (for the log)."""
        return tuple(self._anomalies)

    def check(self, settled: bool = False, now: float | None = None, grace: float = 5.0) -> None:
        """Raise `AccountingError` unless every frame is accounted for once.

        Always: the identity per camera, and no frame completed more often than received.
        With ``now``: no completion still waiting for its receipt after ``grace`` seconds (a
        receipt is never that late: the frame was completed twice or never received). With
        ``settled`` (children stopped, their events drained): nothing in flight or unmatched.
        """
        problems = []
        for camera in self.cameras():
            counts = self.counts(camera)
            state = self._cameras[camera]
            if not counts.balanced:
                problems.append(
                    f"{camera}: received {counts.received} + unmatched {counts.unmatched} ≠ "
                    f"processed {counts.processed} + dropped {counts.dropped_total} + "
                    f"in flight {counts.in_flight}"
                )
            twice = sorted(
                seq
                for seq, entry in state.ledger.items()
                if entry.balance < -1
                or (entry.balance < 0 and now is not None and entry.since < now - grace)
            )
            if twice:
                problems.append(
                    f"{camera}: completed but not received (or completed twice): seq {twice[:10]}"
                )
            if settled and (counts.in_flight or counts.unmatched):
                problems.append(
                    f"{camera}: settled with {counts.in_flight} frames in flight and "
                    f"{counts.unmatched} completed but never received"
                )
        if problems:
            recent = "; ".join(list(self._anomalies)[-5:])
            raise AccountingError(
                "frame accounting is off: "
                + "; ".join(problems)
                + (f" (recent anomalies: {recent})" if recent else "")
            )

    # -- internals -----------------------------------------------------------------------

    def _camera(self, camera: str) -> _Camera:
        state = self._cameras.get(camera)
        if state is None:
            state = self._cameras[camera] = _Camera()
        return state

    def _complete(self, camera: str, state: _Camera, seq: int, time: float, what: str) -> None:
        entry = state.ledger.get(seq)
        if entry is None:
            # Its receipt may still be on its way from another process: wait for it.
            state.ledger[seq] = _Entry(-1, time)
            state.unmatched += 1
            return
        if entry.balance > 0:
            state.in_flight -= 1
        else:
            state.unmatched += 1
            self._anomalies.append(f"{camera} seq {seq} {what} again")
        self._move(state, seq, entry, -1)

    @staticmethod
    def _move(state: _Camera, seq: int, entry: _Entry, step: int) -> None:
        entry.balance += step
        if entry.balance == 0:
            del state.ledger[seq]
