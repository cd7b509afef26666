"""Per-camera sequence numbers: frames lost in transport, duplicates, camera restarts.

Each camera numbers its frames ``seq`` = previous + 1. Feeding every received ``seq`` to
`SequenceTracker.feed` classifies it:

- ``first``: the first frame seen from this camera;
- ``in_order``: previous + 1;
- ``gap``: ahead of previous + 1; ``lost`` frames went missing on the way (a ZeroMQ high-water
  mark dropped them, or the link was down);
- ``out_of_order``: not ahead of the newest seen (a duplicate, or a late frame): counted, not
  lost, and the newest seq is kept;
- ``reset``: the camera restarted its numbering: the seq fell back below ``reset_below``, or
  moved more than ``jump_limit`` in either direction. Counted as a restart, never as a gap
  of billions of frames.

Pure Python: the ingest stage owns the tracker and exports the counters as metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from defectd.daemon.protocol import MAX_SEQ

OUTCOMES = ("first", "in_order", "gap", "out_of_order", "reset")


@dataclass(frozen=True)
class SeqOutcome:
    """What one frame's seq says about the stream."""

    kind: str  # one of OUTCOMES
    lost: int = 0  # frames missing before this one (kind "gap" only)
    previous: int | None = None  # the newest seq before this frame, for log messages


@dataclass(frozen=True)
class SequenceStats:
    """Counters of one camera since the tracker started."""

    frames: int = 0  # seqs fed
    lost: int = 0  # frames missing in gaps
    resets: int = 0  # restarts of the camera's numbering
    out_of_order: int = 0  # duplicates and late frames
    last_seq: int | None = None  # newest seq seen


class SequenceTracker:
    """Classifies each camera's sequence numbers and counts losses, restarts and reorders.

    `reset_below`: a seq lower than the newest seen and below this is a camera restart (a
    restarted camera counts from 0). `jump_limit`: a move of more than this many in either
    direction is a restart too (a new random start, a wrapped counter), not a loss.
    """

    def __init__(self, reset_below: int = 1000, jump_limit: int = 2**32) -> None:
        if reset_below < 0:
            raise ValueError(f"reset_below must be ≥ 0, got {reset_below}")
        if jump_limit < 1:
            raise ValueError(f"jump_limit must be ≥ 1, got {jump_limit}")
        self._reset_below = reset_below
        self._jump_limit = jump_limit
        self._stats: dict[str, SequenceStats] = {}

    def feed(self, camera_id: str, seq: int) -> SeqOutcome:
        """Record `seq` from `camera_id` and say how it continues that camera's stream."""
        if not 0 <= seq <= MAX_SEQ:
            raise ValueError(f"seq must be a uint64 (0..{MAX_SEQ}), got {seq}")
        stats = self._stats.get(camera_id, SequenceStats())
        last = stats.last_seq
        if last is None:
            outcome = SeqOutcome("first")
        elif seq == last + 1:
            outcome = SeqOutcome("in_order", previous=last)
        elif seq > last:
            if seq - last > self._jump_limit:
                outcome = SeqOutcome("reset", previous=last)
            else:
                outcome = SeqOutcome("gap", lost=seq - last - 1, previous=last)
        elif seq < last and (seq < self._reset_below or last - seq > self._jump_limit):
            outcome = SeqOutcome("reset", previous=last)
        else:
            outcome = SeqOutcome("out_of_order", previous=last)
        self._stats[camera_id] = SequenceStats(
            frames=stats.frames + 1,
            lost=stats.lost + outcome.lost,
            resets=stats.resets + (outcome.kind == "reset"),
            out_of_order=stats.out_of_order + (outcome.kind == "out_of_order"),
            last_seq=last if outcome.kind == "out_of_order" else seq,
        )
        return outcome

    def stats(self, camera_id: str) -> SequenceStats:
        """Counters of `camera_id` (all zero when it has sent nothing)."""
        return self._stats.get(camera_id, SequenceStats())

    def cameras(self) -> tuple[str, ...]:
        """Cameras seen so far, in order of their first frame."""
        return tuple(self._stats)
