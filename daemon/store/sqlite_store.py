"""`SqliteStore`: the store in one SQLite file (stdlib sqlite3), the embedded default.

WAL mode, so the web pages and reports read while the writer writes; writes take the write
lock at the start of their transaction (BEGIN IMMEDIATE), waiting up to `timeout_s` for it.
Which errors mean "retry later" is read from SQLite's own error code (sqlite3 raises
OperationalError for a locked database and for a syntax error alike).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from defectd.daemon.store.dialect import SQLITE
from defectd.daemon.store.errors import StoreError, StoreUnavailable
from defectd.daemon.store.sql_store import SqlStore

log = logging.getLogger(__name__)

# Primary result codes (https://sqlite.org/rescode.html) of a database that may take the
# write later: BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL.
_TRANSIENT = frozenset({5, 6, 7, 8, 10, 13, 14, 15})
# CORRUPT, NOTADB: the file is not a database this code can use.
_NOT_A_DATABASE = frozenset({11, 26})


def _error_code(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


class _SqliteTransaction:
    """`dialect.Transaction` over a sqlite3 cursor."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._cursor.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self._cursor.executemany(sql, rows)


class SqliteStore(SqlStore):
    """The store in a SQLite file. Open it with `open_sqlite` (which migrates it)."""

    def __init__(self, connection: sqlite3.Connection, where: str) -> None:
        super().__init__(SQLITE, where)
        self._conn: sqlite3.Connection | None = connection

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"SQLite store {self.where} is closed")
        return self._conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """sqlite3's errors as the store's: retry later, fix the file, or a bug (as is)."""
        try:
            yield
        except sqlite3.Error as error:
            code = _error_code(error)
            if code in _TRANSIENT:
                raise StoreUnavailable(f"SQLite {self.where}: {error}") from error
            if code in _NOT_A_DATABASE:
                raise StoreError(
                    f"{self.where} is not a SQLite database or is damaged ({error}): point "
                    "the store URL at another file, or restore this one from a backup"
                ) from error
            raise

    @contextmanager
    def _transaction(self) -> Iterator[_SqliteTransaction]:
        conn = self._require()
        with self._errors():
            cursor = conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTransaction(cursor)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    @contextmanager
    def _reads(self) -> Iterator[_SqliteTransaction]:
        conn = self._require()
        with self._errors():
            yield _SqliteTransaction(conn.cursor())

    def _configure(self) -> None:
        conn = self._require()
        with self._errors():
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            # FULL: a committed batch survives a power cut; writes are batched, so the fsync
            # per commit costs little.
            conn.execute("PRAGMA synchronous=FULL")
        if str(mode).lower() != "wal":
            log.warning(
                "SQLite store %s: journal mode is %s, not WAL (the file system may not "
                "support it): readers will block the writer",
                self.where,
                mode,
            )

    def close(self) -> None:
        """Close the connection (WAL checkpointed by SQLite when it is the last)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


def open_sqlite(path: Path | str, *, timeout_s: float = 5.0) -> SqliteStore:
    """Open the SQLite store at `path` (created when missing), in WAL mode and migrated.
    `timeout_s`: how long a write waits for another connection's lock."""
    path = Path(path)
    where = str(path)
    if not path.parent.is_dir():
        raise StoreError(
            f"SQLite store {where}: the directory {path.parent} does not exist: create it "
            f"(mkdir -p {path.parent}) or point the store URL at another place"
        )
    try:
        # check_same_thread off: the writer may open its store in one thread and use it in
        # its own; a store is still used by one thread at a time.
        conn = sqlite3.connect(
            path, timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as error:
        raise StoreUnavailable(f"SQLite {where}: {error}") from error
    store = SqliteStore(conn, where)
    try:
        store._configure()
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store
