"""`defectd run`: config problems are reported before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from defectd.daemon.cli import main


def test_run_reports_config_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "defectd.yaml"
    config.write_text("line: {name: line1}\ncameras: []\nslotz: {}\n")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}: cameras: expected a list of at least one camera" in err
    assert f"{config}: slotz: unknown key" in err


def test_run_reports_a_model_that_does_not_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "defectd.yaml"
    config.write_text(
        "line: {name: line1}\n"
        "cameras: [{id: cam0, endpoint: 'tcp://127.0.0.1:5999', width: 3200, height: 512}]\n"
        "batching: {tile_overlap: 300}\n"
    )
    assert main(["run", "--config", str(config)]) == 2
    assert "batching.tile_overlap: 300 px is not less than the model's" in capsys.readouterr().err
