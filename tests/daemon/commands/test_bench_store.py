"""`defectd bench store`: a tiny run; structure and accounting only, never timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectd.daemon.cli import main
from defectd.daemon.store.backend import open_store
from defectd.daemon.tools.benchmarks.store import synthetic_defects, write_rate

pytestmark = pytest.mark.slow


def test_write_rates_and_the_daemon_with_the_store_on_and_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "store.json"
    assert main(["bench", "store", "--defects", "300", "--batch", "50", "--seconds", "1",
                 "--rounds", "1", "--daemon-batch", "8", "--json", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "| store | defects | batch | defects/s, straight |" in printed
    assert "On / off: **" in printed
    record = json.loads(out.read_text(encoding="utf-8"))["store"]
    (rate,) = record["writes"]
    assert rate["defects"] == 300 and rate["direct_defects_per_s"] > 0
    daemon = record["daemon"]
    assert len(daemon["off_fps"]) == len(daemon["on_fps"]) == 1
    assert daemon["on_accounted"] and record["stored_coils"] >= 1 and daemon["ratio"] > 0


def test_every_benchmark_defect_is_written_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    rate = write_rate(url, synthetic_defects(120), 25, tmp_path)
    assert rate.writer_defects_per_s > 0
    store = open_store(url)
    try:
        assert len(store.defects("BENCH-1")) == 120 and len(store.defects("BENCH-2")) == 120
    finally:
        store.close()
