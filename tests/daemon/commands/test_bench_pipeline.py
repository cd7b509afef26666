"""`defectd bench pipeline`: a tiny run with the null engine; structure only, never timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectd.daemon.cli import main

pytestmark = pytest.mark.slow


def test_pipeline_suite_prints_block_and_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "pipeline", "--backend", "null", "--batch", "4"]
    args += ["--null-batch", "8", "--seconds", "0.5", "--no-progress"]
    args += ["--out", str(tmp_path / "runs"), "--json", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    command = "Command: `defectd bench pipeline --backend null --batch 4 --null-batch 8 --seconds"
    assert command in printed
    assert "| (a) null engine, max rate | 8 |" in printed
    assert "| (b) daemon with null, max rate | 4 |" in printed
    assert "(c) latency capture→publish at" in printed
    result = json.loads(out.read_text())["pipeline"]
    for run in ("null", "engine"):
        assert result[run]["sent"] > 0 and result[run]["accounted"], result[run]
        assert result[run]["dropped"] == {} and result[run]["lost"] == 0
    assert result["bare"]["batch"] == 4 and result["bare"]["frames_per_s"] > 0
    assert result["latency"]["frames"] > 0 and "latency_meets" in result
    assert (tmp_path / "runs" / "null" / "daemon.log").is_file()
