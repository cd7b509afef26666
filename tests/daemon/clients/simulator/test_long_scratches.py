"""Scratches over consecutive frames: continuous across frame edges, in the truth, any order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from defectd.daemon.clients.simulator import SimulatorConfig
from defectd.daemon.clients.simulator.long_scratches import LongScratches
from defectd.daemon.clients.simulator.sources import SynthSource
from defectd.engines.errors import InvalidSetting
from defectd.engines.rle import decode


def test_a_scratch_runs_on_from_one_frame_into_the_next() -> None:
    scratches = LongScratches(seed=0, rate=0.2, shape=(256, 400))
    masks = [scratches.mask(0, frame) for frame in range(40)]
    joins = 0
    for before, after in itertools.pairwise(masks):
        bottom, top = np.flatnonzero(before[-1]), np.flatnonzero(after[0])
        if bottom.size and top.size:
            joins += 1
            assert abs(int(bottom.mean()) - int(top.mean())) <= 3  # continuous across the edge
    assert joins >= 3
    assert np.array_equal(scratches.mask(0, 17), masks[17])  # any order, same pixels
    assert not np.array_equal(scratches.mask(1, 17), masks[17]) or not masks[17].any()
    assert not LongScratches(0, 0.0, (256, 400)).mask(0, 5).any()
    with pytest.raises(ValueError, match="0…1"):
        LongScratches(0, 1.5, (256, 400))


def test_the_synthetic_source_draws_them_into_pixels_and_truth() -> None:
    plain = SynthSource(3, shape=(256, 400), cameras=2)
    long = SynthSource(3, shape=(256, 400), cameras=2, long_scratches=0.5)
    changed = 0
    for index in range(12):
        a, b = plain.picture(index, True), long.picture(index, True)
        assert a.truth is not None and b.truth is not None
        scratch = long.long.mask(index % 2, index // 2) if long.long else None
        assert scratch is not None
        if scratch.any():
            changed += 1
            truth = decode(b.truth[2], (256, 400))
            assert truth[scratch.astype(bool)].all()  # class 3's truth holds the scratch
            image = np.asarray(b.payload).reshape(256, 400)
            assert (
                image[scratch.astype(bool)].mean()
                < np.asarray(a.payload).reshape(256, 400)[scratch.astype(bool)].mean()
            )
        else:
            assert a.truth == b.truth
    assert changed >= 3
    with pytest.raises(InvalidSetting, match="share of frames"):
        SimulatorConfig(long_scratches=2.0)
