"""Grades from rules: the worst broken rule wins, every broken rule is a reason."""

from __future__ import annotations

import pytest

from defectd.daemon.coils.grading import GradeRules, parse_rules
from defectd.daemon.coils.model import ClassCount

CLASSES = (
    ClassCount("scratches", 7, 30.0, 3.5, 0.4),
    ClassCount("holes", 1, 120.0, 0.5, 0.05),
)


def test_the_worst_broken_rule_sets_the_grade() -> None:
    rules = parse_rules(
        ["A", "B", "reject"],
        [
            {"grade": "B", "class": "scratches", "count_over": 5},
            {"grade": "B", "per_100m_over": 10},
            {"grade": "reject", "class": "holes", "largest_mm2_over": 100},
            {"grade": "reject", "gap_m_over": 50},
        ],
    )
    grade, reasons = rules.grade(CLASSES, {"holes": 120.0, "scratches": 9.0}, gap_m=2.0)
    assert grade == "reject"
    assert reasons == ("scratches count 7 > 5 → B", "holes largest_mm2 120 > 100 → reject")
    assert rules.grade(CLASSES, {"holes": 50.0}, gap_m=60.0)[0] == "reject"
    assert rules.grade((), {}, 0.0) == ("A", ())
    assert GradeRules().grade(CLASSES, {}, 0.0) == ("A", ())  # no rules: the best grade


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"grade": "C", "count_over": 1}, "not one of the grades"),
        ({"grade": "B"}, "exactly one of"),
        ({"grade": "B", "count_over": 1, "per_m2_over": 2}, "exactly one of"),
        ({"grade": "B", "count": 1}, "unknown key"),
        ({"grade": "B", "count_over": -1}, "number ≥ 0"),
        ({"grade": "B", "class": "x", "gap_m_over": 1}, "leave out class"),
    ],
)
def test_bad_rules_are_refused_with_what_is_wrong(rule: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_rules(["A", "B"], [rule])
