"""`defectd bench engine`: options, markdown block, JSON; never judges timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectd.daemon.cli import main


def test_engine_suite_prints_table_and_records(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "engine", "--model", str(tiny_model), "--backend", "null"]
    args += ["--batch", "2,1", "--seconds", "0.05", "--no-progress"]
    assert main([*args, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| batch | frames/s | p50 ms | p99 ms | TFLOP/s | % FP16 peak |" in printed
    assert "Command: `defectd bench engine --model " in printed
    assert "--backend null --batch 2,1 --seconds 0.05" in printed
    assert "Machine: " in printed and "| 1 |" in printed and "| 2 |" in printed
    engine = json.loads(out.read_text())["engine"]
    assert engine["backend"] == "null"
    assert [b["batch"] for b in engine["batches"]] == [1, 2]


@pytest.mark.parametrize("batch", ["0,2", "1,x", ",", "-4"])
def test_bad_batch_lists_are_refused(batch: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "engine", "--backend", "null", "--batch", batch])
    assert info.value.code == 2
    assert "--batch takes positive whole numbers" in capsys.readouterr().err


def test_engine_is_not_part_of_the_quick_suites() -> None:
    from defectd.daemon.commands.bench import SUITES, micro

    assert "engine" in SUITES and "engine" not in micro.SUITES
