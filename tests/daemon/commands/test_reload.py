"""`defectd reload` without a daemon to answer, and with a file that does not pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from defectd.daemon.cli import main
from defectd.daemon.commands.reload import endpoint_of_invalid
from defectd.daemon.tools.loopback import write_config


def mapping(tmp_path: Path, **sections: object) -> dict[str, object]:
    camera = {"id": "cam0", "endpoint": "tcp://127.0.0.1:5555", "width": 1600, "height": 256}
    control = {"socket": str(tmp_path / "control.sock")}
    return {"line": {"name": "line1"}, "cameras": [camera], "control": control, **sections}


def test_no_daemon_says_where_it_looked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path / "defectd.yaml", mapping(tmp_path))
    assert main(["reload", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"no daemon control socket at {tmp_path / 'control.sock'}" in err


def test_an_invalid_file_still_finds_the_socket(tmp_path: Path) -> None:
    path = write_config(tmp_path / "defectd.yaml", mapping(tmp_path, slots={"count": "x"}))
    assert endpoint_of_invalid(path) == f"ipc://{tmp_path / 'control.sock'}"
    relative = write_config(tmp_path / "r.yaml", {"control": {"socket": "c.sock"}, "line": 3})
    assert endpoint_of_invalid(relative) == f"ipc://{tmp_path / 'c.sock'}"
    (tmp_path / "broken.yaml").write_text("line: [\n")
    assert endpoint_of_invalid(tmp_path / "broken.yaml") is None


def test_an_unreadable_file_prints_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.yaml").write_text("cameras: 3\n")
    assert main(["reload", "--config", str(tmp_path / "broken.yaml")]) == 1
    err = capsys.readouterr().err
    assert "line: required section is missing" in err
    assert "control socket cannot be found" in err
