"""What every `Store` backend must do, as one test class: a backend's test module subclasses
`StoreContract` and gives it the `url` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from defectd.daemon.store.backend import Store, open_store
from defectd.daemon.store.batch import StoreBatch
from defectd.daemon.store.schema import SCHEMA_VERSION, Migration
from defectd.daemon.store.sql_store import SqlStore
from tests.daemon.store.helpers import STEP_NS, T0, coil, defect, defect_batch, gap


class StoreContract:
    """The `Store` protocol's behaviour, against a real database."""

    @pytest.fixture
    def url(self) -> str:
        raise NotImplementedError("a backend's test class gives the url fixture")

    @pytest.fixture
    def store(self, url: str) -> Iterator[Store]:
        store = open_store(url, timeout_s=1.0)
        yield store
        store.close()

    def test_records_read_back_as_written(self, store: Store) -> None:
        defects = (defect(2), defect(0), defect(1, coil_id=None))
        gaps = (gap(5), gap(1, camera="cam2"), gap(3, coil_id=None))
        c = coil()
        store.write(StoreBatch(defects, gaps, (c,)))
        assert store.defects("C1") == [defect(0), defect(2)]  # by position along the coil
        assert store.defects(None) == [defect(1, coil_id=None)]
        assert store.gaps("C1") == [gap(1, camera="cam2"), gap(5)]
        assert store.gaps(None) == [gap(3, coil_id=None)]
        assert store.coil("C1") == c
        assert store.coils() == [c]
        assert store.counts() == {"coils": 1, "defects": 3, "coverage_gaps": 3}

    def test_writing_a_batch_twice_keeps_one_copy(self, store: Store) -> None:
        batch = StoreBatch(defect_batch(0, 5).defects, (gap(0), gap(1)), (coil(),))
        store.write(batch)
        store.write(batch)
        store.write(StoreBatch.merge([batch, defect_batch(3, 4)]))  # overlapping
        assert store.counts() == {"coils": 1, "defects": 7, "coverage_gaps": 3}
        assert [d.defect_id for d in store.defects("C1")] == [defect(n).defect_id for n in range(7)]

    def test_a_coil_is_replaced_by_a_later_row_only(self, store: Store) -> None:
        first = coil(ended_ns=T0, grade="B")
        later = coil(ended_ns=T0 + STEP_NS, grade="C")
        store.write(StoreBatch(coils=(first,)))
        store.write(StoreBatch(coils=(later,)))
        assert store.coil("C1") == later
        store.write(StoreBatch(coils=(first,)))  # a spooled batch replayed late
        assert store.coil("C1") == later
        assert store.counts()["coils"] == 1

    def test_coils_are_filtered_and_newest_first(self, store: Store) -> None:
        coils = [
            coil("C1", ended_ns=T0 + 1, grade="A"),
            coil("C2", ended_ns=T0 + 3, grade="B"),
            coil("C3", ended_ns=T0 + 2, grade="A"),
            coil("C1", line="L2", ended_ns=T0 + 4, grade="A"),
        ]
        store.write(StoreBatch(coils=tuple(coils)))
        ids = [(c.line, c.coil_id) for c in store.coils()]
        assert ids == [("L2", "C1"), ("L1", "C2"), ("L1", "C3"), ("L1", "C1")]
        assert [c.coil_id for c in store.coils(line="L1", grade="A")] == ["C3", "C1"]
        assert [c.coil_id for c in store.coils(since_ns=T0 + 2, line="L1")] == ["C2", "C3"]
        assert len(store.coils(limit=2)) == 2
        assert store.coil("C1") == coils[3]  # the newest of the lines sharing the id
        assert store.coil("C1", line="L1") == coils[0]
        assert store.coil("C9") is None

    def test_values_from_numpy_are_stored_as_plain_numbers(self, store: Store) -> None:
        # What the pipeline may hand in: numpy scalars where the record says int or float.
        from_numpy: dict[str, Any] = {
            "area_mm2": np.float32(2.5),
            "area_px": np.int64(7),
            "capture_ns": np.int64(T0),
            "across_mm": (np.float64(1.0), np.float64(2.0)),
        }
        d = replace(defect(0), **from_numpy)
        store.write(StoreBatch(defects=(d,)))
        (back,) = store.defects("C1")
        assert (back.area_mm2, back.area_px, back.capture_ns) == (2.5, 7, T0)
        assert type(back.area_px) is int

    def test_retention_by_age_deletes_old_rows_and_names_their_crops(self, store: Store) -> None:
        old_coil = coil("C0", ended_ns=T0 + 5 * STEP_NS)
        new_coil = coil("C1", ended_ns=T0 + 50 * STEP_NS)
        defects = tuple(defect(n, crop=f"day/C1/{n}.jpg" if n % 2 else None) for n in range(10))
        gaps = (gap(0, coil_id="C0"), gap(1, coil_id="C0"), gap(2, coil_id="C1"))
        store.write(StoreBatch(defects, gaps, (old_coil, new_coil)))
        now = T0 + 60 * STEP_NS
        retained = store.retain(max_age_s=53.5, max_defects=None, now_ns=now)  # cutoff T0 + 6.5 s
        assert (retained.defects, retained.coils, retained.gaps) == (7, 1, 2)
        assert retained.rows == 10
        assert sorted(retained.crops) == ["day/C1/1.jpg", "day/C1/3.jpg", "day/C1/5.jpg"]
        assert [d.defect_id for d in store.defects("C1")] == [
            defect(n).defect_id for n in (7, 8, 9)
        ]
        assert store.coil("C0") is None and store.coil("C1") == new_coil
        assert store.gaps("C1") == [gap(2, coil_id="C1")]
        assert store.retain(max_age_s=53.5, max_defects=None, now_ns=now).rows == 0

    def test_retention_by_count_keeps_the_newest_defects(self, store: Store) -> None:
        same_time = [defect(n, capture_ns=T0) for n in range(3)]  # ties: by id
        store.write(StoreBatch(defects=(*same_time, *(defect(n) for n in range(3, 8)))))
        retained = store.retain(max_age_s=None, max_defects=6, now_ns=T0)
        assert retained.defects == 2
        kept = {d.defect_id for d in store.defects("C1")}
        assert kept == {defect(n).defect_id for n in range(2, 8)}
        assert store.retain(None, 6, T0).rows == 0
        assert store.retain(None, None, T0).rows == 0
        assert store.retain(None, 0, T0).defects == 6
        assert store.counts()["defects"] == 0

    def test_reopening_migrates_nothing(self, url: str, store: Store) -> None:
        assert isinstance(store, SqlStore)
        assert store.migrate().applied == 0
        again = open_store(url)
        try:
            assert isinstance(again, SqlStore)
            result = again.migrate()
            assert (result.before, result.after) == (SCHEMA_VERSION, SCHEMA_VERSION)
        finally:
            again.close()

    def test_a_new_migration_applies_once_and_an_old_defectd_refuses(
        self, url: str, store: Store
    ) -> None:
        from defectd.daemon.store.errors import SchemaTooNew
        from defectd.daemon.store.schema import MIGRATIONS

        assert isinstance(store, SqlStore)
        newer = (
            *MIGRATIONS,
            Migration(SCHEMA_VERSION + 1, ("CREATE TABLE later (x INTEGER)",)),
        )
        assert store.migrate(newer).applied == 1
        assert store.migrate(newer).applied == 0
        with pytest.raises(SchemaTooNew, match=r"upgrade defectd") as raised:
            open_store(url)
        assert f"schema version {SCHEMA_VERSION + 1}" in str(raised.value)

    def test_a_closed_store_says_so(self, store: Store) -> None:
        store.close()
        with pytest.raises(RuntimeError, match="closed"):
            store.counts()
        store.close()  # twice is fine
