"""The PostgreSQL backend: the store contract on a real server, its errors, and psycopg as
an optional extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

from defectd.daemon.store.backend import open_store, redact
from defectd.daemon.store.batch import StoreBatch
from defectd.daemon.store.errors import StoreUnavailable
from defectd.engines.errors import InvalidSetting, MissingDependency
from tests.daemon.store.conftest import PostgresServer
from tests.daemon.store.helpers import defect, defect_batch
from tests.daemon.store.store_contract import StoreContract


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def url(self, postgres_url: str) -> str:
        return postgres_url


def test_a_restarted_server_is_unavailable_then_a_new_store_works(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    store = open_store(postgres_url)
    store.write(defect_batch(0, 3))
    postgres_server.stop()
    with pytest.raises(StoreUnavailable, match="PostgreSQL"):
        store.write(defect_batch(3, 3))
    with pytest.raises(StoreUnavailable, match="refused"):
        open_store(postgres_url, timeout_s=1)
    postgres_server.start()
    with pytest.raises(StoreUnavailable):
        store.write(defect_batch(3, 3))  # that connection is gone for good
    store.close()
    again = open_store(postgres_url)
    again.write(defect_batch(3, 3))
    assert again.counts()["defects"] == 6
    again.close()


def test_a_failed_transaction_leaves_the_connection_usable(postgres_url: str) -> None:
    from dataclasses import replace

    import psycopg

    store = open_store(postgres_url)
    bad = replace(defect(0), class_name=None)  # type: ignore[arg-type]  # NOT NULL
    with pytest.raises(psycopg.errors.NotNullViolation):
        store.write(StoreBatch(defects=(defect(1), bad)))
    assert store.counts()["defects"] == 0
    store.write(StoreBatch(defects=(defect(1),)))
    assert store.counts()["defects"] == 1
    store.close()


def test_a_url_libpq_cannot_read_names_the_form() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(InvalidSetting, match=r"postgresql://user@host:port/database"):
        open_store("postgresql://defectd@127.0.0.1:5432/db?nonsense=1")


def test_without_psycopg_a_postgresql_url_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg → ImportError
    with pytest.raises(MissingDependency, match=r"pip install 'defectd\[postgres\]'"):
        open_store("postgresql://defectd@127.0.0.1/defects")


def test_importing_the_store_does_not_import_psycopg() -> None:
    names = ("backend", "batch", "schema", "spool", "writer", "crops", "sqlite_store")
    modules = ", ".join(f"defectd.daemon.store.{m}" for m in (*names, "postgres_store"))
    code = f"import sys, {modules}; print('psycopg' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_passwords_never_reach_messages() -> None:
    assert redact("postgresql://inspector:s3cret@db.plant:5433/defects") == (
        "postgresql://inspector:***@db.plant:5433/defects"
    )
    assert redact("postgresql://inspector@db.plant/defects") == (
        "postgresql://inspector@db.plant/defects"
    )
