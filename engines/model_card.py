"""The model card: what a model directory holds and how to run it, in `model_card.json`.

A model directory (bundled ones ship as package data, ``defectd.models``) holds ``model.onnx``
(FP32), ``model.fp16.onnx`` (FP16 weights and compute inside the graph, for TensorRT),
``model.torchscript.pt`` (the same graph for the PyTorch backend) and this card.
The card names the classes, the input the engine takes, the normalisation inside the graph,
the tuned post-processing thresholds, the training data and validation metrics, the sha256 of
each ONNX file and the exact commands that produced it.

``head`` says how the classes relate: ``sigmoid`` (independent, may overlap; the default, also
for cards written before the key existed) or ``softmax`` (exclusive, with a background). The
outputs keep their names and shapes either way; `thresholds` always carries the card's head,
so post-processing made from them treats the classes as the model does.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from defectd.engines.errors import UserError
from defectd.engines.files import write_json
from defectd.engines.postprocess import HEADS, PostprocessConfig

CARD_NAME = "model_card.json"
CARD_FORMAT = 1
PRECISIONS = ("fp32", "fp16")


class ModelCardError(UserError, ValueError):
    """A model directory or card that cannot be used; the message names the fix."""


@dataclass(frozen=True)
class InputSpec:
    """What the engine takes: uint8 N×channels×height×width, batch axis dynamic."""

    channels: int = 1
    height: int = 256
    width: int = 1600
    dtype: str = "uint8"

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width


@dataclass(frozen=True)
class ModelFile:
    """One ONNX file of the model and its sha256."""

    path: str
    sha256: str


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelCard:
    """The parsed card; `directory` is where it was read from (not stored in the JSON)."""

    name: str
    version: str
    classes: tuple[str, ...]
    input: InputSpec
    normalisation: dict[str, float]  # mean and std on a 0..1 grey scale, applied in the graph
    outputs: tuple[str, ...]
    thresholds: PostprocessConfig
    files: dict[str, ModelFile]  # "fp32" / "fp16" → ONNX file, "torch" → weights
    architecture: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    commands: tuple[str, ...] = ()
    directory: Path | None = None
    head: str = "sigmoid"

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ModelCardError(f"head must be one of {list(HEADS)}, got {self.head!r}")
        if self.thresholds.head != self.head:
            # The card's head is the truth; thresholds made without it follow it.
            object.__setattr__(self, "thresholds", replace(self.thresholds, head=self.head))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def onnx_path(self, precision: str = "fp32") -> Path:
        """Path of the ONNX file for `precision`; ModelCardError when the card has none."""
        return self.file_path(precision)

    def file_path(self, key: str) -> Path:
        """Path of the file listed under `key` ("fp32", "fp16", "torch")."""
        if key not in self.files:
            what = "weights" if key == "torch" else "ONNX"
            raise ModelCardError(
                f"model {self.name} has no {key} {what} (it has {sorted(self.files)})"
            )
        base = self.directory or Path(".")
        return base / self.files[key].path

    def verify(self) -> None:
        """Check every listed file exists and matches its sha256."""
        for key, entry in self.files.items():
            path = self.file_path(key)
            if not path.is_file():
                raise ModelCardError(f"{path}: listed in the model card but missing")
            actual = sha256_of(path)
            if actual != entry.sha256:
                raise ModelCardError(
                    f"{path}: sha256 {actual[:12]}… does not match the card's "
                    f"{entry.sha256[:12]}…; the file changed after export — re-run "
                    "`defectd export` (and `defectd tune`) for this model"
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CARD_FORMAT,
            "name": self.name,
            "version": self.version,
            "head": self.head,
            "classes": [{"id": i + 1, "name": n} for i, n in enumerate(self.classes)],
            "input": {
                "layout": "NCHW",
                "dtype": self.input.dtype,
                "shape": ["N", self.input.channels, self.input.height, self.input.width],
            },
            "normalisation": dict(self.normalisation),
            "outputs": list(self.outputs),
            "thresholds": self.thresholds.to_list(),
            "files": {k: {"path": v.path, "sha256": v.sha256} for k, v in self.files.items()},
            "architecture": self.architecture,
            "training": self.training,
            "validation": self.validation,
            "parity": self.parity,
            "commands": list(self.commands),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], directory: Path | None = None) -> ModelCard:
        where = str(directory / CARD_NAME) if directory else CARD_NAME
        try:
            if data.get("format") != CARD_FORMAT:
                raise ModelCardError(
                    f"{where}: card format {data.get('format')!r}, this defectd reads "
                    f"{CARD_FORMAT}; re-export the model with this version"
                )
            shape = data["input"]["shape"]
            return cls(
                name=str(data["name"]),
                version=str(data["version"]),
                classes=tuple(str(c["name"]) for c in data["classes"]),
                input=InputSpec(
                    int(shape[1]), int(shape[2]), int(shape[3]), data["input"]["dtype"]
                ),
                normalisation={k: float(v) for k, v in data["normalisation"].items()},
                outputs=tuple(data["outputs"]),
                thresholds=PostprocessConfig.from_list(data["thresholds"]),
                files={
                    k: ModelFile(str(v["path"]), str(v["sha256"])) for k, v in data["files"].items()
                },
                architecture=dict(data.get("architecture", {})),
                training=dict(data.get("training", {})),
                validation=dict(data.get("validation", {})),
                parity=dict(data.get("parity", {})),
                commands=tuple(data.get("commands", ())),
                directory=directory,
                head=str(data.get("head", "sigmoid")),
            )
        except KeyError as exc:
            raise ModelCardError(f"{where}: missing key {exc}") from None
        except (TypeError, ValueError, IndexError) as exc:
            if isinstance(exc, ModelCardError):
                raise
            raise ModelCardError(f"{where}: {exc}") from None

    def with_command(self, command: str) -> ModelCard:
        return replace(self, commands=(*self.commands, command))


def read_card(directory: Path | str) -> ModelCard:
    """The card of a model directory; ModelCardError naming the fix when it is not one."""
    directory = Path(directory)
    path = directory / CARD_NAME
    if not path.is_file():
        raise ModelCardError(
            f"{directory} is not a model directory (no {CARD_NAME}); make one with "
            "`defectd export --checkpoint runs/NAME --out DIR`, or omit --model for the "
            f"bundled default ({', '.join(bundled_models()) or 'none shipped'})"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelCardError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelCardError(f"{path}: expected a JSON object")
    return ModelCard.from_dict(data, directory)


def write_card(card: ModelCard, directory: Path | str) -> Path:
    """Write the card atomically into `directory` and return its path."""
    path = Path(directory) / CARD_NAME
    write_json(card.to_dict(), path)
    return path


BUNDLED_PACKAGE = "defectd.models"


def bundled_models() -> tuple[str, ...]:
    """The names of the models shipped inside the package (``defectd.models``)."""
    root = resources.files(BUNDLED_PACKAGE)
    return tuple(sorted(entry.name for entry in root.iterdir() if (entry / CARD_NAME).is_file()))


def bundled_model_dir(name: str = "default") -> Path:
    """The folder of a bundled model, found as package data (checkout, editable or wheel)."""
    entry = resources.files(BUNDLED_PACKAGE) / name
    if not (entry / CARD_NAME).is_file():
        shipped = ", ".join(bundled_models()) or "none"
        raise ModelCardError(
            f"no bundled model {name!r} in {BUNDLED_PACKAGE} (shipped: {shipped}); "
            "reinstall defectd (`pip install --force-reinstall defectd`) or pass --model DIR"
        )
    return Path(str(entry))


def default_model_dir() -> Path:
    """The model used when none is named: $DEFECTD_MODEL when set, else the bundled default."""
    override = os.environ.get("DEFECTD_MODEL")
    if override:
        return Path(override)
    return bundled_model_dir("default")
