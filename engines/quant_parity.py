"""Is a lower-precision file as good as FP32? Both run on the same labelled frames, judged as
the daemon would publish them.

A candidate (the INT8 file of `defectd quantize`, on ONNX Runtime or OpenVINO) passes when:

- every frame keeps the **same defect classes** as with the FP32 reference (the event an
  operator sees does not change; ``max_flips`` frames may differ, 0 by default), and
- its Kaggle-style **Dice against the truth** — per (frame, class), 1 when both are empty,
  averaged over frames — is within ``tolerance`` (default 0.005) of the reference's, for the
  mean over classes and for every class.

Every failure is named: the class and both figures, or the frame and both class sets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from defectd.engines.datasets import Dataset
from defectd.engines.inference import Predictor
from defectd.engines.scoring import mask_dice

TOLERANCE = 0.005
FLIPS_LISTED = 5  # frames named in a failure message; the count says how many in all


@dataclass(frozen=True)
class ClassParity:
    """One class's Dice against the truth with the reference and with the candidate."""

    class_id: int
    name: str
    reference: float
    candidate: float

    @property
    def delta(self) -> float:
        return self.candidate - self.reference


@dataclass(frozen=True)
class ParityReport:
    """The comparison on `frames` frames; `failures` empty means the candidate passes."""

    reference: str  # e.g. "onnxruntime fp32"
    candidate: str
    frames: int
    tolerance: float
    classes: tuple[ClassParity, ...]
    flips: tuple[str, ...]  # "IMAGE: fp32 classes (1, 3), int8 (1,)" per frame that differs
    max_flips: int = 0  # frames allowed to keep other classes

    @property
    def reference_mean(self) -> float:
        return float(np.mean([c.reference for c in self.classes]))

    @property
    def candidate_mean(self) -> float:
        return float(np.mean([c.candidate for c in self.classes]))

    @property
    def failures(self) -> list[str]:
        out = []
        gap = self.candidate_mean - self.reference_mean
        if abs(gap) > self.tolerance:
            out.append(
                f"mean Dice {self.candidate_mean:.4f} ({self.candidate}) against "
                f"{self.reference_mean:.4f} ({self.reference}): {gap:+.4f}, beyond "
                f"±{self.tolerance}"
            )
        for c in self.classes:
            if abs(c.delta) > self.tolerance:
                out.append(
                    f"class {c.class_id} ({c.name}): Dice {c.candidate:.4f} ({self.candidate}) "
                    f"against {c.reference:.4f} ({self.reference}): {c.delta:+.4f}, beyond "
                    f"±{self.tolerance}"
                )
        if len(self.flips) > self.max_flips:
            shown = "; ".join(self.flips[:FLIPS_LISTED])
            more = f" (and {len(self.flips) - FLIPS_LISTED} more)" if len(self.flips) > 5 else ""
            out.append(
                f"{len(self.flips)} of {self.frames} frames keep other defect classes "
                f"(at most {self.max_flips} allowed): {shown}{more}"
            )
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "candidate": self.candidate,
            "frames": self.frames,
            "tolerance": self.tolerance,
            "passed": self.passed,
            "mean_dice": {"reference": self.reference_mean, "candidate": self.candidate_mean},
            "classes": [
                {
                    "class_id": c.class_id,
                    "name": c.name,
                    "reference_dice": c.reference,
                    "candidate_dice": c.candidate,
                }
                for c in self.classes
            ],
            "frames_with_other_classes": len(self.flips),
            "max_flips": self.max_flips,
            "failures": self.failures,
        }


def compare(
    reference: Predictor,
    candidate: Predictor,
    dataset: Dataset,
    image_ids: Sequence[str],
    class_names: Sequence[str],
    batch_size: int = 4,
    tolerance: float = TOLERANCE,
    progress: Callable[[int], None] | None = None,
    max_flips: int = 0,
) -> ParityReport:
    """Run both predictors over `image_ids` of `dataset` and compare them (module docstring)."""
    names = (_label(reference), _label(candidate))
    count = len(class_names)
    sums = np.zeros((2, count))
    flips: list[str] = []
    images = ((i, dataset.read_image(i)) for i in image_ids)
    ours = candidate.run_images(((i, dataset.read_image(i)) for i in image_ids), batch_size)
    frames = 0
    for ref, cand in zip(reference.run_images(images, batch_size), ours, strict=True):
        truth = dataset.read_masks(ref.image_id, ref.defects.shape)
        kept = (ref.defects.masks, cand.defects.masks)
        for c in range(count):
            sums[0, c] += mask_dice(truth[c], kept[0][c])
            sums[1, c] += mask_dice(truth[c], kept[1][c])
        if ref.defects.classes != cand.defects.classes:
            flips.append(
                f"{ref.image_id}: {names[0]} classes {ref.defects.classes}, "
                f"{names[1]} {cand.defects.classes}"
            )
        frames += 1
        if progress is not None:
            progress(1)
    if frames == 0:
        raise ValueError("no frames to compare on")
    classes = tuple(
        ClassParity(c + 1, class_names[c], sums[0, c] / frames, sums[1, c] / frames)
        for c in range(count)
    )
    return ParityReport(names[0], names[1], frames, tolerance, classes, tuple(flips), max_flips)


def _label(predictor: Predictor) -> str:
    info = predictor.engine.info
    return f"{info.backend} {info.precision}"
