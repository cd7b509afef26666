"""Run a model over image files: batches through an engine, then the shared post-processing.

Used by `defectd evaluate`, `predict`, `inspect` and `tune`; the daemon feeds frames from
ZeroMQ instead of files but calls the same `Engine` and `postprocess`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from defectd.engines.engine import Engine, EngineOutput
from defectd.engines.errors import InvalidSetting
from defectd.engines.labels import LabelTable
from defectd.engines.postprocess import FrameDefects, PostprocessConfig, postprocess
from defectd.engines.severstal import read_grey


@dataclass(frozen=True)
class FrameResult:
    """One frame's defects."""

    image_id: str
    defects: FrameDefects


def batches(
    folder: Path, image_ids: Sequence[str], shape: tuple[int, int], batch_size: int
) -> Iterator[tuple[list[str], npt.NDArray[np.uint8]]]:
    """(ids, N×H×W uint8 frames) in order; DatasetError naming a bad file."""
    if batch_size < 1:
        raise InvalidSetting(f"batch size must be at least 1, got {batch_size}")
    for start in range(0, len(image_ids), batch_size):
        ids = list(image_ids[start : start + batch_size])
        yield ids, np.stack([read_grey(folder / i, shape) for i in ids])


class Predictor:
    """An engine plus post-processing thresholds: frames in, defects out."""

    def __init__(self, engine: Engine, thresholds: PostprocessConfig) -> None:
        self.engine = engine
        self.thresholds = thresholds

    def defects(self, output: EngineOutput, index: int) -> FrameDefects:
        """Post-processed defects of frame `index` of a batch output."""
        return postprocess(
            output.probs[index], output.presence[index], self.thresholds, output.peak[index]
        )

    def run_folder(
        self,
        folder: Path,
        image_ids: Sequence[str],
        batch_size: int = 4,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[FrameResult]:
        """Results for `image_ids` in `folder`, in order; `progress(n)` after each batch."""
        shape = self.engine.input.shape
        for ids, frames in batches(folder, image_ids, shape, batch_size):
            output = self.engine.infer(frames)
            for index, image_id in enumerate(ids):
                yield FrameResult(image_id, self.defects(output, index))
            if progress is not None:
                progress(len(ids))


def to_labels(
    results: Sequence[FrameResult] | Iterator[FrameResult], num_classes: int
) -> LabelTable:
    """A LabelTable with every image listed (empty classes as "")."""
    table = LabelTable(num_classes=num_classes)
    for result in results:
        for class_id in range(1, num_classes + 1):
            table.set(result.image_id, class_id, result.defects.rle(class_id))
    return table
