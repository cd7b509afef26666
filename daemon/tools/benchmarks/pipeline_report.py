"""The pipeline benchmark's markdown block, as docs/benchmarks.md records it."""

from __future__ import annotations

from defectd.daemon.tools.benchmarks.pipeline import (
    CAPACITY_TARGET_FPS,
    ENGINE_RATIO_TARGET,
    LATENCY_LOAD,
    CapacityRun,
    PipelineBenchResult,
)


def format_markdown(result: PipelineBenchResult) -> str:
    """The markdown block `defectd bench pipeline` prints (docs/benchmarks.md)."""
    null, engine, bare, lat = result.null, result.engine, result.bare, result.latency

    def verdict(ok: bool) -> str:
        return "yes" if ok else "**no**"

    def dropped(run: CapacityRun) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in run.dropped.items()) or "0"

    lines = [
        f"Pipeline: `defectd run` on loopback, simulator (push, raw mono8 1600×256, "
        f"{null.cameras} cameras) and subscriber included; batching.policy block.",
        "",
        "| run | batch | frames/s | target | meets | sent | processed | dropped | lost |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
        f"| (a) null engine, max rate | {null.batch} | {null.frames_per_s:,.0f} "
        f"| ≥ {CAPACITY_TARGET_FPS:,.0f} "
        f"| {verdict(null.frames_per_s >= CAPACITY_TARGET_FPS and null.accounted)} "
        f"| {null.sent:,} | {null.processed:,} | {dropped(null)} | {null.lost:,} |",
        f"| bare engine {bare.backend} ({bare.device}, {bare.precision}), infer only "
        f"| {bare.batch} | {bare.frames_per_s:,.1f} | | | | | | |",
        f"| (b) daemon with {engine.backend}, max rate | {engine.batch} "
        f"| {engine.frames_per_s:,.1f} "
        f"| ≥ {ENGINE_RATIO_TARGET:.2f} × bare = {ENGINE_RATIO_TARGET * bare.frames_per_s:,.1f} "
        f"| {verdict(result.engine_ratio >= ENGINE_RATIO_TARGET and engine.accounted)} "
        f"| {engine.sent:,} | {engine.processed:,} | {dropped(engine)} | {engine.lost:,} |",
        "",
        f"Daemon / bare engine: {result.engine_ratio:.3f} (model {bare.model}; bare engine "
        f"p50 {bare.p50_batch_ms:.1f} ms per batch of {bare.batch}).  ",
        f"(c) latency capture→publish at {lat.offered_fps:,.1f} frames/s offered "
        f"({LATENCY_LOAD:.0%} of (b)), {lat.frames:,} frames: p50 {lat.p50_ms:.1f} ms, "
        f"p90 {lat.p90_ms:.1f} ms, p99 {lat.p99_ms:.1f} ms, max {lat.max_ms:.1f} ms; bound "
        f"max_wait_ms {lat.max_wait_ms:g} + 2 × {bare.p50_batch_ms:.1f} ms = "
        f"{lat.bound_ms:.1f} ms: {verdict(lat.meets)}.",
    ]
    for note in result.notes:
        lines.append(f"Note: {note}")
    return "\n".join(lines)
