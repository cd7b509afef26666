"""The `Store` protocol every database backend implements, and `open_store(url)`.

Backends: ``sqlite:///var/lib/defectd/defects.db`` or a plain path (SQLite, the embedded
default; `sqlite_store`) and ``postgresql://user@host/db`` (PostgreSQL through psycopg 3, the
`defectd[postgres]` extra; `postgres_store`). A store is opened migrated (`schema.migrate`)
and used by one thread at a time: the writer owns its own, readers open theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from defectd.daemon.coils.model import CoilRecord, CoverageGap, StripDefect
from defectd.daemon.store.batch import StoreBatch
from defectd.engines.errors import InvalidSetting

SQLITE_SCHEMES = ("sqlite",)
POSTGRES_SCHEMES = ("postgresql", "postgres")
DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Retained:
    """What one retention pass deleted; `crops`: the crop paths of the deleted defects
    (relative to the crop directory), for `CropStore.remove`."""

    defects: int = 0
    coils: int = 0
    gaps: int = 0
    crops: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        """Rows deleted, all tables together."""
        return self.defects + self.coils + self.gaps


class Store(Protocol):
    """Coils, defects and coverage gaps in a database."""

    @property
    def where(self) -> str:
        """The database, for logs and errors (never a password)."""
        ...

    def write(self, batch: StoreBatch) -> None:
        """Write `batch` in one transaction; rows already there are left as they are (coils
        are replaced by a row that ended later). Raises `StoreUnavailable` when the
        database cannot take it now."""
        ...

    def coils(
        self,
        line: str | None = None,
        since_ns: int | None = None,
        grade: str | None = None,
        limit: int = 100,
    ) -> list[CoilRecord]:
        """Coils newest first (by end), optionally of one line, ended at or after
        `since_ns`, of one grade."""
        ...

    def coil(self, coil_id: str, line: str | None = None) -> CoilRecord | None:
        """The coil `coil_id` (the newest one when lines share ids and `line` is None)."""
        ...

    def defects(self, coil_id: str | None, line: str | None = None) -> list[StripDefect]:
        """The defects of a coil (None: those without a coil id), by position along it."""
        ...

    def gaps(self, coil_id: str | None, line: str | None = None) -> list[CoverageGap]:
        """The coverage gaps of a coil, by position along it."""
        ...

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        ...

    def retain(self, max_age_s: float | None, max_defects: int | None, now_ns: int) -> Retained:
        """Delete defects captured, and coils (with their gaps) ended, more than `max_age_s`
        before `now_ns`; then the oldest defects beyond `max_defects`. None: no limit."""
        ...

    def close(self) -> None:
        """Close the connection; the store cannot be used after."""
        ...


def redact(url: str) -> str:
    """`url` without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///abs/path.db`` URL (a file URL: three slashes then an
    absolute path) or of a plain path."""
    if not url.startswith("sqlite:"):
        return Path(url)
    rest = url[len("sqlite:") :]
    if rest.startswith("//"):
        rest = rest[2:]  # the empty host of sqlite:///path
        if rest.startswith("//"):  # SQLAlchemy's sqlite:////abs/path
            rest = rest[1:]
    if not rest:
        raise InvalidSetting(f"store URL {url!r} names no file: use sqlite:///path/to/defects.db")
    return Path(rest)


def open_store(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Store:
    """Open (and migrate) the store at `url`. `timeout_s`: how long SQLite waits for a lock,
    or PostgreSQL for a connection.

    Raises `StoreUnavailable` when the database does not answer now, `StoreError` or
    `InvalidSetting` for a URL or database that needs fixing, `MissingDependency` for a
    ``postgresql://`` URL without psycopg.
    """
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in POSTGRES_SCHEMES:
        from defectd.daemon.store.postgres_store import open_postgres

        return open_postgres(url, timeout_s=timeout_s)
    if scheme in ("", *SQLITE_SCHEMES) or url.startswith("sqlite:"):
        from defectd.daemon.store.sqlite_store import open_sqlite

        return open_sqlite(sqlite_path(url), timeout_s=timeout_s)
    supported = ", ".join(f"{s}://" for s in (*SQLITE_SCHEMES, *POSTGRES_SCHEMES))
    raise InvalidSetting(
        f"store URL {redact(url)!r}: unknown scheme {scheme!r}; supported: {supported} "
        "or a plain file path (SQLite)"
    )
