"""The CPU engines of each model side by side in one run, as shares of the machine's peak.

For every model, every CPU engine it can run — ONNX Runtime FP32 and INT8, OpenVINO FP32 and
INT8, PyTorch FP32 — is opened at once and timed in `rounds` interleaved rounds (each round
times every engine at every batch size for ``seconds / rounds``), so a noisy neighbour slows
all of them alike and the ratios stay fair. An INT8 engine is run only where the model's INT8
file passed its parity check (`defectd quantize`); what is left out is listed with the reason.

Each figure is also given as a share of this machine's measured peak
(`engines.benchmarks.peak`: the best FP32 and INT8 convolution/GEMM throughput of the same
runtimes on the same threads): model GOP per frame (convolutions and matrix products of the
FP32 graph, `engines.flops`) × frames/s ÷ the peak of the engine's precision.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from defectd.engines.backends.openvino_backend import openvino_available
from defectd.engines.benchmarks import machine_summary
from defectd.engines.benchmarks.engine import _gflops, image_frames, synthetic_frames, time_batch
from defectd.engines.benchmarks.peak import PeakResult, measure_peak
from defectd.engines.engine import Engine
from defectd.engines.errors import InvalidSetting
from defectd.engines.model_card import ModelCard, read_card
from defectd.engines.selection import EngineConfig, check_int8, open_engine

VARIANTS: tuple[tuple[str, str], ...] = (
    ("onnxruntime", "fp32"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    ("openvino", "int8"),
    ("torch", "fp32"),
)
BASELINE = ("onnxruntime", "fp32")


@dataclass(frozen=True)
class VariantFigure:
    """One engine of one model at one batch size."""

    model: str
    backend: str
    precision: str
    batch: int
    calls: int
    frames_per_s: float
    p50_ms: float
    p99_ms: float
    gops: float | None  # achieved GOP/s (FP32 graph's conv + matmul count)
    peak_share: float | None  # gops / the measured peak of this precision

    @property
    def engine(self) -> str:
        return f"{self.backend} {self.precision}"


@dataclass(frozen=True)
class SideBySide:
    """Everything one side-by-side run measured."""

    date: str
    machine: str
    threads: int
    seconds: float
    rounds: int
    frame_source: str
    peak: PeakResult
    figures: tuple[VariantFigure, ...]
    skipped: tuple[str, ...]  # "MODEL: ENGINE: why"
    notes: tuple[str, ...] = ()

    def figure(self, model: str, engine: tuple[str, str], batch: int) -> VariantFigure | None:
        for f in self.figures:
            if f.model == model and (f.backend, f.precision) == engine and f.batch == batch:
                return f
        return None

    def ratio(self, f: VariantFigure) -> float | None:
        """frames/s over ONNX Runtime FP32's, same model and batch."""
        base = self.figure(f.model, BASELINE, f.batch)
        return None if base is None else f.frames_per_s / base.frames_per_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "machine": self.machine,
            "threads": self.threads,
            "seconds": self.seconds,
            "rounds": self.rounds,
            "frame_source": self.frame_source,
            "peak": self.peak.to_dict(),
            "figures": [{**asdict(f), "vs_onnxruntime_fp32": self.ratio(f)} for f in self.figures],
            "skipped": list(self.skipped),
            "notes": list(self.notes),
        }


def runnable(card: ModelCard, backend: str, precision: str) -> str | None:
    """None when this machine can run the engine for `card`, else why not."""
    if backend == "openvino" and not openvino_available():
        return "openvino not installed (pip install 'defectd[openvino]')"
    if backend == "torch" and importlib.util.find_spec("torch") is None:
        return "torch not installed"
    if backend == "torch" and "torch" not in card.files:
        return "the model has no TorchScript file"
    if precision == "int8":
        try:
            check_int8(card, backend)
        except InvalidSetting as exc:
            return str(exc)
    return None


def _say_for(say: Callable[[str], None], model: str, text: str) -> None:
    say(f"{model}: {text}")


def time_interleaved(
    card: ModelCard,
    variants: Sequence[tuple[str, str]],
    pool: npt.NDArray[np.uint8],
    sizes: Sequence[int],
    threads: int,
    seconds_per_case: float,
    rounds: int,
    say: Callable[[str], None] | None = None,
) -> dict[tuple[str, str, int], list[float]]:
    """Open every (backend, precision) engine of `card` at once on the CPU, then time each at
    every batch size of `sizes` for `seconds_per_case` in each of `rounds` interleaved rounds
    (frames cycled from `pool`): the seconds of every ``infer()`` call, keyed (backend,
    precision, batch size). The engines are closed on return."""
    engines: dict[tuple[str, str], Engine] = {}
    calls: dict[tuple[str, str, int], list[float]] = {}
    try:
        for backend, precision in variants:
            config = EngineConfig(
                backend=backend,
                precision=precision,
                max_batch=max(sizes),
                threads=threads,
                device="cpu",
                warmup=False,
            )
            engines[(backend, precision)] = open_engine(card, config)
        for round_number in range(rounds):
            for (backend, precision), engine in engines.items():
                for size in sizes:
                    if say is not None:
                        say(f"{backend} {precision} batch {size}, round {round_number + 1}")
                    infer_s, _ = time_batch(engine, pool, size, card.thresholds, seconds_per_case)
                    calls.setdefault((backend, precision, size), []).extend(infer_s)
    finally:
        for engine in engines.values():
            engine.close()
    return calls


def run_side_by_side(
    models: Sequence[Path],
    batches: Sequence[int] = (1, 8),
    seconds: float = 3.0,
    rounds: int = 3,
    threads: int = 2,
    images: Path | None = None,
    peak_seconds: float = 1.0,
    progress: Callable[[str], None] | None = None,
) -> SideBySide:
    """Measure the peak, then every model's CPU engines (module docstring)."""
    if rounds < 1 or seconds <= 0 or threads < 1:
        raise InvalidSetting("rounds, seconds and threads must be positive")
    sizes = sorted(set(batches))
    say = progress or (lambda _text: None)
    say("peak")
    peak = measure_peak(threads=threads, seconds=peak_seconds)
    figures: list[VariantFigure] = []
    skipped: list[str] = []
    notes: list[str] = []
    for model_dir in models:
        card = read_card(model_dir)
        model = f"{card.name} {card.version}"
        pool = (
            synthetic_frames(card, 16, 31337) if images is None else image_frames(card, images, 16)
        )
        gflops = _gflops(card, notes)
        variants = []
        for backend, precision in VARIANTS:
            why = runnable(card, backend, precision)
            if why is None:
                variants.append((backend, precision))
            else:
                skipped.append(f"{model}: {backend} {precision}: {why}")
        calls = time_interleaved(
            card,
            variants,
            pool,
            sizes,
            threads,
            seconds / rounds,
            rounds,
            functools.partial(_say_for, say, model),
        )
        for (backend, precision, size), infer_s in calls.items():
            fps = size * len(infer_s) / sum(infer_s)
            ms = np.asarray(infer_s) * 1e3
            gops = None if gflops is None else gflops * fps
            best = peak.int8_gops if precision == "int8" else peak.fp32_gops
            figures.append(
                VariantFigure(
                    model=model,
                    backend=backend,
                    precision=precision,
                    batch=size,
                    calls=len(infer_s),
                    frames_per_s=fps,
                    p50_ms=float(np.percentile(ms, 50)),
                    p99_ms=float(np.percentile(ms, 99)),
                    gops=gops,
                    peak_share=None if gops is None or not best else gops / best,
                )
            )
    return SideBySide(
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        machine=machine_summary(),
        threads=threads,
        seconds=seconds,
        rounds=rounds,
        frame_source="synthetic" if images is None else str(images),
        peak=peak,
        figures=tuple(figures),
        skipped=tuple(skipped),
        notes=tuple(notes),
    )


def format_markdown(result: SideBySide) -> str:
    """One table per model: engine, batch, frames/s, p50/p99, GOP/s, share of peak, ratio."""
    fp32, int8 = result.peak.fp32_gops, result.peak.int8_gops
    lines = [
        f"Measured peak on {result.threads} threads: FP32 "
        + (f"{fp32:.1f} GFLOP/s" if fp32 else "—")
        + ", INT8 "
        + (f"{int8:.1f} GOP/s" if int8 else "—")
        + f" (`defectd bench peak`); {result.seconds:g} s per engine and batch in "
        f"{result.rounds} interleaved rounds, {result.frame_source} frames.",
    ]
    for model in dict.fromkeys(f.model for f in result.figures):
        lines += [
            "",
            f"**{model}**",
            "",
            "| engine | batch | frames/s | p50 ms | p99 ms | GOP/s | share of peak | × ORT FP32 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for f in (f for f in result.figures if f.model == model):
            ratio = result.ratio(f)
            lines.append(
                f"| {f.engine} | {f.batch} | {f.frames_per_s:.1f} | {f.p50_ms:.1f} | "
                f"{f.p99_ms:.1f} | {'—' if f.gops is None else f'{f.gops:.1f}'} | "
                f"{'—' if f.peak_share is None else f'{100 * f.peak_share:.0f} %'} | "
                f"{'—' if ratio is None else f'{ratio:.2f}×'} |"
            )
    if result.skipped:
        lines += ["", "Not run: " + "; ".join(result.skipped)]
    if result.notes:
        lines += ["", "Notes: " + "; ".join(dict.fromkeys(result.notes))]
    return "\n".join(lines)


def plot(result: SideBySide, path: Path) -> Path:
    """PNG: frames/s of every engine per model at the largest batch, share of peak on top."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise RuntimeError("plotting needs matplotlib: pip install 'defectd[train]'") from exc
    models = list(dict.fromkeys(f.model for f in result.figures))
    batch = max(f.batch for f in result.figures)
    figure = Figure(figsize=(4 + 3 * len(models), 4.5), layout="constrained")
    axes = figure.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models, strict=True):
        shown = [f for f in result.figures if f.model == model and f.batch == batch]
        bars = ax.bar(
            range(len(shown)),
            [f.frames_per_s for f in shown],
            color=["tab:orange" if f.precision == "int8" else "tab:blue" for f in shown],
        )
        for bar, f in zip(bars, shown, strict=True):
            if f.peak_share is not None:
                ax.annotate(
                    f"{100 * f.peak_share:.0f}% of peak",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
        short = {"onnxruntime": "ONNX RT", "openvino": "OpenVINO", "torch": "torch"}
        ax.set_xticks(
            range(len(shown)), [f"{short.get(f.backend, f.backend)}\n{f.precision}" for f in shown]
        )
        ax.set(title=model, ylabel=f"frames/s at batch {batch}")
        ax.grid(axis="y", alpha=0.3)
    figure.suptitle(
        f"CPU engines side by side, {result.threads} threads — {result.machine} — "
        f"{result.date[:10]}",
        fontsize=9,
    )
    figure.savefig(path, dpi=120)
    return path
