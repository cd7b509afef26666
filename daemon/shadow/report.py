"""What `defectd shadow report` shows: a shadow run's comparison with the live model, summed up.

`summarise` reads a shadow store (`store.ShadowStore`) into a `ShadowSummary`: the run or
runs, per class the `compare.Tally` over every compared frame, how many frames were compared
and the worst disagreements that have a picture (a class one model found and the other did
not first, the largest first; then the lowest per-frame Dice).

`format_table` writes it as a plain-text table for a terminal, one row per class, ending with
a verdict per class (Dice and frame agreement against `DICE_AGREES` and
`FRAME_AGREEMENT_AGREES`); `summary_json` as plain JSON for ``--json``. The picture of it is
`report_picture.report_picture`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defectd.daemon.shadow.compare import ClassAgreement, Tally
from defectd.daemon.shadow.store import Run, ShadowStore, Stored
from defectd.engines.classes import class_name

DICE_AGREES = 0.9  # pixel Dice at or above this: the masks agree
FRAME_AGREEMENT_AGREES = 0.9  # share of frames where both found a class found by either
WORST_KEPT = 20  # disagreements with a picture a summary keeps, worst first
MONTAGE_PICTURES = 6  # of them, the pictures the report picture shows

# The outcomes of one disagreement, worst first.
LIVE_ONLY = "live only"
SHADOW_ONLY = "shadow only"
OVERLAP = "overlap"  # both found the class; their masks overlap by less than half


class NoSuchRun(ValueError):
    """The run asked for is not in the store (the message names the ones that are)."""


@dataclass(frozen=True)
class Disagreement:
    """One class on one frame where the two models disagree (`ClassAgreement.disagrees`)."""

    run_id: int
    camera: str
    seq: int
    capture_ns: int
    class_id: int
    class_name: str
    outcome: str  # LIVE_ONLY, SHADOW_ONLY or OVERLAP
    dice: float  # on this frame: 0 when only one model found the class
    live_px: int
    shadow_px: int
    both_px: int
    picture: str  # relative to the store's directory

    def describe(self) -> str:
        """One short line: the class and how the models differ, e.g. ``2 scratches: live
        only, 512 px``."""
        head = f"{self.class_id} {self.class_name}"
        if self.outcome == LIVE_ONLY:
            return f"{head}: live only, {self.live_px} px"
        if self.outcome == SHADOW_ONLY:
            return f"{head}: shadow only, {self.shadow_px} px"
        return f"{head}: Dice {self.dice:.2f} (live {self.live_px}, shadow {self.shadow_px} px)"


@dataclass(frozen=True)
class ShadowSummary:
    """A shadow store (or one run of it) summed up: what `summarise` returns."""

    directory: Path
    runs: tuple[Run, ...]  # the runs summed, oldest first
    run_id: int | None  # the one asked for; None: every run in the store
    class_names: tuple[str, ...]  # class 1 first (the newest run's)
    tallies: dict[int, Tally]  # per class id, every class of the model
    frames: int  # frames compared (distinct run, camera and seq)
    disagreements: int  # classes on frames where the models disagree
    with_pictures: int  # of them, those with a picture
    worst: tuple[Disagreement, ...]  # up to WORST_KEPT with a picture, worst first

    def name(self, class_id: int) -> str:
        """The name of `class_id` (``class N`` past the names the runs recorded)."""
        return class_name(self.class_names, class_id)

    @property
    def live_model(self) -> str:
        """The live model, or the live models of the runs joined by ``, ``."""
        return ", ".join(distinct(run.live_model for run in self.runs)) or "-"

    @property
    def shadow_model(self) -> str:
        """The shadow model, or the shadow models of the runs joined by ``, ``."""
        return ", ".join(distinct(run.shadow_model for run in self.runs)) or "-"

    @property
    def line(self) -> str:
        """The line (or the lines of the runs joined by ``, ``)."""
        return ", ".join(distinct(run.line for run in self.runs)) or "-"

    @property
    def share(self) -> str:
        """The share of frames compared, as the runs set it: ``10%`` (or ``5%, 10%``)."""
        return ", ".join(distinct(percent_text(run.share) for run in self.runs)) or "-"

    @property
    def mixed_models(self) -> bool:
        """The runs summed compare more than one pair of models."""
        return len({(run.live_model, run.shadow_model) for run in self.runs}) > 1


def summarise(
    store: ShadowStore, run_id: int | None = None, *, keep: int = WORST_KEPT
) -> ShadowSummary:
    """`store` summed up: run `run_id`, or every run. NoSuchRun when the store has no such
    run (or no run at all)."""
    every = store.runs()
    runs = _chosen_runs(store.directory, every, run_id)
    rows = store.comparisons(run_id)
    names = runs[-1].classes if runs else ()
    tallies = {class_id: Tally() for class_id in range(1, len(names) + 1)}
    frames: set[tuple[int, str, int]] = set()
    found: list[Disagreement] = []
    disagreements = 0
    for stored in rows:
        frames.add((stored.run_id, stored.camera, stored.seq))
        tallies.setdefault(stored.row.class_id, Tally()).add(stored.row)
        if not stored.row.disagrees:
            continue
        disagreements += 1
        if stored.picture is not None:
            found.append(_disagreement(stored, class_name(names, stored.row.class_id)))
    found.sort(key=_badness)
    return ShadowSummary(
        directory=store.directory,
        runs=runs,
        run_id=run_id,
        class_names=names,
        tallies=dict(sorted(tallies.items())),
        frames=len(frames),
        disagreements=disagreements,
        with_pictures=len(found),
        worst=tuple(found[:keep]),
    )


def _chosen_runs(directory: Path, runs: Sequence[Run], run_id: int | None) -> tuple[Run, ...]:
    if not runs:
        raise NoSuchRun(
            f"{directory} holds no shadow run yet: the daemon begins one when it starts (or "
            "reloads) with shadow.model_dir set"
        )
    if run_id is None:
        return tuple(runs)
    chosen = tuple(run for run in runs if run.run_id == run_id)
    if not chosen:
        ids = ", ".join(str(run.run_id) for run in runs)
        raise NoSuchRun(
            f"no shadow run {run_id} in {directory}; its runs are {ids}: name one with --run, "
            "or leave --run out for all"
        )
    return chosen


def frame_dice(row: ClassAgreement) -> float:
    """Pixel Dice of one class on one frame (1 when neither model marked a pixel)."""
    total = row.live_px + row.shadow_px
    return 2 * row.both_px / total if total else 1.0


def _disagreement(stored: Stored, name: str) -> Disagreement:
    row = stored.row
    if row.live_found and not row.shadow_found:
        outcome = LIVE_ONLY
    elif row.shadow_found and not row.live_found:
        outcome = SHADOW_ONLY
    else:
        outcome = OVERLAP
    assert stored.picture is not None
    return Disagreement(
        run_id=stored.run_id,
        camera=stored.camera,
        seq=stored.seq,
        capture_ns=stored.capture_ns,
        class_id=row.class_id,
        class_name=name,
        outcome=outcome,
        dice=frame_dice(row),
        live_px=row.live_px,
        shadow_px=row.shadow_px,
        both_px=row.both_px,
        picture=stored.picture,
    )


def _badness(d: Disagreement) -> tuple[int, float, int]:
    """Sort key, worst first: one model alone before overlaps, then the lowest Dice, then
    the most pixels in play."""
    return (0 if d.outcome != OVERLAP else 1, d.dice, -(d.live_px + d.shadow_px))


# -- verdicts -------------------------------------------------------------------------------


def problems(tally: Tally) -> tuple[str, ...]:
    """Why the shadow model disagrees on a class (empty: it agrees, or nothing to compare):
    ``Dice 0.41 < 0.90`` and/or ``frame agreement 0.50 < 0.90``."""
    found = []
    if tally.dice is not None and tally.dice < DICE_AGREES:
        found.append(f"Dice {tally.dice:.2f} < {DICE_AGREES:.2f}")
    agreement = tally.frame_agreement
    if agreement is not None and agreement < FRAME_AGREEMENT_AGREES:
        found.append(f"frame agreement {agreement:.2f} < {FRAME_AGREEMENT_AGREES:.2f}")
    return tuple(found)


def compared(tally: Tally) -> bool:
    """Either model found the class on some frame."""
    return tally.found_both + tally.live_only + tally.shadow_only > 0


def verdict(summary: ShadowSummary) -> tuple[str, ...]:
    """The verdict lines: one per class the shadow model disagrees on, or one saying it
    agrees on every class; then the classes neither model found, if any."""
    lines = []
    for class_id, tally in summary.tallies.items():
        reasons = problems(tally)
        if reasons:
            lines.append(
                f"class {class_id} {summary.name(class_id)}: the shadow model disagrees: "
                f"{', '.join(reasons)} (frames: live only {tally.live_only}, shadow only "
                f"{tally.shadow_only}, both {tally.found_both}; recall {value_text(tally.recall)}, "
                f"precision {value_text(tally.precision)})"
            )
    if summary.frames == 0:
        return ("no frames compared yet: no verdict",)
    if not lines:
        lines.append("the shadow model agrees with the live one on every class")
    unseen = [
        f"{class_id} {summary.name(class_id)}"
        for class_id, tally in summary.tallies.items()
        if not compared(tally)
    ]
    if unseen:
        lines.append(f"not compared (neither model found them): class {', '.join(unseen)}")
    return tuple(lines)


# -- the table and JSON ---------------------------------------------------------------------

_COLUMNS = ("found", "both", "live only", "shadow only", "agree", "Dice", "recall", "precision")


def format_table(summary: ShadowSummary) -> str:
    """The summary as plain text: a header naming the models, one row per class, the worst
    disagreements' pictures, the verdict."""
    lines = [_header(summary)]
    if len(summary.runs) > 1:
        lines += [f"  {_run_line(run)}" for run in summary.runs]
    if summary.mixed_models:
        lines.append(
            "  note: these runs compare different models; name one with --run ID for its own"
        )
    lines.append("")
    width = max([4, *(len(summary.name(c)) for c in summary.tallies)])
    lines.append(f"{'class':>5}  {'name':<{width}}  " + "  ".join(_COLUMNS))
    for class_id, tally in summary.tallies.items():
        cells = (
            tally.found_both + tally.live_only + tally.shadow_only,
            tally.found_both,
            tally.live_only,
            tally.shadow_only,
            value_text(tally.frame_agreement),
            value_text(tally.dice),
            value_text(tally.recall),
            value_text(tally.precision),
        )
        row = "  ".join(
            f"{cell!s:>{len(title)}}" for cell, title in zip(cells, _COLUMNS, strict=True)
        )
        lines.append(f"{class_id:>5}  {summary.name(class_id):<{width}}  {row}")
    lines += [
        "",
        "found: frames where either model found the class; agree: of those, the share where "
        "both did;",
        "Dice, recall, precision: pixels, against the live model; -: undefined (no pixels).",
    ]
    if summary.worst:
        shown = summary.worst[:10]
        lines += [
            "",
            f"worst disagreements ({len(shown)} of {summary.with_pictures} with a picture):",
        ]
        lines += [
            f"  {d.camera} seq {d.seq} (run {d.run_id}): {d.describe()}  "
            f"{summary.directory / d.picture}"
            for d in shown
        ]
    lines += ["", *verdict(summary)]
    return "\n".join(lines)


def _header(summary: ShadowSummary) -> str:
    if summary.run_id is not None:
        runs = f"shadow run {summary.run_id}"
    elif len(summary.runs) == 1:
        runs = f"shadow run {summary.runs[0].run_id}"
    else:
        runs = f"shadow runs {', '.join(str(run.run_id) for run in summary.runs)}"
    return (
        f"{runs} on {summary.line}: live model {summary.live_model} vs shadow model "
        f"{summary.shadow_model} ({summary.share} of frames); {summary.frames} frames "
        f"compared, {summary.disagreements} disagreements ({summary.with_pictures} with a "
        "picture)"
    )


def _run_line(run: Run) -> str:
    return (
        f"run {run.run_id}: started {time_text(run.started_ns)}, live {run.live_model}, shadow "
        f"{run.shadow_model}, {percent_text(run.share)} of frames"
    )


def summary_json(summary: ShadowSummary) -> dict[str, Any]:
    """The summary as plain JSON (None for what is undefined), for ``--json``."""
    return {
        "directory": str(summary.directory),
        "run_id": summary.run_id,
        "runs": [
            {
                "run_id": run.run_id,
                "started_ns": run.started_ns,
                "line": run.line,
                "live_model": run.live_model,
                "shadow_model": run.shadow_model,
                "share": run.share,
                "classes": list(run.classes),
            }
            for run in summary.runs
        ],
        "frames": summary.frames,
        "disagreements": summary.disagreements,
        "with_pictures": summary.with_pictures,
        "thresholds": {"dice": DICE_AGREES, "frame_agreement": FRAME_AGREEMENT_AGREES},
        "classes": [
            {
                "class_id": class_id,
                "class_name": summary.name(class_id),
                "frames": tally.frames,
                "found": tally.found_both + tally.live_only + tally.shadow_only,
                "found_both": tally.found_both,
                "live_only": tally.live_only,
                "shadow_only": tally.shadow_only,
                "live_px": tally.live_px,
                "shadow_px": tally.shadow_px,
                "both_px": tally.both_px,
                "dice": tally.dice,
                "recall": tally.recall,
                "precision": tally.precision,
                "frame_agreement": tally.frame_agreement,
                "agrees": not problems(tally),
            }
            for class_id, tally in summary.tallies.items()
        ],
        "worst": [
            {
                "run_id": d.run_id,
                "camera": d.camera,
                "seq": d.seq,
                "capture_ns": d.capture_ns,
                "class_id": d.class_id,
                "class_name": d.class_name,
                "outcome": d.outcome,
                "dice": d.dice,
                "live_px": d.live_px,
                "shadow_px": d.shadow_px,
                "both_px": d.both_px,
                "picture": d.picture,
            }
            for d in summary.worst
        ],
        "verdict": list(verdict(summary)),
    }


def value_text(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}"


def percent_text(share: float) -> str:
    return f"{share * 100:g}%"


def distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def time_text(ns: int) -> str:
    try:
        return dt.datetime.fromtimestamp(ns / 1e9).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"
