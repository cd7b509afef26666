"""Checkpoints: last.pt and best.pt written atomically, read back to resume, fine-tune, export.

A checkpoint is a dict (``torch.save``) with:

- ``version``        `CHECKPOINT_VERSION`; anything else is not a defectd checkpoint;
- ``model``, ``model_config``  the weights and the `ModelConfig` that builds them;
- ``normalisation``  (mean, std) of the grey values the weights were trained on;
- ``pos_weight``     the per-class BCE weights of the loss;
- ``optimiser``, ``scheduler``, ``scaler``  the optimisation state (`Optimisation`);
- ``history``        one `EpochRow` (as a dict) per epoch so far;
- ``best_dice``, ``epoch``  the best validation Kaggle Dice so far, the last epoch done;
- ``torch_rng``      torch's random state after that epoch;
- ``train_config``   the `TrainConfig` as a dict;
- ``commands``       the command lines that made these weights, fine-tuning sources first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from defectd.engines.files import atomic_write
from defectd.training.config import TrainError
from defectd.training.model.model import DeepLabV3Plus, ModelConfig, build_model

CHECKPOINT_VERSION = 1
LAST_NAME = "last.pt"  # what --resume continues
BEST_NAME = "best.pt"  # the best epoch by validation Dice: what export takes


def save_checkpoint(checkpoint: dict[str, Any], out: Path, best: bool) -> None:
    """Write `checkpoint` as OUT/last.pt, and as OUT/best.pt too when it is the `best` so far."""
    names = (LAST_NAME, BEST_NAME) if best else (LAST_NAME,)
    for name in names:
        # Atomic, so an interrupted save leaves the previous file whole.
        atomic_write(out / name, lambda partial: torch.save(checkpoint, partial))


def read_last(out: Path) -> dict[str, Any]:
    """OUT/last.pt as saved, to resume the run in OUT."""
    state: dict[str, Any] = torch.load(out / LAST_NAME, map_location="cpu", weights_only=False)
    return state


def load_checkpoint(path: Path | str) -> tuple[DeepLabV3Plus, tuple[float, float], dict[str, Any]]:
    """(model in eval mode, (mean, std), the whole checkpoint) from a best.pt / last.pt.

    `path` may be a run directory, which means its best.pt, or a model directory (with
    model_card.json, e.g. the bundled models/default), whose TorchScript weights are read
    (`model_dir_checkpoint`), so a shipped model can be fine-tuned without its run.
    """
    path = Path(path)
    if path.is_dir() and (path / "model_card.json").is_file() and not (path / BEST_NAME).exists():
        return model_dir_checkpoint(path)
    if path.is_dir():
        path = path / BEST_NAME
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


def model_dir_checkpoint(
    directory: Path,
) -> tuple[DeepLabV3Plus, tuple[float, float], dict[str, Any]]:
    """A model directory as a checkpoint to fine-tune from: the architecture, normalisation
    and commands of its card, the weights of its TorchScript file (keys ``model.*``)."""
    from defectd.engines.model_card import read_card

    card = read_card(directory)
    if "torch" not in card.files:
        raise TrainError(
            f"{directory}: the model has no TorchScript weights (model.torchscript.pt) to "
            "fine-tune from; use its training run's best.pt"
        )
    fields = set(ModelConfig.__dataclass_fields__)
    config = ModelConfig(
        **{k: v for k, v in card.architecture.items() if k in fields}, head=card.head
    )
    scripted = torch.jit.load(  # type: ignore[no-untyped-call]
        str(card.file_path("torch")), map_location="cpu"
    )
    weights = {
        key.removeprefix("model."): value
        for key, value in scripted.state_dict().items()
        if key.startswith("model.")
    }
    model = build_model(config)
    model.load_state_dict(weights)
    model.eval()
    mean, std = float(card.normalisation["mean"]), float(card.normalisation["std"])
    state: dict[str, Any] = {
        "version": CHECKPOINT_VERSION,
        "model": model.state_dict(),
        "model_config": {k: getattr(config, k) for k in fields},
        "normalisation": (mean, std),
        "commands": list(card.commands),
        "epoch": int(card.training.get("best_epoch", 0) or 0),
        "best_dice": float(
            card.validation.get("mean_dice", card.training.get("val_dice_untuned", 0.0)) or 0.0
        ),
    }
    return model, (mean, std), state
