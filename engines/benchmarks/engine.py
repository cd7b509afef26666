"""Engine throughput by batch size, on any backend, against the naive notebook loop.

Per batch size, for `seconds` after a short warm-up, on one engine opened with
``max_batch = max(batches)`` and fed real synthetic frames (a small mix cycled into batches):

- frames/s and the p50/p90/p99 latency of one ``infer()`` call: from handing over the uint8
  batch until probabilities, presence and peak are numpy arrays on the host;
- post-processing of every frame of the batch with the card's thresholds and the ``peak``
  fast path, timed separately (ms per frame), and the end-to-end frames/s of the two run
  one after the other on one thread;
- achieved TFLOP/s: FLOPs per frame (`engines.flops`, convolutions and matrix products only)
  × inference frames/s, and on a GPU its share of the FP16 dense tensor-core peak.

Then the naive loop (`engines.benchmarks.naive`) on the same backend, device and precision;
``speedup`` is the best end-to-end batched frames/s over the naive frames/s (both include
post-processing).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from defectd.engines.benchmarks import machine_summary
from defectd.engines.benchmarks.naive import (
    NAIVE_BACKENDS,
    NaiveTiming,
    onnxruntime_runner,
    time_naive_loop,
    torch_runner,
)
from defectd.engines.engine import Engine
from defectd.engines.errors import InvalidInput
from defectd.engines.files import write_json
from defectd.engines.flops import OnnxNotInstalled, count_flops
from defectd.engines.model_card import ModelCard, read_card
from defectd.engines.postprocess import PostprocessConfig, postprocess
from defectd.engines.selection import EngineConfig, open_engine
from defectd.engines.synth import SynthConfig, SyntheticLine

SUITE = "engine"
# FP16 dense tensor-core peak, TFLOP/s, from NVIDIA's datasheets (dense: without the 2:4
# sparsity factor). Matched in order against the words of the device name; boards named
# "NVL" have other clocks and are left out (no share reported).
FP16_DENSE_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 SXM", 989.4),
    ("H100 HBM3", 989.4),  # SXM boards report themselves as "NVIDIA H100 80GB HBM3"
    ("H200", 989.4),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("T4", 65.0),
)


@dataclass(frozen=True)
class BatchTiming:
    """One batch size: inference timings, post-processing, achieved compute."""

    batch: int
    calls: int  # timed infer() calls
    frames_per_s: float  # inference only: frames / total infer() time
    p50_ms: float  # per infer() call
    p90_ms: float
    p99_ms: float
    post_ms_per_frame: float  # mean, with the peak fast path
    end_to_end_frames_per_s: float  # frames / (infer() + post-processing time)
    tflops: float | None  # achieved, convolutions and matrix products; None: not counted
    fp16_peak_share: float | None  # tflops / the GPU's FP16 dense peak; None: no known GPU


@dataclass(frozen=True)
class EngineBenchResult:
    """Everything `bench engine` measured, with what it ran on."""

    backend: str
    device: str
    precision: str
    model: str
    date: str
    machine: str
    seconds: float
    distinct_frames: int
    gflops_per_frame: float | None
    fp16_peak_tflops: float | None
    batches: tuple[BatchTiming, ...]
    naive: NaiveTiming | None
    notes: tuple[str, ...] = ()
    frame_source: str = "synthetic"  # or the --images folder the frames came from

    @property
    def best(self) -> BatchTiming:
        """The batch size with the highest end-to-end frames/s."""
        return max(self.batches, key=lambda b: b.end_to_end_frames_per_s)

    @property
    def speedup(self) -> float | None:
        """Best end-to-end batched frames/s over naive frames/s; None without a naive run."""
        if self.naive is None:
            return None
        return self.best.end_to_end_frames_per_s / self.naive.frames_per_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "best_batch": self.best.batch, "speedup": self.speedup}


def fp16_peak_tflops(device_name: str) -> float | None:
    """The FP16 dense tensor peak of the GPU called `device_name`, None when not in the table."""
    words = {w.lower() for w in re.split(r"[^0-9A-Za-z]+", device_name) if w}
    if "nvl" in words:
        return None
    for key, tflops in FP16_DENSE_PEAK_TFLOPS:
        if all(w.lower() in words for w in key.split()):
            return tflops
    return None


def gpu_name(device: str) -> str | None:
    """The GPU behind an engine's device string ("cuda:0 NVIDIA H100 …", or just "cuda")."""
    if not device.startswith("cuda"):
        return None
    _, _, name = device.partition(" ")
    if name:
        return name
    try:  # onnxruntime reports "cuda" only; ask torch when it is there
        import torch
    except ImportError:
        return None
    return str(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else None


def synthetic_frames(card: ModelCard, count: int, seed: int) -> npt.NDArray[np.uint8]:
    """`count` synthetic frames of the model's size, count×H×W uint8 (about half defective)."""
    line = SyntheticLine(seed, SynthConfig(height=card.input.height, width=card.input.width))
    return np.stack([line.frame(i).image for i in range(count)])


def image_frames(card: ModelCard, folder: Path, count: int) -> npt.NDArray[np.uint8]:
    """Up to `count` images of exactly the model's size from `folder` (and its sub-folders,
    in name order), count×H×W uint8; InvalidInput when none has that size."""
    shape = card.input.shape
    frames: list[npt.NDArray[np.uint8]] = []
    for path in sorted(folder.rglob("*")):
        if len(frames) == count:
            break
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp"):
            continue
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is not None and image.shape == shape:
            frames.append(np.asarray(image, dtype=np.uint8))
    if not frames:
        raise InvalidInput(
            f"{folder}: no image of the model's {shape[1]}×{shape[0]} input; give a folder of "
            "frames that size (or leave --images out for synthetic frames)"
        )
    return np.stack(frames)


def time_batch(
    engine: Engine,
    pool: npt.NDArray[np.uint8],
    batch: int,
    thresholds: PostprocessConfig,
    seconds: float,
    warmup: int = 2,
) -> tuple[list[float], float]:
    """(infer() seconds of each timed call, total post-processing seconds) for one batch size.

    `warmup` untimed calls first; then calls until `seconds` have passed (at least one).
    """
    offsets = np.arange(batch)

    def call(number: int) -> tuple[float, float]:
        frames = pool[(number * batch + offsets) % len(pool)]
        start = time.perf_counter()
        out = engine.infer(frames)
        inferred = time.perf_counter()
        for k in range(batch):
            postprocess(out.probs[k], out.presence[k], thresholds, out.peak[k])
        return inferred - start, time.perf_counter() - inferred

    for number in range(warmup):
        call(number)
    infer_s: list[float] = []
    post_s = 0.0
    deadline = time.perf_counter() + seconds
    while not infer_s or time.perf_counter() < deadline:
        inferred, posted = call(warmup + len(infer_s))
        infer_s.append(inferred)
        post_s += posted
    return infer_s, post_s


def summarise_batch(
    batch: int,
    infer_s: list[float],
    post_s: float,
    gflops: float | None,
    peak_tflops: float | None,
) -> BatchTiming:
    frames = len(infer_s) * batch
    ms = np.array(infer_s) * 1e3
    fps = frames / sum(infer_s)
    tflops = None if gflops is None else gflops * fps / 1e3
    share = None if tflops is None or peak_tflops is None else tflops / peak_tflops
    return BatchTiming(
        batch=batch,
        calls=len(infer_s),
        frames_per_s=fps,
        p50_ms=float(np.percentile(ms, 50)),
        p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)),
        post_ms_per_frame=post_s * 1e3 / frames,
        end_to_end_frames_per_s=frames / (sum(infer_s) + post_s),
        tflops=tflops,
        fp16_peak_share=share,
    )


def run_engine_bench(
    model_dir: Path | str,
    backend: str = "auto",
    batches: Sequence[int] = (1, 2, 4, 8, 16, 32),
    seconds: float = 5.0,
    threads: int | None = None,
    precision: str | None = None,
    device: str | None = None,
    *,
    naive: bool = True,
    distinct_frames: int = 16,
    seed: int = 31337,
    json_out: Path | None = None,
    plot: Path | None = None,
    progress: bool = True,
    images: Path | None = None,
) -> EngineBenchResult:
    """Measure the engine at each batch size, then the naive loop; see the module docstring."""
    sizes = sorted(set(batches))
    if not sizes or sizes[0] < 1:
        raise ValueError(f"batch sizes must be positive whole numbers, got {list(batches)}")
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    card = read_card(model_dir)
    notes: list[str] = []
    if images is None:
        pool = synthetic_frames(card, distinct_frames, seed)
    else:
        pool = image_frames(card, Path(images), distinct_frames)
    config = EngineConfig(
        backend=backend,
        precision=precision,
        max_batch=sizes[-1],
        opt_batch=min(8, sizes[-1]),
        threads=threads,
        device=device,
        warmup=False,  # each batch size warms up itself before it is timed
    )
    gflops = None
    naive_timing = None
    with tqdm(total=len(sizes), desc="bench engine", unit="case", disable=not progress) as bar:
        with open_engine(card, config) as engine:
            info = engine.info
            if info.backend == "null":
                notes.append("null backend: no model runs, so no FLOPs and no naive loop")
            else:
                gflops = _gflops(card, notes)
            name = gpu_name(info.device)
            peak = fp16_peak_tflops(name) if name else None
            if name and peak is None:
                notes.append(f"{name}: not in the FP16 peak table, share of peak omitted")
            timings = []
            for size in sizes:
                bar.set_postfix_str(f"batch {size}")
                infer_s, post_s = time_batch(engine, pool, size, card.thresholds, seconds)
                timings.append(summarise_batch(size, infer_s, post_s, gflops, peak))
                bar.update()
        # The naive loop runs after the engine is closed: it gets the device to itself.
        if naive and info.backend in NAIVE_BACKENDS:
            bar.total += 1
            bar.set_postfix_str("naive loop")
            where = "cuda" if info.device.startswith("cuda") else "cpu"
            naive_timing = _naive(card, info.backend, info.precision, where, threads, pool, seconds)
            bar.update()
        elif naive and info.backend != "null":
            notes.append(f"{info.backend}: no naive loop (it has no float-input path)")
    result = EngineBenchResult(
        backend=info.backend,
        device=info.device,
        precision=info.precision,
        model=info.model,
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        machine=machine_summary(),
        seconds=seconds,
        distinct_frames=len(pool),
        frame_source="synthetic" if images is None else str(images),
        gflops_per_frame=gflops,
        fp16_peak_tflops=peak,
        batches=tuple(timings),
        naive=naive_timing,
        notes=tuple(notes),
    )
    if json_out is not None:
        write_json(result.to_dict(), Path(json_out))
    if plot is not None:
        from defectd.engines.benchmarks.engine_report import plot_result

        plot_result(result, Path(plot))
    return result


def _gflops(card: ModelCard, notes: list[str]) -> float | None:
    """FLOPs per frame from the model's ONNX file, or None with a note saying why."""
    try:
        count = count_flops(card.onnx_path("fp32" if "fp32" in card.files else "fp16"))
    except OnnxNotInstalled as exc:
        notes.append(f"TFLOP/s omitted: {exc}")
        return None
    if count.unresolved:
        notes.append(f"FLOPs undercounted: no shapes for {', '.join(count.unresolved)}")
    return count.gflops


def _naive(
    card: ModelCard,
    backend: str,
    precision: str,
    device: str,
    threads: int | None,
    pool: npt.NDArray[np.uint8],
    seconds: float,
) -> NaiveTiming:
    frames = list(pool)
    if backend == "onnxruntime":
        with onnxruntime_runner(card, precision, device, threads) as run:
            return time_naive_loop(run, frames, card.thresholds, seconds)
    with torch_runner(card, precision, device) as run:
        return time_naive_loop(run, frames, card.thresholds, seconds)
