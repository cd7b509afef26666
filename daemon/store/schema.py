"""The store's one schema, as numbered forward-only migrations, and `migrate()`.

`MIGRATIONS` is an ordered list: each a version and the statements that take the schema from
the version before to it, in SQL that SQLite and PostgreSQL both run (see `dialect`). A
released migration is never edited; a change of the schema is a new one at the end. The
``schema_version`` table holds a row per applied migration; `migrate()` applies the missing
ones in one transaction when a store opens, and refuses a database that a newer defectd
migrated (this code would misread its tables).

Tables (columns mirror the records of `defectd.daemon.coils.model`):

- ``coils``: one row per closed coil, key (line, coil_id); tuple fields as JSON text;
- ``defects``: one row per strip defect, key defect_id; the (from, to) pairs as two columns
  each, the cameras as JSON text; indexed by line, coil, class and capture time;
- ``coverage_gaps``: key (line, coil_id, camera, from_m), so a gap written twice is kept once.

A missing coil id is stored as '' (`rows.NO_COIL`): a key column cannot hold NULL in
PostgreSQL, and NULLs would never collide in SQLite's unique index.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from defectd.daemon.store.dialect import Dialect, Transaction
from defectd.daemon.store.errors import SchemaTooNew


@dataclass(frozen=True)
class Migration:
    """The statements that take the schema from `version - 1` to `version`."""

    version: int
    statements: tuple[str, ...]
    summary: str = ""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            """CREATE TABLE coils (
                line TEXT NOT NULL,
                coil_id TEXT NOT NULL,
                started_ns BIGINT NOT NULL,
                ended_ns BIGINT NOT NULL,
                end_reason TEXT NOT NULL,
                head_m DOUBLE PRECISION NOT NULL,
                tail_m DOUBLE PRECISION NOT NULL,
                inspected_m DOUBLE PRECISION NOT NULL,
                width_mm DOUBLE PRECISION NOT NULL,
                frames BIGINT NOT NULL,
                defects BIGINT NOT NULL,
                classes TEXT NOT NULL,
                gap_m DOUBLE PRECISION NOT NULL,
                largest TEXT NOT NULL,
                grade TEXT NOT NULL,
                grade_reasons TEXT NOT NULL,
                anomalies TEXT NOT NULL,
                PRIMARY KEY (line, coil_id)
            )""",
            "CREATE INDEX coils_ended ON coils (ended_ns)",
            "CREATE INDEX coils_grade ON coils (grade, ended_ns)",
            """CREATE TABLE defects (
                defect_id TEXT NOT NULL PRIMARY KEY,
                line TEXT NOT NULL,
                coil_id TEXT NOT NULL,
                class_id INTEGER NOT NULL,
                class_name TEXT NOT NULL,
                across_from_mm DOUBLE PRECISION NOT NULL,
                across_to_mm DOUBLE PRECISION NOT NULL,
                along_from_m DOUBLE PRECISION NOT NULL,
                along_to_m DOUBLE PRECISION NOT NULL,
                area_mm2 DOUBLE PRECISION NOT NULL,
                area_px BIGINT NOT NULL,
                max_score DOUBLE PRECISION NOT NULL,
                mean_score DOUBLE PRECISION NOT NULL,
                first_camera TEXT NOT NULL,
                first_seq BIGINT NOT NULL,
                last_camera TEXT NOT NULL,
                last_seq BIGINT NOT NULL,
                cameras TEXT NOT NULL,
                frames BIGINT NOT NULL,
                capture_ns BIGINT NOT NULL,
                crop TEXT
            )""",
            "CREATE INDEX defects_line ON defects (line)",
            "CREATE INDEX defects_coil ON defects (coil_id, along_from_m)",
            "CREATE INDEX defects_class ON defects (class_name)",
            "CREATE INDEX defects_capture ON defects (capture_ns)",
            """CREATE TABLE coverage_gaps (
                line TEXT NOT NULL,
                coil_id TEXT NOT NULL,
                camera TEXT NOT NULL,
                from_m DOUBLE PRECISION NOT NULL,
                to_m DOUBLE PRECISION NOT NULL,
                frames BIGINT NOT NULL,
                reason TEXT NOT NULL,
                PRIMARY KEY (line, coil_id, camera, from_m)
            )""",
        ),
        "coils, defects and coverage gaps",
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version
TABLES = ("coils", "defects", "coverage_gaps")

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL PRIMARY KEY,
    applied_ns BIGINT NOT NULL
)"""


@dataclass(frozen=True)
class MigrationResult:
    """The database's schema version before and after `migrate()`."""

    before: int
    after: int

    @property
    def applied(self) -> int:
        """Migrations applied (0: the database was current)."""
        return self.after - self.before


def check_migrations(migrations: Sequence[Migration]) -> None:
    """Raise ValueError unless the versions run 1, 2, 3, … with statements each."""
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise ValueError(
                f"migration versions must run 1, 2, 3, …: found {migration.version} "
                f"where {expected} belongs"
            )
        if not migration.statements:
            raise ValueError(f"migration {migration.version} has no statements")


def current_version(tx: Transaction) -> int:
    """The highest migration applied (0 for a database without the version table's rows)."""
    tx.execute(_VERSION_TABLE)
    rows = tx.execute("SELECT MAX(version) FROM schema_version")
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def migrate(
    transaction: Callable[[], AbstractContextManager[Transaction]],
    dialect: Dialect,
    where: str,
    migrations: Sequence[Migration] = MIGRATIONS,
    now_ns: Callable[[], int] = time.time_ns,
) -> MigrationResult:
    """Apply the migrations the database lacks, all in one transaction from `transaction()`.

    `where` names the database in errors (no password). Raises `SchemaTooNew` when the
    database is at a version past the last of `migrations`.
    """
    check_migrations(migrations)
    latest = migrations[-1].version if migrations else 0
    with transaction() as tx:
        if dialect.migration_lock is not None:
            tx.execute(dialect.migration_lock)
        before = current_version(tx)
        if before > latest:
            raise SchemaTooNew(
                f"database {where} has schema version {before}, this defectd knows versions "
                f"up to {latest}: upgrade defectd (pip install -U defectd) to the release that "
                "wrote it, or point the store URL at another database"
            )
        for migration in migrations[before:]:
            for statement in migration.statements:
                tx.execute(statement)
            tx.execute(
                "INSERT INTO schema_version (version, applied_ns) VALUES (?, ?)",
                (migration.version, now_ns()),
            )
    return MigrationResult(before, max(before, latest))
