"""Cross-validation folders of a small Severstal-layout set: every frame scored once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectd.daemon.cli import main
from defectd.engines.datasets.folds import deal, read_folds, write_folds
from defectd.engines.errors import InvalidInput, InvalidSetting
from defectd.engines.severstal import SeverstalDataset


def test_deal_spreads_each_class_combination_over_the_folds() -> None:
    classes = {f"{i:02d}": ((1,) if i < 8 else (3,)) for i in range(12)}
    parts = deal(classes, 4, seed=1)
    assert sorted(i for part in parts for i in part) == sorted(classes)
    assert all(sum(classes[i] == (1,) for i in part) == 2 for part in parts)
    with pytest.raises(InvalidSetting, match="more than the 12 images"):
        deal(classes, 13, seed=1)


def test_folds_are_severstal_folders_of_links_and_each_frame_is_tested_once(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "folds"
    assert main(["dataset", "folds", str(tiny_data), "--folds", "3", "--out", str(out)]) == 0
    assert "fold-3: train 16 frames, test 8" in capsys.readouterr().out
    source = SeverstalDataset(tiny_data)
    tested: list[str] = []
    for number in (1, 2, 3):
        train = SeverstalDataset(out / f"fold-{number}" / "train")
        test = SeverstalDataset(out / f"fold-{number}" / "test")
        assert not set(train.image_ids) & set(test.image_ids)
        assert len(train) + len(test) == len(source)
        tested += test.image_ids
        for image_id in test.image_ids:
            assert (test.images_dir / image_id).is_symlink()
            assert (test.load_masks(image_id) == source.load_masks(image_id)).all()
    assert sorted(tested) == sorted(source.image_ids)
    listing = json.loads((out / "folds.json").read_text(encoding="utf-8"))
    assert [f["fold"] for f in listing["folds"]] == [1, 2, 3]
    assert [(f.number, len(f.train), len(f.test)) for f in read_folds(out)] == [
        (1, 16, 8),
        (2, 16, 8),
        (3, 16, 8),
    ]
    with pytest.raises(InvalidInput, match="already exists"):
        write_folds(tiny_data, 3, 0, out)


def test_read_folds_names_the_command_that_makes_them(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="defectd dataset folds"):
        read_folds(tmp_path)
    (tmp_path / "folds.json").write_text('{"folds": [{"fold": 1}]}', encoding="utf-8")
    with pytest.raises(InvalidInput, match="not a folds listing"):
        read_folds(tmp_path)
