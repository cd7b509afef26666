"""The real daemon writing to a real PostgreSQL server that is stopped in the middle of the
run and started again: every defect of every coil ends up in the database exactly once."""

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
from tests.daemon.store.conftest import PostgresServer

pytestmark = pytest.mark.slow


def test_a_database_outage_loses_nothing(
    tmp_path: Path,
    postgres_server: PostgresServer,
    postgres_url: str,
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    ports = LoopbackPorts()
    config = line_config(
        ports,
        ("cam0",),
        push=True,
        engine={"backend": "onnxruntime", "max_batch": 4, "threads": 1},
        sections={
            "batching": {"max_wait_ms": 10.0, "policy": "block"},
            "publish": {"status_interval_s": 0.2},
            "store": {"enabled": True, "url": postgres_url, "crops": False},
        },
    )
    config["cameras"][0].update(across_mm_per_px=0.5, along_from="frames")
    line = SyntheticLine(21)
    frames = [line.frame(i).image for i in range(30)]
    coil = ["C-1"] * 10 + ["C-2"] * 10 + ["C-3"] * 10
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, topics=("frame.",), strict=True) as subscriber,
    ):
        daemon.wait_ready()
        assert subscriber.wait_subscribed()
        camera = Camera(ports.camera_endpoint, context=context)

        def send(first: int, last: int) -> None:
            for seq in range(first, last):
                camera.send("cam0", seq, frames[seq], coil_id=coil[seq])
            subscriber.until(lambda: len(subscriber.of("frame")) >= last, 60, f"{last} frames")

        send(0, 8)
        postgres_server.stop()  # C-1 closes while the database is away: spooled
        send(8, 22)
        time.sleep(1.0)
        spooled = metric(daemon.metrics(), "defectd_store_spooled_rows_total")
        postgres_server.start()
        send(22, 30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            replayed = metric(daemon.metrics(), "defectd_store_replayed_rows_total")
            if replayed >= spooled > 0:
                break
            time.sleep(0.5)
        assert daemon.stop() == 0
        camera.close()
    assert spooled > 0 and replayed >= spooled
    store = open_store(postgres_url)
    try:
        coils = {c.coil_id: c for c in store.coils()}
        assert set(coils) == {"C-1", "C-2", "C-3"}  # C-3 closed by the stop
        for record in coils.values():
            assert record.frames == 10
            defects = store.defects(record.coil_id)
            assert len(defects) == record.defects  # none lost, none twice
            assert len({d.defect_id for d in defects}) == len(defects)
        assert sum(c.defects for c in coils.values()) > 0  # the test needs defects
    finally:
        store.close()
