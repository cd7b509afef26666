"""Micro-benchmarks behind `defectd bench`: they print and record numbers, they never assert.

Timings on shared machines are noisy, so each case reports the median of many repeats and the
spread (p10/p90); compare cases only within one run.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BenchResult:
    """One measured case: per-call wall time over `repeats` calls."""

    suite: str
    case: str
    repeats: int
    median_ms: float
    p10_ms: float
    p90_ms: float
    target_ms: float | None = None
    note: str = ""

    @property
    def meets_target(self) -> bool | None:
        """True/False against `target_ms`, None when the case has no target."""
        return None if self.target_ms is None else self.median_ms <= self.target_ms


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 3) -> list[float]:
    """Wall time in milliseconds of `repeats` calls of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def summarise(
    suite: str,
    case: str,
    times_ms: list[float],
    target_ms: float | None = None,
    note: str = "",
) -> BenchResult:
    """Reduce raw timings to a BenchResult (median and p10/p90)."""
    ordered = sorted(times_ms)
    deciles = statistics.quantiles(ordered, n=10) if len(ordered) >= 2 else ordered * 9
    return BenchResult(
        suite=suite,
        case=case,
        repeats=len(ordered),
        median_ms=statistics.median(ordered),
        p10_ms=deciles[0],
        p90_ms=deciles[-1],
        target_ms=target_ms,
        note=note,
    )


def machine_summary() -> str:
    """One line naming the machine the numbers were taken on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"


def format_table(results: list[BenchResult]) -> str:
    """A markdown table of results, as recorded in docs/benchmarks.md."""
    lines = [
        "| suite | case | median ms | p10–p90 ms | target ms | meets | note |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in results:
        target = "" if r.target_ms is None else f"{r.target_ms:g}"
        meets = {None: "", True: "yes", False: "**no**"}[r.meets_target]
        lines.append(
            f"| {r.suite} | {r.case} | {r.median_ms:.3f} | {r.p10_ms:.3f}–{r.p90_ms:.3f} "
            f"| {target} | {meets} | {r.note} |"
        )
    return "\n".join(lines)
