"""Compare a backend with the ONNX Runtime FP32 reference on the same frames.

FP32 backends must agree to max |Δp| ≤ 1e-4; FP16 backends to ≤ 1e-2 *and* give the same
post-processed defects (classes, and component areas within a few boundary pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from defectd.engines.engine import Engine
from defectd.engines.postprocess import PostprocessConfig, postprocess

TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}


@dataclass(frozen=True)
class ParityReport:
    """How far a candidate engine is from the reference on one set of frames."""

    frames: int
    max_abs_probs: float
    max_abs_presence: float
    max_abs_peak: float
    tolerance: float
    same_classes: bool  # every frame flags the same classes
    max_area_change: float  # largest relative change of a class's kept area, 0..1
    notes: tuple[str, ...]  # one line per frame/class that differs

    @property
    def ok(self) -> bool:
        worst = max(self.max_abs_probs, self.max_abs_presence, self.max_abs_peak)
        return worst <= self.tolerance and self.same_classes and self.max_area_change <= 0.01

    def describe(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"{verdict}: {self.frames} frames, max |Δp| {self.max_abs_probs:.2e} "
            f"(tolerance {self.tolerance:g}), presence {self.max_abs_presence:.2e}, "
            f"same classes {self.same_classes}, largest area change "
            f"{100 * self.max_area_change:.2f}%"
        )


def compare(
    reference: Engine,
    candidate: Engine,
    frames: npt.NDArray[np.uint8],
    thresholds: PostprocessConfig,
    batch_size: int = 4,
    tolerance: float | None = None,
) -> ParityReport:
    """Run both engines over `frames` (N×H×W) in batches and compare outputs and defects.

    `tolerance` on |Δp| defaults to `TOLERANCE` for the candidate's precision.
    """
    probs = presence = peak = 0.0
    same = True
    area_change = 0.0
    notes: list[str] = []
    for start in range(0, len(frames), batch_size):
        batch = frames[start : start + batch_size]
        ref, got = reference.infer(batch), candidate.infer(batch)
        probs = max(probs, _max_abs(ref.probs, got.probs))
        presence = max(presence, _max_abs(ref.presence, got.presence))
        peak = max(peak, _max_abs(ref.peak, got.peak))
        for i in range(len(batch)):
            a = postprocess(ref.probs[i], ref.presence[i], thresholds, ref.peak[i])
            b = postprocess(got.probs[i], got.presence[i], thresholds, got.peak[i])
            if a.classes != b.classes:
                same = False
                notes.append(f"frame {start + i}: classes {a.classes} vs {b.classes}")
            for class_id in set(a.classes) & set(b.classes):
                before, after = a.area(class_id), b.area(class_id)
                change = abs(after - before) / max(before, 1)
                area_change = max(area_change, change)
                if after != before:
                    notes.append(f"frame {start + i} class {class_id}: {before} → {after} px")
    if tolerance is None:
        tolerance = TOLERANCE[candidate.info.precision]
    return ParityReport(
        len(frames), probs, presence, peak, tolerance, same, area_change, tuple(notes)
    )


def _max_abs(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> float:
    return float(np.max(np.abs(a.astype(np.float32) - b.astype(np.float32))))
