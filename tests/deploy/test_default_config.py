"""deploy/config/defectd.yaml: the documented default config for a line with three cameras."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from defectd.daemon import cli
from defectd.daemon.config import load_config, parse_config
from defectd.engines.model_card import default_model_dir

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "config" / "defectd.yaml"
KEY_LINE = re.compile(r"^\s*(?:- )?([A-Za-z_]\w*):")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the config resolves to must not depend on the shell running the tests."""
    for name in ("PROMETHEUS_MULTIPROC_DIR", "RUNTIME_DIRECTORY", "DEFECTD_MODEL"):
        monkeypatch.delenv(name, raising=False)


def test_check_config_accepts_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", str(CONFIG)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert yaml.safe_load(out)["line"]["name"] == "line1"


def test_it_runs_the_bundled_model(capsys: pytest.CaptureFixture[str]) -> None:
    """model.dir null is the bundled model (package data), so the config works as shipped:
    the model check passes (frame size, classes, thresholds)."""
    assert load_config(CONFIG, environ={}).model.dir == default_model_dir()
    assert cli.main(["check-config", "--model-check", str(CONFIG)]) == 0
    assert "#   1600×256: as they are; 64 slots" in capsys.readouterr().out


def test_three_cameras_two_pub_one_push() -> None:
    config = load_config(CONFIG, environ={})
    assert sorted(camera.mode for camera in config.cameras) == ["bind", "connect", "connect"]
    assert len({camera.endpoint for camera in config.cameras}) == 3
    # The jpeg camera has a receiver to itself (sockets are dealt round-robin in camera order).
    receivers = config.ingest.receivers
    (jpeg,) = [camera.id for camera in config.cameras if camera.encoding == "jpeg"]
    (index,) = [i for i, socket in enumerate(config.sockets) if jpeg in socket.cameras]
    dealt = config.sockets[index % receivers :: receivers]  # as daemon/stages/receiver.py
    assert [socket.cameras for socket in dealt] == [(jpeg,)]


def test_every_key_is_set_and_commented() -> None:
    """The file lists every key the daemon knows (so it documents them all), each with a
    comment on its line."""
    written = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    effective = load_config(CONFIG, environ={}).to_mapping()
    for section, values in effective.items():
        assert section in written, f"section {section} missing"
        if isinstance(values, dict):
            assert set(written[section]) == set(values), section
        else:  # cameras: each key shown (and commented) on one camera at least
            shown = set().union(*(set(camera) for camera in written[section]))
            assert shown == set().union(*(set(camera) for camera in values)), section
    uncommented = [
        line
        for line in CONFIG.read_text(encoding="utf-8").splitlines()
        if KEY_LINE.match(line) and "#" not in line
    ]
    # A section heading alone (`ingest:`) needs no comment; every key under one does.
    assert [line for line in uncommented if line.startswith(" ")] == []


def test_it_resolves_the_unit_directories() -> None:
    """Under the unit, metrics go to the RuntimeDirectory and the engine cache follows
    $DEFECTD_ENGINE_CACHE (engine.cache_dir is left unset)."""
    data = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    config = parse_config(data, str(CONFIG), environ={"RUNTIME_DIRECTORY": "/run/defectd"})
    assert config.metrics.multiprocess_dir == "/run/defectd/metrics"
    assert config.engine.cache_dir is None
    assert config.logging.format == "text"
