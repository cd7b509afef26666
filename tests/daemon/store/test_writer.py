"""The writer: batches to the database, to the spool while it is away, replayed in order when
it answers; nothing lost, every row once, every drop counted."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from defectd.daemon.store.backend import Retained, Store, open_store
from defectd.daemon.store.batch import StoreBatch
from defectd.daemon.store.errors import SchemaTooNew
from defectd.daemon.store.schema import MIGRATIONS, Migration
from defectd.daemon.store.spool import Spool
from defectd.daemon.store.sql_store import SqlStore
from defectd.daemon.store.writer import RetentionPolicy, StoreWriter, WriterConfig, WriterStats
from defectd.engines.errors import InvalidSetting
from tests.daemon.store.conftest import PostgresServer
from tests.daemon.store.helpers import coil, defect, defect_batch, wait_for

FAST = WriterConfig(backoff_s=0.02, backoff_max_s=0.1)


class Line:
    """Batches of 3 defects and a gap, numbered; what was submitted."""

    def __init__(self, writer: StoreWriter) -> None:
        self.writer = writer
        self.ids: list[str] = []
        self.batches = 0
        self.rows = 0

    def send(self, count: int = 1) -> None:
        for _ in range(count):
            batch = defect_batch(3 * self.batches, 3)
            assert self.writer.submit(batch)
            self.ids += [d.defect_id for d in batch.defects]
            self.batches += 1
            self.rows += batch.rows


def _stored_ids(url: str) -> list[str]:
    store = open_store(url)
    try:
        return [d.defect_id for d in store.defects("C1")]
    finally:
        store.close()


def _check_nothing_lost(url: str, line: Line, stats: WriterStats) -> None:
    ids = _stored_ids(url)
    assert len(ids) == len(line.ids)  # each once
    assert set(ids) == set(line.ids)
    assert stats.dropped_rows == 0
    assert stats.written_batches + stats.spooled_batches == line.batches
    assert stats.written_rows + stats.spooled_rows == line.rows
    assert (stats.replayed_batches, stats.replayed_rows) == (
        stats.spooled_batches,
        stats.spooled_rows,
    )
    assert stats.queue_depth == 0 and stats.spool_bytes == 0


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path}/defects.db"


@pytest.fixture
def locked(sqlite_url: str) -> Iterator[Callable[[bool], None]]:
    """lock(True) holds the SQLite file's write lock from another connection, as a backup
    tool or a person at the sqlite3 prompt would; lock(False) lets it go."""
    open_store(sqlite_url).close()
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite://"), isolation_level=None)

    def lock(on: bool) -> None:
        holder.execute("BEGIN EXCLUSIVE" if on else "COMMIT")

    yield lock
    if holder.in_transaction:
        holder.execute("COMMIT")
    holder.close()


def test_batches_are_written_and_merged(sqlite_url: str, tmp_path: Path) -> None:
    writer = StoreWriter(partial(open_store, sqlite_url), Spool(tmp_path / "spool"), FAST)
    line = Line(writer)
    line.send(40)  # waiting before the thread starts: merged
    writer.start()
    line.send(5)
    assert writer.close()
    stats = writer.stats()
    assert stats.writes < stats.written_batches == 45
    assert stats.spooled_batches == 0 and stats.errors == 0 and not stats.database_up
    _check_nothing_lost(sqlite_url, line, stats)


def test_a_locked_database_is_spooled_then_replayed_in_order(
    sqlite_url: str, tmp_path: Path, locked: Callable[[bool], None]
) -> None:
    connect = partial(open_store, sqlite_url, timeout_s=0.02)
    writer = StoreWriter(connect, Spool(tmp_path / "spool"), FAST).start()
    line = Line(writer)
    line.send(3)
    wait_for(lambda: writer.stats().written_batches == 3, what="first batches written")
    locked(True)
    line.send(6)
    wait_for(lambda: writer.stats().spooled_batches == 6, what="batches spooled while locked")
    stats = writer.stats()
    assert not stats.database_up and "locked" in stats.last_error and stats.errors >= 1
    locked(False)
    wait_for(lambda: writer.stats().replayed_batches == 6, what="spool replayed")
    line.send(3)
    assert writer.close()
    _check_nothing_lost(sqlite_url, line, writer.stats())
    # Order kept: the spooled batches went in before those submitted after them.
    with sqlite3.connect(sqlite_url.removeprefix("sqlite://")) as conn:
        inserted = [r[0] for r in conn.execute("SELECT defect_id FROM defects ORDER BY rowid")]
    assert inserted == line.ids


def test_a_database_away_at_start_is_not_an_error(
    sqlite_url: str, tmp_path: Path, locked: Callable[[bool], None]
) -> None:
    locked(True)
    connect = partial(open_store, sqlite_url, timeout_s=0.02)
    writer = StoreWriter(connect, Spool(tmp_path / "spool"), FAST).start()
    line = Line(writer)
    line.send(4)
    wait_for(lambda: writer.stats().spooled_batches == 4, what="spooled")
    locked(False)
    wait_for(lambda: writer.stats().replayed_batches == 4, what="reconnected and replayed")
    assert writer.close()
    _check_nothing_lost(sqlite_url, line, writer.stats())


def test_what_a_previous_process_spooled_goes_first(sqlite_url: str, tmp_path: Path) -> None:
    left = Spool(tmp_path / "spool")
    earlier = [defect_batch(100, 2), StoreBatch(coils=(coil(),))]
    for batch in earlier:
        left.append(batch)
    writer = StoreWriter(partial(open_store, sqlite_url), Spool(tmp_path / "spool"), FAST)
    writer.start()
    Line(writer).send(2)
    wait_for(lambda: writer.stats().replayed_batches == 2, what="left spool replayed")
    assert writer.close()
    stats = writer.stats()
    assert (stats.replayed_batches, stats.replayed_rows) == (2, 3 + 1)
    assert stats.spool_bytes == 0
    assert len(_stored_ids(sqlite_url)) == 2 + 6
    assert open_store(sqlite_url).coil("C1") == coil()


def test_closing_while_the_database_is_away_spools_what_is_queued(
    sqlite_url: str, tmp_path: Path, locked: Callable[[bool], None]
) -> None:
    writer = StoreWriter(
        partial(open_store, sqlite_url, timeout_s=0.02),
        Spool(tmp_path / "spool"),
        WriterConfig(backoff_s=30.0, backoff_max_s=30.0),  # no retry before close
    ).start()
    locked(True)
    line = Line(writer)
    line.send(5)
    assert writer.close(timeout_s=5)
    stats = writer.stats()
    assert stats.spooled_batches + stats.written_batches == 5 and stats.spooled_batches >= 1
    locked(False)
    left = Spool(tmp_path / "spool")
    assert not left.empty  # for the next start
    store = open_store(sqlite_url)
    left.replay(lambda batches: store.write(StoreBatch.merge(batches)))
    assert sorted(d.defect_id for d in store.defects("C1")) == sorted(line.ids)
    store.close()


def test_a_batch_the_database_refuses_is_dropped_alone_and_counted(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = StoreWriter(partial(open_store, sqlite_url), Spool(tmp_path / "spool"), FAST)
    refused = replace(defect(99), class_name=None)  # type: ignore[arg-type]  # NOT NULL
    bad = StoreBatch(defects=(refused,))
    good = [defect_batch(0, 3), defect_batch(3, 3)]
    for batch in (good[0], bad, good[1]):
        writer.submit(batch)  # queued together: one merged write, refused
    writer.start()
    assert writer.close()
    stats = writer.stats()
    assert (stats.written_batches, stats.dropped_batches, stats.dropped_rows) == (2, 1, 1)
    assert stats.errors >= 2 and "IntegrityError" in stats.last_error
    assert len(_stored_ids(sqlite_url)) == 6
    assert "Traceback" in caplog.text and "1 rows dropped" in caplog.text


def test_a_full_queue_drops_and_counts_without_blocking(sqlite_url: str, tmp_path: Path) -> None:
    writer = StoreWriter(
        partial(open_store, sqlite_url), Spool(tmp_path / "spool"), WriterConfig(queue_size=2)
    )
    assert writer.submit(defect_batch(0, 1)) and writer.submit(defect_batch(1, 1))
    assert not writer.submit(defect_batch(2, 3))
    stats = writer.stats()
    assert (stats.dropped_batches, stats.dropped_rows, stats.queue_depth) == (1, 4, 2)
    writer.close()  # never started: what was queued is spooled
    assert writer.stats().spooled_batches == 2
    with pytest.raises(RuntimeError, match="after close"):
        writer.submit(defect_batch(3, 1))


def test_a_store_set_up_wrong_fails_at_start(sqlite_url: str, tmp_path: Path) -> None:
    store = open_store(sqlite_url)
    assert isinstance(store, SqlStore)
    store.migrate((*MIGRATIONS, Migration(len(MIGRATIONS) + 1, ("CREATE TABLE x (y TEXT)",))))
    store.close()
    writer = StoreWriter(partial(open_store, sqlite_url), Spool(tmp_path / "spool"))
    with pytest.raises(SchemaTooNew):
        writer.start()


def test_retention_runs_on_schedule_and_hands_over_the_crops(
    sqlite_url: str, tmp_path: Path
) -> None:
    passes: list[Retained] = []
    config = replace(FAST, retention=RetentionPolicy(max_defects=4, every_s=0.02))
    writer = StoreWriter(
        partial(open_store, sqlite_url),
        Spool(tmp_path / "spool"),
        config,
        on_retained=passes.append,
    )
    writer.start()
    writer.submit(StoreBatch(defects=tuple(defect(n, crop=f"c/{n}.jpg") for n in range(10))))
    wait_for(lambda: writer.stats().retained_rows == 6, what="retention pass")
    assert writer.close()
    assert sorted(c for p in passes for c in p.crops) == [f"c/{n}.jpg" for n in range(6)]
    assert len(_stored_ids(sqlite_url)) == 4


def test_settings_out_of_range_name_the_setting() -> None:
    with pytest.raises(InvalidSetting, match="queue_size"):
        WriterConfig(queue_size=0)
    with pytest.raises(InvalidSetting, match="backoff"):
        WriterConfig(backoff_s=2.0, backoff_max_s=1.0)
    with pytest.raises(InvalidSetting, match="max_defects"):
        RetentionPolicy(max_defects=-1)


def test_postgres_stopped_mid_run_loses_nothing(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    connect: Callable[[], Store] = partial(open_store, postgres_url, timeout_s=1)
    writer = StoreWriter(connect, Spool(tmp_path / "spool"), FAST).start()
    line = Line(writer)
    line.send(10)
    wait_for(lambda: writer.stats().written_batches == 10, what="written before the stop")

    postgres_server.stop()
    line.send(15)
    wait_for(lambda: writer.stats().spooled_batches == 15, what="spooled while stopped")
    assert not writer.stats().database_up
    line.send(5)  # more while it is still down
    wait_for(lambda: writer.stats().spooled_batches == 20, what="spooled while stopped")

    postgres_server.start()
    wait_for(lambda: writer.stats().replayed_batches == 20, what="replayed after the start")
    line.send(10)
    assert writer.close()

    stats = writer.stats()
    assert stats.spooled_batches == stats.replayed_batches == 20
    assert stats.written_batches == 20 and stats.errors >= 1
    _check_nothing_lost(postgres_url, line, stats)
    assert _stored_ids(postgres_url) == line.ids  # in order: along the coil
