"""Labelled data sets in the layouts real lines bring, detected from the folder.

`open_dataset(path)` opens a folder in any known format (`detect_format` names it) as a
`Dataset`: images by id, masks C×H×W per image (`Dataset.sample`), sizes and the
`DatasetSpec` from dataset.yaml or the format's defaults. `check(dataset)` reads every file
once and returns a `DatasetReport` with all problems. A file that cannot be used raises
`DatasetError` naming it. docs/datasets.md describes the formats.
"""

from defectd.engines.datasets.base import Dataset, Truth, to_label_map
from defectd.engines.datasets.check import ClassCount, DatasetReport, Progress, check
from defectd.engines.datasets.detect import detect_format, layout_format, open_dataset
from defectd.engines.datasets.spec import (
    FORMATS,
    ClassSpec,
    DatasetSpec,
    default_spec,
)
from defectd.engines.datasets.specfile import SPEC_NAME, SpecError, parse_spec
from defectd.engines.severstal import DatasetError, Sample

__all__ = [
    "FORMATS",
    "SPEC_NAME",
    "ClassCount",
    "ClassSpec",
    "Dataset",
    "DatasetError",
    "DatasetReport",
    "DatasetSpec",
    "Progress",
    "Sample",
    "SpecError",
    "Truth",
    "check",
    "default_spec",
    "detect_format",
    "layout_format",
    "open_dataset",
    "parse_spec",
    "to_label_map",
]
