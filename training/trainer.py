"""`defectd train`: the training loop, its checkpoints, and what a run leaves on disk.

A run directory holds:

- ``config.json``  the full training configuration (what `--resume` continues);
- ``split.json``   the train / validation image ids (stratified by class combination);
- ``metrics.csv``  one row per epoch: losses, validation Kaggle Dice (mean and per class);
- ``curves.png``   the same as a picture;
- ``last.pt``      everything needed to resume (model, optimiser, schedule, random state);
- ``best.pt``      the checkpoint with the best validation Kaggle Dice (what `export` takes).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm import tqdm

from defectd.engines.files import atomic_write, write_json
from defectd.engines.postprocess import PostprocessConfig, postprocess
from defectd.engines.scoring import mask_dice
from defectd.engines.severstal import SeverstalDataset
from defectd.training.augment import AugmentConfig
from defectd.training.data import FrameDataset, grey_statistics, positive_weights, sampling_weights
from defectd.training.losses import SegmentationLoss
from defectd.training.model.graph import TrainingGraph
from defectd.training.model.model import DeepLabV3Plus, ModelConfig, build_model
from defectd.training.split import stratified_split

log = logging.getLogger(__name__)
CHECKPOINT_VERSION = 1


class TrainError(ValueError):
    """A training run that cannot start or resume as asked; the message names the fix."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved as config.json)."""

    data: str
    out: str
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    epochs: int = 20
    batch_size: int = 8
    steps_per_epoch: int | None = None  # None: one pass over the training images
    val_split: float = 0.15
    val_batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    workers: int = 1
    device: str = "auto"
    encoder_weights: str | None = None
    balance: float = 0.75  # class-balanced sampling power: 0 as in the data, 1 equal shares
    init_from: str | None = None  # fine-tune: start from this checkpoint's weights

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise TrainError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 2:
            # BatchNorm in the ASPP image-pooling branch needs two samples per batch.
            raise TrainError(f"--batch-size must be at least 2, got {self.batch_size}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise TrainError(f"--steps-per-epoch must be at least 1, got {self.steps_per_epoch}")
        if not 0.0 < self.val_split < 1.0:
            raise TrainError(f"--val-split must be in (0, 1), e.g. 0.15, got {self.val_split}")
        if self.lr <= 0:
            raise TrainError(f"--lr must be > 0, got {self.lr}")
        if self.workers < 0:
            raise TrainError(f"--workers must be ≥ 0, got {self.workers}")
        if not 0.0 <= self.balance <= 1.0:
            raise TrainError(f"--balance must be in [0, 1], got {self.balance}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise TrainError(f"--device must be auto, cpu or cuda, got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        values = dict(values)
        model = ModelConfig(**values.pop("model"))
        augment_values = dict(values.pop("augment"))
        crop = augment_values.get("crop")
        augment_values["crop"] = tuple(crop) if crop is not None else None
        return cls(model=model, augment=AugmentConfig(**augment_values), **values)


def train_command(cfg: TrainConfig) -> str:
    """The `defectd train` command line that reproduces `cfg`."""
    model, crop = cfg.model, cfg.augment.crop
    parts = [
        "defectd",
        "train",
        "--data",
        cfg.data,
        "--out",
        cfg.out,
        "--encoder",
        model.encoder,
        "--encoder-width",
        f"{model.encoder_width:g}",
        "--decoder-channels",
        str(model.decoder_channels),
        "--output-stride",
        str(model.output_stride),
        "--epochs",
        str(cfg.epochs),
        "--batch-size",
        str(cfg.batch_size),
    ]
    if cfg.steps_per_epoch is not None:
        parts += ["--steps-per-epoch", str(cfg.steps_per_epoch)]
    if crop is not None:
        parts += ["--crop", f"{crop[0]}x{crop[1]}"]
    parts += [
        "--val-split",
        f"{cfg.val_split:g}",
        "--lr",
        f"{cfg.lr:g}",
        "--seed",
        str(cfg.seed),
        "--workers",
        str(cfg.workers),
        "--balance",
        f"{cfg.balance:g}",
    ]
    if model.in_channels != 1:
        parts += ["--in-channels", str(model.in_channels)]
    if cfg.encoder_weights:
        parts += ["--encoder-weights", cfg.encoder_weights]
    if cfg.init_from:
        parts += ["--init-from", cfg.init_from]
    return shlex.join(parts)


def pick_device(name: str) -> torch.device:
    """The torch device for --device; a clear error when CUDA is asked for but missing."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError(
            "--device cuda: this torch has no usable CUDA (CPU build or no GPU); "
            "use --device cpu or install a CUDA torch build (see README)"
        )
    return torch.device(name)


@dataclass
class EpochRow:
    """One line of metrics.csv."""

    epoch: int
    steps: int
    lr: float
    train_loss: float
    train_bce: float
    train_dice_loss: float
    train_presence_loss: float
    val_loss: float
    val_dice: float
    val_dice_per_class: list[float]
    seconds: float

    def csv_row(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if k != "val_dice_per_class"}
        for index, value in enumerate(self.val_dice_per_class, start=1):
            row[f"val_dice_{index}"] = value
        return row


@dataclass(frozen=True)
class Validation:
    loss: float
    dice: float
    dice_per_class: list[float]


def _atomic_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda partial: torch.save(obj, partial))


def write_metrics(rows: list[EpochRow], path: Path) -> None:
    """metrics.csv from the history (rewritten whole, so a resumed run has one clean file)."""
    if not rows:
        return
    fields = list(rows[0].csv_row())
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row.csv_row())


def plot_curves(rows: list[EpochRow], path: Path, title: str) -> None:
    """curves.png: losses on the left, validation Kaggle Dice (mean and per class) right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [r.epoch for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    left.plot(epochs, [r.train_loss for r in rows], "o-", label="train loss")
    left.plot(epochs, [r.val_loss for r in rows], "o-", label="validation loss")
    left.set_xlabel("epoch")
    left.set_ylabel("loss (BCE + Dice + presence)")
    left.grid(alpha=0.3)
    left.legend()
    right.plot(epochs, [r.val_dice for r in rows], "o-", color="black", lw=2, label="mean")
    colours = ["tab:red", "tab:green", "tab:blue", "tab:purple"]
    for index in range(len(rows[0].val_dice_per_class)):
        right.plot(
            epochs,
            [r.val_dice_per_class[index] for r in rows],
            ".--",
            color=colours[index % len(colours)],
            label=f"class {index + 1}",
        )
    right.set_xlabel("epoch")
    right.set_ylabel("validation Kaggle Dice (thresholds 0.5, untuned)")
    for axis in (left, right):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.grid(alpha=0.3)
    right.legend(loc="lower right")
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def validate(
    graph: TrainingGraph,
    loader: DataLoader[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: SegmentationLoss,
    device: torch.device,
    post: PostprocessConfig,
) -> Validation:
    """Validation loss and Kaggle Dice on full frames, post-processed with `post`."""
    graph.eval()
    num_classes = post.num_classes
    dice_sums = np.zeros(num_classes)
    loss_sum, frames = 0.0, 0
    with torch.inference_mode():
        for images, masks in loader:
            images, masks = images.to(device), masks.to(device)
            output = graph(images)
            loss_sum += loss_fn(output, masks).total.item() * len(images)
            probs = output.masks.sigmoid().float().cpu().numpy()
            presence = output.presence.sigmoid().float().cpu().numpy()
            truth = masks.cpu().numpy()
            for index in range(len(images)):
                kept = postprocess(probs[index], presence[index], post).masks
                for c in range(num_classes):
                    dice_sums[c] += mask_dice(truth[index, c], kept[c])
            frames += len(images)
    per_class = (dice_sums / max(frames, 1)).tolist()
    return Validation(loss_sum / max(frames, 1), float(np.mean(per_class)), per_class)


def _cycle(loader: DataLoader[Any]) -> Iterator[Any]:
    while True:
        yield from loader


class Trainer:
    """One training run; `run()` trains to the last epoch, resuming from last.pt if asked."""

    def __init__(self, config: TrainConfig, resume: bool = False, command: str = "") -> None:
        self.out = Path(config.out)
        self.command = command
        self.config = self._settle_config(config, resume)
        self.resume = resume and (self.out / "last.pt").is_file()
        self.device = pick_device(self.config.device)

    def _settle_config(self, config: TrainConfig, resume: bool) -> TrainConfig:
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
        if (self.out / "last.pt").exists():
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
        """Train; return the metrics history."""
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        dataset = SeverstalDataset(cfg.data)
        if len(dataset) < 4:
            raise TrainError(f"{cfg.data} has {len(dataset)} images; training needs at least 4")
        split_path = self.out / "split.json"
        if self.resume and split_path.is_file():
            split = json.loads(split_path.read_text(encoding="utf-8"))
            train_ids, val_ids = split["train"], split["val"]
        else:
            classes = {i: dataset.classes(i) for i in dataset.image_ids}
            train_ids, val_ids = stratified_split(classes, cfg.val_split, cfg.seed)
            write_json({"train": train_ids, "val": val_ids}, split_path)
            write_json(cfg.to_dict(), self.out / "config.json")
        if len(train_ids) < cfg.batch_size:
            raise TrainError(
                f"{len(train_ids)} training images is fewer than --batch-size {cfg.batch_size}"
            )

        model = build_model(cfg.model, cfg.encoder_weights)
        initial: dict[str, Any] | None = None
        if self.resume:
            state = torch.load(self.out / "last.pt", map_location="cpu", weights_only=False)
            mean, std = state["normalisation"]
            pos_weight = state["pos_weight"]
        elif cfg.init_from:
            state = None
            _, _, initial = load_checkpoint(cfg.init_from)
            model.load_state_dict(initial["model"])
            mean, std = initial["normalisation"]  # the weights were trained on this scaling
            pos_weight = positive_weights(dataset, train_ids)
            log.info(
                "fine-tuning from %s (epoch %d, validation Dice %.4f)",
                cfg.init_from,
                initial["epoch"],
                initial["best_dice"],
            )
        else:
            state = None
            mean, std = grey_statistics(dataset, train_ids)
            pos_weight = positive_weights(dataset, train_ids)
        log.info(
            "%d training / %d validation frames; grey mean %.3f std %.3f; pos_weight %s",
            len(train_ids),
            len(val_ids),
            mean,
            std,
            [round(w, 2) for w in pos_weight],
        )
        graph = TrainingGraph(model, mean, std).to(self.device)
        loss_fn = SegmentationLoss(pos_weight).to(self.device)
        steps = cfg.steps_per_epoch or max(1, len(train_ids) // cfg.batch_size)
        total_steps = steps * cfg.epochs
        optimiser = torch.optim.AdamW(graph.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, _warmup_cosine(total_steps))
        use_amp = self.device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

        history: list[EpochRow] = []
        commands = [self.command] if self.command else []
        if initial is not None:
            commands = [*initial.get("commands", []), *commands]  # the whole recipe
        best = -1.0
        start_epoch = 1
        if state is not None:
            graph.model.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            history = [EpochRow(**row) for row in state["history"]]
            best = state["best_dice"]
            commands = [*state.get("commands", []), *commands]
            start_epoch = state["epoch"] + 1
            torch.set_rng_state(state["torch_rng"])
            log.info("resumed %s after epoch %d (best Dice %.4f)", self.out, state["epoch"], best)
        if start_epoch > cfg.epochs:
            log.info("%s already finished %d epochs", self.out, cfg.epochs)
            return history

        train_set = FrameDataset(dataset, train_ids, cfg.augment)
        weights = sampling_weights(
            [dataset.classes(i) for i in train_ids], dataset.num_classes, cfg.balance
        )
        generator = torch.Generator().manual_seed(cfg.seed * 1000 + start_epoch)
        sampler = WeightedRandomSampler(weights, steps * cfg.batch_size, generator=generator)
        train_loader = DataLoader(
            train_set,
            batch_size=cfg.batch_size,
            sampler=sampler,
            num_workers=cfg.workers,
            drop_last=True,
            persistent_workers=cfg.workers > 0,
            generator=generator,
        )
        val_loader = DataLoader(
            FrameDataset(dataset, val_ids), batch_size=cfg.val_batch_size, num_workers=cfg.workers
        )
        post = PostprocessConfig()
        batches = _cycle(train_loader)
        for epoch in range(start_epoch, cfg.epochs + 1):
            started = time.monotonic()
            graph.train()
            sums = np.zeros(4)
            bar = tqdm(
                range(steps),
                desc=f"epoch {epoch}/{cfg.epochs}",
                unit="step",
                disable=not progress,
                dynamic_ncols=True,
            )
            for step in bar:
                images, masks = next(batches)
                images, masks = images.to(self.device), masks.to(self.device)
                with torch.autocast(self.device.type, dtype=torch.float16, enabled=use_amp):
                    output = graph(images)
                parts = loss_fn(output, masks)
                if not math.isfinite(parts.total.item()):
                    raise TrainError(
                        f"epoch {epoch} step {step + 1}: loss is {parts.total.item()}; lower --lr"
                    )
                optimiser.zero_grad(set_to_none=True)
                scaler.scale(parts.total).backward()
                scaler.step(optimiser)
                scaler.update()
                scheduler.step()
                sums += (parts.total.item(), parts.bce, parts.dice, parts.presence)
                bar.set_postfix(
                    loss=f"{sums[0] / (step + 1):.4f}",
                    best_dice=f"{best:.4f}" if best >= 0 else "—",
                )
            bar.close()
            val = validate(graph, val_loader, loss_fn, self.device, post)
            means = sums / steps
            row = EpochRow(
                epoch=epoch,
                steps=steps,
                lr=float(scheduler.get_last_lr()[0]),
                train_loss=float(means[0]),
                train_bce=float(means[1]),
                train_dice_loss=float(means[2]),
                train_presence_loss=float(means[3]),
                val_loss=val.loss,
                val_dice=val.dice,
                val_dice_per_class=val.dice_per_class,
                seconds=time.monotonic() - started,
            )
            history.append(row)
            improved = val.dice > best
            best = max(best, val.dice)
            checkpoint = {
                "version": CHECKPOINT_VERSION,
                "model": graph.model.state_dict(),
                "model_config": asdict(cfg.model),
                "normalisation": (mean, std),
                "pos_weight": pos_weight,
                "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "history": [asdict(r) for r in history],
                "best_dice": best,
                "epoch": epoch,
                "torch_rng": torch.get_rng_state(),
                "train_config": cfg.to_dict(),
                "commands": commands,
            }
            _atomic_save(checkpoint, self.out / "last.pt")
            if improved:
                _atomic_save(checkpoint, self.out / "best.pt")
            write_metrics(history, self.out / "metrics.csv")
            plot_curves(history, self.out / "curves.png", f"{self.out.name}: {cfg.model.encoder}")
            log.info(
                "epoch %d/%d: train loss %.4f, val loss %.4f, val Kaggle Dice %.4f (%s)%s, %.0f s",
                epoch,
                cfg.epochs,
                row.train_loss,
                row.val_loss,
                row.val_dice,
                " ".join(f"{d:.3f}" for d in row.val_dice_per_class),
                " *best*" if improved else "",
                row.seconds,
            )
        return history


def _warmup_cosine(total_steps: int, warmup: int = 100) -> Callable[[int], float]:
    warmup = min(warmup, max(1, total_steps // 10))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def load_checkpoint(path: Path | str) -> tuple[DeepLabV3Plus, tuple[float, float], dict[str, Any]]:
    """(model in eval mode, (mean, std), the whole checkpoint) from a best.pt / last.pt."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint (train one with `defectd train`)")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise TrainError(f"{path} is not a defectd training checkpoint")
    model = build_model(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    model.eval()
    mean, std = state["normalisation"]
    return model, (float(mean), float(std)), state
