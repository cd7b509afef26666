"""`Trainer`: a tiny model learns, its run directory is complete, and it resumes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="training needs defectd[train] (torch)")

from defectd.training.trainer import TrainConfig, Trainer, TrainError, load_checkpoint  # noqa: E402


def rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_loss_falls_and_the_run_is_complete(tiny_run: Path) -> None:
    history = rows(tiny_run)
    assert [r["epoch"] for r in history] == ["1", "2", "3"]
    assert float(history[-1]["train_loss"]) < float(history[0]["train_loss"])
    for name in ("config.json", "split.json", "curves.png", "last.pt", "best.pt"):
        assert (tiny_run / name).is_file(), name
    split = json.loads((tiny_run / "split.json").read_text())
    assert not set(split["train"]) & set(split["val"])
    assert len(split["val"]) == 6  # 25% of 24, stratified
    model, (mean, std), state = load_checkpoint(tiny_run)
    assert not model.training and 0 < mean < 1 and std > 0
    assert state["commands"] == ["defectd train (test fixture)"]
    best = max(float(r["val_dice"]) for r in history)
    assert state["best_dice"] == pytest.approx(best)


def test_resume_continues_from_the_last_epoch(tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    with pytest.raises(TrainError, match="pass --resume"):
        Trainer(config.__class__(**{**config.__dict__, "out": str(run)}))
    resumed = Trainer(
        config.__class__(**{**config.__dict__, "out": str(run), "epochs": 4}), resume=True
    )
    history = resumed.run(progress=False)
    assert [r.epoch for r in history] == [1, 2, 3, 4]
    assert [r["epoch"] for r in rows(run)] == ["1", "2", "3", "4"]


def test_config_errors_name_the_option(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainError, match="--batch-size must be at least 2"):
        TrainConfig(data=str(tiny_data), out=str(tmp_path), batch_size=1)
    with pytest.raises(TrainError, match="--val-split"):
        TrainConfig(data=str(tiny_data), out=str(tmp_path), val_split=1.5)
    fresh = Trainer(TrainConfig(data=str(tiny_data), out=str(tmp_path / "new")), resume=True)
    assert not fresh.resume  # nothing to resume yet: a new run starts


def test_fine_tuning_starts_from_a_checkpoint(
    tiny_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from defectd.training.model.model import ModelConfig

    source_model, _, source = load_checkpoint(tiny_run)
    config = TrainConfig(
        data=str(tiny_data),
        out=str(tmp_path / "tuned"),
        model=ModelConfig(),  # ignored: the architecture comes from the checkpoint
        epochs=1,
        batch_size=4,
        steps_per_epoch=1,
        val_split=0.25,
        lr=1e-9,  # one step that barely moves the weights
        workers=0,
        init_from=str(tiny_run),
    )
    trainer = Trainer(config, command="defectd train --init-from (test)")
    assert trainer.config.model == ModelConfig(**source["model_config"])
    trainer.run(progress=False)
    model, normalisation, state = load_checkpoint(tmp_path / "tuned")
    assert normalisation == tuple(source["normalisation"])  # the weights' own scaling
    assert state["commands"] == [*source["commands"], "defectd train --init-from (test)"]
    weight = "encoder.conv1.weight"
    before, after = source_model.state_dict(), model.state_dict()
    assert weight in after
    assert torch.allclose(before[weight], after[weight], atol=1e-5)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(TrainConfig(data=str(tiny_data), out=str(tmp_path / "x"), init_from=str(tmp_path)))
