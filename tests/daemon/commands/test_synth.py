"""`defectd synth` end to end, and the synth benchmark's shape (not its numbers)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from defectd.daemon.cli import main
from defectd.engines.benchmarks import synth as synth_bench


def test_synth_writes_dataset_and_preview(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, preview = tmp_path / "ds", tmp_path / "sheet.png"
    argv = [
        "synth",
        "--out",
        str(out),
        "--count",
        "6",
        "--seed",
        "2",
        "--preview",
        str(preview),
        "--preview-count",
        "3",
    ]
    assert main(argv) == 0
    assert (out / "train.csv").is_file()
    assert len(list((out / "train_images").glob("*.jpg"))) == 6
    assert cv2.imread(str(preview)) is not None
    printed = capsys.readouterr().out
    assert "6 frames" in printed and "defect-free" in printed and str(preview) in printed
    assert main(argv) == 2, "refuses to write over the set without --force"
    assert main([*argv, "--force"]) == 0


def test_synth_preview_only(tmp_path: Path) -> None:
    preview = tmp_path / "sheet.png"
    assert main(["synth", "--preview", str(preview), "--preview-count", "2"]) == 0
    sheet = cv2.imread(str(preview))
    assert sheet is not None and sheet.shape[0] == 28 + 2 * (22 + 128)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["synth"], "nothing to do"),
        (["synth", "--out", "x"], "--count"),
        (["synth", "--stats"], "--count"),
        (["synth", "--preview", "sheet.jpg"], ".png"),
        (["synth", "--stats", "--count", "5", "--force"], "--force has no effect without --out"),
        (["synth", "--preview", "s.png", "--jpeg-quality", "70"], "--jpeg-quality has no effect"),
        (["synth", "--out", "x", "--count", "2", "--preview-count", "3"], "without --preview"),
    ],
)
def test_synth_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_synth_stats_compares_with_real_statistics(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--stats", "--count", "40", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("40 frames: defect-free ")
    assert "pixels in two classes: 0" in out
    assert "(0.410)" in out  # the real class-3 share is printed beside the measured one


def test_benchmark_cases() -> None:
    results = synth_bench.run(repeats=3)
    assert [r.case.split(" (")[0] for r in results] == ["frame", "frame + JPEG encode"]
    assert results[0].target_ms == 5.0 and results[1].target_ms is None
    assert all(r.suite == "synth" and r.repeats == 3 and r.median_ms > 0 for r in results)
