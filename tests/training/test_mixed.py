"""`defectd train --data A --data B:WEIGHT`: parsing, draw shares, the split, a mixed run."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="training needs defectd[train] (torch)")

from defectd.daemon.cli import main  # noqa: E402
from defectd.training.checkpoint import read_last  # noqa: E402
from defectd.training.config import TrainConfig, TrainError  # noqa: E402
from defectd.training.mixed import (  # noqa: E402
    MixedFrames,
    format_source,
    mix_weights,
    parse_source,
)
from defectd.training.sources import open_training_data  # noqa: E402
from tests.training.labelmaps import make_label_map_set  # noqa: E402


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two small Severstal-layout folders from `defectd synth` (12 and 6 frames)."""
    root = tmp_path_factory.mktemp("mixed")
    first, second = root / "synth", root / "real"
    for out, count, seed in ((first, 12, 1), (second, 6, 2)):
        argv = ["synth", "--out", str(out), "--count", str(count), "--seed", str(seed)]
        assert main([*argv, "--force"]) == 0
    return first, second


def test_parse_source_reads_a_weight_after_the_last_colon_only() -> None:
    assert parse_source("data/synth") == ("data/synth", 1.0)
    assert parse_source("real:0.25") == ("real", 0.25)
    assert parse_source("a:b") == ("a:b", 1.0)  # not a number: part of the path
    assert parse_source("a:b:2") == ("a:b", 2.0)
    assert parse_source(format_source("a:3", 0.5)) == ("a:3", 0.5)
    for bad in ("x:0", "x:-1", "x:nan", "x:inf"):
        with pytest.raises(ValueError, match="must be a positive number"):
            parse_source(bad)
    with pytest.raises(ValueError, match="no path"):
        parse_source(":0.5")


def test_the_command_line_refuses_a_bad_weight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for bad in ("x:0", "x:-1"):
        with pytest.raises(SystemExit) as exited:
            main(["train", "--data", "a", "--data", bad, "--out", str(tmp_path / "run")])
        assert exited.value.code == 2
        error = capsys.readouterr().err
        assert "argument --data" in error and "must be a positive number" in error


def test_config_keeps_the_sources_and_reads_old_files(tmp_path: Path) -> None:
    config = TrainConfig(data="a", out=str(tmp_path), extra_data=("b:0.25",), data_weight=2.0)
    values = json.loads(json.dumps(config.to_dict()))
    assert values["extra_data"] == ["b:0.25"]
    assert TrainConfig.from_dict(values) == config
    old = {k: v for k, v in values.items() if k not in ("extra_data", "data_weight")}
    assert TrainConfig.from_dict(old) == TrainConfig(data="a", out=str(tmp_path))
    with pytest.raises(TrainError, match="--data 'b:0'"):
        TrainConfig(data="a", out=str(tmp_path), extra_data=("b:0",))
    with pytest.raises(TrainError, match="weight must be a positive number"):
        TrainConfig(data="a", out=str(tmp_path), data_weight=0.0)


def test_mix_weights_give_each_source_its_share() -> None:
    weights = mix_weights([1.0, 1.0, 1.0, 3.0], [0, 0, 1, 1], [1.0, 3.0])
    assert sum(weights[:2]) == pytest.approx(0.25) and sum(weights[2:]) == pytest.approx(0.75)
    assert weights[3] == pytest.approx(3 * weights[2])  # the balance within a source stays
    assert mix_weights([2.0, 2.0], [0, 0], [1.0, 5.0]) == pytest.approx([0.5, 0.5])


def test_draws_follow_the_weights(sources: tuple[Path, Path]) -> None:
    first, second = sources
    data = open_training_data(first, extra=[format_source(str(second), 0.25)])
    assert isinstance(data.frames, MixedFrames)
    train_ids, _ = data.split(0.25, seed=0)
    weights = torch.tensor(data.sampling_weights(train_ids, 0.75))
    draws = torch.multinomial(weights, 20000, replacement=True, generator=torch.Generator())
    from_second = sum(train_ids[i].startswith("1:") for i in draws.tolist()) / len(draws)
    assert from_second == pytest.approx(0.25 / 1.25, abs=0.02)
    assert [s.share for s in data.mixed_sources()] == pytest.approx([0.8, 0.2])
    assert [s.images for s in data.mixed_sources()] == [12, 6]


def test_one_source_samples_as_it_always_has(sources: tuple[Path, Path]) -> None:
    from defectd.training.data import sampling_weights

    data = open_training_data(sources[0])
    assert not isinstance(data.frames, MixedFrames) and data.mixed_sources() == []
    ids = data.image_ids
    expected = sampling_weights([data.classes(i) for i in ids], data.num_classes, 0.75)
    assert data.sampling_weights(ids, 0.75) == expected


def test_validation_comes_from_the_first_source_only(sources: tuple[Path, Path]) -> None:
    first, second = sources
    data = open_training_data(first, extra=[str(second)])
    own = set(open_training_data(first).image_ids)
    train_ids, val_ids = data.split(0.25, seed=0)
    assert val_ids and set(val_ids) <= own  # the first source's own names, no prefix
    assert len(val_ids) == len(open_training_data(first).split(0.25, seed=0)[1])
    seconds = [i for i in data.image_ids if i.startswith("1:")]
    assert len(seconds) == 6 and set(seconds) <= set(train_ids)
    assert not set(train_ids) & set(val_ids)
    frame = seconds[0]  # a prefixed id reads its own source's pixels and labels
    reader = open_training_data(second).frames
    own_id = frame.removeprefix("1:")
    assert (data.frames.load_image(frame) == reader.load_image(own_id)).all()
    assert (data.frames.load_masks(frame) == reader.load_masks(own_id)).all()
    assert data.classes(frame) == reader.classes(own_id)


def test_a_mixed_run_records_its_sources_and_resumes(
    sources: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = sources
    run = tmp_path / "run"
    argv = [
        "train", "--data", str(first), "--data", f"{second}:0.5", "--out", str(run),
        "--encoder-width", "0.125", "--decoder-channels", "16", "--crop", "128x256",
        "--steps-per-epoch", "2", "--batch-size", "4", "--val-split", "0.25",
        "--workers", "0", "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="defectd.training.trainer"):
        assert main([*argv, "--epochs", "1"]) == 0
    assert f"data {first}: 12 images, 67% of the training draws" in caplog.text
    assert f"data {second}: 6 images, 33% of the training draws" in caplog.text
    config = json.loads((run / "config.json").read_text())
    assert (config["data"], config["data_weight"]) == (str(first), 1.0)
    assert config["extra_data"] == [f"{second}:0.5"]
    split = json.loads((run / "split.json").read_text())
    assert not any(":" in i for i in split["val"])
    assert sum(i.startswith("1:") for i in split["train"]) == 6
    assert main([*argv, "--epochs", "2", "--resume"]) == 0
    with (run / "metrics.csv").open() as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2"]
    state = read_last(run)
    assert list(state["train_config"]["extra_data"]) == [f"{second}:0.5"]


def test_mixing_takes_severstal_layout_folders_only(
    sources: tuple[Path, Path], tmp_path: Path
) -> None:
    maps = make_label_map_set(tmp_path / "maps")
    with pytest.raises(TrainError, match="mixing several --data takes Severstal-layout"):
        open_training_data(sources[0], extra=[str(maps)])
    with pytest.raises(TrainError, match=f"--data {maps} is not a Severstal-layout"):
        open_training_data(maps, extra=[str(sources[0])])
