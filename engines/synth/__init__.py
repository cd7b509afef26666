"""The synthetic steel line: labelled 1600×256 grey frames that imitate the Severstal data.

Pure numpy + OpenCV (no torch), so the daemon, the benchmarks and training can all use it.
Frames are random-access and deterministic by (seed, index); class combinations, label areas
and component counts follow the real train set (see `stats`). Labels are generous polygons
around the painted defect, like the competition's; harmless marks (oil spots, water stains,
roll marks) are painted but never labelled.

    line = SyntheticLine(seed=7)
    frame = line.frame(0)            # SynthFrame: image (H, W) uint8, masks (4, H, W) 0/1
    write_dataset(Path("data/synth"), count=1000, seed=7)   # train_images/ + train.csv
"""

from defectd.engines.synth.line import SynthConfig, SyntheticLine, SynthFrame, image_id
from defectd.engines.synth.preview import write_contact_sheet
from defectd.engines.synth.writer import DatasetSummary, write_dataset

__all__ = [
    "DatasetSummary",
    "SynthConfig",
    "SynthFrame",
    "SyntheticLine",
    "image_id",
    "write_contact_sheet",
    "write_dataset",
]
