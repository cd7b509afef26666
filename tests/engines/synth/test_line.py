"""SyntheticLine: determinism, shapes, exclusive labels, config validation, image ids."""

from __future__ import annotations

import numpy as np
import pytest

from defectd.engines.synth import SynthConfig, SyntheticLine, image_id


@pytest.fixture(scope="module")
def line() -> SyntheticLine:
    return SyntheticLine(seed=11)


def _same(a: object, b: object) -> bool:
    return (
        all(
            np.array_equal(getattr(a, name), getattr(b, name))
            for name in ("image", "masks", "marks")
        )
        and a.image_id == b.image_id
    )  # type: ignore[attr-defined]


def test_same_seed_and_index_give_identical_frames(line: SyntheticLine) -> None:
    other = SyntheticLine(seed=11)
    for index in (0, 3, 1234):
        assert _same(line.frame(index), other.frame(index))


def test_frames_do_not_depend_on_call_order(line: SyntheticLine) -> None:
    later, earlier = line.frame(7), line.frame(3)
    fresh = SyntheticLine(seed=11)
    assert _same(fresh.frame(3), earlier)
    assert _same(fresh.frame(7), later)


def test_frame_equals_the_matching_item_of_frames(line: SyntheticLine) -> None:
    batch = list(line.frames(10))
    assert [f.index for f in batch] == list(range(10))
    assert _same(line.frame(5), batch[5])
    assert _same(line.frame(12), next(line.frames(1, start=12)))


def test_different_seeds_differ(line: SyntheticLine) -> None:
    other = SyntheticLine(seed=12)
    assert not np.array_equal(line.frame(0).image, other.frame(0).image)
    assert line.frame(0).image_id != other.frame(0).image_id


def test_shapes_dtypes_and_binary_masks(line: SyntheticLine) -> None:
    frame = line.frame(1)
    assert frame.image.shape == (256, 1600) and frame.image.dtype == np.uint8
    assert frame.masks.shape == (4, 256, 1600) and frame.masks.dtype == np.uint8
    assert frame.marks.shape == (256, 1600) and frame.marks.dtype == np.uint8
    assert set(np.unique(frame.masks)) <= {0, 1}
    assert 60 < frame.image.mean() < 180


def test_no_pixel_in_two_classes_and_marks_off_labels(line: SyntheticLine) -> None:
    labelled = 0
    for frame in line.frames(300):
        per_pixel = frame.masks.sum(axis=0, dtype=np.uint8)
        assert per_pixel.max() <= 1, f"frame {frame.index} has a pixel in two classes"
        assert not np.any(frame.marks & per_pixel), f"frame {frame.index}: mark on a label"
        assert frame.classes == tuple(c + 1 for c in range(4) if frame.masks[c].any())
        labelled += bool(frame.classes)
    assert labelled > 100


def test_other_frame_sizes_work() -> None:
    frame = SyntheticLine(0, SynthConfig(height=128, width=512, defect_free_share=0.0)).frame(0)
    assert frame.image.shape == (128, 512) and frame.masks.shape == (4, 128, 512)
    assert frame.classes


def test_image_ids_are_kaggle_like_and_unique() -> None:
    ids = [image_id(5, i) for i in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 13 and i.endswith(".jpg") and int(i[:9], 16) >= 0 for i in ids[:50])
    assert all(i[:9] == i[:9].lower() for i in ids[:50])
    with pytest.raises(ValueError, match="index"):
        image_id(5, -1)


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({"height": 10}, "at least 64"),
        ({"defect_free_share": 1.5}, r"\[0, 1\]"),
        ({"mark_rate": -1.0}, "mark_rate"),
        ({"brightness": 300.0}, "brightness"),
    ],
)
def test_config_errors_name_the_fix(kwargs: dict[str, float], fix: str) -> None:
    with pytest.raises(ValueError, match=fix):
        SynthConfig(**kwargs)  # type: ignore[arg-type]


def test_negative_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        SyntheticLine(-1)


def test_class_share_makes_a_rare_class_common() -> None:
    from defectd.engines.synth.stats import class_set_probabilities

    sets, p = class_set_probabilities(class_share=(2, 0.25))
    assert p.sum() == pytest.approx(1.0)
    assert sum(q for s, q in zip(sets, p, strict=True) if 2 in s) == pytest.approx(0.25)
    _, real = class_set_probabilities()
    others = [i for i, s in enumerate(sets) if 2 not in s]
    # outside class 2 the mix is the real one, rescaled
    assert np.allclose(p[others] / p[others].sum(), real[others] / real[others].sum())
    line = SyntheticLine(5, SynthConfig(class_share=(2, 0.5)))
    with_two = sum(2 in line.frame(i).classes for i in range(60))
    assert 18 <= with_two <= 42  # 30 expected; the real mix gives about 1
    with pytest.raises(ValueError, match=r"use a class in 1\.\.4"):
        SyntheticLine(5, SynthConfig(class_share=(5, 0.5)))
