"""The real daemon fed frames larger than its model: tiled, stitched, published in frame pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zmq

from defectd.daemon.config import check_model, load_config
from defectd.daemon.tools.loopback import (
    Camera,
    DaemonProcess,
    Listener,
    LoopbackPorts,
    line_config,
    write_config,
)
from defectd.engines.model_card import default_model_dir, read_card
from defectd.engines.postprocess import postprocess
from defectd.engines.selection import EngineConfig, open_engine
from defectd.engines.synth import SyntheticLine
from defectd.engines.tiled_engine import TiledFrames, plan_frames

pytestmark = pytest.mark.slow
HEIGHT, WIDTH = 512, 3200  # 2 × 2 frames of the bundled model's 1600×256


def _mosaics(count: int) -> list[np.ndarray]:
    line = SyntheticLine(13)
    frames = [line.frame(i).image for i in range(4 * count)]
    return [
        np.block([[frames[4 * k], frames[4 * k + 1]], [frames[4 * k + 2], frames[4 * k + 3]]])
        for k in range(count)
    ]


def test_wide_frames_are_tiled_and_their_defects_published_in_frame_pixels(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    config = line_config(
        ports,
        ("cam0",),
        push=True,
        engine={"backend": "onnxruntime", "max_batch": 4, "threads": 1},
        width=WIDTH,
        height=HEIGHT,
        sections={
            "slots": {"count": 8},
            "batching": {"max_wait_ms": 10.0, "policy": "block"},
            "ingest": {"max_frame_bytes": WIDTH * HEIGHT + 1024},
            "publish": {"status_interval_s": 0.2},
        },
    )
    path = write_config(tmp_path / "defectd.yaml", config)
    thresholds = check_model(load_config(path)).thresholds
    mosaics = _mosaics(3)
    card = read_card(default_model_dir())
    plan = plan_frames((HEIGHT, WIDTH), card.input.shape, 4)
    fill = round(card.normalisation["mean"] * 255)
    engine_config = EngineConfig(backend="onnxruntime", max_batch=4, threads=1, warmup=False)
    with open_engine(card, engine_config) as engine:
        tiled = TiledFrames(engine, plan, fill)
        expected = []
        for image in mosaics:
            out = tiled.infer(image[None])
            found = postprocess(out.probs[0], out.presence[0], thresholds, out.peak[0])
            expected.append(tuple(card.classes[c - 1] for c in found.classes))
    assert sum(bool(classes) for classes in expected) >= 2  # the test needs defective frames
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready()
        assert subscriber.wait_subscribed()
        camera = Camera(ports.camera_endpoint, context=context, width=WIDTH, height=HEIGHT)
        for index, image in enumerate(mosaics):
            camera.send("cam0", 10 + index, image)
        subscriber.until(lambda: len(subscriber.of("frame")) >= 3, 60, "3 frame summaries")
        assert daemon.stop() == 0
        camera.close()
    summaries = {p["seq"]: p for t, p in subscriber.messages() if t.startswith("frame.")}
    assert sorted(summaries) == [10, 11, 12]
    for seq, summary in summaries.items():
        assert tuple(summary["classes"]) == expected[seq - 10]
    regions = [
        region
        for topic, payload in subscriber.messages()
        if topic.startswith("defect.")
        for region in payload["regions"]
    ]
    assert regions
    for region in regions:  # in the wide frame's pixels, not a tile's
        x, y, w, h = region["bbox"]
        assert x >= 0 and y >= 0 and x + w <= WIDTH and y + h <= HEIGHT
    assert any(r["bbox"][0] >= 1600 or r["bbox"][1] >= 256 for r in regions)


def test_cameras_of_two_frame_sizes_run_side_by_side_through_one_engine(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    config = line_config(
        ports,
        ("wide", "small"),
        push=True,
        engine={"backend": "onnxruntime", "max_batch": 4, "threads": 1},
        width=WIDTH,
        height=HEIGHT,
        sections={
            "slots": {"count": 8},
            "batching": {"max_wait_ms": 10.0, "policy": "block"},
            "ingest": {"max_frame_bytes": WIDTH * HEIGHT + 1024},
            "publish": {"status_interval_s": 0.2},
        },
    )
    small = config["cameras"][1]
    small["width"], small["height"] = 1600, 256  # the model's own size: not tiled
    path = write_config(tmp_path / "defectd.yaml", config)
    loaded = load_config(path)
    assert [(g.height, g.width, g.cameras) for g in loaded.slot_groups] == [
        (HEIGHT, WIDTH, ("wide",)),
        (256, 1600, ("small",)),
    ]
    thresholds = check_model(loaded).thresholds
    line = SyntheticLine(13)
    parts = [line.frame(i).image for i in range(8)]
    p = parts
    mosaics = [np.block([[p[0], p[1]], [p[2], p[3]]]), np.block([[p[4], p[5]], [p[6], p[7]]])]
    card = read_card(default_model_dir())
    fill = round(card.normalisation["mean"] * 255)
    engine_config = EngineConfig(backend="onnxruntime", max_batch=4, threads=1, warmup=False)

    def classes(engine_run: TiledFrames, image: np.ndarray) -> tuple[str, ...]:
        out = engine_run.infer(image[None])
        found = postprocess(out.probs[0], out.presence[0], thresholds, out.peak[0])
        return tuple(card.classes[c - 1] for c in found.classes)

    with open_engine(card, engine_config) as engine:
        tiled = TiledFrames(engine, plan_frames((HEIGHT, WIDTH), card.input.shape, 4), fill)
        bare = TiledFrames(engine, plan_frames((256, 1600), card.input.shape, 4), fill)
        expected = {("wide", i): classes(tiled, image) for i, image in enumerate(mosaics)}
        expected |= {("small", i): classes(bare, image) for i, image in enumerate(parts)}
    assert any(expected.values())  # the test needs defective frames
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready()
        assert subscriber.wait_subscribed()
        wide = Camera(ports.camera_endpoint, context=context, width=WIDTH, height=HEIGHT)
        narrow = Camera(ports.camera_endpoint, context=context, width=1600, height=256)
        for index, image in enumerate(parts):  # interleaved: both groups batch at once
            narrow.send("small", index, image)
            if index < len(mosaics):
                wide.send("wide", index, mosaics[index])
        subscriber.until(lambda: len(subscriber.of("frame")) >= 10, 60, "10 frame summaries")
        assert daemon.stop() == 0
        wide.close()
        narrow.close()
    summaries = {
        (p["camera_id"], p["seq"]): p for t, p in subscriber.messages() if t.startswith("frame.")
    }
    assert sorted(summaries) == sorted(expected)
    for key, summary in summaries.items():
        assert tuple(summary["classes"]) == expected[key], key
    for topic, payload in subscriber.messages():
        if topic.startswith("defect."):
            size = (HEIGHT, WIDTH) if payload["camera_id"] == "wide" else (256, 1600)
            assert tuple(payload["frame_shape"]) == size
