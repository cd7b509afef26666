"""`PostgresStore`: the store in a PostgreSQL database, through psycopg 3.

psycopg is the `defectd[postgres]` extra: it is imported when a ``postgresql://`` URL is
opened, never when this module is, and its absence is a `MissingDependency` naming the pip
command. The connection is in autocommit mode with an explicit transaction per write, so a
select never leaves a transaction open on the server. psycopg's OperationalError (connection
refused, server shut down, connection lost, disk full) becomes `StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

from defectd.daemon.store.backend import redact
from defectd.daemon.store.dialect import POSTGRESQL
from defectd.daemon.store.errors import StoreUnavailable
from defectd.daemon.store.sql_store import SqlStore
from defectd.engines.errors import InvalidSetting, MissingDependency

if TYPE_CHECKING:
    import psycopg

INSTALL = "pip install 'defectd[postgres]'"


def import_psycopg() -> ModuleType:
    """The psycopg module, or `MissingDependency` naming the install."""
    try:
        import psycopg
    except ImportError as error:
        raise MissingDependency(
            f"a postgresql:// store URL needs psycopg 3, which is not installed: {INSTALL}"
        ) from error
    return psycopg


def _placeholders(sql: str) -> str:
    return sql.replace("?", "%s")


class _PostgresTransaction:
    """`dialect.Transaction` over a psycopg cursor."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        self._cursor.execute(_placeholders(sql), params)
        return self._cursor.fetchall() if self._cursor.description is not None else []

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        # psycopg 3 sends the rows in pipeline mode: one round trip, not one per row.
        self._cursor.executemany(_placeholders(sql), rows)


class PostgresStore(SqlStore):
    """The store in a PostgreSQL database. Open it with `open_postgres` (which migrates it)."""

    def __init__(self, connection: psycopg.Connection[Any], where: str, driver: ModuleType):
        super().__init__(POSTGRESQL, where)
        self._conn: psycopg.Connection[Any] | None = connection
        self._driver = driver

    def _require(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise RuntimeError(f"PostgreSQL store {self.where} is closed")
        return self._conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._driver.OperationalError as error:
            raise StoreUnavailable(f"PostgreSQL {self.where}: {error}") from error

    @contextmanager
    def _transaction(self) -> Iterator[_PostgresTransaction]:
        conn = self._require()
        with self._errors(), conn.transaction(), conn.cursor() as cursor:
            yield _PostgresTransaction(cursor)

    @contextmanager
    def _reads(self) -> Iterator[_PostgresTransaction]:
        conn = self._require()
        with self._errors(), conn.cursor() as cursor:
            yield _PostgresTransaction(cursor)

    def close(self) -> None:
        """Close the connection (a broken one too)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


def _connection_options(timeout_s: float) -> dict[str, object]:
    """libpq options: a server that stops answering mid-write (a cable pulled, a host
    frozen) fails the write within about 30 s, instead of blocking the writer for good."""
    return {
        "connect_timeout": max(1, round(timeout_s)),
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 30_000,  # ms
        "application_name": "defectd",
    }


def open_postgres(url: str, *, timeout_s: float = 5.0) -> PostgresStore:
    """Connect to the PostgreSQL database at `url` and migrate it. `timeout_s`: how long to
    wait for the connection (whole seconds, at least 1: libpq's unit)."""
    driver = import_psycopg()
    where = redact(url)
    try:
        conn = driver.connect(url, autocommit=True, **_connection_options(timeout_s))
    except driver.ProgrammingError as error:  # libpq could not parse the URL
        raise InvalidSetting(
            f"store URL {where}: {error}: write it as postgresql://user@host:port/database "
            "(https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING)"
        ) from error
    except driver.OperationalError as error:
        raise StoreUnavailable(f"PostgreSQL {where}: {error}") from error
    store = PostgresStore(conn, where, driver)
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store
