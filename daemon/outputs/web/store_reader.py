"""The defect store as the pages read it: one connection under a lock, opened when needed.

The web view never writes and never creates a store: a SQLite file that is not there yet is
reported as such (`StoreAbsent`, whose message the page shows), not made empty. A database
that stops answering is reported the same way and opened again on the next read, so the
pages come back by themselves once it answers. Crops are files under `crops_dir`; `crop_file`
turns a stored relative path into a file only when it stays inside that directory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from defectd.daemon.store.backend import Store, open_store, redact, sqlite_path
from defectd.daemon.store.errors import StoreUnavailable
from defectd.engines.errors import UserError

log = logging.getLogger(__name__)

T = TypeVar("T")
READ_TIMEOUT_S = 2.0  # a page waits no longer than this for a lock or a connection


class StoreAbsent(Exception):
    """The store cannot be read now; the message says why, in words for the page."""


class StoreReader:
    """Reads for the pages (module docstring). `url`: None when the daemon keeps no store;
    `opener`: `open_store` (tests pass their own)."""

    def __init__(
        self,
        url: str | None,
        *,
        crops_dir: Path | None = None,
        opener: Callable[[str], Store] | None = None,
    ) -> None:
        self.url = url
        self.crops_dir = crops_dir
        self._opener = opener or (lambda u: open_store(u, timeout_s=READ_TIMEOUT_S))
        self._lock = threading.Lock()
        self._store: Store | None = None

    @property
    def where(self) -> str:
        """The store for the pages (no password), or "" when there is none."""
        return "" if self.url is None else redact(self.url)

    def read(self, query: Callable[[Store], T]) -> T:
        """`query(store)` under the lock; `StoreAbsent` when the store is off, not there yet or
        not answering (the connection is dropped then and opened again next time)."""
        with self._lock:
            store = self._open()
            try:
                return query(store)
            except StoreUnavailable as exc:
                self._drop()
                raise StoreAbsent(f"The defect store {self.where} does not answer: {exc}") from exc

    def crop_file(self, relative: str) -> Path | None:
        """The crop file `relative` names, None when there is no crop directory, the path
        leaves it, or no such file is there."""
        if self.crops_dir is None or not relative or "\x00" in relative:
            return None
        base = self.crops_dir.resolve()
        try:
            path = (base / relative).resolve()
        except (OSError, RuntimeError, ValueError):
            return None
        if not path.is_relative_to(base) or not path.is_file():
            return None
        return path

    def close(self) -> None:
        """Close the connection (a later read opens another)."""
        with self._lock:
            self._drop()

    def _open(self) -> Store:
        if self._store is not None:
            return self._store
        if self.url is None:
            raise StoreAbsent(
                "The daemon keeps no defect store (store.enabled is false in its config): "
                "coil pages, coil maps and thumbnails need it."
            )
        if self.url.startswith("sqlite:") or "://" not in self.url:
            path = sqlite_path(self.url)
            if not path.is_file():
                raise StoreAbsent(
                    f"No defect store yet at {path}: the daemon creates it when it starts with "
                    "store.enabled, and the first coils appear when they close."
                )
        try:
            self._store = self._opener(self.url)
        except StoreUnavailable as exc:
            raise StoreAbsent(f"The defect store {self.where} does not answer: {exc}") from exc
        except UserError as exc:  # a URL, schema or driver to fix
            raise StoreAbsent(f"The defect store {self.where} cannot be read: {exc}") from exc
        return self._store

    def _drop(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception as exc:  # a connection already broken may fail to close
                log.debug("closing the store %s: %s", self.where, exc)
