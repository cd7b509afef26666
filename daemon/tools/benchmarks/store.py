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
from defectd.daemon.tools.benchmarks.on_off import OnOff, compare_on_off, format_on_off
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
class StoreBenchResult:
    machine: str
    date: str
    writes: tuple[WriteRate, ...]
    daemon: OnOff | None
    stored_coils: int = 0
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
) -> tuple[OnOff, int]:
    """(b): two daemons, store off and on (SQLite), pushed in turn; and the coils stored."""
    database = workdir / "on" / "state" / "defects.db"

    def sections(directory: Path) -> dict[str, dict[str, Any]]:
        return {"store": {"enabled": True, "url": f"sqlite:///{database}"}}

    result = compare_on_off(
        backend=backend,
        seconds=seconds,
        rounds=rounds,
        batch=batch,
        workdir=workdir,
        threads=threads,
        sections=sections,
    )
    coils = 0
    if database.exists():
        store = open_store(f"sqlite:///{database}")
        coils = len(store.coils(limit=100_000))
        store.close()
    return result, coils


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
    on, coils = (
        on_off(backend, seconds, rounds, daemon_batch, workdir, threads)
        if daemon
        else (
            None,
            0,
        )
    )
    return StoreBenchResult(machine_summary(), dt.date.today().isoformat(), writes, on, coils)


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
        lines += ["", *format_on_off(result.daemon, "store", RATIO_TARGET,
                                     f", {result.stored_coils} coils stored")]  # fmt: skip
    return "\n".join(lines)
