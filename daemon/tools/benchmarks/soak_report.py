"""The soak's figures for people: the markdown block of docs/reliability.md and its plot."""

from __future__ import annotations

from pathlib import Path

from defectd.daemon.tools.benchmarks.soak import RSS_GROWTH_LIMIT, SoakResult


def format_markdown(result: SoakResult, rows: int = 12) -> str:
    """The markdown block `defectd bench soak` prints (docs/reliability.md)."""
    window = result.window

    def yes(ok: bool) -> str:
        return "yes" if ok else "**no**"

    capacity = (
        f"capacity {result.capacity_fps:,.1f} frames/s measured first, "
        if result.capacity_fps is not None
        else ""
    )
    dropped = ", ".join(f"{k} {v:,}" for k, v in result.dropped.items()) or "0"
    lines = [
        f"Soak: `defectd run` on loopback, {result.backend} engine (batch {result.batch}), "
        f"{result.cameras} simulated cameras (push, raw mono8 1600×256, batching.policy block); "
        f"{capacity}offered {result.offered_fps:,.1f} frames/s "
        f"({result.achieved_fps:,.1f} processed per second in the window); warm-up "
        f"{result.warmup_s:g} s, then {result.minutes:g} min measured.",
        "",
        "| t (s) | processes | RSS (MiB) | fds | threads | shm segments | processed |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    step = max(1, len(window) // rows)
    shown = list(window[::step])
    if window and shown[-1] is not window[-1]:
        shown.append(window[-1])
    for s in shown:
        lines.append(
            f"| {s.t_s:,.0f} | {s.processes} | {s.rss_bytes / 2**20:,.1f} | {s.fds} "
            f"| {s.threads} | {s.shm_segments} | {s.processed:,} |"
        )
    lines += [
        "",
        "| check | measured | limit | meets |",
        "|---|---:|---:|---|",
        f"| RSS growth over the window | {result.rss_growth:+.2%} | ≤ {RSS_GROWTH_LIMIT:.0%} "
        f"| {yes(result.rss_growth <= RSS_GROWTH_LIMIT)} |",
        f"| open fds growth | {result.fd_growth:+d} | 0 | {yes(result.fd_growth <= 0)} |",
        f"| shm segments growth | {result.shm_growth:+d} | 0 | {yes(result.shm_growth <= 0)} |",
        f"| threads growth | {result.thread_growth:+d} | (informative) | |",
        f"| shm segments left after exit | {result.shm_left_after_exit} | 0 "
        f"| {yes(result.shm_left_after_exit == 0)} |",
        f"| exit status after SIGTERM | {result.exit_status} | 0 "
        f"| {yes(result.exit_status == 0)} |",
        "",
        f"Frames in the soak phase: sent {result.sent:,}, received {result.received:,}, "
        f"processed {result.processed:,}, dropped {dropped}, lost in transport {result.lost:,}. "
        f"Samples: {len(result.samples)} ({len(window)} after warm-up).",
    ]
    lines += [f"Note: {note}" for note in result.notes]
    return "\n".join(lines)


def plot_soak(result: SoakResult, path: Path) -> Path:
    """PNG: RSS, fds and threads of the daemon's tree over time, the warm-up shaded."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise RuntimeError("plotting needs matplotlib: pip install 'defectd[train]'") from exc
    t = [s.t_s for s in result.samples]
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    memory, handles = figure.subplots(1, 2)
    memory.plot(t, [s.rss_bytes / 2**20 for s in result.samples], "-", label="RSS (tree)")
    memory.set(xlabel="s", ylabel="MiB", title="resident memory")
    handles.plot(t, [s.fds for s in result.samples], "-", label="open fds")
    handles.plot(t, [s.threads for s in result.samples], "--", label="threads")
    handles.plot(t, [s.shm_segments for s in result.samples], ":", label="shm segments")
    handles.set(xlabel="s", title="descriptors, threads, segments")
    for axes in (memory, handles):
        axes.axvspan(0, result.warmup_s, color="grey", alpha=0.15, label="warm-up")
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(
        f"defectd soak: {result.offered_fps:,.0f} frames/s offered, {result.backend}, "
        f"{result.machine}",
        fontsize=9,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
