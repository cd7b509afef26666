"""Cross-fitted thresholds: a fold's thresholds come from the other folds' frames only."""

from __future__ import annotations

import numpy as np
import pytest

from defectd.engines.errors import InvalidInput
from defectd.training.crossfit import FoldOutput, crossfit
from defectd.training.tune import Tuner


def _frame(
    fold: int, index: int, present: tuple[bool, bool], presence: tuple[float, float]
) -> FoldOutput:
    """A 2-class 16×16 frame: a present class has a 6×6 square, found with probability 0.9;
    every frame has a faint 0.3 blob of class 2 (a false alarm below a good pixel threshold)."""
    truth = np.zeros((2, 16, 16), np.uint8)
    probs = np.zeros((2, 16, 16), np.float32)
    for c, on in enumerate(present):
        if on:
            truth[c, 4:10, 4:10] = 1
            probs[c, 4:10, 4:10] = 0.9
    probs[1, 12:15, 12:15] = np.maximum(probs[1, 12:15, 12:15], 0.3)
    return FoldOutput(fold, f"f{fold}-{index}", probs, np.asarray(presence, np.float32), truth)


def _outputs() -> list[FoldOutput]:
    outputs = []
    for fold in (1, 2, 3):
        for i in range(4):
            has_one = i % 2 == 0
            # Class 1: the presence score tells defect from clean. Class 2 never occurs;
            # its presence score is high on half of the frames (a head that cries wolf).
            outputs.append(
                _frame(fold, i, (has_one, False), (0.9 if has_one else 0.1, 0.8 * (i % 2)))
            )
    return outputs


def test_each_fold_is_tuned_on_the_other_folds_and_scored_with_its_own_thresholds() -> None:
    outputs = _outputs()
    # Fold 3's frames alone flag class 2 on clean frames: a tuner that saw them would differ.
    fit = crossfit(outputs, num_classes=2)
    assert sorted(fit.thresholds) == [1, 2, 3]
    for fold, chosen in fit.thresholds.items():
        tuner = Tuner(2)
        for o in outputs:
            if o.fold != fold:
                tuner.add(o.probs, o.presence, o.truth)
        assert [r.thresholds for r in chosen] == [r.thresholds for r in tuner.solve()]
    assert sorted(fit.defects) == sorted(o.image_id for o in outputs)
    for o in outputs:
        kept = fit.defects[o.image_id]
        # Class 1 found exactly where it is; class 2's false alarms kept off every frame.
        assert (kept.masks[0] == o.truth[0]).all()
        assert kept.mask(2) is None


def test_the_overall_thresholds_see_every_fold() -> None:
    outputs = _outputs()
    tuner = Tuner(2)
    for o in outputs:
        tuner.add(o.probs, o.presence, o.truth)
    assert [r.thresholds for r in crossfit(outputs, 2).overall] == [
        r.thresholds for r in tuner.solve()
    ]


def test_a_softmax_head_is_searched_by_argmax_class() -> None:
    outputs = _outputs()
    fit = crossfit(outputs, 2, head="softmax")
    for o in outputs:
        assert not (fit.defects[o.image_id].masks.sum(axis=0) > 1).any()


def test_one_fold_is_refused() -> None:
    with pytest.raises(InvalidInput, match="at least two folds"):
        crossfit([_frame(1, 0, (True, False), (0.9, 0.1))], 2)
