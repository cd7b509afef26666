"""`StoreBatch`: the rows of one write, and their JSON form for the spool.

A batch is what the pipeline hands the writer and what one database transaction takes:
strip defects, coverage gaps and closed coils, in any mix. Several waiting batches merge into
one write; a batch the database did not take is kept on disk as one JSON line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from defectd.daemon.coils.model import RECORD_SCHEMA, CoilRecord, CoverageGap, StripDefect


@dataclass(frozen=True)
class StoreBatch:
    """Rows for one write. Writing the same batch twice stores each row once."""

    defects: tuple[StripDefect, ...] = ()
    gaps: tuple[CoverageGap, ...] = ()
    coils: tuple[CoilRecord, ...] = ()

    @property
    def rows(self) -> int:
        """Records in the batch, all tables together."""
        return len(self.defects) + len(self.gaps) + len(self.coils)

    @classmethod
    def merge(cls, batches: Iterable[StoreBatch]) -> StoreBatch:
        """One batch holding the rows of `batches`, in their order."""
        batches = tuple(batches)
        if len(batches) == 1:
            return batches[0]
        return cls(
            defects=tuple(d for b in batches for d in b.defects),
            gaps=tuple(g for b in batches for g in b.gaps),
            coils=tuple(c for b in batches for c in b.coils),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values; `record_schema` says which record fields they hold."""
        return {
            "record_schema": RECORD_SCHEMA,
            "defects": [d.to_dict() for d in self.defects],
            "gaps": [g.to_dict() for g in self.gaps],
            "coils": [c.to_dict() for c in self.coils],
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StoreBatch:
        """The batch `to_dict` made; a ValueError when it holds records of another schema."""
        schema = values.get("record_schema")
        if schema != RECORD_SCHEMA:
            raise ValueError(
                f"batch holds records of schema {schema}, this defectd reads {RECORD_SCHEMA}"
            )
        return cls(
            defects=tuple(StripDefect.from_dict(d) for d in values.get("defects", ())),
            gaps=tuple(CoverageGap.from_dict(g) for g in values.get("gaps", ())),
            coils=tuple(CoilRecord.from_dict(c) for c in values.get("coils", ())),
        )
