"""The config's shape: defaults, the receivers' sockets, and the round trip through to_mapping."""

from __future__ import annotations

import yaml

from defectd.daemon.config import SECTIONS, IngestSocket, ThresholdOverride
from defectd.engines.model_card import default_model_dir
from tests.daemon.config.helpers import camera, config, doc_yaml_blocks, parse


def test_minimal_config_takes_the_defaults() -> None:
    loaded = parse(config())
    assert loaded.line.name == "line1"
    assert loaded.cameras[0].mode == "connect" and loaded.cameras[0].has_topic
    assert loaded.cameras[0].encoding is None
    assert loaded.ingest.receivers == 1 and loaded.ingest.max_frame_bytes == 4 * 2**20
    assert loaded.slots.count == 64
    assert (loaded.batching.max_wait_ms, loaded.batching.policy) == (20.0, "drop_oldest")
    assert loaded.max_batch == loaded.engine.max_batch == 16
    assert loaded.model.dir == default_model_dir() and loaded.model.thresholds == ()
    assert loaded.publish.bind == "tcp://127.0.0.1:5560"
    assert loaded.metrics.bind == "127.0.0.1:9108"
    assert loaded.metrics.multiprocess_dir is None  # no environment: a private folder at start
    assert (loaded.logging.level, loaded.logging.format) == ("info", "text")
    assert (loaded.frame_format.width, loaded.frame_format.height) == (1600, 256)
    assert loaded.source == "test.yaml"


def test_full_example_round_trips() -> None:
    full = doc_yaml_blocks()[-1]
    loaded = parse(yaml.safe_load(full))
    assert [c.id for c in loaded.cameras] == ["top-0", "bottom-0", "edge-0"]
    assert [c.mode for c in loaded.cameras] == ["connect", "connect", "bind"]
    assert loaded.max_batch == 32 and loaded.engine.backend == "tensorrt"
    assert loaded.model.thresholds == (
        ThresholdOverride(target="scratches", pixel=0.6),
        ThresholdOverride(target=1, min_mask_area=200),
    )
    mapping = loaded.to_mapping()
    assert parse(mapping) == loaded
    # ... and through YAML text, as check-config prints it.
    assert parse(yaml.safe_load(yaml.safe_dump(mapping, sort_keys=False))) == loaded
    assert list(mapping) == list(SECTIONS)


def test_shared_bind_endpoint_is_one_socket() -> None:
    cameras = [
        camera(id="a", endpoint="tcp://*:5570", mode="bind"),
        camera(id="b", endpoint="tcp://*:5570", mode="bind"),
        camera(id="c", endpoint="tcp://10.0.0.23:5555"),
        camera(id="d", endpoint="tcp://10.0.0.23:5555"),  # a gateway publishing two cameras
    ]
    loaded = parse(config(cameras=cameras, ingest={"receivers": 2}))
    assert loaded.sockets == (
        IngestSocket("tcp://*:5570", "bind", ("a", "b")),
        IngestSocket("tcp://10.0.0.23:5555", "connect", ("c", "d")),
    )
    assert not loaded.cameras[0].has_topic
