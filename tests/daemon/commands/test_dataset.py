"""`defectd dataset check DIR`: the report as a person reads it, the JSON, the exit status."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from defectd.daemon.cli import COMMANDS, main
from defectd.daemon.commands import dataset
from defectd.engines.errors import UserError
from tests.engines.datasets.helpers import (
    class_folders,
    image_mask_folders,
    label_map,
    write_image,
    write_mask,
)


def run(*argv: str) -> int:
    """The command's handler on `argv`, through the parser it registers."""
    parser = argparse.ArgumentParser(prog="defectd")
    dataset.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["dataset", *argv])
    status: int = args.handler(args)
    return status


def test_a_clean_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = image_mask_folders(tmp_path, sizes=[(8, 12), (8, 12), (20, 30)])
    assert run("check", str(root)) == 0
    out = capsys.readouterr().out
    assert f"data set: {root}\n" in out
    assert (
        "format:   image-mask-folders (spec: defaults; classes from the mask values (1, 2, 3))"
        in out
    )
    assert "images:   3, defect-free 1;" in out
    assert "class  name     images  pixel share" in out
    assert "    2  class 2       1        1.01%" in out  # 8 px of 96 + 96 + 600
    assert "sizes (W×H): 12×8: 2, 30×20: 1" in out
    assert out.rstrip().endswith("notices: none\nproblems: none")


def test_problems_are_listed_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = image_mask_folders(tmp_path)
    write_image(root / "images" / "000009.png")  # no mask
    write_mask(root / "masks" / "000001.png", label_map(9, 12, (1,)))  # wrong size
    with pytest.raises(dataset.DatasetProblems) as caught:
        run("check", str(root))
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and "\n" not in message
    assert message.startswith(
        f"2 problem(s) in {root}, the first: {root}/masks/000001.png: mask is"
    )
    out = capsys.readouterr().out
    assert "problems (2):\n" in out and "000009.png: no mask: expected" in out


def test_many_problems_are_cut_at_20_unless_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for index in range(25):
        write_mask(tmp_path / "masks" / f"m{index:02d}.png", label_map(8, 12, (1,)))
    write_image(tmp_path / "images" / "x.png")
    write_mask(tmp_path / "masks" / "x.png", label_map(8, 12, (1,)))
    with pytest.raises(dataset.DatasetProblems, match=r"^25 problem"):
        run("check", str(tmp_path))
    out = capsys.readouterr().out
    assert "problems (25):" in out and out.count("mask without an image") == 20
    assert "… and 5 more (--all lists them; --json FILE too)" in out
    with pytest.raises(dataset.DatasetProblems):
        run("check", "--all", str(tmp_path))
    assert capsys.readouterr().out.count("mask without an image") == 25


def test_json_to_a_file_and_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = class_folders(tmp_path / "tiles")
    target = tmp_path / "out" / "report.json"
    assert run("check", str(root), "--json", str(target)) == 0
    assert "format:   class-folders" in capsys.readouterr().out
    data = json.loads(target.read_text())
    assert data["format"] == "class-folders" and data["images"] == 5 and data["defect_free"] == 2
    assert [c["name"] for c in data["classes"]] == ["blowhole", "crack"]
    assert run("check", str(root), "--json", "-") == 0
    assert json.loads(capsys.readouterr().out) == {
        **data,
        "seconds": pytest.approx(data["seconds"], abs=5),
    }


def test_a_progress_bar_for_large_sets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for index in range(dataset.PROGRESS_FROM):
        write_image(tmp_path / f"f{index}.jpg", 4, 4, seed=index)
        write_mask(tmp_path / f"f{index}.png", label_map(4, 4, (1,)))
    assert run("check", str(tmp_path)) == 0
    assert "check:" in capsys.readouterr().err
    assert run("check", "--no-progress", str(tmp_path)) == 0
    assert capsys.readouterr().err == ""


def test_not_a_data_set(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a data set layout defectd knows"):
        run("check", str(tmp_path))


def test_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if "dataset" not in COMMANDS:
        pytest.skip("`dataset` is not registered in daemon/cli.py's GROUPS yet")
    root = image_mask_folders(tmp_path)
    assert main(["dataset", "check", str(root)]) == 0
    write_image(root / "images" / "000009.png")
    assert main(["dataset", "check", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("defectd dataset: error: 1 problem(s) in ")
