"""Changing a running daemon: `defectd reload` and SIGHUP, model swaps with their rollback,
shadow runs; the real daemon on loopback, every frame accounted for."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from defectd.daemon.tools.loopback import (
    Camera,
    DaemonProcess,
    Listener,
    LoopbackPorts,
    PacedCamera,
    metric,
    write_config,
)
from defectd.daemon.tools.model_variants import degraded_copy, renamed_copy
from defectd.engines.model_card import default_model_dir, read_card
from defectd.engines.synth import SyntheticLine
from tests.daemon.pipeline_helpers import small_line

pytestmark = pytest.mark.slow
ONNX = {"backend": "onnxruntime", "precision": "fp32", "max_batch": 2, "threads": 1}
needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("onnx") is None,
    reason="the deliberately worse model is made with onnx (defectd[int8] or [train])",
)


def reload(config_path: Path, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    """`defectd reload --config`, as an operator (or the unit's ExecReload) runs it."""
    command = [sys.executable, "-m", "defectd.daemon.cli", "reload", "--config", str(config_path)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout_s, env=dict(os.environ)
    )


def line_with(ports: LoopbackPorts, tmp_path: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    control = {"socket": str(tmp_path / "control.sock")}
    return small_line(ports, control=control, **sections)


def test_reload_adds_and_removes_cameras_and_refuses_a_bad_file(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    config = line_with(ports, tmp_path)
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready()
        assert subscriber.wait_subscribed()
        camera = Camera(ports.camera_endpoint, context=context)
        for seq in range(5):
            camera.send("cam0", seq)
            camera.send("cam1", seq)
        camera.send("cam2", 0)  # not configured yet: rejected
        subscriber.until(lambda: len(subscriber.of("frame")) >= 10, 15, "10 frame summaries")

        # cam2 joins on the same socket, cam1 leaves; a restart-only key waits.
        cameras = [c for c in config["cameras"] if c["id"] != "cam1"]
        cameras.append({**config["cameras"][0], "id": "cam2"})
        changed = {
            **config,
            "cameras": cameras,
            "ingest": {**config.get("ingest", {}), "rcvhwm": 500},
        }
        write_config(daemon.config_path, changed)
        done = reload(daemon.config_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "cameras.cam2: added applied live" in done.stdout
        assert "cameras.cam1: removed applied live" in done.stdout
        assert "ingest.rcvhwm: needs a restart" in done.stdout
        assert "config generation 1" in done.stdout
        for seq in range(1, 6):
            camera.send("cam2", seq)
        camera.send("cam1", 5)  # removed: rejected now
        subscriber.until(
            lambda: len([s for c, s in subscriber.summaries() if c == "cam2"]) >= 5,
            15,
            "cam2's frames after the reload",
        )

        # An invalid file: refused as a whole, the running config kept.
        batching = {**changed["batching"], "max_wait_ms": "5"}
        write_config(daemon.config_path, {**changed, "batching": batching})
        refused = reload(daemon.config_path)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"{daemon.config_path}: batching" in refused.stderr
        camera.send("cam2", 6)  # still running on generation 1: cam2 in, same socket
        subscriber.until(
            lambda: ("cam2", 6) in subscriber.summaries(), 10, "cam2 after the refusal"
        )

        # SIGHUP does the same as defectd reload, its outcome in the log and the metrics.
        write_config(daemon.config_path, {**changed, "postprocess": {"max_regions": 3}})
        daemon.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while metric(daemon.metrics(), "defectd_config_generation") < 2:
            assert time.monotonic() < deadline, daemon.log_tail()
            time.sleep(0.2)
        exposition = daemon.metrics()
        assert metric(exposition, "defectd_reloads_total", outcome="applied") == 2
        assert metric(exposition, "defectd_reloads_total", outcome="refused") == 1
        # cam1's "silent" alert is off; cam2 has its series since the reload.
        assert metric(exposition, "defectd_camera_configured", camera="cam1") == 0
        assert metric(exposition, "defectd_camera_configured", camera="cam2") == 1
        assert metric(exposition, "defectd_frames_processed_total", camera="cam2") == 6
        assert daemon.stop() == 0
    seen = subscriber.summaries()
    assert sorted(s for c, s in seen if c == "cam2") == list(range(1, 7))
    assert sorted(s for c, s in seen if c == "cam1") == list(range(5))
    log = daemon.log_text()
    assert "reload refused, the running config is kept" in log
    assert "batching.max_wait_ms" in log
    # 10 + 6 frames processed; cam2's first frame and cam1's last were rejected (unknown).
    assert "stopped: received 18, processed 16, dropped {'unknown_camera': 2}" in log


def test_two_swaps_a_failed_one_and_a_threshold_reload_under_load(tmp_path: Path) -> None:
    live = default_model_dir()
    card = read_card(live)
    other = renamed_copy(live, tmp_path / "model-b", f"{card.version}-b")
    ports = LoopbackPorts()
    config = line_with(ports, tmp_path, engine=ONNX, model={"dir": str(live)}, slots={"count": 8})
    quiet = {name: {"min_mask_area": 10**7} for name in card.classes}  # no mask is so large
    with (
        DaemonProcess(config, _made(tmp_path / "run"), ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready(60)
        assert subscriber.wait_subscribed()
        images = [SyntheticLine(11).frame(index).image for index in range(16)]
        with PacedCamera(ports.camera_endpoint, "cam0", images, fps=3.0) as sender:
            time.sleep(2)
            steps = []
            for model_dir, thresholds in ((other, {}), (other, quiet), (live, {})):
                model = {"dir": str(model_dir), "thresholds": thresholds}
                write_config(daemon.config_path, {**config, "model": model})
                done = reload(daemon.config_path)
                assert done.returncode == 0, done.stdout + done.stderr + daemon.log_tail()
                steps.append((sender.sent, done.stdout))
                time.sleep(2)
            sent = sender.stop()
        subscriber.until(lambda: len(subscriber.of("frame")) >= sent, 60, f"{sent} frame summaries")
        assert daemon.stop() == 0
    assert f"model swap: {card.name} {card.version}-b serves" in steps[0][1]
    assert "model.thresholds: applied live" in steps[1][1]
    assert f"model swap: {card.name} {card.version} serves" in steps[2][1]
    frames = subscriber.of("frame")
    assert sorted(f["seq"] for f in frames) == list(range(sent))  # none lost, none twice
    models = [f["model"] for f in sorted(frames, key=lambda f: f["seq"])]
    labels = [models[0]]
    for label in models[1:]:
        if label != labels[-1]:
            labels.append(label)
    old, new = f"{card.name} {card.version}", f"{card.name} {card.version}-b"
    assert labels == [old, new, old]  # switched at one frame each way, never back and forth
    quiet_from, quiet_to = steps[1][0], steps[2][0]
    for summary in frames:  # after the threshold reload was confirmed: nothing passes
        if quiet_from < summary["seq"] < quiet_to and summary["model"] == new:
            assert summary["classes"] == [], summary
    assert any(f["classes"] for f in frames if f["seq"] < steps[0][0])
    assert f"stopped: received {sent}, processed {sent}, dropped none" in daemon.log_text()


@needs_onnx
def test_a_swap_to_a_model_failing_its_golden_check_keeps_the_old_one(tmp_path: Path) -> None:
    live = default_model_dir()
    card = read_card(live)
    worse = degraded_copy(live, tmp_path / "worse", noise=0.5)
    ports = LoopbackPorts()
    config = line_with(ports, tmp_path, engine=ONNX, model={"dir": str(live)})
    with DaemonProcess(config, _made(tmp_path / "run"), ports) as daemon:
        daemon.wait_ready(60)
        write_config(daemon.config_path, {**config, "model": {"dir": str(worse)}})
        done = reload(daemon.config_path)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"model swap failed, {card.name} {card.version} keeps serving" in done.stderr
        assert "golden mismatch" in done.stderr
        exposition = daemon.metrics()
        assert metric(exposition, "defectd_model_swap_failed") == 1
        assert metric(exposition, "defectd_model_swaps_total", outcome="failed", reason="golden")
        assert daemon.http("/readyz")[0] == 200  # the old engine serves on
        # The file is put back: the model it names is the one serving, so nothing swaps.
        write_config(daemon.config_path, config)
        back = reload(daemon.config_path)
        assert back.returncode == 0, back.stdout + back.stderr
        assert "no change" in back.stdout and "model swap" not in back.stdout, back.stdout
        assert daemon.stop() == 0


@needs_onnx
def test_shadow_run_tells_a_worse_model_from_an_equal_one(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    live = default_model_dir()
    card = read_card(live)
    equal = renamed_copy(live, tmp_path / "equal", f"{card.version}-b")
    worse = degraded_copy(live, tmp_path / "worse", noise=0.5)
    shadow_dir = tmp_path / "shadow"
    ports = LoopbackPorts()
    shadow = {"model_dir": str(equal), "share": 1.0, "dir": str(shadow_dir), "queue": 64}
    config = line_with(ports, tmp_path, engine=ONNX, model={"dir": str(live)}, shadow=shadow)
    frames = [SyntheticLine(7).frame(index).image for index in range(10)]
    with (
        DaemonProcess(config, _made(tmp_path / "run"), ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready(60)
        assert subscriber.wait_subscribed()
        camera = Camera(ports.camera_endpoint, context=context)

        def compared(count: int) -> None:
            deadline = time.monotonic() + 90
            while metric(daemon.metrics(), "defectd_shadow_frames_total") < count:
                assert time.monotonic() < deadline, daemon.log_tail()
                time.sleep(0.5)

        _wait_for_log(daemon, "shadow run 1:")
        for seq, image in enumerate(frames):
            camera.send("cam0", seq, image)
        compared(len(frames))
        write_config(daemon.config_path, {**config, "shadow": {**shadow, "model_dir": str(worse)}})
        done = reload(daemon.config_path)
        assert done.returncode == 0 and "shadow.model_dir" in done.stdout, done.stdout
        _wait_for_log(daemon, "shadow run 2:")
        for seq, image in enumerate(frames, start=len(frames)):
            camera.send("cam0", seq, image)
        compared(2 * len(frames))
        subscriber.until(lambda: len(subscriber.of("frame")) >= 20, 30, "20 frame summaries")
        assert daemon.stop() == 0
    # The shadow's defects were never published: every defect event is the live model's.
    assert all(e["model"] == f"{card.name} {card.version}" for e in subscriber.of("defect"))
    reports = [_shadow_report(shadow_dir, run) for run in (1, 2)]
    same, different = (
        {c["class_name"]: c for c in report["classes"] if c["dice"] is not None}
        for report in reports
    )
    assert same and all(c["dice"] == 1.0 for c in same.values()), same
    assert reports[0]["disagreements"] == 0 and all(c["agrees"] for c in reports[0]["classes"])
    assert not all(c["agrees"] for c in reports[1]["classes"]), reports[1]
    assert min(c["dice"] for c in different.values()) < 0.9, different


def _wait_for_log(daemon: DaemonProcess, text: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in daemon.log_text():
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{daemon.log_tail()}"
        time.sleep(0.2)


def _shadow_report(directory: Path, run: int) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "defectd.daemon.cli", "shadow", "report",
        "--dir", str(directory), "--run", str(run), "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _made(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory
