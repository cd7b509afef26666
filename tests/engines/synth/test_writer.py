"""write_dataset: Kaggle layout on disk that reads back to exactly the generated frames."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from defectd.engines.rle import decode
from defectd.engines.synth import SynthConfig, SyntheticLine, write_dataset

COUNT = 12
SEED = 8
CONFIG = SynthConfig(defect_free_share=0.3)  # enough labelled frames in a tiny set


def test_written_dataset_reads_back_exactly(tmp_path: Path) -> None:
    calls: list[int] = []
    summary = write_dataset(tmp_path / "ds", COUNT, SEED, CONFIG, progress=calls.append)
    assert calls == list(range(1, COUNT + 1))
    frames = {f.image_id: f for f in SyntheticLine(SEED, CONFIG).frames(COUNT)}

    with (tmp_path / "ds" / "train.csv").open(newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["ImageId", "ClassId", "EncodedPixels"]
        rows = list(reader)
    keys = [(r[0], int(r[1])) for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert summary.rows == len(rows) > 0
    for image, class_id, rle in rows:
        assert rle, "rows exist only for classes present"
        assert np.array_equal(decode(rle), frames[image].masks[int(class_id) - 1])
    assert {k for k in keys} == {(i, c) for i, f in frames.items() for c in f.classes}

    files = sorted(p.name for p in (tmp_path / "ds" / "train_images").iterdir())
    assert files == sorted(frames)
    for name in files[:3]:
        read = cv2.imread(str(tmp_path / "ds" / "train_images" / name), cv2.IMREAD_UNCHANGED)
        assert read is not None and read.shape == (256, 1600) and read.dtype == np.uint8
        error = np.abs(read.astype(int) - frames[name].image.astype(int)).mean()
        assert error < 4  # JPEG q95

    assert summary.frames == COUNT
    assert summary.defect_free == sum(not f.classes for f in frames.values())
    assert summary.class_frames == tuple(
        sum(c in f.classes for f in frames.values()) for c in range(1, 5)
    )
    assert "defect-free" in summary.describe()


def test_refuses_a_non_empty_directory_unless_overwriting(tmp_path: Path) -> None:
    write_dataset(tmp_path, 4, SEED, CONFIG)
    with pytest.raises(ValueError, match="empty directory or --force"):
        write_dataset(tmp_path, 2, SEED + 1, CONFIG)
    summary = write_dataset(tmp_path, 2, SEED + 1, CONFIG, overwrite=True)
    # Stale images must go: an image without rows would read as defect-free.
    assert len(list((tmp_path / "train_images").iterdir())) == summary.frames == 2


def test_bad_arguments_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        write_dataset(tmp_path, 0, SEED)
    with pytest.raises(ValueError, match=r"1\.\.100"):
        write_dataset(tmp_path, 1, SEED, jpeg_quality=0)
