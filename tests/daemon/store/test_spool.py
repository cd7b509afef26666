"""The spool: batches on disk, replayed oldest first, kept across restarts, bounded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from defectd.daemon.store.batch import StoreBatch
from defectd.daemon.store.spool import Spool
from tests.daemon.store.helpers import coil, defect, defect_batch


class Collect:
    """A `write` for `Spool.replay` that keeps the batches, failing on call `fail_at`."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.batches: list[StoreBatch] = []
        self.calls = 0
        self.fail_at = fail_at

    def __call__(self, batches: Sequence[StoreBatch]) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise ConnectionError("database went away")
        self.batches.extend(batches)


def _batches(count: int) -> list[StoreBatch]:
    return [defect_batch(3 * k, 3) for k in range(count)]


def test_batches_come_back_oldest_first_and_segments_go(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=3000)
    batches = [*_batches(9), StoreBatch(coils=(coil(),))]
    assert all(spool.append(b) for b in batches)
    assert len(list(tmp_path.glob("*.jsonl"))) > 2  # several segments
    got = Collect()
    assert spool.replay(got) == 10
    assert got.batches == batches
    assert spool.empty and spool.pending_bytes == 0
    assert list(tmp_path.iterdir()) == []
    stats = spool.stats()
    assert (stats.spooled_batches, stats.replayed_batches) == (10, 10)
    assert stats.spooled_rows == stats.replayed_rows == sum(b.rows for b in batches)


def test_replay_groups_batches(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for b in _batches(7):
        spool.append(b)
    got = Collect()
    spool.replay(got, group=3)
    assert got.calls == 3 and len(got.batches) == 7


def test_a_failed_write_stops_the_replay_and_keeps_the_rest(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=10**9)  # one segment
    batches = _batches(5)
    for b in batches:
        spool.append(b)
    first = Collect(fail_at=3)
    with pytest.raises(ConnectionError):
        spool.replay(first)
    assert first.batches == batches[:2]
    assert not spool.empty and len(list(tmp_path.glob("*.jsonl"))) == 1
    rest = Collect()
    spool.replay(rest)
    assert rest.batches == batches[2:]  # from where it stopped, nothing twice
    assert spool.empty


def test_a_new_spool_on_the_directory_finds_what_was_left(tmp_path: Path) -> None:
    batches = _batches(6)
    before = Spool(tmp_path, segment_bytes=2000)
    for b in batches[:4]:
        before.append(b)
    with pytest.raises(ConnectionError):
        before.replay(Collect(fail_at=2))  # one written, then the process stops
    after = Spool(tmp_path, segment_bytes=2000)
    assert not after.empty and after.pending_bytes == before.pending_bytes
    for b in batches[4:]:
        after.append(b)  # to a new segment, after the old ones
    got = Collect()
    after.replay(got)
    # The first segment is replayed whole again, batch 0 too (harmless: writes are
    # idempotent); what was appended after the restart comes last.
    assert got.batches == batches
    assert after.empty


def test_the_byte_limit_refuses_and_counts_never_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    batch = _batches(1)[0]
    probe = Spool(tmp_path / "probe")
    probe.append(batch)
    line_bytes = probe.pending_bytes
    spool = Spool(tmp_path / "spool", max_bytes=2 * line_bytes + line_bytes // 2)
    assert spool.append(batch) and spool.append(batch)
    assert not spool.append(batch)
    stats = spool.stats()
    assert (stats.spooled_batches, stats.dropped_batches, stats.dropped_rows) == (2, 1, batch.rows)
    assert "spool" in caplog.text and "full" in caplog.text and "rows dropped" in caplog.text
    spool.replay(Collect())
    assert spool.append(batch)  # room again


def test_a_line_cut_short_by_a_crash_is_skipped_and_counted(tmp_path: Path) -> None:
    batches = _batches(3)
    spool = Spool(tmp_path)
    for b in batches:
        spool.append(b)
    (segment,) = tmp_path.glob("*.jsonl")
    with open(segment, "ab") as f:
        f.write(b'{"record_schema": 1, "defects": [{"defect_')  # no newline: torn
    after = Spool(tmp_path)
    got = Collect()
    after.replay(got)
    assert got.batches == batches
    assert after.stats().unreadable_lines == 1
    assert after.empty


def test_numbers_from_numpy_are_kept_as_plain_numbers(tmp_path: Path) -> None:
    values: dict[str, Any] = {"area_px": np.int64(7), "area_mm2": np.float32(2.5)}
    spool = Spool(tmp_path)
    assert spool.append(StoreBatch(defects=(replace(defect(0), **values),)))
    got = Collect()
    spool.replay(got)
    assert got.batches == [StoreBatch(defects=(replace(defect(0), area_px=7, area_mm2=2.5),))]
