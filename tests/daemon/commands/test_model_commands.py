"""tune / evaluate / predict / inspect / export through the real CLI, on a tiny real model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest

from defectd.daemon.cli import main
from defectd.engines.model_card import read_card

pytest.importorskip("torch", reason="the tiny model is trained with defectd[train] (torch)")


@pytest.fixture
def model_copy(tiny_model: Path, tmp_path: Path) -> Path:
    """A private copy: tune writes into the card."""
    return Path(shutil.copytree(tiny_model, tmp_path / "model"))


def test_evaluate_and_predict_agree_with_score(
    model_copy: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--model", str(model_copy), "--no-progress", "--threads", "1"]
    picture = tmp_path / "confusion.png"
    assert main(["evaluate", *common, "--data", str(tiny_data), "--json", "-",
                 "--confusion", str(picture)]) == 0  # fmt: skip
    evaluated = json.loads(capsys.readouterr().out)  # --json -: nothing else on stdout
    assert cv2.imread(str(picture)) is not None
    submission = tmp_path / "submission.csv"
    images = tiny_data / "train_images"
    assert main(["predict", *common, "--images", str(images), "--out", str(submission)]) == 0
    capsys.readouterr()
    lines = submission.read_text().splitlines()
    assert lines[0] == "ImageId_ClassId,EncodedPixels" and len(lines) == 1 + 24 * 4
    assert (
        main(
            [
                "score",
                "--truth",
                str(tiny_data / "train.csv"),
                "--pred",
                str(submission),
                "--json",
                "-",
            ]
        )
        == 0
    )
    scored = json.loads(capsys.readouterr().out)
    assert evaluated["mean_dice"] == pytest.approx(scored["mean_dice"])
    assert evaluated["classes"] == scored["classes"]
    confusion = evaluated["confusion"]
    assert len(confusion) == 5
    assert sum(c["tp"] for c in evaluated["classes"]) == sum(confusion[i][i] for i in range(1, 5))


def test_tune_writes_thresholds_that_evaluate_then_reproduces(
    model_copy: Path, tiny_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = read_card(model_copy)
    status = main(
        [
            "tune",
            "--model",
            str(model_copy),
            "--data",
            str(tiny_data),
            "--no-progress",
            "--threads",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "Kaggle mean Dice on the tuning frames" in out
    card = read_card(model_copy)
    card.verify()  # the ONNX files are untouched
    assert card.validation["frames"] == 24
    assert card.commands[-1].startswith("defectd tune --model")
    assert len(card.commands) == len(before.commands) + 1
    # The golden outputs were rewritten for the tuned thresholds, over the same frames.
    assert "golden outputs rewritten" in out
    assert main(["golden", "check", "--model", str(model_copy), "--threads", "1"]) == 0
    capsys.readouterr()
    main(
        [
            "evaluate",
            "--model",
            str(model_copy),
            "--data",
            str(tiny_data),
            "--json",
            "-",
            "--no-progress",
        ]
    )
    evaluated = json.loads(capsys.readouterr().out)
    # Tuning and evaluation run the same post-processing on the same frames.
    assert evaluated["mean_dice"] == pytest.approx(card.validation["mean_dice"])
    assert evaluated["mean_dice"] >= before.validation.get("mean_dice", 0.0)


def test_inspect_writes_an_overlay(
    tiny_model: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = sorted((tiny_data / "train_images").iterdir())[:2]
    out = tmp_path / "overlay.png"
    assert main(["inspect", "--model", str(tiny_model), *map(str, frames), "--out", str(out)]) == 0
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[1] == 1600 and picture.shape[0] > 2 * 256
    printed = capsys.readouterr().out
    assert frames[0].name in printed and f"wrote {out}" in printed


def test_export_command_writes_a_model(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exported"
    assert main(["export", "--checkpoint", str(tiny_run), "--out", str(out)]) == 0
    assert "FP16 vs FP32" in capsys.readouterr().out
    card = read_card(out)
    assert card.commands[-1] == f"defectd export --checkpoint {tiny_run} --out {out}"


def test_errors_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--model", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "not a model directory" in capsys.readouterr().err
    assert (
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--batch-size", "1"])
        == 2
    )
    assert "--batch-size must be at least 2" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "is not a Severstal-layout dataset" in capsys.readouterr().err
