"""What cutting frames into tiles and stitching them back costs: `defectd bench tiling`.

Frames of `frame` (H, W) — synthetic strip of that size — go through an engine of the model's
input two ways, interleaved in `rounds` so both see the same machine:

- **bare**: the engine alone on tiles already cut (tiles/s: what the hardware does);
- **tiled**: `TiledFrames.infer` on whole frames — cut, engine batches, stitch — as the
  daemon's inference stage runs them (frames/s and tiles/s).

``tiled tiles/s ÷ bare tiles/s`` is what tiling keeps of the engine; 1 − that, its cost.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from defectd.engines.benchmarks import machine_summary
from defectd.engines.model_card import read_card
from defectd.engines.selection import EngineConfig, open_engine
from defectd.engines.synth import SynthConfig, SyntheticLine
from defectd.engines.tiled_engine import DEFAULT_OVERLAP, TiledFrames, plan_frames
from defectd.engines.tiler import cut

TARGET_KEPT = 0.90  # the issue's: tiling and stitching cost at most 10% of the tile rate


@dataclass(frozen=True)
class TilingResult:
    """One run of `run_tiling_bench`."""

    date: str
    machine: str
    model: str
    engine: str
    frame: tuple[int, int]  # H, W
    tile: tuple[int, int]
    overlap: int
    tiles_per_frame: int
    frames_per_call: int
    max_batch: int
    seconds: float
    rounds: int
    bare_tiles_per_s: float
    tiled_tiles_per_s: float
    tiled_frames_per_s: float
    tiled_p50_ms: float  # per infer() call of frames_per_call frames
    tiled_p99_ms: float

    @property
    def kept(self) -> float:
        return self.tiled_tiles_per_s / self.bare_tiles_per_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kept": self.kept, "target_kept": TARGET_KEPT}


def _timed(call: Callable[[], object], seconds: float) -> list[float]:
    call()  # warm
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while not times or time.perf_counter() < deadline:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def run_tiling_bench(
    model_dir: Path | str,
    frame: tuple[int, int] = (1024, 4096),
    backend: str = "onnxruntime",
    threads: int | None = 2,
    max_batch: int = 16,
    overlap: int = DEFAULT_OVERLAP,
    seconds: float = 6.0,
    rounds: int = 3,
) -> TilingResult:
    """Bare engine against tiled frames (module docstring)."""
    card = read_card(model_dir)
    plan = plan_frames(frame, card.input.shape, max_batch, overlap)
    line = SyntheticLine(4242, SynthConfig(height=frame[0], width=frame[1]))
    frames = np.stack([line.frame(i).image for i in range(plan.frames_per_call)])
    fill = round(float(card.normalisation.get("mean", 0.0)) * 255.0)
    tiles = np.concatenate([cut(f, plan.grid, fill) for f in frames])
    config = EngineConfig(
        backend=backend, max_batch=max_batch, threads=threads, device="cpu", warmup=False
    )
    bare: list[float] = []
    tiled: list[float] = []
    with open_engine(card, config) as engine:
        runner = TiledFrames(engine, plan, fill)
        batches = [tiles[i : i + max_batch] for i in range(0, len(tiles), max_batch)]
        for _ in range(rounds):
            bare += _timed(lambda: [engine.infer(b) for b in batches], seconds / rounds / 2)
            tiled += _timed(lambda: runner.infer(frames), seconds / rounds / 2)
        described = f"{engine.info.backend} {engine.info.precision} on {engine.info.device}"
    per_call = len(tiles)
    ms = np.asarray(tiled) * 1e3
    return TilingResult(
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        machine=machine_summary(),
        model=f"{card.name} {card.version}",
        engine=described,
        frame=frame,
        tile=card.input.shape,
        overlap=overlap,
        tiles_per_frame=plan.tiles,
        frames_per_call=plan.frames_per_call,
        max_batch=max_batch,
        seconds=seconds,
        rounds=rounds,
        bare_tiles_per_s=per_call * len(bare) / sum(bare),
        tiled_tiles_per_s=per_call * len(tiled) / sum(tiled),
        tiled_frames_per_s=len(frames) * len(tiled) / sum(tiled),
        tiled_p50_ms=float(np.percentile(ms, 50)),
        tiled_p99_ms=float(np.percentile(ms, 99)),
    )


def format_markdown(result: TilingResult) -> str:
    h, w = result.frame
    th, tw = result.tile
    verdict = "met" if result.kept >= TARGET_KEPT else "**missed**"
    return "\n".join(
        [
            f"Frames {w}×{h} of synthetic strip, model {result.model} ({tw}×{th} input), "
            f"{result.engine}, engine max batch {result.max_batch}: {result.tiles_per_frame} "
            f"tiles per frame (overlap ≥ {result.overlap} px), {result.frames_per_call} frame(s) "
            f"per call; {result.seconds:g} s in {result.rounds} interleaved rounds.",
            "",
            "| path | tiles/s | frames/s | p50 ms per call | p99 ms per call |",
            "|---|---:|---:|---:|---:|",
            f"| bare engine on cut tiles | {result.bare_tiles_per_s:.1f} | "
            f"{result.bare_tiles_per_s / result.tiles_per_frame:.2f} | — | — |",
            f"| tiled frames (cut, infer, stitch) | {result.tiled_tiles_per_s:.1f} | "
            f"{result.tiled_frames_per_s:.2f} | {result.tiled_p50_ms:.0f} | "
            f"{result.tiled_p99_ms:.0f} |",
            "",
            f"Tiling keeps **{100 * result.kept:.1f} %** of the bare engine's tile rate (target "
            f"≥ {100 * TARGET_KEPT:.0f} %: {verdict}).",
        ]
    )
