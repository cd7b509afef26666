"""`defectd bench swap`: frame latency while the daemon swaps models and reloads thresholds.

One daemon (ONNX Runtime by default, the bundled model) on a loopback line with one camera
pushing synthetic frames at a steady rate (``batching.policy: block``: nothing may drop).
After a settling time it runs, through the control socket `defectd reload` uses:

1. a swap to a copy of the bundled model under another version (same weights: its golden
   check passes), 2. a threshold reload, 3. the swap back (the rollback),

each followed by a steady phase. Every frame summary's receive → publish latency is put in
the phase during which the frame arrived; the figures per phase are p50, p99 and max, with
the accounting at the end (every frame sent processed exactly once, none dropped).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from defectd.daemon.control import request_reload
from defectd.daemon.tools.loopback import (
    DaemonProcess,
    Listener,
    LoopbackPorts,
    PacedCamera,
    line_config,
    write_config,
)
from defectd.daemon.tools.model_variants import renamed_copy
from defectd.engines.benchmarks import machine_summary
from defectd.engines.model_card import default_model_dir, read_card
from defectd.engines.synth import SyntheticLine


@dataclass(frozen=True)
class Phase:
    name: str
    frames: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    seconds: float  # how long the phase lasted
    reply: str = ""  # the reload's answer, for the change phases


@dataclass(frozen=True)
class SwapBenchResult:
    machine: str
    date: str
    backend: str
    fps: float
    batch: int
    threads: int
    phases: tuple[Phase, ...]
    sent: int
    summaries: int
    unique: int
    daemon_line: str  # the daemon's "stopped: received …" line

    @property
    def exact(self) -> bool:
        """Every frame sent published once, and the daemon dropped none."""
        return self.sent == self.summaries == self.unique and "dropped none" in self.daemon_line

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["exact"] = self.exact
        return out


def run_swap_bench(
    *,
    backend: str,
    fps: float,
    batch: int,
    threads: int,
    settle_s: float,
    workdir: Path,
) -> SwapBenchResult:
    """Run the sequence above in `workdir`; `settle_s` seconds of steady state around it."""
    live = default_model_dir()
    card = read_card(live)
    other = renamed_copy(live, workdir / "model-b", f"{card.version}-b")
    ports = LoopbackPorts()
    engine = {"backend": backend, "max_batch": batch, "threads": threads}
    if backend == "onnxruntime":
        engine["precision"] = "fp32"
    config = line_config(
        ports,
        ("cam0",),
        push=True,
        engine=engine,
        sections={
            "slots": {"count": 32},
            "batching": {"max_wait_ms": 20.0, "policy": "block"},
            "model": {"dir": str(live)},
            "control": {"socket": str(workdir / "control.sock")},
            "publish": {"sndhwm": 100_000},
        },
    )
    quiet = {name: {"pixel": 0.9} for name in card.classes}
    changes = (
        ("swap to the copy", {"dir": str(other)}),
        ("threshold reload", {"dir": str(other), "thresholds": quiet}),
        ("swap back (rollback)", {"dir": str(live)}),
    )
    images = [SyntheticLine(5).frame(index).image for index in range(16)]
    marks: list[tuple[str, int, int, str]] = []  # phase, start ns, end ns, reply
    (workdir / "run").mkdir()
    with (
        DaemonProcess(config, workdir / "run", ports) as daemon,
        Listener(ports.publish_endpoint, strict=True) as subscriber,
    ):
        daemon.wait_ready(120)
        subscriber.wait_subscribed()
        endpoint = f"ipc://{workdir / 'control.sock'}"
        with PacedCamera(ports.camera_endpoint, "cam0", images, fps) as camera:
            start = time.time_ns()
            time.sleep(settle_s)
            marks.append(("steady, before", start, time.time_ns(), ""))
            for name, model in changes:
                write_config(daemon.config_path, {**config, "model": model})
                began = time.time_ns()
                reply = request_reload(endpoint)
                ended = time.time_ns()
                answer = "; ".join(reply.lines) if reply.ok else "FAILED: " + "; ".join(reply.lines)
                marks.append((name, began, ended, answer))
                time.sleep(settle_s)
                marks.append((f"steady, after {name}", ended, time.time_ns(), ""))
            sent = camera.stop()
        subscriber.until(lambda: len(subscriber.of("frame")) >= sent, 120, f"{sent} summaries")
        daemon.stop()
    frames = subscriber.of("frame")
    phases = tuple(_phase(name, a, b, reply, frames) for name, a, b, reply in marks)
    stopped = next(
        (line for line in daemon.log_text().splitlines() if "stopped: received" in line), ""
    )
    return SwapBenchResult(
        machine=machine_summary(),
        date=dt.date.today().isoformat(),
        backend=backend,
        fps=fps,
        batch=batch,
        threads=threads,
        phases=phases,
        sent=sent,
        summaries=len(frames),
        unique=len({f["seq"] for f in frames}),
        daemon_line=stopped[stopped.index("stopped") :] if stopped else "(no stop line)",
    )


def _phase(name: str, start: int, end: int, reply: str, frames: list[dict[str, Any]]) -> Phase:
    latencies = np.array(
        [f["daemon_latency_ms"] for f in frames if start <= f["receive_ns"] < end], np.float64
    )
    seconds = (end - start) / 1e9
    if latencies.size == 0:
        return Phase(name, 0, None, None, None, seconds, reply)
    p50, p99 = np.percentile(latencies, [50, 99])
    return Phase(name, int(latencies.size), p50, p99, float(latencies.max()), seconds, reply)


def format_markdown(result: SwapBenchResult) -> str:
    rows = [
        f"{result.backend}, batch {result.batch}, {result.threads} threads, one camera at "
        f"{result.fps:g} frames/s; receive → publish latency of the frames that arrived in each "
        "phase:",
        "",
        "| phase | lasted s | frames | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for phase in result.phases:
        figures = [
            "-" if value is None else f"{value:.1f}"
            for value in (phase.p50_ms, phase.p99_ms, phase.max_ms)
        ]
        rows.append(
            f"| {phase.name} | {phase.seconds:.1f} | {phase.frames} | " + " | ".join(figures) + " |"
        )
    rows.append("")
    for phase in result.phases:
        if phase.reply:
            rows.append(f"- {phase.name}: {phase.reply}")
    verdict = "exact" if result.exact else "NOT exact"
    rows.append(
        f"- accounting {verdict}: {result.sent} frames sent, {result.summaries} summaries "
        f"({result.unique} distinct seq); daemon: {result.daemon_line}"
    )
    return "\n".join(rows)
