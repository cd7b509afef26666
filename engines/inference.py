"""Run a model over image files: batches through an engine, then the shared post-processing.

Used by `defectd evaluate`, `predict`, `inspect` and `tune`; the daemon feeds frames from
ZeroMQ instead of files but calls the same `Engine` and `postprocess`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from defectd.engines.engine import Engine, EngineOutput
from defectd.engines.errors import InvalidSetting
from defectd.engines.labels import LabelTable
from defectd.engines.postprocess import FrameDefects, PostprocessConfig, postprocess
from defectd.engines.severstal import read_any, read_grey
from defectd.engines.tiled_engine import DEFAULT_OVERLAP
from defectd.engines.tiler import TileGrid, cut, frame_maximum, plan_tiles, stitch

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class FrameResult:
    """One frame's defects, and its C×H×W probabilities when asked for (`keep_probs`)."""

    image_id: str
    defects: FrameDefects
    probs: npt.NDArray[np.float32] | None = None


def batches(
    folder: Path, image_ids: Sequence[str], shape: tuple[int, int], batch_size: int
) -> Iterator[tuple[list[str], npt.NDArray[np.uint8]]]:
    """(ids, N×H×W uint8 frames) in order; DatasetError naming a bad file."""
    if batch_size < 1:
        raise InvalidSetting(f"batch size must be at least 1, got {batch_size}")
    for start in range(0, len(image_ids), batch_size):
        ids = list(image_ids[start : start + batch_size])
        yield ids, np.stack([read_grey(folder / i, shape) for i in ids])


@dataclass
class _Pending:
    image_id: str
    grid: TileGrid
    tiles: Image


class Predictor:
    """An engine plus post-processing thresholds: frames of any size in, defects out.

    A frame of another size than the engine's input is cut into tiles (`engines.tiler`,
    padded with `fill`, the model's grey mean, neighbours sharing `overlap` px) and its
    probabilities stitched back, so defects come out in the frame's own pixels.
    """

    def __init__(
        self,
        engine: Engine,
        thresholds: PostprocessConfig,
        fill: int = 0,
        overlap: int = DEFAULT_OVERLAP,
    ) -> None:
        self.engine = engine
        self.thresholds = thresholds
        self.fill = fill
        self.overlap = overlap

    def defects(self, output: EngineOutput, index: int) -> FrameDefects:
        """Post-processed defects of frame `index` of a batch output."""
        return postprocess(
            output.probs[index], output.presence[index], self.thresholds, output.peak[index]
        )

    def run_images(
        self,
        images: Iterable[tuple[str, Image]],
        batch_size: int = 4,
        progress: Callable[[int], None] | None = None,
        keep_probs: bool = False,
    ) -> Iterator[FrameResult]:
        """Results for (id, grey H×W image) pairs of any size, in order; tiles of several
        frames share engine batches of up to `batch_size`; `progress(n)` after n frames."""
        if batch_size < 1:
            raise InvalidSetting(f"batch size must be at least 1, got {batch_size}")
        pending: list[_Pending] = []
        queued = 0
        for image_id, image in images:
            grid = plan_tiles(
                (image.shape[0], image.shape[1]), self.engine.input.shape, self.overlap
            )
            pending.append(_Pending(image_id, grid, cut(image, grid, self.fill)))
            queued += len(grid)
            if queued >= batch_size:
                yield from self._flush(pending, batch_size, keep_probs, progress)
                pending, queued = [], 0
        if pending:
            yield from self._flush(pending, batch_size, keep_probs, progress)

    def _flush(
        self,
        pending: list[_Pending],
        batch_size: int,
        keep_probs: bool,
        progress: Callable[[int], None] | None,
    ) -> Iterator[FrameResult]:
        tiles = np.concatenate([p.tiles for p in pending])
        outputs = [
            self.engine.infer(tiles[i : i + batch_size]) for i in range(0, len(tiles), batch_size)
        ]
        probs = np.concatenate([o.probs for o in outputs])
        counts = [len(p.grid) for p in pending]
        presence = frame_maximum(np.concatenate([o.presence for o in outputs]), counts)
        peak = frame_maximum(np.concatenate([o.peak for o in outputs]), counts)
        start = 0
        for index, item in enumerate(pending):
            frame_probs = stitch(probs[start : start + counts[index]], item.grid)
            start += counts[index]
            defects = postprocess(frame_probs, presence[index], self.thresholds, peak[index])
            yield FrameResult(item.image_id, defects, frame_probs if keep_probs else None)
        if progress is not None:
            progress(len(pending))

    def run_folder(
        self,
        folder: Path,
        image_ids: Sequence[str],
        batch_size: int = 4,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[FrameResult]:
        """Results for `image_ids` in `folder` (any size), in order; `progress(n)` as it goes."""
        images = ((i, read_any(folder / i)) for i in image_ids)
        return self.run_images(images, batch_size, progress)


def to_labels(
    results: Sequence[FrameResult] | Iterator[FrameResult], num_classes: int
) -> LabelTable:
    """A LabelTable with every image listed (empty classes as "")."""
    table = LabelTable(num_classes=num_classes)
    for result in results:
        for class_id in range(1, num_classes + 1):
            table.set(result.image_id, class_id, result.defects.rle(class_id))
    return table
