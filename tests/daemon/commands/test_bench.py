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
    # The command line is recorded as typed, not rebuilt from the options.
    assert f"Command: `defectd bench rle --repeats 2 --json {out}`" in printed
    record = json.loads(out.read_text())
    assert record["suite"] == "rle" and record["command"].startswith("defectd bench rle")
    cases = [r["case"] for r in record["results"]]
    assert len(cases) == 8 and all(r["median_ms"] > 0 for r in record["results"])


def test_unknown_suite(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "gpu-magic"])
    assert info.value.code == 2
    assert "invalid choice: 'gpu-magic'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        # Options of one suite are not accepted by another (they were once, and ignored).
        ["bench", "pipeline", "--repeats", "3"],
        ["bench", "rle", "--seconds", "5"],
        ["bench", "engine", "--minutes", "1"],
        ["bench", "soak", "--labels", "x.csv"],
    ],
)
def test_options_belong_to_their_suite(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_a_bad_value_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "rle", "--repeats", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "defectd bench: error: --repeats must be positive, got 0"


def test_json_to_stdout_is_pure_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "synth", "--repeats", "1", "--json", "-"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["suite"] == "synth" and len(record["results"]) == 2


def test_bench_help_lists_every_suite(capsys: pytest.CaptureFixture[str]) -> None:
    from defectd.daemon.commands.bench import SUITES

    with pytest.raises(SystemExit) as info:
        main(["bench", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("    ")}
    assert set(SUITES) <= listed, out


def test_model_suite_times_both_precisions(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    args = [
        "bench",
        "model",
        "--model",
        str(tiny_model),
        "--repeats",
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
