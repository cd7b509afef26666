"""Checking an engine against a model's golden outputs (`engines.golden` writes and reads them).

`check_golden` runs the stored frames through any engine and compares presence and peak
(within a tolerance for the precision), the classes found per frame, and each defect's mask
(Dice) and area; every failure names frame, class and figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from defectd.engines import parity
from defectd.engines.engine import Engine
from defectd.engines.golden import (
    GoldenDefect,
    GoldenError,
    GoldenFrame,
    Shape,
    observe,
    read_golden,
    remake_hint,
)
from defectd.engines.model_card import read_card
from defectd.engines.scoring import dice

# Against the reference on the same machine an engine is held to parity.TOLERANCE. Golden
# numbers were written on another machine (another CPU, another ONNX Runtime), so FP32 gets
# 1e-3; FP16 keeps parity's bound, which already covers FP16 against FP32.
TOLERANCE = {"fp32": 1e-3, "fp16": parity.TOLERANCE["fp16"]}


MIN_DICE = 0.99


MAX_AREA_CHANGE = 0.01  # relative


class GoldenMismatch(GoldenError):
    """An engine that does not reproduce a model's golden outputs; carries the report."""

    def __init__(self, report: GoldenReport) -> None:
        super().__init__(report.summary())
        self.report = report


@dataclass(frozen=True)
class GoldenReport:
    """How an engine's outputs on the golden frames compare with the stored ones."""

    model_dir: str
    frames: int
    backend: str
    precision: str
    tolerance: float  # on |Δpresence| and |Δpeak|
    max_abs_presence: float
    max_abs_peak: float
    min_dice: float  # over defects found both times; 1.0 when there are none
    max_area_change: float  # relative, over defects found both times
    failures: tuple[str, ...]  # "frame 2 class 3: Dice 0.9100 < 0.99", one per mismatch
    notes: tuple[str, ...] = ()  # likely causes, e.g. thresholds changed since written

    @property
    def ok(self) -> bool:
        return not self.failures

    def describe(self) -> str:
        """One line: verdict and the worst figures."""
        verdict = "ok" if self.ok else f"FAILED ({len(self.failures)} mismatches)"
        return (
            f"golden check {verdict}: {self.model_dir}, {self.frames} frames on "
            f"{self.backend} {self.precision}; max |Δpresence| {self.max_abs_presence:.1e}, "
            f"max |Δpeak| {self.max_abs_peak:.1e} (tolerance {self.tolerance:g}), min Dice "
            f"{self.min_dice:.4f}, largest area change {100 * self.max_area_change:.2f}%"
        )

    def lines(self) -> list[str]:
        """The full report: the summary line, every failure, then the notes."""
        return [
            self.describe(),
            *(f"  {failure}" for failure in self.failures),
            *(f"note: {note}" for note in self.notes),
        ]

    def summary(self, first: int = 3) -> str:
        """One line for an error message: the failure count and the first failures."""
        if self.ok:
            return self.describe()
        shown = "; ".join(self.failures[:first])
        more = len(self.failures) - first
        tail = f"; … {more} more" if more > 0 else ""
        hint = f" ({self.notes[0]})" if self.notes else ""
        return (
            f"{len(self.failures)} golden mismatch(es) for {self.model_dir} on {self.backend} "
            f"{self.precision}: {shown}{tail}{hint}"
        )


def check_golden(
    engine: Engine, model_dir: Path | str, tolerance: float | None = None
) -> GoldenReport:
    """Run the golden frames of `model_dir` through `engine` at the card's thresholds and
    compare with the stored outputs.

    `tolerance` on |Δpresence| and |Δpeak| defaults to `TOLERANCE` for the engine's precision;
    each defect must be found again with Dice ≥ `MIN_DICE` and area within `MAX_AREA_CHANGE`.
    """
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    golden = read_golden(model_dir)
    spec = engine.input
    if golden.frames.shape[1:] != (spec.channels, spec.height, spec.width):
        raise GoldenError(
            f"golden frames of {model_dir} are {'×'.join(map(str, golden.frames.shape[1:]))}, "
            f"the engine takes {spec.channels}×{spec.height}×{spec.width}: {remake_hint(model_dir)}"
        )
    if tolerance is None:
        tolerance = TOLERANCE[engine.info.precision]
    observed = observe(engine, golden.frames, card.thresholds)
    retuned = (
        "the card's thresholds differ from those the golden outputs were written with (tuned "
        f"since?); if the new thresholds are meant, run `defectd golden write --model {model_dir}`"
    )
    figures = _Figures()
    for index, (want, got) in enumerate(zip(golden.expected, observed, strict=True)):
        figures.compare(index, want, got, tolerance, spec.shape)
    return GoldenReport(
        model_dir=str(model_dir),
        frames=len(observed),
        backend=engine.info.backend,
        precision=engine.info.precision,
        tolerance=tolerance,
        max_abs_presence=figures.worst["presence"],
        max_abs_peak=figures.worst["peak"],
        min_dice=figures.dice,
        max_area_change=figures.area_change,
        failures=tuple(figures.failures),
        notes=(retuned,) if card.thresholds != golden.thresholds else (),
    )


@dataclass
class _Figures:
    """The worst figures so far and the failures, gathered frame by frame."""

    worst: dict[str, float] = field(default_factory=lambda: {"presence": 0.0, "peak": 0.0})
    dice: float = 1.0
    area_change: float = 0.0
    failures: list[str] = field(default_factory=list)

    def compare(
        self, index: int, want: GoldenFrame, got: GoldenFrame, tolerance: float, shape: Shape
    ) -> None:
        if len(got.presence) != len(want.presence):
            self.failures.append(
                f"frame {index}: {len(got.presence)} classes, golden has {len(want.presence)}"
            )
            return
        for i in range(len(want.presence)):
            where = f"frame {index} class {i + 1}"
            for name, wanted, measured in (
                ("presence", want.presence[i], got.presence[i]),
                ("peak", want.peak[i], got.peak[i]),
            ):
                delta = abs(measured - wanted)
                self.worst[name] = max(self.worst[name], delta)
                if delta > tolerance:
                    self.failures.append(
                        f"{where}: {name} {measured:.4f} vs golden {wanted:.4f} "
                        f"(|Δ| {delta:.1e} > {tolerance:g})"
                    )
            self._compare_defect(where, want.defect(i + 1), got.defect(i + 1), shape)

    def _compare_defect(
        self, where: str, want: GoldenDefect | None, got: GoldenDefect | None, shape: Shape
    ) -> None:
        if want is None or got is None:
            if want is not None:
                self.failures.append(f"{where}: defect missing (golden: {want.area} px)")
            elif got is not None:
                self.failures.append(f"{where}: unexpected defect of {got.area} px (golden: none)")
            return
        change = abs(got.area - want.area) / max(want.area, 1)
        self.area_change = max(self.area_change, change)
        if change > MAX_AREA_CHANGE:
            self.failures.append(
                f"{where}: area {got.area} px vs golden {want.area} px "
                f"({100 * change:.2f}% > {100 * MAX_AREA_CHANGE:g}%)"
            )
        overlap = dice(want.rle, got.rle, shape)
        self.dice = min(self.dice, overlap)
        if overlap < MIN_DICE:
            self.failures.append(f"{where}: Dice {overlap:.4f} < {MIN_DICE:g}")
