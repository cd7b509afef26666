"""`defectd score` end to end through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from defectd.daemon.cli import main


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def truth_dir(tmp_path: Path) -> Path:
    (tmp_path / "train_images").mkdir()
    for name in ("a.jpg", "b.jpg", "clean.jpg"):
        cv2.imwrite(str(tmp_path / "train_images" / name), np.zeros((256, 1600), np.uint8))
    write(tmp_path / "train.csv", "ImageId,ClassId,EncodedPixels\na.jpg,1,1 100\nb.jpg,3,5 10\n")
    return tmp_path


def test_json_report_old_layout_prediction(
    truth_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred = write(
        tmp_path / "sub.csv",
        "ImageId_ClassId,EncodedPixels\n"
        + "".join(f"a.jpg_{c},{'1 100' if c == 1 else ''}\n" for c in range(1, 5))
        + "".join(f"clean.jpg_{c},\n" for c in range(1, 5)),
    )
    assert (
        main(["score", "--truth", str(truth_dir / "train.csv"), "--pred", str(pred), "--json", "-"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    # 3 images (clean.jpg comes from train_images/) × 4 classes; only b.jpg class 3 is missed.
    assert report["pairs"] == 12
    assert report["mean_dice"] == pytest.approx(11 / 12)
    assert report["missing_prediction_ids"] == ["b.jpg"]
    assert report["classes"][2]["recall"] == 0.0
    assert report["classes"][0]["precision"] == 1.0


def test_text_report(truth_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = write(tmp_path / "p.csv", "ImageId,ClassId,EncodedPixels\na.jpg,1,1 50\n")
    assert main(["score", "--truth", str(truth_dir / "train.csv"), "--pred", str(pred)]) == 0
    out = capsys.readouterr().out
    assert "Kaggle mean Dice: 0.8889" in out  # (10 + 2·50/150) / 12
    assert "2 image(s) have no rows in the prediction" in out


def test_unknown_predicted_image_is_an_error(
    truth_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred = write(tmp_path / "p.csv", "ImageId,ClassId,EncodedPixels\nzzz.jpg,1,1 5\n")
    assert main(["score", "--truth", str(truth_dir / "train.csv"), "--pred", str(pred)]) == 2
    assert "not in the truth: zzz.jpg" in capsys.readouterr().err


def test_bad_prediction_row_is_reported_with_line(
    truth_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred = write(tmp_path / "p.csv", "ImageId,ClassId,EncodedPixels\na.jpg,1,1 50\na.jpg,2,0 5\n")
    assert main(["score", "--truth", str(truth_dir / "train.csv"), "--pred", str(pred)]) == 2
    assert "p.csv:3: a.jpg class 2: token 1: start 0 is below 1" in capsys.readouterr().err


def test_real_truth_against_itself(severstal_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = str(severstal_dir / "train.csv")
    assert main(["score", "--truth", truth, "--pred", truth, "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 1000 and report["mean_dice"] == 1.0
    assert [c["true_images"] for c in report["classes"]] == [201, 68, 827, 333]
