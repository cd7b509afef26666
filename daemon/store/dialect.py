"""What differs between SQLite and PostgreSQL, kept in one place, and the transaction the
shared SQL runs in.

The schema and the statements are one text for both databases: types that both understand
(TEXT, INTEGER, BIGINT, DOUBLE PRECISION; SQLite's type affinity maps the last two to INTEGER
and REAL), ``INSERT ... ON CONFLICT`` (SQLite ≥ 3.24) and ``DELETE ... RETURNING`` (SQLite ≥
3.35). Statements are written with ``?`` placeholders; the PostgreSQL transaction turns them
into psycopg's ``%s`` (no statement holds a literal ``?`` or ``%``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Dialect:
    """A database's name and the few statements that are its own."""

    name: str
    # Run first in the migration transaction, so that two processes opening the same fresh
    # database do not both create the tables. None: the transaction itself serializes (SQLite's
    # BEGIN IMMEDIATE takes the write lock at once).
    migration_lock: str | None = None


SQLITE = Dialect("sqlite")
POSTGRESQL = Dialect("postgresql", migration_lock="SELECT pg_advisory_xact_lock(7201526915)")


class Transaction(Protocol):
    """Statements run in one database transaction (or, for reads, one connection)."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; the rows it returns (none for most writes)."""
        ...

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run one statement once per row of parameters, batched by the driver."""
        ...
