"""The schema: one set of numbered migrations, columns for every record field, versions."""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from pathlib import Path

import pytest

from defectd.daemon.coils.model import CoilRecord, CoverageGap, StripDefect
from defectd.daemon.store import rows
from defectd.daemon.store.backend import open_store
from defectd.daemon.store.errors import SchemaTooNew
from defectd.daemon.store.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    TABLES,
    Migration,
    check_migrations,
)
from defectd.daemon.store.sql_store import SqlStore

SPLIT = {"across_mm": ("across_from_mm", "across_to_mm"), "along_m": ("along_from_m", "along_to_m")}


def _columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "defects.db"
    open_store(str(path)).close()
    return path


def test_a_fresh_database_is_at_the_current_version(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert versions == [m.version for m in MIGRATIONS]
    assert versions[-1] == SCHEMA_VERSION
    assert tables == {*TABLES, "schema_version"}


@pytest.mark.parametrize(
    ("table", "record", "columns"),
    [
        ("defects", StripDefect, rows.DEFECT_COLUMNS),
        ("coverage_gaps", CoverageGap, rows.GAP_COLUMNS),
        ("coils", CoilRecord, rows.COIL_COLUMNS),
    ],
)
def test_every_record_field_has_its_columns(
    db: Path, table: str, record: type, columns: tuple[str, ...]
) -> None:
    expected = [c for f in fields(record) for c in SPLIT.get(f.name, (f.name,))]
    assert list(columns) == expected
    assert _columns(db, table) == expected


def test_indexes_cover_the_queries(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        indexed = {
            (r[0], c[2])
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")
            for c in conn.execute(f"PRAGMA index_info({r[0]})")
        }
    columns = {column for _, column in indexed}
    assert {"line", "coil_id", "class_name", "capture_ns", "ended_ns"} <= columns


def test_rerunning_the_migrations_is_a_no_op(db: Path) -> None:
    before = sqlite3.connect(db).execute("SELECT * FROM schema_version").fetchall()
    open_store(str(db)).close()
    assert sqlite3.connect(db).execute("SELECT * FROM schema_version").fetchall() == before


def test_a_database_from_a_newer_defectd_is_refused_with_the_fix(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (SCHEMA_VERSION + 4,))
    with pytest.raises(SchemaTooNew) as raised:
        open_store(str(db))
    message = str(raised.value)
    assert f"schema version {SCHEMA_VERSION + 4}" in message
    assert "upgrade defectd (pip install -U defectd)" in message
    assert str(db) in message


def test_migrations_apply_in_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "defects.db"
    store = open_store(str(path))
    assert isinstance(store, SqlStore)
    broken = (
        *MIGRATIONS,
        Migration(SCHEMA_VERSION + 1, ("CREATE TABLE a (x INTEGER)", "NONSENSE")),
    )
    with pytest.raises(sqlite3.OperationalError):
        store.migrate(broken)
    store.close()
    assert "a" not in {
        r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")
    }
    open_store(str(path)).close()  # still at the current version


def test_versions_must_run_one_two_three() -> None:
    check_migrations(MIGRATIONS)
    with pytest.raises(ValueError, match="found 3 where 2 belongs"):
        check_migrations([Migration(1, ("SELECT 1",)), Migration(3, ("SELECT 1",))])
    with pytest.raises(ValueError, match="no statements"):
        check_migrations([Migration(1, ())])


def test_statements_hold_no_placeholder_characters() -> None:
    # The PostgreSQL backend turns ? into %s: the schema itself must hold neither.
    for migration in MIGRATIONS:
        for statement in migration.statements:
            assert "?" not in statement and "%" not in statement
