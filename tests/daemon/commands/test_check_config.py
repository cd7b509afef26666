"""`defectd check-config` through the real CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from defectd.daemon import cli
from defectd.daemon.config import DEFAULT_CONFIG_PATH, load_config, parse_config
from defectd.engines.model_card import default_model_dir, read_card

VALID = """\
line:
  name: line1
cameras:
  - {id: top-0, endpoint: "tcp://10.0.0.21:5555", width: 1600, height: 256}
  - {id: edge-0, endpoint: "tcp://*:5570", mode: bind, width: 1600, height: 256}
model:
  thresholds:
    scratches: {pixel: 0.6}
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """check-config shows what this environment gives; keep the test's own."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "defectd.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_config_prints_the_effective_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, VALID)
    assert cli.main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(f"# Effective configuration from {path}, defaults filled in\n")
    printed = yaml.safe_load(out)
    assert printed["ingest"]["rcvhwm"] == 1000  # defaults are filled in
    assert printed["engine"]["max_batch"] == 16
    assert printed["model"]["thresholds"] == {"scratches": {"pixel": 0.6}}
    # What it prints is a config file that loads to the same config.
    assert parse_config(printed, environ={}) == load_config(path, environ={})


def test_model_check_prints_the_thresholds_in_effect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wide = VALID.replace("width: 1600, height: 256}\n  -", "width: 4096, height: 1024}\n  -")
    assert cli.main(["check-config", str(write(tmp_path, wide)), "--model-check"]) == 0
    out = capsys.readouterr().out
    bundled = f"defectd-default {read_card(default_model_dir()).version}"
    assert f"# model {bundled} takes 1600×256 frames; the cameras' frames:" in out
    # 64 slots, one camera each size: 32 slots of each (4096×1024 is 4 MiB a slot)
    assert "#   4096×1024: cut into 12 tiles; 32 slots (128.0 MiB of shared memory)" in out
    assert "#   1600×256: as they are; 32 slots (12.5 MiB of shared memory)" in out
    (scratches,) = [line for line in out.splitlines() if line.startswith("#   3 scratches:")]
    assert "pixel 0.6," in scratches
    yaml.safe_load(out)  # the comments leave it valid YAML


def test_problems_go_to_stderr_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = VALID.replace("width: 1600, height: 256}\n  -", 'width: "1600", height: 256}\n  -')
    path = write(tmp_path, text + "batching: {max_batch: 8}\nlogging: {level: loud}\n")
    assert cli.main(["check-config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert [line.split(": ")[:2] for line in lines] == [
        [str(path), "cameras[0].width"],
        [str(path), "batching.max_batch"],
        [str(path), "logging.level"],
    ]
    assert "the batch size is engine.max_batch" in lines[1]


def test_model_check_problems_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, VALID.replace("1600", "800").replace("scratches", "scratch"))
    assert cli.main(["check-config", str(path)]) == 0  # fine without the model
    capsys.readouterr()
    assert cli.main(["check-config", str(path), "--model-check"]) == 2
    err = capsys.readouterr().err
    # An 800-wide camera is fine for the 1600×256 model (its frames are padded as one tile).
    assert f"{path}: cameras:" not in err
    assert f"{path}: model.thresholds.scratch: model defectd-default has no class 'scratch'" in err


def test_yaml_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "line:\n  name: line1\n   oops: 1\n")
    assert cli.main(["check-config", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"{path}: line 3, column 8: YAML syntax error: mapping values are not allowed here\n"
    )


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", str(tmp_path / "none.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{tmp_path / 'none.yaml'}: no such config file")
    assert str(DEFAULT_CONFIG_PATH) in err


def test_file_defaults_to_the_service_config() -> None:
    args = cli.build_parser().parse_args(["check-config"])
    assert args.file == DEFAULT_CONFIG_PATH and not args.model_check
