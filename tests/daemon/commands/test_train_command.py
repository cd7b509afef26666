"""`defectd train` through the real CLI records the command line exactly as it was typed."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from defectd.daemon.cli import main

pytest.importorskip("torch", reason="training needs defectd[train] (torch)")

from defectd.training.trainer import load_checkpoint


def test_train_records_its_argv_and_resume_adds_its_own(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a run"  # the space must come back quoted
    argv = [
        "train",
        "--data",
        str(tiny_data),
        "--out",
        str(out),
        "--encoder-width",
        "0.125",
        "--decoder-channels",
        "16",
        "--crop",
        "128x256",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--steps-per-epoch",
        "2",
        "--val-split",
        "0.25",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert "best epoch 1" in capsys.readouterr().out
    typed = (
        f"defectd train --data {tiny_data} --out '{out}' --encoder-width 0.125 "
        "--decoder-channels 16 --crop 128x256 --epochs 1 --batch-size 4 --steps-per-epoch 2 "
        "--val-split 0.25 --workers 0 --device cpu --no-progress"
    )
    assert shlex.join(["defectd", *argv]) == typed
    _, _, state = load_checkpoint(out)
    assert state["commands"] == [typed]

    resume = ["train", "--data", str(tiny_data), "--out", str(out), "--epochs", "2"]
    resume += ["--workers", "0", "--device", "cpu", "--no-progress", "--resume"]
    assert main(resume) == 0
    _, _, state = load_checkpoint(out / "last.pt")
    assert [row["epoch"] for row in state["history"]] == [1, 2]
    assert state["commands"] == [typed, shlex.join(["defectd", *resume])]
