"""The real daemon with the defect store on: coils from the frames' coil ids end up in SQLite,
with their defects, crops and a published coil event."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import zmq

from defectd.daemon.store.backend import open_store
from defectd.daemon.tools.loopback import (
    Camera,
    DaemonProcess,
    Listener,
    LoopbackPorts,
    line_config,
    metric,
)
from defectd.engines.synth import SyntheticLine

pytestmark = pytest.mark.slow


def test_coils_their_defects_and_crops_reach_the_store(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    database = tmp_path / "state" / "defects.db"
    config = line_config(
        ports,
        ("cam0",),
        push=True,
        engine={"backend": "onnxruntime", "max_batch": 4, "threads": 1},
        sections={
            "batching": {"max_wait_ms": 10.0, "policy": "block"},
            "publish": {"status_interval_s": 0.2},
            "store": {"enabled": True, "url": f"sqlite:///{database}"},
            "coils": {"rules": [{"grade": "B", "count_over": 0}]},
        },
    )
    config["cameras"][0].update(across_mm_per_px=0.5, along_from="frames")
    line = SyntheticLine(13)
    frames = [line.frame(i).image for i in range(16)]
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, topics=("frame.", "coil."), strict=True) as subscriber,
    ):
        daemon.wait_ready()
        assert subscriber.wait_subscribed()
        camera = Camera(ports.camera_endpoint, context=context)
        for seq, image in enumerate(frames):
            camera.send("cam0", seq, image, coil_id="C-A" if seq < 8 else "C-B")
        camera.send("cam0", 16, frames[0], coil_id="C-A")  # a closed coil's id again
        subscriber.until(lambda: len(subscriber.of("frame")) >= 17, 60, "17 frame summaries")
        subscriber.until(lambda: len(subscriber.of("coil")) >= 1, 30, "coil C-A's event")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = daemon.metrics()
            if metric(text, "defectd_coil_anomalies_total", kind="coil_back") >= 1:
                break
            time.sleep(0.2)
        assert metric(text, "defectd_coil_anomalies_total", kind="coil_back") == 1
        assert daemon.stop() == 0
        camera.close()
    (event,) = [p for t, p in subscriber.messages() if t.startswith("coil.")]
    assert event["coil_id"] == "C-A" and event["end_reason"] == "next_coil"
    assert event["frames"] == 8
    published = sum(
        p["defect_count"] > 0 for t, p in subscriber.messages() if t.startswith("frame.")
    )
    assert published > 0  # the test needs defective frames
    store = open_store(f"sqlite:///{database}")
    try:
        coils = {c.coil_id: c for c in store.coils()}
        assert set(coils) == {"C-A", "C-B"}
        assert coils["C-B"].end_reason == "shutdown"  # closed by the stop
        for coil in coils.values():
            assert coil.frames == 8  # the frame of C-A that came back is not in its record
            assert abs(coil.inspected_m - 8 * 256 * 0.5 / 1000) < 1e-6  # square 0.5 mm px
            defects = store.defects(coil.coil_id)
            # Stored under its own coil id, the frame that came back is kept outside the
            # closed coil's record.
            assert len([d for d in defects if d.first_seq != 16]) == coil.defects
            assert coil.grade == ("B" if defects else "A")
        stored = [d for c in coils for d in store.defects(c)]
        assert stored and all(d.crop for d in stored)
        assert all((database.parent / "crops" / d.crop).is_file() for d in stored if d.crop)
    finally:
        store.close()
