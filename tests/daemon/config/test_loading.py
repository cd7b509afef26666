"""The config file: reading it, YAML syntax errors, duplicate keys, paths relative to it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from defectd.daemon.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from tests.daemon.config.helpers import config, parse


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "defectd.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def load_problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    return caught.value.problems


def test_load_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, yaml.safe_dump(config()))
    loaded = load_config(path, environ={})
    assert loaded == parse(config()) and loaded.source == str(path)


def test_model_dir_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "defectd.yaml"
    path.write_text(yaml.safe_dump(config(model={"dir": "models/mine"})))
    assert load_config(path, environ={}).model.dir == tmp_path / "models" / "mine"
    assert parse(config(model={"dir": "/abs/model"})).model.dir == Path("/abs/model")


def test_output_files_relative_to_the_config_file(tmp_path: Path) -> None:
    sections = {
        "web": {"token_file": "web.token"},
        "mqtt": {"password_file": "mqtt.pass", "ca_file": "/etc/ssl/ca.pem"},
        "opcua": {"certificate": "pki/server.der", "private_key": "pki/server.pem"},
    }
    path = write(tmp_path, yaml.safe_dump(config(**sections)))
    loaded = load_config(path, environ={})
    assert loaded.web.token_file == str(tmp_path / "web.token")
    assert loaded.mqtt.password_file == str(tmp_path / "mqtt.pass")
    assert loaded.mqtt.ca_file == "/etc/ssl/ca.pem"  # absolute paths stay
    assert loaded.opcua.certificate == str(tmp_path / "pki" / "server.der")
    assert loaded.opcua.trusted_clients_dir is None


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "line:\n  name: line1\ncameras: [\n  {id: a}\nslots:\n")
    (problem,) = load_problems(path)
    assert re.fullmatch(
        rf"{re.escape(str(path))}: line \d+, column \d+: YAML syntax error: .*", problem
    )
    assert "flow sequence on line 3" in problem
    path = write(tmp_path, "line:\n  name: line1\n   bad: 1\n")
    assert load_problems(path) == [
        f"{path}: line 3, column 7: YAML syntax error: mapping values are not allowed here"
    ]


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "line: {name: a}\ncameras: []\nline: {name: b}\n")
    assert load_problems(path) == [
        f"{path}: line 3, column 1: key 'line' appears twice (first on line 1)"
    ]


def test_problems_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "line: {name: a}\ncameras: [{id: c, endpoint: 'tcp://h:1'}]\n")
    assert load_problems(path) == [
        f"{path}: cameras[0].width: required key is missing",
        f"{path}: cameras[0].height: required key is missing",
    ]


def test_missing_file_names_the_default(tmp_path: Path) -> None:
    (problem,) = load_problems(tmp_path / "nope.yaml")
    assert problem.startswith(f"{tmp_path / 'nope.yaml'}: no such config file")
    assert str(DEFAULT_CONFIG_PATH) in problem and "docs/configuration.md" in problem


def test_unreadable_files(tmp_path: Path) -> None:
    assert "cannot read the config" in load_problems(tmp_path)[0]
    assert "not UTF-8 text" in load_problems(write(tmp_path, b"line: \xff\n"))[0]
    assert "the config is empty" in load_problems(write(tmp_path, "# nothing yet\n"))[0]
