"""`SqlStore`: the `Store` operations in the SQL both backends share.

A backend subclasses it with two context managers, `_transaction()` (one transaction, for
writes and migrations) and `_reads()` (for selects), each yielding a `Transaction` and turning
its driver's operational errors into `StoreUnavailable`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager

from defectd.daemon.coils.model import CoilRecord, CoverageGap, StripDefect
from defectd.daemon.store import rows
from defectd.daemon.store.backend import Retained
from defectd.daemon.store.batch import StoreBatch
from defectd.daemon.store.dialect import Dialect, Transaction
from defectd.daemon.store.schema import MIGRATIONS, TABLES, Migration, MigrationResult, migrate
from defectd.engines.errors import InvalidSetting

_DEFECTS = f"SELECT {', '.join(rows.DEFECT_COLUMNS)} FROM defects"
_GAPS = f"SELECT {', '.join(rows.GAP_COLUMNS)} FROM coverage_gaps"
_COILS = f"SELECT {', '.join(rows.COIL_COLUMNS)} FROM coils"


def _where(conditions: Sequence[tuple[str, object]]) -> tuple[str, tuple[object, ...]]:
    """`` WHERE a = ? AND b = ?`` and its parameters ('' when there are none)."""
    if not conditions:
        return "", ()
    text = " AND ".join(c for c, _ in conditions)
    return f" WHERE {text}", tuple(v for _, v in conditions)


def _coil_conditions(coil_id: str | None, line: str | None) -> list[tuple[str, object]]:
    conditions: list[tuple[str, object]] = [("coil_id = ?", rows.coil_key(coil_id))]
    if line is not None:
        conditions.append(("line = ?", line))
    return conditions


class SqlStore(ABC):
    """A migrated database holding coils, defects and coverage gaps."""

    def __init__(self, dialect: Dialect, where: str) -> None:
        self._dialect = dialect
        self._where = where

    @property
    def where(self) -> str:
        """The database, for logs and errors (never a password)."""
        return self._where

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Transaction]:
        """One transaction: committed when the block ends, rolled back when it raises."""

    @abstractmethod
    def _reads(self) -> AbstractContextManager[Transaction]:
        """Selects (each statement sees committed data)."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    def migrate(self, migrations: Sequence[Migration] = MIGRATIONS) -> MigrationResult:
        """Apply the schema migrations the database lacks (`schema.migrate`)."""
        return migrate(self._transaction, self._dialect, self._where, migrations)

    def write(self, batch: StoreBatch) -> None:
        """Write `batch` in one transaction (idempotent; see `Store.write`)."""
        if not batch.rows:
            return
        with self._transaction() as tx:
            if batch.defects:
                tx.executemany(rows.INSERT_DEFECTS, [rows.defect_row(d) for d in batch.defects])
            if batch.gaps:
                tx.executemany(rows.INSERT_GAPS, [rows.gap_row(g) for g in batch.gaps])
            if batch.coils:
                tx.executemany(rows.UPSERT_COILS, [rows.coil_row(c) for c in batch.coils])

    def coils(
        self,
        line: str | None = None,
        since_ns: int | None = None,
        grade: str | None = None,
        limit: int = 100,
    ) -> list[CoilRecord]:
        """Coils newest first (by end); see `Store.coils`."""
        if limit < 1:
            raise InvalidSetting(f"limit must be ≥ 1, got {limit}")
        conditions: list[tuple[str, object]] = []
        if line is not None:
            conditions.append(("line = ?", line))
        if since_ns is not None:
            conditions.append(("ended_ns >= ?", int(since_ns)))
        if grade is not None:
            conditions.append(("grade = ?", grade))
        where, params = _where(conditions)
        sql = f"{_COILS}{where} ORDER BY ended_ns DESC, line, coil_id LIMIT ?"
        with self._reads() as tx:
            found = tx.execute(sql, (*params, int(limit)))
        return [rows.coil_from_row(r) for r in found]

    def coil(self, coil_id: str, line: str | None = None) -> CoilRecord | None:
        """One coil, or None; see `Store.coil`."""
        where, params = _where(_coil_conditions(coil_id, line))
        with self._reads() as tx:
            found = tx.execute(f"{_COILS}{where} ORDER BY ended_ns DESC LIMIT 1", params)
        return rows.coil_from_row(found[0]) if found else None

    def defects(self, coil_id: str | None, line: str | None = None) -> list[StripDefect]:
        """A coil's defects by position along it; see `Store.defects`."""
        where, params = _where(_coil_conditions(coil_id, line))
        with self._reads() as tx:
            found = tx.execute(f"{_DEFECTS}{where} ORDER BY along_from_m, defect_id", params)
        return [rows.defect_from_row(r) for r in found]

    def gaps(self, coil_id: str | None, line: str | None = None) -> list[CoverageGap]:
        """A coil's coverage gaps by position along it; see `Store.gaps`."""
        where, params = _where(_coil_conditions(coil_id, line))
        with self._reads() as tx:
            found = tx.execute(f"{_GAPS}{where} ORDER BY from_m, camera", params)
        return [rows.gap_from_row(r) for r in found]

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        with self._reads() as tx:
            return {t: int(tx.execute(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in TABLES}

    def retain(self, max_age_s: float | None, max_defects: int | None, now_ns: int) -> Retained:
        """Delete what is older than `max_age_s` and defects beyond `max_defects`, in one
        transaction; see `Store.retain`."""
        if max_age_s is not None and max_age_s <= 0:
            raise InvalidSetting(f"retention max_age_s must be > 0, got {max_age_s}")
        if max_defects is not None and max_defects < 0:
            raise InvalidSetting(f"retention max_defects must be ≥ 0, got {max_defects}")
        crops: list[str | None] = []
        coils = gaps = 0
        with self._transaction() as tx:
            if max_age_s is not None:
                cutoff = int(now_ns) - int(max_age_s * 1e9)
                crops += [
                    r[0]
                    for r in tx.execute(
                        "DELETE FROM defects WHERE capture_ns < ? RETURNING crop", (cutoff,)
                    )
                ]
                gaps = len(
                    tx.execute(
                        "DELETE FROM coverage_gaps WHERE EXISTS (SELECT 1 FROM coils"
                        " WHERE coils.line = coverage_gaps.line"
                        " AND coils.coil_id = coverage_gaps.coil_id AND coils.ended_ns < ?)"
                        " RETURNING 1",
                        (cutoff,),
                    )
                )
                coils = len(
                    tx.execute("DELETE FROM coils WHERE ended_ns < ? RETURNING 1", (cutoff,))
                )
            if max_defects is not None:
                # The newest defect past the limit; it and everything older go.
                first = tx.execute(
                    "SELECT capture_ns, defect_id FROM defects"
                    " ORDER BY capture_ns DESC, defect_id DESC LIMIT 1 OFFSET ?",
                    (int(max_defects),),
                )
                if first:
                    capture_ns, defect_id = first[0]
                    crops += [
                        r[0]
                        for r in tx.execute(
                            "DELETE FROM defects WHERE capture_ns < ?"
                            " OR (capture_ns = ? AND defect_id <= ?) RETURNING crop",
                            (capture_ns, capture_ns, defect_id),
                        )
                    ]
        return Retained(
            defects=len(crops),
            coils=coils,
            gaps=gaps,
            crops=tuple(c for c in crops if c),
        )
