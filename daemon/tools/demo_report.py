"""The demo's summary for people: what was sent, processed, found and how well it scored."""

from __future__ import annotations

from defectd.daemon.tools.demo import DemoSummary


def format_summary(summary: DemoSummary) -> str:
    """The summary as plain text lines for the terminal."""
    dropped = ", ".join(f"{reason} {n:,}" for reason, n in summary.dropped.items() if n) or "none"
    lat, inside = summary.latency_ms, summary.daemon_latency_ms
    early = " (stopped early)" if summary.stopped else ""
    lines = [
        f"defectd demo: {summary.cameras} camera(s) × {summary.fps_per_camera:g} fps, "
        f"seed {summary.seed}, engine {summary.engine}{early}",
        f"frames: sent {summary.sent:,}, received {summary.received:,}, processed "
        f"{summary.processed:,}, dropped {dropped}, lost in transport {summary.lost:,}; "
        f"summaries received {summary.summaries:,}, messages missed {summary.missed_messages:,}",
        f"rate: {summary.sent_fps:.1f} frames/s sent, {summary.processed_fps:.1f} frames/s "
        f"processed (over {summary.elapsed_s:.1f} s)",
    ]
    if lat:
        lines.append(
            f"latency capture→publish: p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms "
            f"(max {lat['max']:.1f}); inside the daemon p50 {inside['p50']:.1f} ms, "
            f"p99 {inside['p99']:.1f} ms"
        )
    if summary.mean_dice is not None:
        lines.append(
            f"score over {summary.scored_frames:,} processed frames against the simulator's "
            f"truth: Kaggle mean Dice {summary.mean_dice:.4f}"
        )
        lines.append(
            f"  {'class':<18} {'events':>7} {'true':>6} {'found':>6} {'dice':>7} {'recall':>7}"
        )
        for c in summary.classes:
            recall = "-" if c.recall is None else f"{c.recall:.3f}"
            lines.append(
                f"  {c.class_id} {c.name:<16} {c.events:>7,} {c.true_images:>6,} "
                f"{c.predicted_images:>6,} {c.dice:>7.4f} {recall:>7}"
            )
    if summary.coils:
        lines.append("coils (defect store; a report folder each, `defectd coils report`):")
        lines.append(
            f"  {'coil':<12} {'grade':<7} {'m':>7} {'not seen m':>10} {'defects':>8}  report"
        )
        for coil in summary.coils:
            lines.append(
                f"  {coil.coil_id:<12} {coil.grade:<7} {coil.inspected_m:>7.2f} "
                f"{coil.gap_m:>10.2f} {coil.defects:>8}  {coil.report}"
            )
    for note in summary.notes:
        lines.append(f"note: {note}")
    lines.append(
        f"daemon exit status {summary.daemon_exit}; log {summary.daemon_log}; "
        f"config {summary.config}; truth {summary.truth_csv}"
    )
    return "\n".join(lines)
