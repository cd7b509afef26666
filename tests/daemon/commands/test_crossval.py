"""`defectd crossval`: fold models on their own folds, thresholds from the other folds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectd.daemon.cli import main
from defectd.engines.datasets.folds import write_folds
from defectd.engines.labels import read_labels


def test_crossval_scores_every_frame_once_beside_predicting_nothing(
    tiny_model: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folds = tmp_path / "folds"
    write_folds(tiny_data, 2, 0, folds)
    for k in (1, 2):  # the same model for each fold, through the {fold} pattern
        (tmp_path / f"fold{k}").symlink_to(tiny_model)
    out = tmp_path / "cv"
    args = [
        "crossval",
        "--folds",
        str(folds),
        "--models",
        str(tmp_path / "fold{fold}"),
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    assert main([*args, "--json", str(out / "cv.json")]) == 0
    text = capsys.readouterr().out
    assert "24 frames in 2 folds" in text and "fold models" in text
    assert "predict nothing" in text and "thresholds tuned on the other folds" in text
    report = json.loads((out / "cv.json").read_text(encoding="utf-8"))
    assert report["frames"] == 24
    assert sorted(report["thresholds"]["folds"]) == ["1", "2"]
    # The Dice printed is the Dice of the CSV written, scored against the data's truth.
    assert (
        main(
            [
                "score",
                "--truth",
                str(tiny_data / "train.csv"),
                "--pred",
                str(out / "crossfit.csv"),
                "--images",
                str(tiny_data / "train_images"),
                "--json",
                "-",
            ]
        )
        == 0
    )
    scored = json.loads(capsys.readouterr().out)
    assert scored["mean_dice"] == pytest.approx(report["crossfit"]["mean_dice"])
    assert len(read_labels(out / "card-thresholds.csv").masks) > 0
    # Predicting nothing scores the share of clean (image, class) pairs.
    truth = read_labels(tiny_data / "train.csv")
    pairs = [truth.rle(i, c) for i in truth.image_ids for c in (1, 2, 3, 4)]
    clean_share = (sum(not r for r in pairs) + 4 * (24 - len(truth.image_ids))) / 96
    assert report["predict_nothing"]["mean_dice"] == pytest.approx(clean_share)
    # One model for every fold, named as such.
    assert (
        main(["crossval", "--folds", str(folds), "--models", str(tiny_model), "--threads", "1"])
        == 0
    )
    assert "one model" in capsys.readouterr().out


def test_crossval_names_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crossval", "--folds", str(tmp_path), "--models", "m{fold}"]) == 2
    assert "defectd dataset folds" in capsys.readouterr().err
