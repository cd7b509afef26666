"""`StoreWriter`: the thread that owns the store's connection; the pipeline only hands it
batches.

`submit()` puts a batch in a bounded queue and never blocks: when the queue is full the
batch is dropped and counted (the database is slower than the line). The thread takes what
waits, merges up to `merge` batches into one transaction and writes it. When the database is
away (`StoreUnavailable`) the batches go to the `Spool` on local disk and the thread retries
the database with exponential backoff, spooling what arrives meanwhile; when it answers, the
spool is replayed oldest first before any new batch, so rows arrive in order. Every row ends
in the database (once: writes are idempotent, so a replay is safe) or is counted as dropped.

Any other error of a write is not an outage but a bug or a batch the database refuses: it is
logged with its traceback and counted, the batches of a merged write are retried one by one,
and a batch refused on its own is dropped (counted), so that one bad row cannot stop the
line's records. Retention runs every `RetentionPolicy.every_s` while the database is up.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

from defectd.daemon.ratelimit import RateLimitedLog
from defectd.daemon.store.backend import Retained, Store
from defectd.daemon.store.batch import StoreBatch
from defectd.daemon.store.errors import StoreUnavailable
from defectd.daemon.store.spool import Spool
from defectd.engines.errors import InvalidSetting

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long records are kept: `max_age_s` (None: no age limit) and `max_defects` (None:
    no count limit), enforced every `every_s`."""

    max_age_s: float | None = None
    max_defects: int | None = None
    every_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_age_s is not None and self.max_age_s <= 0:
            raise InvalidSetting(f"retention max_age_s must be > 0, got {self.max_age_s}")
        if self.max_defects is not None and self.max_defects < 0:
            raise InvalidSetting(f"retention max_defects must be ≥ 0, got {self.max_defects}")
        if self.every_s <= 0:
            raise InvalidSetting(f"retention every_s must be > 0, got {self.every_s}")


@dataclass(frozen=True)
class WriterConfig:
    """The writer's queue, merging, retry backoff and retention."""

    queue_size: int = 1024  # batches waiting; beyond, submit() drops
    merge: int = 16  # waiting batches written in one transaction, at most
    backoff_s: float = 0.5  # first retry after the database went away
    backoff_max_s: float = 30.0  # the backoff doubles up to this
    retention: RetentionPolicy | None = None

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise InvalidSetting(f"writer queue_size must be ≥ 1, got {self.queue_size}")
        if self.merge < 1:
            raise InvalidSetting(f"writer merge must be ≥ 1, got {self.merge}")
        if self.backoff_s <= 0 or self.backoff_max_s < self.backoff_s:
            raise InvalidSetting(
                f"writer backoff must be 0 < backoff_s ≤ backoff_max_s, got "
                f"{self.backoff_s} and {self.backoff_max_s}"
            )


@dataclass(frozen=True)
class WriterStats:
    """The writer's counters (batches as submitted, not as merged) and state.

    Every submitted row is in `written_rows`, `spooled_rows` or `dropped_rows`; spooled rows
    are in `replayed_rows` once the database took them (a later process may replay what this
    one spooled).
    """

    written_batches: int = 0  # taken by the database straight from the queue
    written_rows: int = 0
    writes: int = 0  # transactions (merged writes and replays)
    spooled_batches: int = 0
    spooled_rows: int = 0
    replayed_batches: int = 0  # taken by the database from the spool
    replayed_rows: int = 0
    dropped_batches: int = 0  # queue full, spool full, or refused by the database
    dropped_rows: int = 0
    retained_rows: int = 0  # deleted by retention
    errors: int = 0  # failed writes, connects, replays and retention passes
    last_error: str = ""
    database_up: bool = False
    queue_depth: int = 0
    spool_bytes: int = 0


_COUNTERS = (
    "written_batches",
    "written_rows",
    "writes",
    "spooled_batches",
    "spooled_rows",
    "replayed_batches",
    "replayed_rows",
    "dropped_batches",
    "dropped_rows",
    "retained_rows",
    "errors",
)


class _Closing(Exception):
    """Stops a replay when the writer is closed meanwhile."""


class StoreWriter:
    """Writes submitted batches to the store `connect()` opens, spooling to `spool` while it
    is away. `on_retained` gets each retention pass's result (e.g. `CropStore.remove` of its
    crops); `now_ns` is the wall clock retention measures ages by."""

    def __init__(
        self,
        connect: Callable[[], Store],
        spool: Spool,
        config: WriterConfig | None = None,
        *,
        on_retained: Callable[[Retained], None] | None = None,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._connect = connect
        self._spool = spool
        self._config = config or WriterConfig()
        self._on_retained = on_retained
        self._now_ns = now_ns
        self._queue: queue.Queue[StoreBatch | None] = queue.Queue(self._config.queue_size)
        self._store: Store | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._last_error = ""
        self._backoff = self._config.backoff_s
        self._retry_at = 0.0
        self._down_since: float | None = None
        self._retain_at = 0.0
        # One each: the pipeline's threads submit, the writer's thread retries.
        self._submit_log = RateLimitedLog(log, period_s=60.0)
        self._retry_log = RateLimitedLog(log, period_s=60.0)

    # -- the pipeline's side ---------------------------------------------------------------

    def start(self) -> StoreWriter:
        """Open the store and start the thread. A database that does not answer is not an
        error (batches are spooled until it does); a store set up wrong (`StoreError`,
        `MissingDependency`, `InvalidSetting`) raises here, at start."""
        if self._thread is not None:
            raise RuntimeError("StoreWriter.start() called twice")
        try:
            self._store = self._connect()
        except StoreUnavailable as error:
            self._went_down(error)
        self._retain_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()
        return self

    def submit(self, batch: StoreBatch) -> bool:
        """Queue `batch` for writing; never blocks. False: the queue was full and the batch
        is dropped (counted)."""
        if self._closing.is_set():
            raise RuntimeError("StoreWriter.submit() after close(): stop the pipeline first")
        if not batch.rows:
            return True
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self._count(dropped_batches=1, dropped_rows=batch.rows)
            self._submit_log.warning(
                "queue_full",
                "store writer: queue full (%d batches): %d rows dropped; the database is "
                "slower than the line (raise the queue size or the merge)",
                self._config.queue_size,
                batch.rows,
            )
            return False
        return True

    def stats(self) -> WriterStats:
        """A snapshot of the counters and the state."""
        with self._lock:
            values = dict(self._counts)
            last_error = self._last_error
        return WriterStats(
            **values,
            last_error=last_error,
            database_up=self._store is not None,
            queue_depth=self._queue.qsize(),
            spool_bytes=self._spool.pending_bytes,
        )

    def close(self, timeout_s: float = 10.0) -> bool:
        """Write (or spool) what is queued, close the store and stop the thread. False: the
        thread did not finish within `timeout_s` (what is still queued is logged)."""
        self._closing.set()
        thread = self._thread
        if thread is None:
            self._drain_left()
            return True
        deadline = time.monotonic() + timeout_s
        # Queue full: the thread stops on `_closing` once it has emptied the queue.
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=max(0.0, timeout_s))
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.error(
                "store writer: not finished after %.1f s, %d batches still queued (lost if "
                "the process exits now)",
                timeout_s,
                self._queue.qsize(),
            )
            return False
        self._drain_left()  # a submit that raced with close()
        return True

    def __enter__(self) -> StoreWriter:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                batches, stop = self._take()
                self._service()
                if batches:
                    try:
                        self._handle(batches)
                    except Exception as error:  # a bug here must not stop the thread
                        log.exception("store writer: batches lost to an unexpected error")
                        self._error(error)
                        self._count(
                            dropped_batches=len(batches), dropped_rows=sum(b.rows for b in batches)
                        )
                if stop or (self._closing.is_set() and self._queue.empty()):
                    break
        finally:
            self._close_store()

    def _take(self) -> tuple[list[StoreBatch], bool]:
        """Up to `merge` waiting batches (waiting for the first until something is due), and
        whether the stop marker came."""
        batches: list[StoreBatch] = []
        try:
            item = self._queue.get(timeout=self._wait_s())
        except queue.Empty:
            return batches, False
        while item is not None:
            batches.append(item)
            if len(batches) >= self._config.merge:
                return batches, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batches, False
        return batches, True

    def _wait_s(self) -> float | None:
        """Seconds until the next retry or retention pass; None: nothing is due."""
        if self._closing.is_set():
            return 0.0
        deadlines = []
        if self._store is None:
            deadlines.append(self._retry_at)
        elif not self._spool.empty:
            return 0.0
        if self._config.retention is not None:
            deadlines.append(self._retain_at)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _service(self) -> None:
        """Reconnect when due, replay the spool, run retention when due."""
        if self._closing.is_set():
            return  # what is queued is written or spooled; the spool waits for the next start
        if self._store is None and time.monotonic() >= self._retry_at:
            self._reconnect()
        if self._store is not None and not self._spool.empty:
            self._replay()
        if (
            self._store is not None
            and self._config.retention is not None
            and time.monotonic() >= self._retain_at
        ):
            self._retain(self._store, self._config.retention)

    def _handle(self, batches: list[StoreBatch]) -> None:
        # Straight to the database only when nothing older waits in the spool.
        if self._store is not None and self._spool.empty:
            try:
                self._write(batches, replayed=False)
                return
            except StoreUnavailable as error:
                self._went_down(error)
        for batch in batches:
            if self._spool.append(batch):
                self._count(spooled_batches=1, spooled_rows=batch.rows)
            else:
                self._count(dropped_batches=1, dropped_rows=batch.rows)

    def _write(self, batches: Sequence[StoreBatch], replayed: bool) -> None:
        """Write `batches` in one transaction; `StoreUnavailable` raises, any other error is
        logged and the batches retried alone, a batch refused alone dropped."""
        store = self._store
        if store is None:
            raise StoreUnavailable("the store is not connected")
        merged = StoreBatch.merge(batches)
        try:
            store.write(merged)
        except StoreUnavailable:
            raise
        except Exception as error:  # not an outage: retrying the same rows would fail again
            self._error(error)
            log.exception("store writer: %s refused a write of %d rows", store.where, merged.rows)
            if len(batches) > 1:
                for batch in batches:
                    self._write([batch], replayed)
                return
            log.error("store writer: %d rows dropped (refused by %s)", merged.rows, store.where)
            self._count(dropped_batches=1, dropped_rows=merged.rows)
            return
        rows = sum(b.rows for b in batches)
        if replayed:
            self._count(writes=1, replayed_batches=len(batches), replayed_rows=rows)
        else:
            self._count(writes=1, written_batches=len(batches), written_rows=rows)

    def _replay(self) -> None:
        def write(batches: Sequence[StoreBatch]) -> None:
            if self._closing.is_set():
                raise _Closing  # the rest waits in the spool for the next start
            self._write(batches, replayed=True)

        try:
            replayed = self._spool.replay(write, group=self._config.merge)
        except _Closing:
            return
        except StoreUnavailable as error:
            self._went_down(error)
            return
        except Exception as error:  # the spool's files (a disk error): retried like an outage
            log.exception("store writer: replaying the spool %s failed", self._spool.directory)
            self._went_down(error)
            return
        if replayed:
            log.info("store writer: %d spooled batches replayed", replayed)

    def _reconnect(self) -> None:
        try:
            store = self._connect()
        except StoreUnavailable as error:
            self._still_down(error)
            return
        except Exception as error:  # set up wrong since start (or a bug): keep spooling
            log.exception("store writer: opening the store failed")
            self._still_down(error)
            return
        self._store = store
        down_s = time.monotonic() - self._down_since if self._down_since is not None else 0.0
        log.info(
            "store writer: %s answers again after %.1f s; replaying %d spooled bytes first",
            store.where,
            down_s,
            self._spool.pending_bytes,
        )
        self._down_since = None
        self._backoff = self._config.backoff_s

    def _went_down(self, error: Exception) -> None:
        """The database stopped answering: close the connection, spool, retry later."""
        self._error(error)
        self._close_store()
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        self._retry_at = now + self._backoff
        log.warning(
            "store writer: database unavailable (%s): spooling to %s, retrying in %.1f s",
            error,
            self._spool.directory,
            self._backoff,
        )

    def _still_down(self, error: Exception) -> None:
        self._error(error)
        self._backoff = min(self._backoff * 2, self._config.backoff_max_s)
        self._retry_at = time.monotonic() + self._backoff
        self._retry_log.warning(
            "still_down",
            "store writer: database still unavailable (%s); next try in %.1f s",
            error,
            self._backoff,
        )

    def _retain(self, store: Store, policy: RetentionPolicy) -> None:
        self._retain_at = time.monotonic() + policy.every_s
        try:
            result = store.retain(policy.max_age_s, policy.max_defects, self._now_ns())
        except StoreUnavailable as error:
            self._went_down(error)
            return
        except Exception as error:
            self._error(error)
            log.exception("store writer: retention on %s failed", store.where)
            return
        self._count(retained_rows=result.rows)
        if result.rows:
            log.info(
                "store writer: retention deleted %d defects, %d coils, %d gaps",
                result.defects,
                result.coils,
                result.gaps,
            )
        if self._on_retained is not None:
            try:
                self._on_retained(result)
            except Exception as error:
                self._error(error)
                log.exception("store writer: the retention callback failed")

    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is None:
            return
        try:
            store.close()
        except Exception:  # a broken connection may fail to close; it is dropped either way
            log.debug("store writer: closing %s failed", store.where, exc_info=True)

    def _drain_left(self) -> None:
        """After the thread (or without one): keep what is still queued in the spool."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._handle([item])

    # -- counters --------------------------------------------------------------------------

    def _count(self, **add: int) -> None:
        with self._lock:
            for name, value in add.items():
                self._counts[name] += value

    def _error(self, error: BaseException) -> None:
        with self._lock:
            self._counts["errors"] += 1
            self._last_error = f"{type(error).__name__}: {error}"
