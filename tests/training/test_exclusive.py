"""Exclusive classes end to end: softmax head and loss, label-map data, export, engine."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs defectd[train] (torch)")

from defectd.daemon.cli import main  # noqa: E402
from defectd.engines.backends.onnxruntime_backend import OnnxRuntimeEngine  # noqa: E402
from defectd.engines.errors import InvalidSetting  # noqa: E402
from defectd.engines.golden_check import check_golden  # noqa: E402
from defectd.engines.inference import Predictor  # noqa: E402
from defectd.engines.model_card import read_card  # noqa: E402
from defectd.training.augment import AugmentConfig  # noqa: E402
from defectd.training.labelled import crop_view, pad_to  # noqa: E402
from defectd.training.losses import IGNORE, SegmentationLoss  # noqa: E402
from defectd.training.model.graph import InferenceGraph  # noqa: E402
from defectd.training.model.model import ModelConfig, ModelOutput, build_model  # noqa: E402
from defectd.training.split import grouped_split  # noqa: E402
from tests.training.labelmaps import make_label_map_set  # noqa: E402

TINY = ModelConfig(encoder_width=0.125, decoder_channels=16, num_classes=2, head="softmax")


def test_softmax_head_has_a_background_channel_and_the_graph_keeps_its_outputs() -> None:
    model = build_model(TINY).eval()
    masks, presence = model(torch.zeros(2, 1, 64, 64))
    assert masks.shape == (2, 3, 64, 64) and presence.shape == (2, 2)
    graph = InferenceGraph(model, 0.5, 0.2, input_shape=(60, 60)).eval()
    frames = torch.randint(0, 255, (2, 1, 60, 60), dtype=torch.uint8)
    with torch.inference_mode():
        probs, presence, peak = graph(frames)
    assert probs.shape == (2, 2, 60, 60) and presence.shape == (2, 2) and peak.shape == (2, 2)
    assert float(probs.sum(dim=1).max()) <= 1.0 + 1e-6  # background = 1 − Σ probs ≥ 0
    assert torch.allclose(peak, probs.amax(dim=(2, 3)))


def test_unknown_head_names_the_choices() -> None:
    with pytest.raises(InvalidSetting, match="sigmoid"):
        ModelConfig(head="softmaxx")


def test_softmax_loss_prefers_the_truth_and_ignores_padding() -> None:
    masks = torch.zeros(2, 2, 8, 8, dtype=torch.uint8)
    masks[0, 0, 1:4, 1:4] = 1
    masks[1, 1, 4:7, 4:7] = 1
    labels = (masks.long() * torch.tensor([1, 2]).view(1, 2, 1, 1)).sum(1)
    good_logits = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float() * 20
    present = masks.amax(dim=(2, 3)).float() * 20 - 10
    good = ModelOutput(good_logits, present)
    bad = ModelOutput(-good_logits, -present)
    loss = SegmentationLoss([1.0, 1.0], head="softmax")
    assert loss(good, masks).total.item() < 0.1 < loss(bad, masks).total.item()
    padded = masks.clone()
    padded[:, :, :, 7] = IGNORE
    changed = good_logits.clone()
    changed[:, :, :, 7] = torch.randn(2, 3, 8)
    first = loss(ModelOutput(good_logits, present), padded).total.item()
    assert loss(ModelOutput(changed, present), padded).total.item() == pytest.approx(first)


def test_small_images_are_padded_to_the_crop_with_ignored_pixels() -> None:
    image = np.full((20, 30), 100, np.uint8)
    masks = np.zeros((2, 20, 30), np.uint8)
    masks[1, 5:10, 5:10] = 1
    config = AugmentConfig(crop=(32, 32), blackout=0.0)
    view, view_masks = crop_view(image, masks, config, 7, np.random.default_rng(0))
    assert view.shape == (32, 32) and view_masks.shape == (2, 32, 32)
    assert (view_masks == IGNORE).sum() == 2 * (32 * 32 - 20 * 30)
    assert int((view_masks == 1).sum()) == 25
    padded, padded_masks = pad_to(image, masks, (32, 32), 7)
    assert padded[25, 31] == 7 and padded_masks[0, 31, 31] == IGNORE


def test_duplicates_stay_on_one_side_of_the_split() -> None:
    classes = {f"{i:02d}": ((i % 3) + 1,) for i in range(30)}
    groups = {i: i for i in classes} | {"01": "00", "02": "00", "03": "00"}
    for seed in range(5):
        train, val = grouped_split(classes, groups, 0.3, seed)
        together = {"00", "01", "02", "03"}
        assert together <= set(train) or together <= set(val)
        assert sorted(train + val) == sorted(classes)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("exclusive")
    data = make_label_map_set(root / "set", count=12, size=60)
    run, model = root / "run", root / "model"
    common = ["--no-progress", "--device", "cpu", "--workers", "0"]
    assert main(["train", "--data", str(data), "--out", str(run), "--encoder-width", "0.125",
                 "--decoder-channels", "16", "--epochs", "2", "--batch-size", "4",
                 "--steps-per-epoch", "3", "--crop", "64x64", "--val-split", "0.25",
                 *common]) == 0  # fmt: skip
    assert main(["export", "--checkpoint", str(run), "--out", str(model)]) == 0
    return run, model


def test_label_maps_train_a_softmax_model_with_miou_in_the_metrics(
    exported: tuple[Path, Path],
) -> None:
    run, _ = exported
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["model"]["head"] == "softmax" and config["model"]["num_classes"] == 2
    with (run / "metrics.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    assert {"val_miou", "val_miou_with_background", "val_iou_1", "val_iou_2"} <= set(rows[0])


def test_the_exported_model_runs_on_onnxruntime_and_passes_its_golden_check(
    exported: tuple[Path, Path],
) -> None:
    _, model_dir = exported
    card = read_card(model_dir)
    assert card.head == "softmax" and card.thresholds.exclusive
    assert card.classes == ("square", "disc")
    assert (card.input.height, card.input.width) == (60, 60)
    assert "val_miou_untuned" in card.training
    with OnnxRuntimeEngine.from_card(card, "fp32", max_batch=4) as engine:
        assert check_golden(engine, model_dir).ok
        frames = np.random.default_rng(1).integers(0, 255, (3, 1, 60, 60), dtype=np.uint8)
        output = engine.infer(frames)
        assert output.probs.shape == (3, 2, 60, 60)
        predictor = Predictor(engine, card.thresholds)
        for index in range(3):
            masks = predictor.defects(output, index).masks
            assert int(masks.sum(axis=0).max()) <= 1  # classes never share a pixel


def test_a_spec_kept_outside_the_folder_names_the_classes(tmp_path: Path) -> None:
    """Read-only data: --spec gives the dataset.yaml the folder cannot hold."""
    data = make_label_map_set(tmp_path / "set", count=8, size=60)
    spec = tmp_path / "elsewhere.yaml"
    (data / "dataset.yaml").rename(spec)
    spec.write_text(spec.read_text(encoding="utf-8").replace("square", "patch"), encoding="utf-8")
    run, model = tmp_path / "run", tmp_path / "model"
    assert main(["train", "--data", str(data), "--spec", str(spec), "--out", str(run),
                 "--encoder-width", "0.125", "--decoder-channels", "16", "--epochs", "1",
                 "--batch-size", "4", "--steps-per-epoch", "2", "--crop", "64x64",
                 "--val-split", "0.25", "--no-progress", "--device", "cpu",
                 "--workers", "0"]) == 0  # fmt: skip
    assert json.loads((run / "config.json").read_text(encoding="utf-8"))["spec"] == str(spec)
    assert main(["export", "--checkpoint", str(run), "--out", str(model)]) == 0
    assert read_card(model).classes == ("patch", "disc")


def test_class_weights_none_weighs_every_class_one(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    run, _ = exported
    auto = torch.load(run / "last.pt", map_location="cpu", weights_only=False)["pos_weight"]
    assert max(auto) > 1.0  # the default weighs the rarer defect pixels up
    data = make_label_map_set(tmp_path / "data")
    flat = tmp_path / "flat"
    assert main(["train", "--data", str(data), "--out", str(flat), "--encoder-width", "0.125",
                 "--decoder-channels", "16", "--epochs", "1", "--batch-size", "4",
                 "--steps-per-epoch", "1", "--crop", "64x64", "--val-split", "0.25",
                 "--class-weights", "none", "--no-progress", "--device", "cpu",
                 "--workers", "0"]) == 0  # fmt: skip
    state = torch.load(flat / "last.pt", map_location="cpu", weights_only=False)
    assert state["pos_weight"] == [1.0, 1.0]
    assert json.loads((flat / "config.json").read_text(encoding="utf-8"))["class_weights"] == "none"
