"""Metrics: real multiprocess mode across real spawned processes, naming conventions, promtool.

The daemon spawns its children with ``PROMETHEUS_MULTIPROC_DIR`` already set, and so do these
tests: each child imports prometheus_client afresh, writes its own file, and `render` sums
them. The test process itself never switches to multiprocess mode (that is process-global);
the one test that exercises the switch does it in a child.
"""

from __future__ import annotations

import multiprocessing
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from defectd.daemon.accounting import DROP_REASONS
from defectd.daemon.metrics import (
    DROP_LABELS,
    ENGINE_INFO_LABELS,
    PREFIX,
    UNKNOWN_CAMERA,
    create_metrics,
    mark_process_dead,
    metric_files,
    render,
)
from defectd.daemon.metrics_mode import (
    MULTIPROC_ENV,
    multiprocess_enabled,
    prepare_multiprocess_dir,
)
from defectd.daemon.protocol import REJECT_REASONS
from defectd.daemon.sequence import SeqOutcome
from defectd.engines.engine import EngineInfo

CTX = multiprocessing.get_context("spawn")
JOIN_S = 60  # the test machine may be busy
CAMERAS = ("top", "bottom")
NON_BASE_UNITS = {"ms", "milliseconds", "us", "microseconds", "minutes", "hours", "kb", "mb"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(text: bytes) -> Samples:
    """Every sample of an exposition, keyed by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


# -- child process entry points (spawn imports this module) -------------------------------


def _stage_child(camera: str, frames: int, queue_depth: int, stamp: float) -> None:
    """A stand-in for a receiver + inference stage writing its share of the metrics."""
    if not multiprocess_enabled():
        raise SystemExit(f"{MULTIPROC_ENV} was not set in the child")
    metrics = create_metrics(CAMERAS, wall_clock=lambda: stamp)
    for _ in range(frames):
        metrics.frame_received(camera)
        metrics.frame_processed(camera)
    metrics.frame_dropped(camera, "queue_full")
    metrics.frame_dropped("not-configured", "unknown_camera")
    metrics.sequence(camera, SeqOutcome("gap", lost=3))
    metrics.sequence(camera, SeqOutcome("reset"))
    metrics.defects_found(camera, "class_3", 2)
    metrics.batch_done(frames, 0.02)
    metrics.latency("capture_to_publish", 0.12)
    metrics.latency("receive_to_publish", 0.08)
    metrics.queue("inference", queue_depth)
    metrics.slots(in_use=queue_depth, total=32)
    metrics.set_ready(True)


def _run(target: Callable[..., object], *args: object) -> int:
    process = CTX.Process(target=target, args=args)
    process.start()
    process.join(JOIN_S)
    if process.is_alive():
        process.kill()
        process.join()
        pytest.fail(f"child {target} did not finish in {JOIN_S} s")
    assert process.exitcode == 0, f"child {target} exited with {process.exitcode}"
    assert process.pid is not None
    return process.pid


# -- multiprocess ------------------------------------------------------------------------


@pytest.fixture
def metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = prepare_multiprocess_dir(tmp_path / "metrics")
    monkeypatch.setenv(MULTIPROC_ENV, str(directory))  # inherited by spawned children
    return directory


def test_two_processes_are_summed_and_dead_live_gauges_go(metrics_dir: Path) -> None:
    first = _run(_stage_child, "top", 3, 2, 1000.0)
    second = _run(_stage_child, "top", 4, 5, 1500.0)
    samples = _samples(render(metrics_dir))

    assert _value(samples, "defectd_frames_received_total", camera="top") == 7
    assert _value(samples, "defectd_frames_processed_total", camera="top") == 7
    assert _value(samples, "defectd_frames_dropped_total", camera="top", reason="queue_full") == 2
    assert (
        _value(
            samples, "defectd_frames_dropped_total", camera=UNKNOWN_CAMERA, reason="unknown_camera"
        )
        == 2
    )
    assert _value(samples, "defectd_frames_lost_total", camera="top") == 6
    assert _value(samples, "defectd_camera_resets_total", camera="top") == 2
    assert _value(samples, "defectd_defects_total", camera="top", class_name="class_3") == 4
    assert _value(samples, "defectd_batch_size_count") == 2
    assert _value(samples, "defectd_batch_size_bucket", le="2.0") == 0
    assert _value(samples, "defectd_batch_size_bucket", le="4.0") == 2
    assert _value(samples, "defectd_inference_seconds_sum") == pytest.approx(0.04)
    assert _value(samples, "defectd_latency_seconds_count", kind="capture_to_publish") == 2
    # livesum adds the processes' parts, livemax / max take the largest.
    assert _value(samples, "defectd_queue_depth", queue="inference") == 7
    assert _value(samples, "defectd_slots_in_use") == 5
    assert _value(samples, "defectd_slots_capacity") == 32
    assert _value(samples, "defectd_ready") == 1
    assert _value(samples, "defectd_last_frame_timestamp_seconds", camera="top") == 1500.0

    for pid in (first, second):
        mark_process_dead(pid, metrics_dir)
    samples = _samples(render(metrics_dir))
    # Counters and histograms of dead processes stay; live gauges go, max gauges stay.
    assert _value(samples, "defectd_frames_received_total", camera="top") == 7
    assert _value(samples, "defectd_batch_size_count") == 2
    assert _value(samples, "defectd_queue_depth", queue="inference") is None
    assert _value(samples, "defectd_ready") is None
    assert _value(samples, "defectd_slots_capacity") == 32
    assert _value(samples, "defectd_last_frame_timestamp_seconds", camera="top") == 1500.0


def test_the_mode_is_chosen_before_prometheus_client_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"left over from the last run")
    # `defectd run`'s order, in a fresh interpreter: choose the mode, then import
    # prometheus_client (through the metrics module), then create metrics.
    code = (
        "import sys\n"
        "from defectd.daemon.metrics_mode import multiprocess_mode\n"
        "assert 'prometheus_client' not in sys.modules\n"
        f"with multiprocess_mode({str(directory)!r}):\n"
        "    from defectd.daemon.metrics import create_metrics\n"
        "    metrics = create_metrics(['top', 'bottom'])\n"
        "    metrics.worker_restarted('inference')\n"
        "    metrics.set_build_info('1.2.3', '3.11.7')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    samples = _samples(render(directory))
    assert _value(samples, "defectd_worker_restarts_total", kind="inference") == 1
    assert _value(samples, "defectd_build_info", version="1.2.3", python="3.11.7") == 1
    assert not (directory / "counter_1.db").exists()


def test_a_late_choice_of_mode_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Choosing the mode after prometheus_client was imported is refused, not patched over."""
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    code = (
        "import prometheus_client\n"
        "from defectd.daemon.metrics_mode import multiprocess_mode\n"
        f"with multiprocess_mode({str(tmp_path / 'metrics')!r}):\n"
        "    pass\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert "imported before the metrics directory was chosen" in done.stderr


def test_an_unwritable_metrics_dir_names_the_key(tmp_path: Path) -> None:
    from defectd.daemon.config import ConfigError
    from defectd.daemon.metrics_mode import multiprocess_mode

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    expected = r"x.yaml: metrics.multiprocess_dir: .* not writable"
    with pytest.raises(ConfigError, match=expected), multiprocess_mode(str(blocker), "x.yaml"):
        pass


def test_prepare_removes_only_metric_files(tmp_path: Path) -> None:
    (tmp_path / "counter_12.db").write_bytes(b"")
    (tmp_path / "gauge_livesum_12.db").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("keep me")
    assert prepare_multiprocess_dir(tmp_path) == tmp_path
    assert metric_files(tmp_path) == []
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert prepare_multiprocess_dir(tmp_path / "new" / "dir").is_dir()


def test_empty_directory_renders_nothing(tmp_path: Path) -> None:
    assert render(tmp_path) == b""


def test_promtool_accepts_the_exposition(metrics_dir: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not on PATH (Debian/Ubuntu: apt-get install prometheus)")
    _run(_stage_child, "bottom", 2, 1, 1000.0)
    text = render(metrics_dir)
    assert b"defectd_frames_received_total" in text
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=60
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


# -- names and labels --------------------------------------------------------------------


def _populated_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    metrics = create_metrics(CAMERAS, registry=registry, wall_clock=lambda: 1.0)
    metrics.init_series(classes=("class_1",), kinds=("inference",))
    metrics.engine_loaded(
        EngineInfo("onnxruntime", "cpu", "fp32", 8, "defectd-default 1.1.0", ("class_1",)),
        "1.20.1",
    )
    metrics.set_build_info("0.1.0", "3.11.7")
    metrics.batch_done(4, 0.01)
    metrics.shadow_running("defectd-default 1.1.0", "defectd-default 1.2.0", True)
    return registry


def test_names_follow_prometheus_conventions() -> None:
    families = list(_populated_registry().collect())
    # 19, then the defect store (7: rows, spooled, replayed, dropped, up, coils closed, coil
    # anomalies), the outputs (4: delivered, dropped, buffered, connected), live changes (5:
    # reloads, config generation, model swaps, swap failed, cameras configured) and shadow
    # runs (5: frames, pixels, found, skipped, info)
    assert len(families) == 40
    for family in families:
        assert family.name.startswith(PREFIX), family.name
        if family.type == "counter":
            assert {sample.name for sample in family.samples} <= {
                family.name + "_total",
                family.name + "_created",
            }, family.name
        else:
            assert not family.name.endswith("_total"), family.name
        words = set(family.name.split("_"))
        assert not words & NON_BASE_UNITS, f"{family.name}: use base units (seconds, bytes)"
        if family.name.endswith("_info"):
            assert family.type == "gauge"
            assert {sample.value for sample in family.samples} == {1.0}
    text = generate_latest(_populated_registry()).decode()
    typed = [line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE")]
    assert [name for name, kind in typed if kind == "counter" and not name.endswith("_total")] == []


def test_series_exist_before_their_first_event() -> None:
    samples = _samples(generate_latest(_populated_registry()))
    for camera in CAMERAS:
        assert _value(samples, "defectd_frames_received_total", camera=camera) == 0
        for reason in DROP_LABELS:
            assert (
                _value(samples, "defectd_frames_dropped_total", camera=camera, reason=reason) == 0
            )
        assert _value(samples, "defectd_last_frame_timestamp_seconds", camera=camera) == 1.0
        assert _value(samples, "defectd_defects_total", camera=camera, class_name="class_1") == 0
    assert _value(samples, "defectd_worker_restarts_total", kind="inference") == 0


def test_drop_reasons_are_the_protocol_and_accounting_reasons() -> None:
    assert set(DROP_LABELS) == set(REJECT_REASONS) | set(DROP_REASONS)
    assert len(DROP_LABELS) == len(REJECT_REASONS) + len(DROP_REASONS)
    metrics = create_metrics(CAMERAS, registry=CollectorRegistry())
    with pytest.raises(ValueError, match="queue_full"):
        metrics.frame_dropped("top", "cosmic_rays")
    with pytest.raises(ValueError, match="capture_to_publish"):
        metrics.latency("end_to_end", 0.1)


def test_camera_labels_stay_bounded() -> None:
    registry = CollectorRegistry()
    metrics = create_metrics(CAMERAS, registry=registry)
    for camera in ("top", "evil-1", "evil-2"):
        metrics.frame_received(camera)
    metrics.frame_dropped(None, "malformed_message")
    samples = _samples(generate_latest(registry))
    assert _value(samples, "defectd_frames_received_total", camera="top") == 1
    assert _value(samples, "defectd_frames_received_total", camera=UNKNOWN_CAMERA) == 2
    assert (
        _value(
            samples,
            "defectd_frames_dropped_total",
            camera=UNKNOWN_CAMERA,
            reason="malformed_message",
        )
        == 1
    )


def test_negative_capture_latency_is_clamped() -> None:
    registry = CollectorRegistry()
    create_metrics(CAMERAS, registry=registry).latency("capture_to_publish", -0.5)
    samples = _samples(generate_latest(registry))
    assert _value(samples, "defectd_latency_seconds_sum", kind="capture_to_publish") == 0.0


def test_engine_info_labels_come_from_engine_info() -> None:
    info = EngineInfo("tensorrt", "cuda:0 NVIDIA H100", "fp16", 16, "defectd-default 1.1.0", ())
    assert (*info.labels(), "version") == ENGINE_INFO_LABELS
    samples = _samples(generate_latest(_populated_registry()))
    assert (
        _value(
            samples,
            "defectd_engine_info",
            backend="onnxruntime",
            device="cpu",
            precision="fp32",
            max_batch="8",
            model="defectd-default 1.1.0",
            version="1.20.1",
        )
        == 1
    )
