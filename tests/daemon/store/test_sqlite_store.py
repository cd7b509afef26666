"""The SQLite backend: the store contract on a file, WAL mode, URLs and its errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from defectd.daemon.store.backend import open_store, sqlite_path
from defectd.daemon.store.batch import StoreBatch
from defectd.daemon.store.errors import StoreError, StoreUnavailable
from defectd.daemon.store.sqlite_store import SqliteStore
from defectd.engines.errors import InvalidSetting
from tests.daemon.store.helpers import defect, defect_batch
from tests.daemon.store.store_contract import StoreContract


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite://{tmp_path}/defects.db"


def test_the_file_is_in_wal_mode_and_readable_while_a_write_is_open(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "defects.db"))
    assert isinstance(store, SqliteStore)
    store.write(defect_batch(0, 3))
    reader = sqlite3.connect(tmp_path / "defects.db")
    writer = sqlite3.connect(tmp_path / "defects.db", isolation_level=None)
    try:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM defects")
        assert reader.execute("SELECT COUNT(*) FROM defects").fetchone()[0] == 3
        assert store.counts()["defects"] == 3
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        reader.close()
        store.close()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/lib/defectd/defects.db", "/var/lib/defectd/defects.db"),
        ("sqlite:////var/lib/defectd/defects.db", "/var/lib/defectd/defects.db"),
        ("/var/lib/defectd/defects.db", "/var/lib/defectd/defects.db"),
        ("defects.db", "defects.db"),
    ],
)
def test_sqlite_urls_name_a_file(url: str, path: str) -> None:
    assert sqlite_path(url) == Path(path)


def test_an_unknown_scheme_lists_the_supported_ones() -> None:
    with pytest.raises(InvalidSetting, match=r"mysql.*sqlite://, postgresql://"):
        open_store("mysql://db/defects")


def test_a_missing_directory_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"does not exist: create it \(mkdir -p"):
        open_store(f"sqlite://{tmp_path}/nowhere/defects.db")


def test_a_file_that_is_not_a_database_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "defects.db"
    path.write_bytes(b"this is a text file, not SQLite\n" * 100)
    with pytest.raises(StoreError, match="not a SQLite database"):
        open_store(str(path))


def test_a_locked_database_is_unavailable_not_a_bug(tmp_path: Path) -> None:
    path = tmp_path / "defects.db"
    store = open_store(str(path), timeout_s=0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            store.write(StoreBatch(defects=(defect(0),)))
        with pytest.raises(StoreUnavailable):
            open_store(str(path), timeout_s=0.05)  # the migration's transaction waits too
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.write(StoreBatch(defects=(defect(0),)))  # the same connection works again
    assert store.counts()["defects"] == 1
    store.close()


def test_a_refused_row_is_an_error_of_its_own(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "defects.db"))
    from dataclasses import replace

    bad = replace(defect(0), class_name=None)  # type: ignore[arg-type]  # NOT NULL
    with pytest.raises(sqlite3.IntegrityError):
        store.write(StoreBatch(defects=(defect(1), bad)))
    assert store.counts()["defects"] == 0  # the whole transaction rolled back
    store.close()
