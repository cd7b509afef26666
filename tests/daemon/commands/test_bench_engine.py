"""`defectd bench engine`: options, markdown block, JSON; never judges timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectd.daemon.cli import main


def test_engine_suite_prints_table_and_records(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, json_out = tmp_path / "bench.json", tmp_path / "engine.json"
    args = ["bench", "engine", "--model", str(tiny_model), "--backend", "null"]
    args += ["--batch", "2,1", "--seconds", "0.05", "--no-progress"]
    assert main([*args, "--json", str(out), "--json-out", str(json_out)]) == 0
    printed = capsys.readouterr().out
    assert "| batch | frames/s | p50 ms | p99 ms | TFLOP/s | % FP16 peak |" in printed
    assert "Command: `defectd bench engine --backend null --batch 1,2 --seconds 0.05" in printed
    assert "Machine: " in printed and "| 1 |" in printed and "| 2 |" in printed
    assert json.loads(out.read_text())["engine"]["backend"] == "null"
    assert [b["batch"] for b in json.loads(json_out.read_text())["batches"]] == [1, 2]


@pytest.mark.parametrize("batch", ["0,2", "1,x", ",", "-4"])
def test_bad_batch_lists_are_refused(batch: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "engine", "--backend", "null", "--batch", batch])
    assert info.value.code == 2
    assert "--batch takes positive whole numbers" in capsys.readouterr().err


def test_engine_is_not_a_default_suite(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    words = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    from defectd.daemon.commands.bench import DEFAULT_SUITES, SUITES

    assert "engine" in SUITES and "engine" not in DEFAULT_SUITES
    assert f"{', '.join(SUITES)} (default {', '.join(DEFAULT_SUITES)})" in words
