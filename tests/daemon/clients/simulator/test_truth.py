"""The truth CSV: image ids that round-trip, and a Severstal-layout folder's labels passed
through to the truth of the frames sent."""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq

from defectd.daemon.clients.simulator import Simulator, parse_truth_image_id, truth_image_id
from defectd.engines.labels import read_labels
from defectd.engines.synth import write_dataset
from tests.daemon.clients.simulator.helpers import push_config


def test_truth_image_ids_round_trip() -> None:
    assert truth_image_id("top-1", 42) == "top-1-42.jpg"
    assert parse_truth_image_id("top-1-42.jpg") == ("top-1", 42)
    for bad in ("cam0.jpg", "cam0-x.jpg", "-3.jpg", "cam0-3.png"):
        with pytest.raises(ValueError, match="not a simulator image id"):
            parse_truth_image_id(bad)


def test_severstal_layout_folder_gives_truth(
    pull: tuple[zmq.Socket[bytes], str], tmp_path: Path
) -> None:
    _, endpoint = pull
    write_dataset(tmp_path / "ds", count=3, seed=4)
    labels = read_labels(tmp_path / "ds" / "train.csv")
    files = sorted(p.name for p in (tmp_path / "ds" / "train_images").iterdir())
    truth_path = tmp_path / "truth.csv"
    config = push_config(
        endpoint, source=str(tmp_path / "ds"), cameras=("c",), frames=3, truth_out=truth_path
    )
    Simulator(config).run()
    truth = read_labels(truth_path)
    for seq, name in enumerate(files):
        for class_id in range(1, 5):
            assert truth.rle(truth_image_id("c", seq), class_id) == labels.rle(name, class_id)
