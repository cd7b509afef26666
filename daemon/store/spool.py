"""`Spool`: batches the database did not take, on local disk until it answers again.

Append-only JSON-lines segment files in one directory (``0000000001.jsonl``, …), one batch
per line, each line fsync'd before `append` returns. `replay` hands the batches back oldest
first and deletes a segment only when every batch in it was written; a process that stops
part-way leaves the rest for the next `Spool` on the same directory, which appends to a new
segment and replays the old ones first. Replaying a batch twice (after a crash between the
write and the delete) is harmless: the store's writes are idempotent.

The spool is bounded by `max_bytes` on disk: a batch that does not fit is refused, counted
as dropped and logged, never lost silently. A line that cannot be read back (cut short by a
crash mid-append, or records of another schema) is logged, counted and skipped.

One thread uses a spool (the writer's); `stats()` may be read from any.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from defectd.daemon.store.batch import StoreBatch
from defectd.engines.errors import InvalidSetting

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class SpoolStats:
    """What a spool took and gave back since it was opened, and what it holds now."""

    spooled_batches: int
    spooled_rows: int
    replayed_batches: int
    replayed_rows: int
    dropped_batches: int
    dropped_rows: int
    unreadable_lines: int
    pending_bytes: int
    segments: int


def _plain(value: object) -> int | float:
    """Numbers JSON does not know (numpy scalars from the pipeline) as int or float; the
    store takes them, so the spool must too."""
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _fsync_directory(directory: Path) -> None:
    """Make a file's creation or removal in `directory` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Batches kept on disk in `directory` (created when missing), at most `max_bytes`."""

    def __init__(
        self,
        directory: Path | str,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> None:
        if max_bytes < 1:
            raise InvalidSetting(f"spool max_bytes must be ≥ 1, got {max_bytes}")
        if segment_bytes < 1:
            raise InvalidSetting(f"spool segment_bytes must be ≥ 1, got {segment_bytes}")
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._segments = sorted(self._dir.glob(f"*{SUFFIX}"))
        self._bytes = sum(p.stat().st_size for p in self._segments)
        self._next = 1 + max((int(p.stem) for p in self._segments if p.stem.isdigit()), default=0)
        self._current: Path | None = None  # the segment appends go to (never an old one)
        self._replayed_to = 0  # bytes of the oldest segment already written
        self._counts = dict.fromkeys(
            ("spooled_batches", "spooled_rows", "replayed_batches", "replayed_rows"), 0
        )
        self._counts.update(dropped_batches=0, dropped_rows=0, unreadable_lines=0)
        if self._segments:
            log.info(
                "spool %s: %d segment(s), %d bytes left from before, replayed first",
                self._dir,
                len(self._segments),
                self._bytes,
            )

    @property
    def directory(self) -> Path:
        """The folder of the segment files."""
        return self._dir

    @property
    def empty(self) -> bool:
        """No batch waits to be replayed."""
        return not self._segments

    @property
    def pending_bytes(self) -> int:
        """Bytes on disk in segments not yet fully replayed."""
        return self._bytes

    def stats(self) -> SpoolStats:
        """The counters and what the spool holds."""
        with self._lock:
            return SpoolStats(
                **self._counts, pending_bytes=self._bytes, segments=len(self._segments)
            )

    def _count(self, **add: int) -> None:
        with self._lock:
            for name, value in add.items():
                self._counts[name] += value

    def append(self, batch: StoreBatch) -> bool:
        """Keep `batch` (on disk, fsync'd, when this returns True). False: it did not fit in
        `max_bytes` or the disk refused it; its rows are counted as dropped and logged."""
        try:
            text = json.dumps(batch.to_dict(), separators=(",", ":"), default=_plain)
            line = (text + "\n").encode()
        except (TypeError, ValueError) as error:  # a value JSON cannot hold (a bug upstream)
            log.error("spool %s: %d rows dropped, not JSON: %s", self._dir, batch.rows, error)
            self._count(dropped_batches=1, dropped_rows=batch.rows)
            return False
        if self._bytes + len(line) > self._max_bytes:
            log.error(
                "spool %s full (%d of %d bytes): %d rows dropped; free the database or raise "
                "the spool's byte limit",
                self._dir,
                self._bytes,
                self._max_bytes,
                batch.rows,
            )
            self._count(dropped_batches=1, dropped_rows=batch.rows)
            return False
        try:
            self._write_line(line)
        except OSError as error:
            log.error("spool %s: %d rows dropped, cannot write: %s", self._dir, batch.rows, error)
            self._count(dropped_batches=1, dropped_rows=batch.rows)
            return False
        self._count(spooled_batches=1, spooled_rows=batch.rows)
        return True

    def _write_line(self, line: bytes) -> None:
        current = self._current
        if current is None or current.stat().st_size >= self._segment_bytes:
            current = self._dir / f"{self._next:010d}{SUFFIX}"
            self._next += 1
        with open(current, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        if current != self._current:
            _fsync_directory(self._dir)
            self._current = current
            with self._lock:
                self._segments.append(current)
        with self._lock:
            self._bytes += len(line)

    def replay(self, write: Callable[[Sequence[StoreBatch]], None], group: int = 1) -> int:
        """Hand the kept batches to `write` oldest first, up to `group` at a time; return how
        many were written. Stops at, and raises, the first error of `write`: what it had not
        written stays for the next call."""
        if group < 1:
            raise InvalidSetting(f"spool replay group must be ≥ 1, got {group}")
        written = 0
        while self._segments:
            segment = self._segments[0]
            pending: list[tuple[StoreBatch, int]] = []  # (batch, offset after its line)
            for batch, end in self._read(segment):
                pending.append((batch, end))
                if len(pending) == group:
                    written += self._write_group(write, pending)
                    pending = []
            if pending:
                written += self._write_group(write, pending)
            self._remove(segment)
        return written

    def _write_group(
        self, write: Callable[[Sequence[StoreBatch]], None], pending: list[tuple[StoreBatch, int]]
    ) -> int:
        batches = [b for b, _ in pending]
        write(batches)
        self._replayed_to = pending[-1][1]
        self._count(replayed_batches=len(batches), replayed_rows=sum(b.rows for b in batches))
        return len(batches)

    def _read(self, segment: Path) -> Iterator[tuple[StoreBatch, int]]:
        """The batches of `segment` past what was replayed, each with the offset after it."""
        with open(segment, "rb") as f:
            f.seek(self._replayed_to)
            offset = self._replayed_to
            for raw in f:
                offset += len(raw)
                if not raw.endswith(b"\n"):
                    self._unreadable(segment, offset, "cut short (a crash while appending)")
                    continue
                try:
                    batch = StoreBatch.from_dict(json.loads(raw))
                except (ValueError, TypeError, KeyError, AttributeError) as error:
                    self._unreadable(segment, offset, str(error))
                    continue
                yield batch, offset

    def _unreadable(self, segment: Path, offset: int, why: str) -> None:
        log.error(
            "spool %s: skipping an unreadable line ending at byte %d: %s", segment, offset, why
        )
        self._count(unreadable_lines=1)

    def _remove(self, segment: Path) -> None:
        size = segment.stat().st_size
        segment.unlink()
        _fsync_directory(self._dir)
        if segment == self._current:
            self._current = None
        with self._lock:
            self._segments.remove(segment)
            self._bytes -= size
        self._replayed_to = 0
