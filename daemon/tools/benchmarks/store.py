"""`defectd bench store`: what the defect store sustains, and what it costs the daemon.

(a) **write rate**: synthetic strip defects (`synthetic_defects`) written in batches straight
    to a store (`Store.write`, one transaction a batch) and through the `StoreWriter` (queue,
    merged writes: what the daemon does), on SQLite and, with a PostgreSQL URL, on PostgreSQL;
(b) **daemon frames/s with the store on and off**: two daemons with the same config but
    ``store.enabled``, alternately pushed raw frames as fast as they take them (``block``
    back-pressure, the simulator sending coils), in interleaved rounds so both see the same
    machine; the ratio of the medians is what the store costs (target ≥ 0.98).
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from defectd.daemon.coils.model import StripDefect
from defectd.daemon.store.backend import open_store, redact
from defectd.daemon.store.batch import StoreBatch
from defectd.daemon.store.spool import Spool
from defectd.daemon.store.writer import StoreWriter, WriterConfig
from defectd.daemon.tools.benchmarks.pipeline import Heartbeats, push_config, run_phase
from defectd.daemon.tools.loopback import DaemonProcess, Listener, LoopbackPorts
from defectd.engines.benchmarks import machine_summary

RATIO_TARGET = 0.98


def synthetic_defects(count: int, seed: int = 7, coil: str = "BENCH-1") -> list[StripDefect]:
    """`count` plausible strip defects of one coil (ids unique per seed)."""
    rng = np.random.default_rng(seed)
    defects = []
    for index in range(count):
        along = float(index) * 0.05
        across = float(rng.uniform(0, 1500))
        width, length = float(rng.uniform(1, 40)), float(rng.uniform(0.001, 0.5))
        defects.append(
            StripDefect(
                defect_id=f"bench/{coil}/cam0/{seed}/{index}/1/0.0.1.1",
                line="bench",
                coil_id=coil,
                class_id=int(rng.integers(1, 5)),
                class_name=f"class{int(rng.integers(1, 5))}",
                across_mm=(across, across + width),
                along_m=(along, along + length),
                area_mm2=width * length * 1000 * 0.3,
                area_px=int(width * length * 4000),
                max_score=float(rng.uniform(0.5, 1)),
                mean_score=float(rng.uniform(0.4, 0.9)),
                first_camera="cam0",
                first_seq=index,
                last_camera="cam0",
                last_seq=index + 1,
                cameras=("cam0",),
                frames=2,
                capture_ns=1_800_000_000_000_000_000 + index * 10**7,
                crop=f"2027/01/01/{coil}/{index}.jpg",
            )
        )
    return defects


@dataclass(frozen=True)
class WriteRate:
    """One store's defects/s, straight and through the writer."""

    store: str
    defects: int
    batch: int
    direct_defects_per_s: float
    writer_defects_per_s: float


@dataclass(frozen=True)
class OnOff:
    """The daemon's frames/s with the store off and on, interleaved rounds."""

    backend: str
    rounds: int
    seconds: float  # per phase
    off_fps: tuple[float, ...]
    on_fps: tuple[float, ...]
    on_accounted: bool
    stored_coils: int

    @property
    def ratio(self) -> float:
        off = statistics.median(self.off_fps)
        return statistics.median(self.on_fps) / off if off else 0.0


@dataclass(frozen=True)
class StoreBenchResult:
    machine: str
    date: str
    writes: tuple[WriteRate, ...]
    daemon: OnOff | None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.daemon is not None:
            out["daemon"]["ratio"] = self.daemon.ratio
            out["daemon"]["target"] = RATIO_TARGET
        return out


def write_rate(url: str, defects: list[StripDefect], batch: int, workdir: Path) -> WriteRate:
    """(a) for one store URL: a fresh coil id per pass, so every row is new."""
    store = open_store(url)
    try:
        batches = [
            StoreBatch(defects=tuple(defects[i : i + batch])) for i in range(0, len(defects), batch)
        ]
        start = time.perf_counter()
        for item in batches:
            store.write(item)
        direct = len(defects) / (time.perf_counter() - start)
    finally:
        store.close()
    again = synthetic_defects(len(defects), seed=8, coil="BENCH-2")
    spool_dir = workdir / f"spool-{time.time_ns()}"
    writer = StoreWriter(lambda: open_store(url), Spool(spool_dir), WriterConfig()).start()
    start = time.perf_counter()
    for i in range(0, len(again), batch):
        while not writer.submit(StoreBatch(defects=tuple(again[i : i + batch]))):
            time.sleep(0.001)  # the queue is full: the benchmark waits, the daemon would not
    writer.close(timeout_s=600)
    through = len(again) / (time.perf_counter() - start)
    return WriteRate(redact(url).split("?")[0], len(defects), batch, direct, through)


def on_off(
    backend: str, seconds: float, rounds: int, batch: int, workdir: Path, threads: int | None
) -> OnOff:
    """(b): two daemons, store off and on, pushed in turn."""
    engine: dict[str, Any] = {"backend": backend, "max_batch": batch}
    if threads is not None and backend != "null":
        engine["threads"] = threads
    runs: dict[bool, list[float]] = {False: [], True: []}
    accounted, coils = True, 0
    database = workdir / "on" / "state" / "defects.db"
    daemons = []
    for enabled in (False, True):
        ports = LoopbackPorts()
        config = push_config(ports, ("cam0",), engine, batch, 20.0, None)
        config["cameras"][0].update(across_mm_per_px=1.0, along_from="position_m")
        if enabled:
            config["store"] = {"enabled": True, "url": f"sqlite:///{database}"}
        directory = workdir / ("on" if enabled else "off")
        directory.mkdir(parents=True, exist_ok=True)
        daemons.append((enabled, ports, DaemonProcess(config, directory, ports)))
    listeners = []
    try:
        for _, _, daemon in daemons:
            daemon.__enter__()
            daemon.wait_ready(300.0)
        for enabled, ports, _ in daemons:
            beats = Heartbeats()
            listener = Listener(ports.publish_endpoint, topics=(), on_status=beats.add)
            listener.__enter__()
            listener.wait_subscribed(10.0)
            listeners.append((enabled, ports, listener, beats, [0]))
        for _ in range(rounds):
            for enabled, ports, listener, beats, sent in listeners:
                run = run_phase(listener, beats, ports, ("cam0",), 0.0, seconds, backend, batch,
                                already=sent[0], coil_frames=200)  # fmt: skip
                sent[0] += run.sent
                runs[enabled].append(run.frames_per_s)
                if enabled:
                    accounted = accounted and run.accounted
    finally:
        for _, _, listener, _, _ in listeners:
            listener.__exit__(None, None, None)
        for _, _, daemon in daemons:
            daemon.__exit__(None, None, None)
    if database.exists():
        store = open_store(f"sqlite:///{database}")
        coils = len(store.coils(limit=100_000))
        store.close()
    return OnOff(backend, rounds, seconds, tuple(runs[False]), tuple(runs[True]), accounted,
                 coils)  # fmt: skip


def run_store_bench(
    *,
    urls: list[str],
    defects: int,
    batch: int,
    backend: str,
    seconds: float,
    rounds: int,
    daemon_batch: int,
    threads: int | None,
    workdir: Path,
    daemon: bool = True,
) -> StoreBenchResult:
    rows = synthetic_defects(defects)
    writes = tuple(write_rate(url, rows, batch, workdir) for url in urls)
    on = on_off(backend, seconds, rounds, daemon_batch, workdir, threads) if daemon else None
    return StoreBenchResult(machine_summary(), dt.date.today().isoformat(), writes, on)


def format_markdown(result: StoreBenchResult) -> str:
    lines = [
        "| store | defects | batch | defects/s, straight | defects/s, through the writer |",
        "|---|---:|---:|---:|---:|",
    ]
    for w in result.writes:
        lines.append(
            f"| {w.store} | {w.defects:,} | {w.batch} | {w.direct_defects_per_s:,.0f} | "
            f"{w.writer_defects_per_s:,.0f} |"
        )
    if result.daemon is not None:
        d = result.daemon
        verdict = "met" if d.ratio >= RATIO_TARGET else "**missed**"
        lines += [
            "",
            f"Daemon with the {d.backend} engine, {d.rounds} interleaved rounds of {d.seconds:g} s "
            "per phase, max rate:",
            "",
            "| store | frames/s per round | median |",
            "|---|---|---:|",
            f"| off | {', '.join(f'{v:,.1f}' for v in d.off_fps)} | "
            f"{statistics.median(d.off_fps):,.1f} |",
            f"| on | {', '.join(f'{v:,.1f}' for v in d.on_fps)} | "
            f"{statistics.median(d.on_fps):,.1f} |",
            "",
            f"On / off: **{d.ratio:.4f}** (target ≥ {RATIO_TARGET}: {verdict}); with the store "
            f"on every frame was {'accounted' if d.on_accounted else '**not all accounted**'}, "
            f"{d.stored_coils} coils stored.",
        ]
    return "\n".join(lines)
