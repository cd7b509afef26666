"""`defectd bench soak`: the daemon for minutes on a simulated line, watched for leaks.

The real `defectd run` (`tools.loopback`) on loopback, fed by the simulator (push, raw mono8,
``batching.policy: block``) at `LOAD` of its capacity: the capacity is measured first in the
same daemon (a few seconds at max rate, the slope of the processed count), unless the frames/s
are given. While the line runs, a sampler reads ``/proc`` every few seconds for the daemon's
whole process tree (supervisor, stages, multiprocessing's resource tracker):

- RSS, summed over the tree (shared pages, the slot pool's included, count once per process
  that touched them: the sum is flat once every slot has been used, which the warm-up ensures);
- open file descriptors and threads, summed;
- shared-memory segments in ``/dev/shm`` named by the daemon (``defectd-<supervisor pid>-*``).

After the warm-up the growth over the window must stay within `RSS_GROWTH_LIMIT` and be zero
for descriptors and segments. The medians of the first and last fifth of the window (at least
three samples each) are compared: the receiver's RSS swings by up to ``ingest.rcvhwm`` frames
with what ZeroMQ holds queued at the moment, and one sample must not decide. After the
daemon stops, no segment of its may be left in ``/dev/shm``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from defectd.daemon.background import Background
from defectd.daemon.clients.simulator import Simulator, SimulatorConfig, SimulatorResult
from defectd.daemon.slots import SHM_DIR
from defectd.daemon.tools.benchmarks.pipeline import CapacityRun, Heartbeats, push_config, run_phase
from defectd.daemon.tools.loopback import DaemonProcess, Listener, LoopbackPorts, settled
from defectd.engines.benchmarks import machine_summary

LOAD = 0.8  # share of the measured capacity offered
RSS_GROWTH_LIMIT = 0.05  # RSS may grow this much over the window after warm-up
CAPACITY_S = 6.0  # seconds at max rate to measure capacity
_EDGE = 3  # at least this many samples at each end of the window are compared


@dataclass(frozen=True)
class Sample:
    """The daemon's process tree at one moment."""

    t_s: float  # since the soak phase started
    processes: int
    rss_bytes: int
    fds: int
    threads: int
    shm_segments: int
    shm_bytes: int
    processed: int  # frames, from the last status heartbeat


@dataclass(frozen=True)
class SoakResult:
    """What `bench soak` measured, its verdicts and what it ran on."""

    machine: str
    date: str
    backend: str
    batch: int
    cameras: int
    capacity_fps: float | None  # measured; None when --fps was given
    offered_fps: float
    minutes: float  # the measured window, after warm-up
    warmup_s: float
    sent: int
    received: int
    processed: int
    dropped: dict[str, int]
    lost: int
    samples: tuple[Sample, ...]
    rss_growth: float  # relative, window medians
    fd_growth: int
    shm_growth: int
    thread_growth: int
    exit_status: int | None
    shm_left_after_exit: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def window(self) -> tuple[Sample, ...]:
        return tuple(s for s in self.samples if s.t_s >= self.warmup_s)

    @property
    def achieved_fps(self) -> float:
        window = self.window
        if len(window) < 2 or window[-1].t_s <= window[0].t_s:
            return 0.0
        return (window[-1].processed - window[0].processed) / (window[-1].t_s - window[0].t_s)

    @property
    def passed(self) -> bool:
        return (
            self.rss_growth <= RSS_GROWTH_LIMIT
            and self.fd_growth <= 0
            and self.shm_growth <= 0
            and self.shm_left_after_exit == 0
            and self.exit_status == 0
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "achieved_fps": self.achieved_fps,
            "passed": self.passed,
            "limits": {"rss_growth": RSS_GROWTH_LIMIT, "fd_growth": 0, "shm_growth": 0},
        }


# -- /proc ------------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and every process descended from it (from ``/proc/*/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _status_fields(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "Threads"):
            fields[name] = int(value.split()[0])
    return fields


def shm_segments(supervisor_pid: int) -> list[Path]:
    """The daemon's shared-memory segments (`SlotPool.create` names them by the pid)."""
    return sorted(SHM_DIR.glob(f"defectd-{supervisor_pid}-*"))


def sample_tree(root: int, t_s: float, processed: int) -> Sample:
    """RSS, descriptors and threads summed over `root`'s tree, and its segments."""
    rss = fds = threads = processes = 0
    for pid in process_tree(root):
        try:
            fields = _status_fields(pid)
            count = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:  # exited between the listing and the read
            continue
        processes += 1
        rss += fields.get("VmRSS", 0) * 1024
        threads += fields.get("Threads", 0)
        fds += count
    segments = shm_segments(root)
    size = 0
    for segment in segments:
        with contextlib.suppress(OSError):
            size += segment.stat().st_size
    return Sample(round(t_s, 2), processes, rss, fds, threads, len(segments), size, processed)


def growth(samples: tuple[Sample, ...], name: str) -> float:
    """Median of the last fifth of `samples` minus that of the first fifth (at least `_EDGE`
    samples each; absolute)."""
    if not samples:
        return 0.0
    values = [float(getattr(s, name)) for s in samples]
    edge = min(max(_EDGE, len(values) // 5), max(1, len(values) // 2))
    return statistics.median(values[-edge:]) - statistics.median(values[:edge])


# -- the run ----------------------------------------------------------------------------------


def run_soak_bench(
    *,
    minutes: float,
    workdir: Path,
    fps: float | None = None,
    backend: str = "null",
    batch: int = 8,
    cameras: int = 2,
    threads: int | None = 1,
    max_wait_ms: float = 20.0,
    warmup_s: float | None = None,
    interval_s: float = 5.0,
    model_dir: Path | None = None,
    progress: bool = True,
) -> SoakResult:
    """Measure capacity (unless `fps`), then run the line at `LOAD` of it (or at `fps`, all
    cameras together) for `warmup_s` + `minutes`, sampling every `interval_s`."""
    if minutes <= 0 or interval_s <= 0 or min(batch, cameras) < 1:
        raise ValueError("minutes and interval must be positive, batch and cameras at least 1")
    if fps is not None and fps <= 0:
        raise ValueError(f"--fps must be positive, got {fps:g}")
    if warmup_s is None:
        warmup_s = min(60.0, max(10.0, 0.2 * minutes * 60))
    say = _say if progress else (lambda text: None)
    workdir.mkdir(parents=True, exist_ok=True)
    engine: dict[str, Any] = {"backend": backend, "max_batch": batch}
    if threads is not None and backend != "null":
        engine["threads"] = threads
    ids = tuple(f"cam{i}" for i in range(2 * cameras))
    ports = LoopbackPorts()
    config = push_config(ports, ids, engine, batch, max_wait_ms, model_dir)
    notes: list[str] = []
    with DaemonProcess(config, workdir, ports) as daemon:
        daemon.wait_ready(300.0)
        root = daemon.process.pid
        beats = Heartbeats()
        with Listener(ports.publish_endpoint, topics=(), on_status=beats.add) as listener:
            listener.wait_subscribed(10.0)
            capacity: CapacityRun | None = None
            if fps is None:
                say(f"soak: capacity with {backend}, batch {batch}, {CAPACITY_S:g} s at max rate")
                capacity = run_phase(
                    listener, beats, ports, ids[:cameras], 0.0, CAPACITY_S, backend, batch
                )
                fps = LOAD * capacity.frames_per_s
                say(f"  {capacity.frames_per_s:,.1f} frames/s; offering {fps:,.1f} ({LOAD:.0%})")
                if fps <= 0:
                    notes.append("no capacity measured: soak at 1 frame/s")
                    fps = 1.0
            already = capacity.sent if capacity is not None else 0
            total_s = warmup_s + minutes * 60
            say(f"soak: {fps:,.1f} frames/s for {warmup_s:g} s warm-up + {minutes:g} min")
            result, samples = _soak(
                listener, ports, ids[cameras:], fps, total_s, interval_s, root, say
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if settled(listener.last_status(), already + result.sent):
                    break
                time.sleep(0.1)
            status = listener.last_status() or {"frames": {}}
        exit_status = daemon.stop()
    time.sleep(0.5)  # the resource tracker unlinks after the supervisor is gone
    left = len(shm_segments(root))
    frames = status["frames"]
    window = tuple(s for s in samples if s.t_s >= warmup_s)
    edge = max(_EDGE, len(window) // 5)
    base_rss = statistics.median([s.rss_bytes for s in window[:edge]]) if window else 0
    if len(window) < 2 * _EDGE:
        notes.append(f"only {len(window)} samples after warm-up: lengthen --minutes")
    base_sent = capacity.sent if capacity is not None else 0
    base_processed = capacity.processed if capacity is not None else 0
    return SoakResult(
        machine=machine_summary(),
        date=dt.date.today().isoformat(),
        backend=backend,
        batch=batch,
        cameras=cameras,
        capacity_fps=capacity.frames_per_s if capacity is not None else None,
        offered_fps=round(fps, 2),
        minutes=minutes,
        warmup_s=warmup_s,
        sent=result.sent,
        received=int(frames.get("received", 0)) - base_sent,
        processed=int(frames.get("processed", 0)) - base_processed,
        dropped={str(k): int(v) for k, v in frames.get("dropped", {}).items()},
        lost=int(frames.get("lost", 0)),
        samples=tuple(samples),
        rss_growth=round(growth(window, "rss_bytes") / base_rss, 4) if base_rss else 0.0,
        fd_growth=int(growth(window, "fds")),
        shm_growth=int(growth(window, "shm_segments")),
        thread_growth=int(growth(window, "threads")),
        exit_status=exit_status,
        shm_left_after_exit=left,
        notes=tuple(notes),
    )


def _soak(
    listener: Listener,
    ports: LoopbackPorts,
    cameras: tuple[str, ...],
    fps: float,
    seconds: float,
    interval_s: float,
    root: int,
    say: Any,
) -> tuple[SimulatorResult, list[Sample]]:
    """The paced simulator in a thread; samples from this one until it is done."""
    simulator = Simulator(
        SimulatorConfig(
            cameras=cameras,
            fps=fps / len(cameras),
            seconds=seconds,
            mode="push",
            endpoint=ports.camera_endpoint,
            bind=False,
            pool=16,
            sndhwm=16,
        ),
        progress=lambda result: None,  # without one the paced loop spins (see pipeline.py)
    )
    sender = Background(lambda: simulator.run(threading.Event()), "soak-simulator")
    start = time.monotonic()
    sender.start()
    samples: list[Sample] = []
    next_at = start
    last_said = start
    while sender.is_alive():
        now = time.monotonic()
        if now >= next_at:
            status = listener.last_status()
            processed = int(status["frames"]["processed"]) if status else 0
            samples.append(sample_tree(root, now - start, processed))
            next_at += interval_s
            if now - last_said >= 60:
                last_said = now
                latest = samples[-1]
                say(
                    f"  {latest.t_s:,.0f} s: RSS {latest.rss_bytes / 2**20:,.1f} MiB, "
                    f"{latest.fds} fds, {latest.threads} threads, {latest.shm_segments} segments, "
                    f"{latest.processed:,} processed"
                )
        sender.wait(max(0.0, min(next_at - time.monotonic(), 1.0)))
    return sender.result(), samples  # what the simulator raised is raised here


def _say(text: str) -> None:
    import sys

    print(text, file=sys.stderr, flush=True)


# -- reports ----------------------------------------------------------------------------------
