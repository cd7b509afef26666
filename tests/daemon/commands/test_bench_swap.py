"""`defectd bench swap`: a short run through two swaps and a reload; structure only, never
timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectd.daemon.cli import main

pytestmark = pytest.mark.slow


def test_two_swaps_and_a_reload_account_for_every_frame(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "swap.json"
    assert main(["bench", "swap", "--fps", "4", "--settle", "1.5", "--threads", "1",
                 "--json", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "| phase | lasted s | frames | p50 ms | p99 ms | max ms |" in printed
    record = json.loads(out.read_text(encoding="utf-8"))["swap"]
    assert record["exact"] and record["sent"] == record["summaries"] == record["unique"] > 0
    names = [phase["name"] for phase in record["phases"]]
    assert names[1::2] == ["swap to the copy", "threshold reload", "swap back (rollback)"]
    replies = [phase["reply"] for phase in record["phases"] if phase["reply"]]
    assert "model swap: defectd-default 1.1.0-b serves" in replies[0]
    assert replies[1] == "model.thresholds: applied live"
    assert "model swap: defectd-default 1.1.0 serves" in replies[2]
