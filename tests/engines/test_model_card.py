"""Model cards: round trip, sha256 verification, errors that name the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectd.engines.model_card import (
    InputSpec,
    ModelCard,
    ModelCardError,
    ModelFile,
    read_card,
    sha256_of,
    write_card,
)
from defectd.engines.postprocess import ClassThresholds, PostprocessConfig


def make_card(directory: Path) -> ModelCard:
    (directory / "model.onnx").write_bytes(b"not really onnx")
    return ModelCard(
        name="m",
        version="1",
        classes=("a", "b"),
        input=InputSpec(1, 32, 64),
        normalisation={"mean": 0.5, "std": 0.2},
        outputs=("probs", "presence", "peak"),
        thresholds=PostprocessConfig((ClassThresholds(0.6), ClassThresholds(pixel=0.4))),
        files={"fp32": ModelFile("model.onnx", sha256_of(directory / "model.onnx"))},
        commands=("defectd export ...",),
        directory=directory,
    )


def test_round_trip(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    write_card(card, tmp_path)
    again = read_card(tmp_path)
    assert again == card
    assert again.onnx_path() == tmp_path / "model.onnx"
    again.verify()


def test_changed_file_fails_verification(tmp_path: Path) -> None:
    write_card(make_card(tmp_path), tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"changed")
    with pytest.raises(ModelCardError, match="re-run `defectd export`"):
        read_card(tmp_path).verify()


def test_missing_precision_and_missing_card(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    with pytest.raises(ModelCardError, match="has no fp16 ONNX"):
        card.onnx_path("fp16")
    with pytest.raises(ModelCardError, match="not a model directory"):
        read_card(tmp_path / "nowhere")


def test_bad_cards_name_the_problem(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    data = card.to_dict()
    del data["thresholds"]
    (tmp_path / "model_card.json").write_text(json.dumps(data))
    with pytest.raises(ModelCardError, match="missing key 'thresholds'"):
        read_card(tmp_path)
    data = card.to_dict()
    data["format"] = 99
    (tmp_path / "model_card.json").write_text(json.dumps(data))
    with pytest.raises(ModelCardError, match="card format 99"):
        read_card(tmp_path)


def test_an_old_card_without_head_is_sigmoid(tmp_path: Path) -> None:
    data = make_card(tmp_path).to_dict()
    del data["head"]
    card = ModelCard.from_dict(data, tmp_path)
    assert card.head == "sigmoid" and not card.thresholds.exclusive


def test_a_softmax_card_round_trips_and_its_thresholds_follow_the_head(tmp_path: Path) -> None:
    from dataclasses import replace

    card = replace(make_card(tmp_path), head="softmax")
    assert card.thresholds.head == "softmax"
    write_card(card, tmp_path)
    again = read_card(tmp_path)
    assert again.head == "softmax" and again.thresholds.exclusive
    assert json.loads((tmp_path / "model_card.json").read_text())["head"] == "softmax"
