"""`bench engine` results for people: the markdown block for docs/benchmarks.md and a PNG."""

from __future__ import annotations

from pathlib import Path

from defectd.engines.benchmarks.engine import EngineBenchResult

PLOT_INSTALL_HINT = "plotting needs matplotlib: pip install 'defectd[train]'"


def plot_result(result: EngineBenchResult, path: Path) -> Path:
    """PNG: frames/s and p99 latency against batch size, the naive loop as a reference line."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise RuntimeError(PLOT_INSTALL_HINT) from exc
    sizes = [b.batch for b in result.batches]
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    speed, latency = figure.subplots(1, 2)
    speed.plot(sizes, [b.frames_per_s for b in result.batches], "o-", label="inference")
    speed.plot(
        sizes,
        [b.end_to_end_frames_per_s for b in result.batches],
        "s--",
        label="inference + post-processing",
    )
    latency.plot(sizes, [b.p99_ms for b in result.batches], "o-", label="p99 per infer() call")
    if result.naive is not None:
        speed.axhline(result.naive.frames_per_s, color="grey", ls=":", label="naive loop")
        latency.axhline(result.naive.p99_ms, color="grey", ls=":", label="naive loop p99 (1 frame)")
    speed.set(xlabel="batch size", ylabel="frames/s", title="throughput")
    latency.set(xlabel="batch size", ylabel="ms", title="p99 latency per batch")
    for axes in (speed, latency):
        axes.set_xscale("log", base=2)
        axes.set_xticks(sizes, [str(s) for s in sizes])
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(
        f"{result.backend} on {result.device}, {result.precision} — {result.model} — "
        f"{result.date[:10]}"
    )
    figure.savefig(path, dpi=120)
    return path


def format_markdown(result: EngineBenchResult) -> str:
    """The markdown table and summary lines `defectd bench engine` prints."""
    lines = [
        f"Engine: {result.backend} on {result.device}, {result.precision}, model {result.model}; "
        f"{result.seconds:g} s per batch size, {result.distinct_frames} "
        + (
            "synthetic frames"
            if result.frame_source == "synthetic"
            else f"frames from {result.frame_source}"
        ),
        "",
        "| batch | frames/s | p50 ms | p99 ms | TFLOP/s | % FP16 peak | post-processing ms/frame |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in result.batches:
        tflops = "" if b.tflops is None else f"{b.tflops:.3g}"
        share = "" if b.fp16_peak_share is None else f"{100 * b.fp16_peak_share:.1f}"
        lines.append(
            f"| {b.batch} | {b.frames_per_s:.1f} | {b.p50_ms:.2f} | {b.p99_ms:.2f} "
            f"| {tflops} | {share} | {b.post_ms_per_frame:.3f} |"
        )
    summary = []
    if result.gflops_per_frame is not None:
        summary.append(f"FLOPs per frame: {result.gflops_per_frame:.2f} GFLOP (conv + matmul).")
    if result.fp16_peak_tflops is not None:
        summary.append(
            f"FP16 dense tensor peak: {result.fp16_peak_tflops:g} TFLOP/s "
            "(NVIDIA datasheet, no sparsity)."
        )
    if result.naive is not None and result.speedup is not None:
        best = result.best
        summary.append(
            "Naive notebook loop (1 frame per call, float RGB input, full maps to the host, "
            f"post-processing without the peak fast path): {result.naive.frames_per_s:.1f} "
            f"frames/s, p50 {result.naive.p50_ms:.2f} ms, p99 {result.naive.p99_ms:.2f} ms."
        )
        summary.append(
            f"Batched, best: batch {best.batch}, {best.end_to_end_frames_per_s:.1f} frames/s "
            f"with post-processing = {result.speedup:.1f}× the naive loop."
        )
    summary += [f"Note: {note}" for note in result.notes]
    if summary:
        lines += ["", "  \n".join(summary)]  # two trailing spaces: markdown line breaks
    return "\n".join(lines)
