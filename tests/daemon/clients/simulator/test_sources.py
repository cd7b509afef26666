"""Frame sources as a receiver sees them: synthetic frames in every encoding, folder images
sent as read or re-encoded, and the checks on what a source can give."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from defectd.daemon.clients.simulator import SYNTH, Simulator, SimulatorConfig
from defectd.daemon.decode import decode_frame
from defectd.daemon.protocol import read_message
from defectd.engines.synth import SyntheticLine
from tests.daemon.clients.simulator.helpers import SHAPE, push_config, receive


@pytest.mark.parametrize("encoding", ["jpeg", "png", "bgr8"])
def test_push_other_encodings_decode_to_the_synthetic_frame(
    pull: tuple[zmq.Socket[bytes], str], encoding: str
) -> None:
    socket, endpoint = pull
    Simulator(push_config(endpoint, cameras=("cam0",), frames=1, encoding=encoding)).run()
    [parts] = receive(socket, has_topic=False)
    message = read_message(parts, has_topic=False)
    assert message.header.encoding == encoding
    image = decode_frame(message.header, message.payload, SHAPE)
    expected = SyntheticLine(0).frame(0).image
    if encoding == "jpeg":
        assert np.abs(image.astype(int) - expected).mean() < 3
    else:
        np.testing.assert_array_equal(image, expected)


# -- folder sources ----------------------------------------------------------------------------


def write_jpegs(folder: Path, count: int, shape: tuple[int, int] = (64, 96)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        image = rng.integers(0, 255, shape, dtype=np.uint8)
        path = folder / f"img{i}.jpg"
        assert cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def test_folder_jpegs_are_sent_as_read(pull: tuple[zmq.Socket[bytes], str], tmp_path: Path) -> None:
    socket, endpoint = pull
    paths = write_jpegs(tmp_path / "images", 3)
    config = push_config(endpoint, source=str(tmp_path / "images"), cameras=("cam0",), frames=4)
    Simulator(config).run()
    messages = receive(socket, has_topic=False)
    assert len(messages) == 4
    for parts in messages:
        message = read_message(parts, has_topic=False)
        header = message.header
        assert (header.encoding, header.width, header.height) == ("jpeg", 96, 64)
        assert bytes(message.payload) == paths[header.seq % 3].read_bytes()  # cycles the folder


def test_folder_decoded_to_mono8(pull: tuple[zmq.Socket[bytes], str], tmp_path: Path) -> None:
    socket, endpoint = pull
    paths = write_jpegs(tmp_path / "images", 2)
    config = push_config(
        endpoint, source=str(tmp_path / "images"), cameras=("cam0",), frames=2, encoding="mono8"
    )
    Simulator(config).run()
    for parts in receive(socket, has_topic=False):
        message = read_message(parts, has_topic=False)
        image = decode_frame(message.header, message.payload, (64, 96))
        expected = cv2.imread(str(paths[message.header.seq]), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(image, expected)


def test_real_severstal_jpegs(pull: tuple[zmq.Socket[bytes], str], severstal_dir: Path) -> None:
    socket, endpoint = pull
    config = push_config(endpoint, source=str(severstal_dir), cameras=("cam0",), frames=2)
    Simulator(config).run()
    for parts in receive(socket, has_topic=False):
        message = read_message(parts, has_topic=False)
        assert message.header.encoding == "jpeg"
        assert decode_frame(message.header, message.payload, SHAPE).shape == SHAPE


def test_truth_needs_a_source_that_knows_it(tmp_path: Path) -> None:
    write_jpegs(tmp_path / "plain", 1)
    config = SimulatorConfig(source=str(tmp_path / "plain"), truth_out=tmp_path / "t.csv")
    with pytest.raises(ValueError, match="Severstal-layout folder"):
        Simulator(config)
    with pytest.raises(FileNotFoundError, match="neither 'synth' nor a folder"):
        Simulator(replace(config, source=str(tmp_path / "missing")))
    assert SimulatorConfig().source == SYNTH


def test_synthetic_frames_of_any_size_carry_their_size_and_truth() -> None:
    from defectd.daemon.clients.simulator.sources import open_source
    from defectd.engines.rle import decode

    source = open_source(SimulatorConfig(width=4096, height=1024, seed=3))
    assert "4096×1024" in source.describe()
    found = [source.picture(i, with_truth=True) for i in range(6)]
    for picture in found:
        assert (picture.width, picture.height) == (4096, 1024)
        assert np.asarray(picture.payload).size == 4096 * 1024
        assert picture.truth is not None
    masks = [decode(rle, (1024, 4096)) for p in found for rle in p.truth or () if rle]
    assert masks and all(m.shape == (1024, 4096) for m in masks)


def test_a_size_is_for_synthetic_frames_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a folder's images keep their own size"):
        SimulatorConfig(source=str(tmp_path), width=4096, height=1024)
    with pytest.raises(ValueError, match="64…16384 px"):
        SimulatorConfig(width=32)
