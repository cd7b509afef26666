"""Cross-fitted thresholds: each fold's post-processing tuned on the other folds' frames.

With a handful of labelled frames from a real line (`defectd dataset folds`), every fold has
a model that never trained on the fold's frames. Thresholds matter as much as the model there
— on real frames a presence gate that switches a class off can beat flagging it — but
thresholds tuned on the frames they are scored on flatter. `crossfit` tunes fold K's
thresholds (`training.tune.Tuner`: presence gate, pixel threshold, minimum areas) on the
out-of-fold outputs of the *other* folds' models, and applies them to fold K's outputs only,
so no frame scores a model or a threshold it helped choose. Tuned over every fold together,
the same search gives the thresholds to put on a model trained on all frames
(`CrossFit.overall`).

Raw outputs are kept in memory (C×H×W float32 per frame): this is for tens of frames, not
thousands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from defectd.engines.errors import InvalidInput
from defectd.engines.postprocess import (
    FrameDefects,
    PostprocessConfig,
    exclusive_probs,
    postprocess,
)
from defectd.training.tune import ClassResult, Grid, Tuner, to_config


@dataclass(frozen=True)
class FoldOutput:
    """A frame's raw engine output from the model of the fold that scores it."""

    fold: int
    image_id: str
    probs: npt.NDArray[np.float32]  # C×H×W
    presence: npt.NDArray[np.float32]  # C
    truth: npt.NDArray[np.uint8]  # C×H×W 0/1


@dataclass(frozen=True)
class CrossFit:
    """Per fold: the thresholds tuned on the other folds; per frame, the defects they keep."""

    thresholds: dict[int, list[ClassResult]]  # fold → tuned on every other fold
    defects: dict[str, FrameDefects]  # image id → kept with its own fold's thresholds
    overall: list[ClassResult]  # tuned on every fold's out-of-fold frames together

    def to_dict(self) -> dict[str, Any]:
        return {
            "folds": {
                str(k): [r.to_dict() for r in results] for k, results in self.thresholds.items()
            },
            "overall": [r.to_dict() for r in self.overall],
        }


def crossfit(
    outputs: Sequence[FoldOutput],
    num_classes: int,
    head: str = "sigmoid",
    grid: Grid | None = None,
    min_recall: float | None = None,
) -> CrossFit:
    """Tune each fold's thresholds on the other folds' frames and post-process its own.

    `outputs` hold the raw probabilities; for a softmax head the search sees each pixel for
    its argmax class only, as `postprocess` does (so what was tuned is what runs)."""
    grid = grid or Grid()
    folds = sorted({o.fold for o in outputs})
    if len(folds) < 2:
        raise InvalidInput(f"cross-fitting needs frames from at least two folds, got {len(folds)}")
    thresholds: dict[int, list[ClassResult]] = {}
    defects: dict[str, FrameDefects] = {}
    for fold in folds:
        tuner = Tuner(num_classes, grid)
        for other in outputs:
            if other.fold != fold:
                tuner.add(_searched(other.probs, head), other.presence, other.truth)
        chosen = tuner.solve(min_recall)
        thresholds[fold] = chosen
        config = PostprocessConfig(to_config(chosen).classes, head=head)
        for own in outputs:
            if own.fold == fold:
                defects[own.image_id] = postprocess(own.probs, own.presence, config)
    everything = Tuner(num_classes, grid)
    for output in outputs:
        everything.add(_searched(output.probs, head), output.presence, output.truth)
    return CrossFit(thresholds, defects, everything.solve(min_recall))


def _searched(probs: npt.NDArray[np.float32], head: str) -> npt.NDArray[np.float32]:
    return exclusive_probs(probs) if head == "softmax" else probs
