"""Golden outputs: a model directory's own record of what the model gives on a few frames.

``golden.npz`` holds a few fixed uint8 frames of the card's input size; ``golden.json`` holds
what the model gave on them when they were written: per frame and class the presence and peak
scores, and the defects after the one post-processing (`engines.postprocess`) at the card's
thresholds — class, area and mask as Kaggle RLE — with the backend and precision that
produced them. `golden_check.check_golden` runs the stored frames through any engine and
compares, so a changed export, backend or post-processing is caught: by the tests, by
`defectd golden check`, and by the daemon before it swaps to a new model.

The frames come from the synthetic line (`golden_frames`) when written, unless the caller
gives its own (`write_golden(frames=...)`: export passes a few training images for a model
whose input is not a Severstal frame); once stored, a check no longer depends on where they
came from. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from defectd.engines.backends.onnxruntime_backend import OnnxRuntimeEngine
from defectd.engines.engine import Engine
from defectd.engines.errors import InvalidInput
from defectd.engines.files import atomic_write, write_json
from defectd.engines.model_card import InputSpec, read_card
from defectd.engines.postprocess import PostprocessConfig, postprocess
from defectd.engines.synth import SynthConfig, SyntheticLine

GOLDEN_JSON = "golden.json"
GOLDEN_FRAMES = "golden.npz"
GOLDEN_FORMAT = 1
GOLDEN_SEED = 5001  # gives 4 frames: one clean, classes (1, 3), (2,) and (3, 4)
SEARCH_FRAMES = 500  # how far along the synthetic line to look for every class


Shape = tuple[int, int]


class GoldenError(InvalidInput):
    """Golden files that are missing or cannot be used; the message names the fix."""


@dataclass(frozen=True)
class GoldenDefect:
    """One post-processed defect class of one frame."""

    class_id: int  # 1-based
    area: int  # kept pixels
    rle: str  # Kaggle RLE of the kept mask


@dataclass(frozen=True)
class GoldenFrame:
    """What a model gave on one frame."""

    presence: tuple[float, ...]  # per class
    peak: tuple[float, ...]  # per class
    defects: tuple[GoldenDefect, ...]  # kept classes, ascending

    def defect(self, class_id: int) -> GoldenDefect | None:
        return next((d for d in self.defects if d.class_id == class_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "presence": list(self.presence),
            "peak": list(self.peak),
            "defects": [
                {"class_id": d.class_id, "area": d.area, "rle": d.rle} for d in self.defects
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GoldenFrame:
        return cls(
            presence=tuple(float(p) for p in data["presence"]),
            peak=tuple(float(p) for p in data["peak"]),
            defects=tuple(
                GoldenDefect(int(d["class_id"]), int(d["area"]), str(d["rle"]))
                for d in data["defects"]
            ),
        )


@dataclass(frozen=True, eq=False)
class Golden:
    """The stored frames and what the model gave on them (both golden files, parsed)."""

    frames: npt.NDArray[np.uint8]  # N×C×H×W, the engine's input layout
    expected: tuple[GoldenFrame, ...]
    written_by: dict[str, str]  # backend, device, precision, engine description
    thresholds: PostprocessConfig  # the card's thresholds when written
    model: dict[str, Any] = field(default_factory=dict)  # name, version, files and sha256
    source: dict[str, Any] = field(default_factory=dict)  # where the frames came from


def golden_frames(
    spec: InputSpec, num_classes: int = 4, seed: int = GOLDEN_SEED
) -> tuple[npt.NDArray[np.uint8], tuple[int, ...]]:
    """Synthetic frames (N×C×H×W) with every class among them and one clean frame, and their
    indices on the line of `seed`.

    Walks the line and takes a frame when it brings a class not yet taken, or when it is the
    first clean one, until every class and a clean frame are in: at most ``num_classes + 1``.
    """
    line = SyntheticLine(seed, SynthConfig(height=spec.height, width=spec.width))
    wanted = set(range(1, num_classes + 1))
    seen: set[int] = set()
    clean = False
    images: list[npt.NDArray[np.uint8]] = []
    indices: list[int] = []
    for index in range(SEARCH_FRAMES):
        frame = line.frame(index)
        classes = set(frame.classes) & wanted
        if (classes - seen) or (not frame.classes and not clean):
            images.append(frame.image)
            indices.append(index)
            seen |= classes
            clean = clean or not frame.classes
        if clean and seen == wanted:
            break
    else:
        raise GoldenError(
            f"the synthetic line of seed {seed} lacks class(es) {sorted(wanted - seen)} "
            f"{'' if clean else 'or a clean frame '}in {SEARCH_FRAMES} frames: pick another seed"
        )
    batch = np.stack(images)[:, None]
    return np.ascontiguousarray(np.repeat(batch, spec.channels, axis=1)), tuple(indices)


def observe(
    engine: Engine, frames: npt.NDArray[np.uint8], thresholds: PostprocessConfig
) -> tuple[GoldenFrame, ...]:
    """What `engine` gives on `frames`, in batches of at most its max_batch."""
    seen: list[GoldenFrame] = []
    for start in range(0, len(frames), engine.info.max_batch):
        out = engine.infer(frames[start : start + engine.info.max_batch])
        presence, peak = out.presence.astype(np.float64), out.peak.astype(np.float64)
        for i in range(len(presence)):
            found = postprocess(out.probs[i], presence[i], thresholds, peak[i])
            defects = tuple(GoldenDefect(c, found.area(c), found.rle(c)) for c in found.classes)
            seen.append(GoldenFrame(tuple(presence[i].tolist()), tuple(peak[i].tolist()), defects))
    return tuple(seen)


def write_golden(
    model_dir: Path | str,
    frames: npt.NDArray[np.uint8] | None = None,
    engine: Engine | None = None,
    source: Mapping[str, Any] | None = None,
) -> Path:
    """Run `frames` (default: `golden_frames` for the card) through `engine` (default: ONNX
    Runtime FP32 on the CPU) and store both golden files in `model_dir`; return golden.json.

    `source` says where given frames came from (default ``{"kind": "given"}``).
    """
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    source = dict(source or {"kind": "given"})
    if frames is None:
        frames, indices = golden_frames(card.input, card.num_classes)
        source = {"kind": "synthetic", "seed": GOLDEN_SEED, "indices": list(indices)}
    frames = np.ascontiguousarray(frames, np.uint8)
    if frames.ndim == 3 and card.input.channels == 1:
        frames = frames[:, None]
    with ExitStack() as stack:
        if engine is None:
            card.verify()
            reference = OnnxRuntimeEngine.from_card(card, "fp32", max_batch=len(frames))
            engine = stack.enter_context(reference)
        expected, info = observe(engine, frames, card.thresholds), engine.info
    atomic_write(model_dir / GOLDEN_FRAMES, lambda partial: _save_frames(partial, frames))
    document = {
        "format": GOLDEN_FORMAT,
        "written_by": {
            "backend": info.backend,
            "device": info.device,
            "precision": info.precision,
            "engine": info.describe(),
        },
        "model": {"name": card.name, "version": card.version, "files": card.to_dict()["files"]},
        "frames_sha256": _frames_digest(frames),
        "source": source,
        "head": card.head,
        "thresholds": card.thresholds.to_list(),
        "frames": [frame.to_dict() for frame in expected],
    }
    write_json(document, model_dir / GOLDEN_JSON)
    return model_dir / GOLDEN_JSON


def read_golden(model_dir: Path | str) -> Golden:
    """Both golden files of `model_dir`; GoldenError naming how to make them when they are
    missing, unreadable or do not belong together."""
    model_dir = Path(model_dir)
    path = _existing(model_dir, GOLDEN_JSON)
    frames = read_frames(model_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != GOLDEN_FORMAT:
            raise GoldenError(
                f"{path}: golden format {data.get('format')!r}, this defectd reads "
                f"{GOLDEN_FORMAT}; {remake_hint(model_dir)}"
            )
        golden = Golden(
            frames=frames,
            expected=tuple(GoldenFrame.from_dict(entry) for entry in data["frames"]),
            written_by={k: str(v) for k, v in data["written_by"].items()},
            thresholds=PostprocessConfig.from_list(
                data["thresholds"], str(data.get("head", "sigmoid"))
            ),
            model=dict(data.get("model", {})),
            source=dict(data.get("source", {})),
        )
        digest = str(data["frames_sha256"])
    except GoldenError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # JSONDecodeError too
        what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise GoldenError(f"{path} cannot be read ({what}); {remake_hint(model_dir)}") from None
    if _frames_digest(frames) != digest or len(frames) != len(golden.expected):
        raise GoldenError(
            f"{model_dir / GOLDEN_FRAMES} does not hold the frames {GOLDEN_JSON} was written "
            f"for; {remake_hint(model_dir)}"
        )
    return golden


def read_frames(model_dir: Path | str) -> npt.NDArray[np.uint8]:
    """The stored golden frames of `model_dir` (N×C×H×W uint8); GoldenError when missing or
    unreadable."""
    model_dir = Path(model_dir)
    path = _existing(model_dir, GOLDEN_FRAMES)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with loaded:
            frames = np.asarray(loaded["frames"])
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as exc:
        raise GoldenError(f"{path} cannot be read ({exc}); {remake_hint(model_dir)}") from None
    if frames.dtype != np.uint8 or frames.ndim != 4:
        raise GoldenError(
            f"{path}: frames are {frames.dtype} {frames.shape}, expected uint8 N×C×H×W"
        )
    return frames


def stored_frames(
    model_dir: Path,
) -> tuple[npt.NDArray[np.uint8] | None, dict[str, Any] | None]:
    """The stored frames and where they came from, so a rewrite after tuning checks the same
    images; (None, None) when there are none."""
    if not (model_dir / GOLDEN_FRAMES).is_file():
        return None, None
    try:
        stored = read_golden(model_dir)
        return stored.frames, stored.source
    except GoldenError:
        pass  # golden.json missing or stale: the frames alone are still worth keeping
    try:
        return read_frames(model_dir), None
    except GoldenError as exc:
        raise GoldenError(f"{exc}, adding --new-frames to pick new frames") from None


def rewrite_golden(model_dir: Path | str) -> Path:
    """Write the golden files again over the frames already stored (after `defectd tune`
    changed the card's thresholds); golden.json's path."""
    frames, source = stored_frames(Path(model_dir))
    return write_golden(model_dir, frames, source=source)


def _existing(model_dir: Path, name: str) -> Path:
    path = model_dir / name
    if not path.is_file():
        raise GoldenError(
            f"{path} not found: {model_dir} has no golden outputs; {remake_hint(model_dir)}"
        )
    return path


def remake_hint(model_dir: Path) -> str:
    return f"write them with `defectd golden write --model {model_dir}`"


def _frames_digest(frames: npt.NDArray[np.uint8]) -> str:
    digest = hashlib.sha256("×".join(map(str, frames.shape)).encode())
    digest.update(np.ascontiguousarray(frames).tobytes())
    return digest.hexdigest()


def _save_frames(path: Path, frames: npt.NDArray[np.uint8]) -> None:
    # Through a file object: np.savez_compressed would append ".npz" to the partial name.
    with path.open("wb") as handle:
        np.savez_compressed(handle, frames=frames)
