"""A coil's grade from the config's rules.

``coils.grades`` lists the grades best first (``[A, B, reject]``); each rule names a grade,
optionally a class, and one limit:

    {grade: B, class: scratches, count_over: 3}        # more than 3 scratches
    {grade: B, per_100m_over: 5}                       # any class: density per 100 m
    {grade: reject, class: holes, largest_mm2_over: 100}
    {grade: reject, gap_m_over: 50}                    # too much strip not inspected

The coil gets the worst grade of the rules it breaks (the first grade when it breaks none);
every broken rule is kept as a reason, so a report says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from defectd.daemon.coils.model import ClassCount

METRICS = (
    "count_over",
    "per_100m_over",
    "per_m2_over",
    "area_mm2_over",
    "largest_mm2_over",
    "gap_m_over",
)


@dataclass(frozen=True)
class GradeRule:
    """One limit: breaking it gives the coil at least `grade`."""

    grade: str
    metric: str  # one of METRICS
    limit: float
    class_name: str | None = None  # None: all classes together (gap_m_over: always None)

    def to_mapping(self) -> dict[str, object]:
        """The rule as the config writes it."""
        out: dict[str, object] = {"grade": self.grade}
        if self.class_name is not None:
            out["class"] = self.class_name
        out[self.metric] = self.limit
        return out

    def describe(self, value: float) -> str:
        what = self.class_name or ("strip" if self.metric == "gap_m_over" else "all classes")
        name = self.metric.removesuffix("_over")
        return f"{what} {name} {value:g} > {self.limit:g} → {self.grade}"


@dataclass(frozen=True)
class GradeRules:
    """The grades best first and the rules."""

    grades: tuple[str, ...] = ("A", "B", "reject")
    rules: tuple[GradeRule, ...] = ()

    def __post_init__(self) -> None:
        if not self.grades or len(set(self.grades)) != len(self.grades):
            raise ValueError(f"grades must be distinct names, best first; got {self.grades}")
        for rule in self.rules:
            if rule.grade not in self.grades:
                raise ValueError(
                    f"rule grade {rule.grade!r} is not one of the grades {list(self.grades)}"
                )
            if rule.metric not in METRICS:
                raise ValueError(f"rule metric {rule.metric!r}: use one of {', '.join(METRICS)}")
            if rule.metric == "gap_m_over" and rule.class_name is not None:
                raise ValueError("gap_m_over is about the strip, not a class: leave out class")

    def grade(
        self,
        classes: Sequence[ClassCount],
        largest_mm2: Mapping[str, float],
        gap_m: float,
    ) -> tuple[str, tuple[str, ...]]:
        """The coil's grade and the broken rules, from its class counts, its largest defect
        per class (mm²) and its metres in coverage gaps."""
        worst, reasons = 0, []
        for rule in self.rules:
            value = _value(rule, classes, largest_mm2, gap_m)
            if value > rule.limit:
                reasons.append(rule.describe(value))
                worst = max(worst, self.grades.index(rule.grade))
        return self.grades[worst], tuple(reasons)


def _value(
    rule: GradeRule,
    classes: Sequence[ClassCount],
    largest_mm2: Mapping[str, float],
    gap_m: float,
) -> float:
    if rule.metric == "gap_m_over":
        return gap_m
    chosen = [c for c in classes if rule.class_name in (None, c.class_name)]
    if rule.metric == "largest_mm2_over":
        names = {c.class_name for c in chosen}
        return max((v for k, v in largest_mm2.items() if k in names), default=0.0)
    attribute = {
        "count_over": "count",
        "per_100m_over": "per_100m",
        "per_m2_over": "per_m2",
        "area_mm2_over": "area_mm2",
    }[rule.metric]
    return float(sum(getattr(c, attribute) for c in chosen))


def parse_rules(grades: Sequence[str], rules: Sequence[Mapping[str, object]]) -> GradeRules:
    """`GradeRules` from the config's lists; ValueError naming the bad entry."""
    parsed = []
    for index, entry in enumerate(rules):
        where = f"rules[{index}]"
        entry = dict(entry)
        grade = entry.pop("grade", None)
        class_name = entry.pop("class", None)
        metrics = [key for key in entry if key in METRICS]
        unknown = [key for key in entry if key not in METRICS]
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {', '.join(unknown)}; a rule has grade, class and "
                f"one of {', '.join(METRICS)}"
            )
        if not isinstance(grade, str) or len(metrics) != 1:
            raise ValueError(f"{where}: needs a grade and exactly one of {', '.join(METRICS)}")
        limit = entry[metrics[0]]
        if isinstance(limit, bool) or not isinstance(limit, int | float) or limit < 0:
            raise ValueError(f"{where}.{metrics[0]}: a number ≥ 0, got {limit!r}")
        if class_name is not None and not isinstance(class_name, str):
            raise ValueError(f"{where}.class: a class name, got {class_name!r}")
        parsed.append(GradeRule(grade, metrics[0], float(limit), class_name))
    try:
        return GradeRules(tuple(grades), tuple(parsed))
    except ValueError as exc:
        raise ValueError(f"{exc}") from None
