"""`defectd bench` runs its suites and records them; it never judges timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectd.daemon.cli import main


def test_rle_suite_records_every_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "rle", "--repeats", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| rle | encode, polygon 10k px |" in printed
    assert "Command: `defectd bench rle --repeats 2`" in printed
    record = json.loads(out.read_text())
    cases = [r["case"] for r in record["results"]]
    assert len(cases) == 8 and all(r["median_ms"] > 0 for r in record["results"])


def test_unknown_suite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "gpu-magic"]) == 2
    assert "unknown suite(s) gpu-magic" in capsys.readouterr().err


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in (
        "synth",
        "score",
        "bench",
        "train",
        "export",
        "tune",
        "evaluate",
        "predict",
        "inspect",
    ):
        assert command in out


def test_model_suite_times_both_precisions(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    args = [
        "bench",
        "model",
        "--model",
        str(tiny_model),
        "--model-repeats",
        "2",
        "--json",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert (
        "| model | fp32 ONNX, batch 1 |" in printed and "| model | fp16 ONNX, batch 1 |" in printed
    )
    cases = {r["case"]: r for r in json.loads(out.read_text())["results"]}
    assert cases["fp32 ONNX, batch 1"]["target_ms"] == 250.0
    assert "post-processing, 1 frame" in cases
