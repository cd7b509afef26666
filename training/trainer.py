"""`defectd train`: the training loop, step by step, and what a run leaves on disk.

A run directory holds:

- ``config.json``  the full training configuration (what `--resume` continues);
- ``split.json``   the train / validation image ids (stratified by class combination);
- ``metrics.csv``  one row per epoch: losses, validation Kaggle Dice (mean and per class);
- ``curves.png``   the same as a picture;
- ``last.pt``      everything needed to resume (model, optimiser, schedule, random state);
- ``best.pt``      the checkpoint with the best validation Kaggle Dice (what `export` takes).

The parts live beside this file: the configuration in `config`, checkpoints in `checkpoint`,
the per-epoch record in `history`, the optimiser and its schedule in `optimiser`, the
validation pass in `validation`, the data (Severstal or any other labelled layout, whose
classes then set the model's classes and head) in `sources`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm import tqdm

from defectd.engines.files import write_json
from defectd.engines.postprocess import ClassThresholds, PostprocessConfig
from defectd.training.checkpoint import (
    CHECKPOINT_VERSION,
    LAST_NAME,
    load_checkpoint,
    read_last,
    save_checkpoint,
)
from defectd.training.config import TrainConfig, TrainError, autocast_dtype, pick_device
from defectd.training.data import grey_statistics
from defectd.training.history import EpochRow, epoch_row, plot_curves, write_metrics
from defectd.training.losses import SegmentationLoss
from defectd.training.model.graph import TrainingGraph
from defectd.training.model.model import DeepLabV3Plus, ModelConfig, build_model
from defectd.training.optimiser import Optimisation, build_optimisation
from defectd.training.sources import TrainingData, open_training_data
from defectd.training.validation import validate

# What callers have always imported from here.
__all__ = ["EpochRow", "TrainConfig", "TrainError", "Trainer", "load_checkpoint"]

log = logging.getLogger(__name__)
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class _Start:
    """Where a run begins: its model, grey scaling and loss weights, and what came before."""

    model: DeepLabV3Plus
    normalisation: tuple[float, float]  # (mean, std) of the grey values
    pos_weight: list[float]
    resumed: dict[str, Any] | None  # this run's last.pt under --resume
    commands: list[str]  # the command lines behind the weights it starts from


@dataclass
class _Parts:
    """What every epoch works with."""

    graph: TrainingGraph
    loss_fn: SegmentationLoss
    optimisation: Optimisation
    steps: int  # optimiser steps per epoch
    normalisation: tuple[float, float]
    pos_weight: list[float]
    data_info: dict[str, Any] | None = None  # the checkpoint's "data" (other layouts)


@dataclass
class _Record:
    """The run so far: its epochs, the best validation Dice, the command lines behind it."""

    history: list[EpochRow]
    best: float  # -1 before the first epoch
    commands: list[str]
    next_epoch: int

    def add(self, row: EpochRow) -> bool:
        """Append the epoch `row`; True when its validation Dice is the best so far."""
        improved = row.score > self.best
        self.best = max(self.best, row.score)
        self.history.append(row)
        self.next_epoch = row.epoch + 1
        return improved


class Trainer:
    """One training run; `run()` trains to the last epoch, resuming from last.pt if asked.

    `command` is the command line that started the run (``defectd train …`` as typed); it
    is recorded in the checkpoints after those of earlier runs it resumes or fine-tunes.
    """

    def __init__(self, config: TrainConfig, resume: bool = False, command: str = "") -> None:
        self.out = Path(config.out)
        self.command = command
        self.config = self._settle_config(config, resume)
        self.resume = resume and (self.out / LAST_NAME).is_file()
        self.device = pick_device(self.config.device)

    def _settle_config(self, config: TrainConfig, resume: bool) -> TrainConfig:
        """The configuration to train with: the saved one when resuming (with the new
        --epochs and --workers), the checkpoint's model when fine-tuning, else `config`."""
        saved = self.out / "config.json"
        if resume and not saved.is_file():
            log.info("--resume: nothing to resume in %s yet; starting a new run", self.out)
        elif resume:
            stored = TrainConfig.from_dict(json.loads(saved.read_text(encoding="utf-8")))
            if stored.epochs != config.epochs:
                log.info(
                    "resuming %s with %d epochs (was %d)", self.out, config.epochs, stored.epochs
                )
            return replace(stored, epochs=config.epochs, workers=config.workers)
        if (self.out / LAST_NAME).exists():
            raise TrainError(
                f"{self.out} already holds a run: pass --resume to continue it, or choose "
                "another --out"
            )
        if config.init_from:
            # Fine-tuning keeps the architecture of the weights it starts from.
            _, _, state = load_checkpoint(config.init_from)
            model = ModelConfig(**state["model_config"])
            if model != config.model:
                log.info("--init-from %s: using its model %s", config.init_from, model)
            return replace(config, model=model)
        return config

    def run(self, progress: bool = True) -> list[EpochRow]:
        """Train to the last epoch; return the metrics history, resumed epochs included."""
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        dataset = self._open_dataset()
        cfg = self.config
        train_ids, val_ids = self._split(dataset)
        start = self._start(dataset, train_ids, val_ids)
        parts = self._build_parts(start, len(train_ids))
        parts.data_info = dataset.data_info(train_ids)
        record = self._restore(start, parts)
        if record.next_epoch > cfg.epochs:
            log.info("%s already finished %d epochs", self.out, cfg.epochs)
            return record.history
        batches = self._train_batches(dataset, train_ids, parts, record.next_epoch)
        fill = _fill(parts.normalisation)
        val_loader = DataLoader(
            dataset.dataset(val_ids, fill, cfg.model.output_stride),
            batch_size=cfg.val_batch_size,
            num_workers=cfg.workers,
            collate_fn=dataset.collate(fill),
        )
        thresholds = tuple(ClassThresholds() for _ in range(cfg.model.num_classes))
        post = PostprocessConfig(thresholds, head=cfg.model.head)
        for epoch in range(record.next_epoch, cfg.epochs + 1):
            started = time.monotonic()
            losses = self._train_epoch(epoch, parts, batches, record.best, progress)
            val = validate(parts.graph, val_loader, parts.loss_fn, self.device, post)
            row = epoch_row(
                epoch, parts.steps, parts.optimisation.lr, losses, val, time.monotonic() - started
            )
            improved = record.add(row)
            self._save(parts, record, improved)
            self._log_epoch(row, improved)
        return record.history

    def _open_dataset(self) -> TrainingData:
        """The --data folder(s), with enough images to split; a new run's model takes the
        data's classes and head (other layouts than Severstal)."""
        cfg = self.config
        dataset = open_training_data(cfg.data, cfg.spec, cfg.extra_data, cfg.data_weight)
        for source in dataset.mixed_sources():
            log.info(
                "data %s: %d images, %.0f%% of the training draws",
                source.path,
                source.images,
                100 * source.share,
            )
        if len(dataset) < 4:
            raise TrainError(f"{cfg.data} has {len(dataset)} images; training needs at least 4")
        if self.resume or cfg.init_from:
            dataset.check_model(cfg.model, str(self.out if self.resume else cfg.init_from))
        else:
            fitted = dataset.fit_model(cfg.model)
            if fitted != cfg.model:
                log.info("%s: %d classes, %s head", cfg.data, fitted.num_classes, fitted.head)
            self.config = replace(cfg, model=fitted)
        dataset.check_crop(self.config.augment, self.config.model.output_stride)
        return dataset

    def _split(self, dataset: TrainingData) -> tuple[list[str], list[str]]:
        """(train, validation) image ids: split.json when resuming, else a new stratified
        split, saved with config.json."""
        cfg = self.config
        split_path = self.out / "split.json"
        if self.resume and split_path.is_file():
            split = json.loads(split_path.read_text(encoding="utf-8"))
            train_ids: list[str] = split["train"]
            val_ids: list[str] = split["val"]
        else:
            train_ids, val_ids = dataset.split(cfg.val_split, cfg.seed)
            write_json({"train": train_ids, "val": val_ids}, split_path)
            write_json(cfg.to_dict(), self.out / "config.json")
        if len(train_ids) < cfg.batch_size:
            raise TrainError(
                f"{len(train_ids)} training images is fewer than --batch-size {cfg.batch_size}"
            )
        return train_ids, val_ids

    def _start(self, dataset: TrainingData, train_ids: list[str], val_ids: list[str]) -> _Start:
        """The model, grey scaling and loss weights: from last.pt under --resume (restored
        later, with the optimiser), from the --init-from weights, or new from the images."""
        cfg = self.config
        model = build_model(cfg.model, cfg.encoder_weights)
        if self.resume:
            state = read_last(self.out)
            mean, std = state["normalisation"]
            start = _Start(
                model, (mean, std), state["pos_weight"], state, state.get("commands", [])
            )
        elif cfg.init_from:
            _, _, initial = load_checkpoint(cfg.init_from)
            model.load_state_dict(initial["model"])
            mean, std = initial["normalisation"]  # the weights were trained on this scaling
            weights = self._class_weights(dataset, train_ids)
            start = _Start(model, (mean, std), weights, None, initial.get("commands", []))
            log.info(
                "fine-tuning from %s (epoch %d, validation Dice %.4f)",
                cfg.init_from,
                initial["epoch"],
                initial["best_dice"],
            )
        else:
            mean, std = grey_statistics(dataset.frames, train_ids)
            weights = self._class_weights(dataset, train_ids)
            start = _Start(model, (mean, std), weights, None, [])
        log.info(
            "%d training / %d validation frames; grey mean %.3f std %.3f; pos_weight %s",
            len(train_ids),
            len(val_ids),
            mean,
            std,
            [round(w, 2) for w in start.pos_weight],
        )
        return start

    def _class_weights(self, dataset: TrainingData, train_ids: list[str]) -> list[float]:
        """The loss's per-class weights: each class's pos_weight, or all 1 (--class-weights
        none)."""
        weights = dataset.positive_weights(train_ids)
        if self.config.class_weights == "none":
            return [1.0] * len(weights)
        return weights

    def _build_parts(self, start: _Start, train_images: int) -> _Parts:
        """The training graph on the device, its loss, and the optimisation for all epochs."""
        cfg = self.config
        mean, std = start.normalisation
        graph = TrainingGraph(start.model, mean, std).to(self.device)
        if self._channels_last:
            # Module.to takes memory_format at run time; torch's stubs do not list it.
            graph = graph.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        loss_fn = SegmentationLoss(start.pos_weight, head=cfg.model.head).to(self.device)
        steps = cfg.steps_per_epoch or max(1, train_images // cfg.batch_size)
        optimisation = build_optimisation(
            graph.parameters(),
            cfg.lr,
            cfg.weight_decay,
            steps * cfg.epochs,
            self._autocast == torch.float16,  # loss scaling is for FP16 only
        )
        return _Parts(graph, loss_fn, optimisation, steps, start.normalisation, start.pos_weight)

    def _restore(self, start: _Start, parts: _Parts) -> _Record:
        """The record to continue: last.pt's under --resume (its weights, optimisation and
        random state restored into `parts`), else an empty one."""
        commands = [*start.commands, *([self.command] if self.command else [])]
        state = start.resumed
        if state is None:
            return _Record(history=[], best=-1.0, commands=commands, next_epoch=1)
        parts.graph.model.load_state_dict(state["model"])
        parts.optimisation.load_state_dict(state)
        history = [EpochRow(**row) for row in state["history"]]
        record = _Record(history, state["best_dice"], commands, next_epoch=state["epoch"] + 1)
        torch.set_rng_state(state["torch_rng"])
        log.info(
            "resumed %s after epoch %d (best Dice %.4f)", self.out, state["epoch"], record.best
        )
        return record

    def _train_batches(
        self, dataset: TrainingData, train_ids: list[str], parts: _Parts, first_epoch: int
    ) -> Iterator[Batch]:
        """Class-balanced batches of augmented crops (each source at its share), without end."""
        cfg, steps = self.config, parts.steps
        fill = _fill(parts.normalisation)
        weights = dataset.sampling_weights(train_ids, cfg.balance)
        # Seeded by the first epoch too, so a resumed run does not replay epoch 1's draws.
        generator = torch.Generator().manual_seed(cfg.seed * 1000 + first_epoch)
        sampler = WeightedRandomSampler(weights, steps * cfg.batch_size, generator=generator)
        loader = DataLoader(
            dataset.dataset(train_ids, fill, cfg.model.output_stride, cfg.augment),
            batch_size=cfg.batch_size,
            collate_fn=dataset.collate(fill),
            sampler=sampler,
            num_workers=cfg.workers,
            drop_last=True,
            persistent_workers=cfg.workers > 0,
            generator=generator,
        )
        return _cycle(loader)

    def _train_epoch(
        self, epoch: int, parts: _Parts, batches: Iterator[Batch], best: float, progress: bool
    ) -> npt.NDArray[np.float64]:
        """One epoch of optimiser steps; its mean (total, BCE, Dice, presence) losses."""
        parts.graph.train()
        sums = np.zeros(4)
        bar = tqdm(
            range(parts.steps),
            desc=f"epoch {epoch}/{self.config.epochs}",
            unit="step",
            disable=not progress,
            dynamic_ncols=True,
        )
        for step in bar:
            images, masks = next(batches)
            images, masks = images.to(self.device), masks.to(self.device)
            if self._channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(
                self.device.type, dtype=self._autocast or torch.float32, enabled=self._amp
            ):
                output = parts.graph(images)
            loss = parts.loss_fn(output, masks)
            if not math.isfinite(loss.total.item()):
                raise TrainError(
                    f"epoch {epoch} step {step + 1}: loss is {loss.total.item()}; lower --lr"
                )
            parts.optimisation.step(loss.total)
            sums += (loss.total.item(), loss.bce, loss.dice, loss.presence)
            bar.set_postfix(
                loss=f"{sums[0] / (step + 1):.4f}",
                best_dice=f"{best:.4f}" if best >= 0 else "—",
            )
        bar.close()
        means: npt.NDArray[np.float64] = sums / parts.steps
        return means

    def _save(self, parts: _Parts, record: _Record, improved: bool) -> None:
        """After an epoch: last.pt (and best.pt when `improved`), metrics.csv, curves.png."""
        cfg = self.config
        checkpoint = {
            "version": CHECKPOINT_VERSION,
            "model": parts.graph.model.state_dict(),
            "model_config": asdict(cfg.model),
            "normalisation": parts.normalisation,
            "pos_weight": parts.pos_weight,
            **parts.optimisation.state_dict(),
            "history": [asdict(r) for r in record.history],
            "best_dice": record.best,
            "epoch": record.history[-1].epoch,
            "torch_rng": torch.get_rng_state(),
            "train_config": cfg.to_dict(),
            "commands": record.commands,
        }
        if parts.data_info is not None:
            checkpoint["data"] = parts.data_info
        save_checkpoint(checkpoint, self.out, best=improved)
        write_metrics(record.history, self.out / "metrics.csv")
        plot_curves(
            record.history, self.out / "curves.png", f"{self.out.name}: {cfg.model.encoder}"
        )

    def _log_epoch(self, row: EpochRow, improved: bool) -> None:
        if row.val_miou is not None:
            log.info(
                "epoch %d: val mIoU %.4f (with background %.4f), IoU per class %s",
                row.epoch,
                row.val_miou,
                row.val_miou_with_background or 0.0,
                " ".join("—" if v is None else f"{v:.3f}" for v in row.val_iou_per_class),
            )
        log.info(
            "epoch %d/%d: train loss %.4f, val loss %.4f, val Kaggle Dice %.4f (%s)%s, %.0f s",
            row.epoch,
            self.config.epochs,
            row.train_loss,
            row.val_loss,
            row.val_dice,
            " ".join(f"{d:.3f}" for d in row.val_dice_per_class),
            " *best*" if improved else "",
            row.seconds,
        )

    @property
    def _channels_last(self) -> bool:
        """NHWC tensors with bf16 on a CPU, where oneDNN's bf16 convolutions want them (with
        --precision bf16 a step takes about half the FP32 time; docs/model.md). FP32 keeps
        NCHW: torch 2.13's CPU backward crashed on NHWC in a fine-tuning test."""
        return self.device.type == "cpu" and self._autocast == torch.bfloat16

    @property
    def _autocast(self) -> torch.dtype | None:
        return autocast_dtype(self.config.precision, self.device)

    @property
    def _amp(self) -> bool:
        """Mixed precision in the forward pass (FP16 on CUDA by default, bf16 if asked)."""
        return self._autocast is not None


def _fill(normalisation: tuple[float, float]) -> int:
    """The grey value padding takes: the training mean, 0 once normalised (as in export)."""
    return round(normalisation[0] * 255.0)


def _cycle(loader: DataLoader[Batch]) -> Iterator[Batch]:
    # The sampler draws one epoch's worth; cycling keeps one loader (and its workers).
    while True:
        yield from loader
