"""`defectd bench pipeline`: the daemon's throughput and latency on a simulated line.

Everything runs on this machine, the simulator included (`tools.loopback`: the real
`defectd run` as a subprocess, a status/frame subscriber in a thread):

(a) **capacity** with the null engine: the simulator pushes raw mono8 frames (a pool of
    prepared frames, ``fps 0``) into the daemon's PULL socket with ``batching.policy: block``,
    so back-pressure paces it and nothing may be dropped; frames/s is the slope of the
    processed count in the status heartbeats while the sender runs, and every frame sent must
    end processed (received = processed = sent, nothing dropped or lost);
(b) the same with a **real engine** at the same batch size, against the **bare engine**'s
    frames/s (`engines.benchmarks.engine.time_batch`: ``infer`` alone, one process) measured
    in the same run, before the daemon starts;
(c) end-to-end **latency** (capture → publish, from the frame summaries) with the real engine
    at 80% of the capacity (b) measured, against ``max_wait_ms + 2 × one batch's inference
    time`` (the bare engine's p50 at that batch size).

(b) and (c) share one daemon: (c)'s cameras are other ids on the same socket.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from defectd.daemon.clients.simulator import Simulator, SimulatorConfig, SimulatorResult
from defectd.daemon.tools.loopback import (
    DaemonProcess,
    Listener,
    LoopbackPorts,
    line_config,
    settled,
)
from defectd.engines.benchmarks import machine_summary

SUITE = "pipeline"
CAPACITY_TARGET_FPS = 2000.0  # null engine, raw mono8 1600×256, 2 cores, simulator included
ENGINE_RATIO_TARGET = 0.95  # daemon frames/s over the bare engine's, same batch size
LATENCY_LOAD = 0.8  # share of the measured capacity offered in (c)
_SETTLE_S = 60.0


@dataclass(frozen=True)
class CapacityRun:
    """One max-rate run: what was sent and what became of it."""

    backend: str
    batch: int
    cameras: int
    seconds: float  # the simulator's sending time
    sent: int
    received: int
    processed: int
    dropped: dict[str, int]
    lost: int
    frames_per_s: float  # processed count's slope over the heartbeats while sending
    accounted: bool  # every frame sent processed: none dropped, lost or missing

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


@dataclass(frozen=True)
class BareEngine:
    """The engine alone at one batch size (inference only, no post-processing)."""

    backend: str
    device: str
    precision: str
    model: str
    batch: int
    calls: int
    frames_per_s: float
    p50_batch_ms: float
    p99_batch_ms: float


@dataclass(frozen=True)
class LatencyRun:
    """Paced frames at a share of capacity: capture → publish latency of each frame."""

    offered_fps: float  # all cameras together
    frames: int  # frame summaries received
    sent: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    max_wait_ms: float
    bound_ms: float  # max_wait_ms + 2 × the bare engine's p50 batch time

    @property
    def meets(self) -> bool:
        return self.p99_ms <= self.bound_ms


@dataclass(frozen=True)
class PipelineBenchResult:
    """Everything `bench pipeline` measured, with what it ran on."""

    machine: str
    date: str
    null: CapacityRun
    bare: BareEngine
    engine: CapacityRun
    latency: LatencyRun
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def engine_ratio(self) -> float:
        return self.engine.frames_per_s / self.bare.frames_per_s if self.bare.frames_per_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "engine_ratio": self.engine_ratio,
            "latency_meets": self.latency.meets,
            "targets": {
                "capacity_fps": CAPACITY_TARGET_FPS,
                "engine_ratio": ENGINE_RATIO_TARGET,
                "latency_load": LATENCY_LOAD,
            },
        }


@dataclass
class Heartbeats:
    """(publish_ns, processed) of every heartbeat, appended by the listener thread."""

    points: list[tuple[int, int]] = field(default_factory=list)

    def add(self, status: dict[str, Any]) -> None:
        self.points.append((int(status["publish_ns"]), int(status["frames"]["processed"])))

    def slope(self, start_ns: int, end_ns: int) -> float:
        """Processed frames per second between the first heartbeat after the first frame was
        done and the last one before `end_ns` (the sender's end), within [start_ns, end_ns]."""
        inside = [(t, n) for t, n in list(self.points) if start_ns <= t <= end_ns and n > 0]
        if len(inside) < 2:
            return 0.0
        (t0, n0), (t1, n1) = inside[0], inside[-1]
        return (n1 - n0) * 1e9 / (t1 - t0) if t1 > t0 else 0.0


def run_pipeline_bench(
    model_dir: Path | None = None,
    *,
    backend: str = "onnxruntime",
    batch: int = 8,
    null_batch: int = 32,
    cameras: int = 2,
    seconds: float = 8.0,
    threads: int | None = 2,
    max_wait_ms: float = 20.0,
    workdir: Path,
    progress: bool = True,
) -> PipelineBenchResult:
    """Run (a), (b) and (c) of the module docstring; `seconds` is each phase's sending time
    (and the bare engine's timing); `batch` the engine's in (b) and (c), `null_batch` the null
    engine's in (a)."""
    if min(batch, null_batch, cameras) < 1 or seconds <= 0:
        raise ValueError("batch and cameras must be at least 1 and seconds positive")
    workdir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    say = _say if progress else (lambda text: None)
    say(f"pipeline (a): null engine, batch {null_batch}, {cameras} cameras, {seconds:g} s")
    null = _capacity(workdir / "null", model_dir, null_batch, cameras, seconds, max_wait_ms)
    say(f"  {null.frames_per_s:,.0f} frames/s, {null.sent:,} sent, accounted {null.accounted}")
    say(f"pipeline (b): bare {backend} engine, batch {batch}, {seconds:g} s")
    bare = _bare_engine(model_dir, backend, batch, threads, seconds)
    say(f"  {bare.frames_per_s:,.1f} frames/s, p50 {bare.p50_batch_ms:.1f} ms per batch")
    engine_conf: dict[str, Any] = {"backend": backend, "max_batch": batch}
    if threads is not None:
        engine_conf["threads"] = threads
    ids = tuple(f"cam{i}" for i in range(2 * cameras))
    ports = LoopbackPorts()
    config = push_config(ports, ids, engine_conf, batch, max_wait_ms, model_dir)
    with DaemonProcess(config, _dir(workdir / "engine"), ports) as daemon:
        daemon.wait_ready(300.0)
        beats = Heartbeats()
        with Listener(ports.publish_endpoint, topics=("frame.",), on_status=beats.add) as listener:
            listener.wait_subscribed(10.0)
            say(f"pipeline (b): daemon with {backend}, {seconds:g} s at max rate")
            label = bare.backend  # what "auto" resolved to
            engine = run_phase(listener, beats, ports, ids[:cameras], 0.0, seconds, label, batch)
            say(f"  {engine.frames_per_s:,.1f} frames/s, {engine.sent:,} sent")
            offered = LATENCY_LOAD * engine.frames_per_s
            if offered <= 0:
                notes.append("no capacity measured with the engine: latency run at 1 frame/s")
                offered = 1.0
            listener.forget()
            say(f"pipeline (c): {offered:.1f} frames/s offered ({LATENCY_LOAD:.0%} of (b))")
            paced = run_phase(
                listener,
                beats,
                ports,
                ids[cameras:],
                offered / cameras,
                seconds,
                label,
                batch,
                already=engine.sent,
            )
            with listener.lock:
                latencies = [
                    float(f["latency_ms"])
                    for f in listener.collected.frames
                    if f["camera_id"] in ids[cameras:]
                ]
        latency = _latency(latencies, offered, paced.sent, max_wait_ms, bare.p50_batch_ms)
        say(f"  p99 {latency.p99_ms:.1f} ms against {latency.bound_ms:.1f} ms")
    return PipelineBenchResult(
        machine=machine_summary(),
        date=dt.date.today().isoformat(),
        null=null,
        bare=bare,
        engine=engine,
        latency=latency,
        notes=tuple(notes),
    )


def _say(text: str) -> None:
    import sys

    print(text, file=sys.stderr, flush=True)


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def push_config(
    ports: LoopbackPorts,
    ids: tuple[str, ...],
    engine: dict[str, Any],
    batch: int,
    max_wait_ms: float,
    model_dir: Path | None,
    frame: tuple[int, int] = (256, 1600),
) -> dict[str, Any]:
    """A daemon config for `ids` pushing `frame` (H, W) frames under ``block`` back-pressure:
    what the benchmarks run."""
    height, width = frame
    sections: dict[str, Any] = {
        "batching": {"max_wait_ms": max_wait_ms, "policy": "block"},
        "slots": {"count": max(64, 4 * batch)},
        "publish": {"status_interval_s": 0.25},
        # No ZMTP heartbeats: under `block` back-pressure the daemon stops reading its PULL
        # socket, a PONG waits behind queued frames, and after heartbeat_timeout_ms the link
        # is dropped with the frames on it (the last ones of a run, so no seq gap shows them).
        "ingest": {"rcvhwm": 64, "heartbeat_ivl_ms": 0},
    }
    if (height, width) != (256, 1600):
        sections["slots"]["count"] = max(16, 2 * batch)  # wide frames: 4 MiB a slot at 4096×1024
        sections["ingest"]["max_frame_bytes"] = max(height * width, 4 * 2**20)
    if model_dir is not None:
        sections["model"] = {"dir": str(Path(model_dir).resolve())}
    return line_config(
        ports, ids, push=True, engine=engine, width=width, height=height, sections=sections
    )


def _capacity(
    workdir: Path,
    model_dir: Path | None,
    batch: int,
    cameras: int,
    seconds: float,
    max_wait_ms: float,
) -> CapacityRun:
    ids = tuple(f"cam{i}" for i in range(cameras))
    ports = LoopbackPorts()
    engine = {"backend": "null", "max_batch": batch}
    config = push_config(ports, ids, engine, batch, max_wait_ms, model_dir)
    with DaemonProcess(config, _dir(workdir), ports) as daemon:
        daemon.wait_ready(120.0)
        beats = Heartbeats()
        with Listener(ports.publish_endpoint, topics=(), on_status=beats.add) as listener:
            listener.wait_subscribed(10.0)
            return run_phase(listener, beats, ports, ids, 0.0, seconds, "null", batch)


def run_phase(
    listener: Listener,
    beats: Heartbeats,
    ports: LoopbackPorts,
    cameras: tuple[str, ...],
    fps: float,
    seconds: float,
    backend: str,
    batch: int,
    already: int = 0,
    frame: tuple[int, int] = (256, 1600),
    coil_frames: int = 0,
) -> CapacityRun:
    """Push synthetic `frame` (H, W) frames from `cameras` (fps 0: as fast as the daemon
    takes them) for `seconds`; wait until the daemon has settled them; `already`: frames sent
    in earlier phases."""
    before = listener.last_status()
    base_received, base_processed, base_lost, base_dropped = _counts(before)
    simulator = Simulator(
        SimulatorConfig(
            cameras=cameras,
            fps=fps,
            seconds=seconds,
            mode="push",
            endpoint=ports.camera_endpoint,
            bind=False,
            pool=16,  # rendered once: the sender costs a send, not a synthetic frame
            sndhwm=16,
            height=frame[0],
            width=frame[1],
            coil_frames=coil_frames,
        ),
        # A progress callback, even one that does nothing: without one the simulator's paced
        # loop never moves its status deadline and spins (a core's worth of CPU at 27 fps).
        progress=_ignore,
    )
    start_ns = time.time_ns()
    result: SimulatorResult = simulator.run(threading.Event())
    end_ns = time.time_ns()
    deadline = time.monotonic() + _SETTLE_S
    while time.monotonic() < deadline:
        if settled(listener.last_status(), already + result.sent):
            break
        time.sleep(0.05)
    time.sleep(0.3)  # the frame summaries still on their way to the listener
    received, processed, lost, after_dropped = _counts(listener.last_status())
    received, processed, lost = (
        received - base_received,
        processed - base_processed,
        lost - base_lost,
    )
    dropped = {
        reason: count - base_dropped.get(reason, 0)
        for reason, count in after_dropped.items()
        if count - base_dropped.get(reason, 0)
    }
    rate = beats.slope(start_ns, end_ns)
    return CapacityRun(
        backend=backend,
        batch=batch,
        cameras=len(cameras),
        seconds=round(result.elapsed_s, 3),
        sent=result.sent,
        received=received,
        processed=processed,
        dropped=dropped,
        lost=lost,
        frames_per_s=round(rate, 2),
        accounted=received == processed == result.sent and not dropped and lost == 0,
    )


def _ignore(result: SimulatorResult) -> None:
    pass


def _counts(status: dict[str, Any] | None) -> tuple[int, int, int, dict[str, int]]:
    if status is None:
        return 0, 0, 0, {}
    frames = status["frames"]
    dropped = {str(k): int(v) for k, v in frames["dropped"].items()}
    return int(frames["received"]), int(frames["processed"]), int(frames["lost"]), dropped


def _bare_engine(
    model_dir: Path | None, backend: str, batch: int, threads: int | None, seconds: float
) -> BareEngine:
    from defectd.engines.benchmarks.engine import synthetic_frames, time_batch
    from defectd.engines.model_card import default_model_dir, read_card
    from defectd.engines.selection import EngineConfig, open_engine

    card = read_card(model_dir or default_model_dir())
    pool = synthetic_frames(card, 16, seed=31337)
    config = EngineConfig(backend=backend, max_batch=batch, threads=threads, warmup=False)
    with open_engine(card, config) as engine:
        info = engine.info
        infer_s, _ = time_batch(engine, pool, batch, card.thresholds, seconds)
    ms = np.asarray(infer_s) * 1e3
    return BareEngine(
        backend=info.backend,
        device=info.device,
        precision=info.precision,
        model=info.model,
        batch=batch,
        calls=len(infer_s),
        frames_per_s=round(len(infer_s) * batch / sum(infer_s), 2),
        p50_batch_ms=round(float(np.percentile(ms, 50)), 3),
        p99_batch_ms=round(float(np.percentile(ms, 99)), 3),
    )


def _latency(
    latencies: list[float], offered: float, sent: int, max_wait_ms: float, batch_ms: float
) -> LatencyRun:
    values = np.asarray(latencies or [float("nan")], np.float64)
    p50, p90, p99 = (float(np.percentile(values, q)) for q in (50, 90, 99))
    return LatencyRun(
        offered_fps=round(offered, 2),
        frames=len(latencies),
        sent=sent,
        p50_ms=round(p50, 2),
        p90_ms=round(p90, 2),
        p99_ms=round(p99, 2),
        max_ms=round(float(values.max()), 2),
        max_wait_ms=max_wait_ms,
        bound_ms=round(max_wait_ms + 2 * batch_ms, 2),
    )
