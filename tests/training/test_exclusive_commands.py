"""evaluate, predict, tune and inspect on an image + mask data set, with a softmax model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch", reason="training the model needs defectd[train] (torch)")

from defectd.daemon.cli import main
from defectd.engines.model_card import read_card
from tests.training.labelmaps import make_label_map_set


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("exclusive-commands")
    data = make_label_map_set(root / "set", count=12, size=60)
    run, model = root / "run", root / "model"
    assert main(["train", "--data", str(data), "--out", str(run), "--encoder-width", "0.125",
                 "--decoder-channels", "16", "--epochs", "2", "--batch-size", "4",
                 "--steps-per-epoch", "4", "--crop", "64x64", "--val-split", "0.25",
                 "--lr", "3e-3", "--blackout", "0", "--no-progress", "--device", "cpu",
                 "--workers", "0"]) == 0  # fmt: skip
    assert main(["export", "--checkpoint", str(run), "--out", str(model)]) == 0
    return data, run, model


def test_evaluate_scores_a_label_map_set_with_both_mious(
    trained: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, run, model = trained
    report, picture = tmp_path / "eval.json", tmp_path / "confusion.png"
    args = ["evaluate", "--model", str(model), "--data", str(data), "--no-progress",
            "--split", str(run / "split.json"), "--json", str(report),
            "--confusion", str(picture)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "mIoU (with background, " in out and "mIoU (defect classes only, " in out
    assert "network argmax" in out
    result = json.loads(report.read_text(encoding="utf-8"))
    val = json.loads((run / "split.json").read_text(encoding="utf-8"))["val"]
    assert result["images"] == len(val) and result["format"] == "image-mask-folders"
    assert (model / "validation.txt").read_text(encoding="utf-8").split() == val
    network = result["network"]
    assert network["exclusive"] and len(network["confusion"]) == 3  # background + 2 classes
    assert sum(map(sum, network["confusion"])) == len(val) * 60 * 60
    assert [c["class_id"] for c in result["post_processed"]["classes"]] == [1, 2]
    image = cv2.imread(str(picture))
    assert image is not None and image.shape[0] > 200


def test_evaluate_refuses_a_model_of_other_classes(
    trained: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, model = trained
    other = make_label_map_set(tmp_path / "other", count=3, size=60)
    (other / "dataset.yaml").write_text("classes: [a, b, c]\n", encoding="utf-8")
    assert main(["evaluate", "--model", str(model), "--data", str(other), "--no-progress"]) == 2
    assert "the data set has 3 classes" in capsys.readouterr().err


def test_predict_writes_a_label_map_per_image_with_its_stem(
    trained: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    data, _, model = trained
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(model), "--data", str(data), "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(p.name for p in (data / "masks").iterdir())
    labels = cv2.imread(str(out / written[0]), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (60, 60) and set(np.unique(labels)) <= {0, 1, 2}


def test_tune_on_a_split_writes_thresholds_into_the_card(
    trained: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, run, model = trained
    copy = tmp_path / "model"
    copy.mkdir()
    for path in model.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    args = ["tune", "--model", str(copy), "--data", str(data), "--split",
            str(run / "split.json"), "--no-progress"]  # fmt: skip
    assert main(args) in (0, 1)
    assert "tuned on 3 frames" in capsys.readouterr().out
    card = read_card(copy)
    assert card.validation["frames"] == 3 and card.head == "softmax"
    assert main(["golden", "check", "--model", str(copy)]) == 0


def test_inspect_and_predict_take_frames_larger_than_the_model(
    trained: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _, model = trained
    tiles = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((data / "images").iterdir())]
    wide = np.hstack(tiles[:3])  # 60×180: three tiles of the 60×60 model
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "wide.png"), wide)
    assert main(["inspect", "--model", str(model), str(frames / "wide.png"),
                 "--out", str(tmp_path / "inspect.png"), "--no-progress"]) == 0  # fmt: skip
    assert "wide.png" in capsys.readouterr().out
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(model), "--images", str(frames), "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    assert cv2.imread(str(out / "wide.png"), cv2.IMREAD_UNCHANGED).shape == (60, 180)
