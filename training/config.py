"""The training configuration: what defines a run (its config.json), checked when it is made."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from defectd.engines.errors import UserError
from defectd.training.augment import AugmentConfig
from defectd.training.mixed import parse_source
from defectd.training.model.model import ModelConfig


class TrainError(UserError, ValueError):
    """A training run that cannot start or resume as asked; the message names the fix."""


PRECISIONS = ("auto", "fp32", "bf16")
CLASS_WEIGHTS = ("auto", "none")


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
    spec: str | None = None  # dataset.yaml for --data kept elsewhere (engines.datasets)
    precision: str = "auto"  # auto: FP16 autocast on CUDA, FP32 on a CPU; or fp32 | bf16
    # More --data sources, "PATH:WEIGHT" (`training.mixed`); `data_weight` is the first's.
    extra_data: tuple[str, ...] = ()
    data_weight: float = 1.0
    # auto: the loss weighs each class by its pos_weight (rare, small defects count more);
    # none: every class weighs 1 (sets where every image has a defect, e.g. NEU-Seg).
    class_weights: str = "auto"

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
        if self.class_weights not in CLASS_WEIGHTS:
            raise TrainError(
                f"--class-weights must be one of {', '.join(CLASS_WEIGHTS)}, "
                f"got {self.class_weights!r}"
            )
        if self.precision not in PRECISIONS:
            raise TrainError(
                f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise TrainError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if not (math.isfinite(self.data_weight) and self.data_weight > 0):
            raise TrainError(
                f"the --data weight must be a positive number, e.g. {self.data}:0.25, "
                f"got {self.data_weight}"
            )
        for source in self.extra_data:
            try:
                parse_source(source)
            except ValueError as exc:
                raise TrainError(f"--data {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-ready values (config.json, checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The configuration `to_dict` wrote (JSON turns tuples into lists); a config.json
        from before a field existed takes the field's default."""
        values = dict(values)
        model = ModelConfig(**values.pop("model"))
        augment_values = dict(values.pop("augment"))
        crop = augment_values.get("crop")
        augment_values["crop"] = tuple(crop) if crop is not None else None
        values["extra_data"] = tuple(values.get("extra_data", ()))  # older runs: one --data
        return cls(model=model, augment=AugmentConfig(**augment_values), **values)


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


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the forward pass for --precision on `device`, None for FP32.

    ``auto`` is FP16 on CUDA and FP32 on a CPU; ``bf16`` needs a GPU or a CPU with bfloat16
    instructions (AVX512_BF16 or AMX), where it about halves the step time (docs/model.md).
    """
    if precision == "fp32":
        return None
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else None
    if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise TrainError(
            "--precision bf16: this CPU has no bfloat16 instructions (AVX512_BF16 or AMX); "
            "use --precision fp32"
        )
    return torch.bfloat16
