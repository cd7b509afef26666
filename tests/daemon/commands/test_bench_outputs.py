"""`defectd bench outputs`: a tiny run with all three outputs on; structure only, never timings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from defectd.daemon.cli import main

pytestmark = pytest.mark.slow


def test_the_daemon_with_every_output_on_and_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").is_file():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    pytest.importorskip("paho.mqtt.client", reason="needs defectd[mqtt]")
    pytest.importorskip("asyncua", reason="needs defectd[opcua]")
    out = tmp_path / "outputs.json"
    assert main(["bench", "outputs", "--backend", "null", "--batch", "8", "--seconds", "1",
                 "--rounds", "1", "--json", str(out)]) == 0  # fmt: skip
    assert "| web + OPC UA + MQTT | frames/s per round | median |" in capsys.readouterr().out
    record = json.loads(out.read_text(encoding="utf-8"))["outputs"]
    daemon = record["daemon"]
    assert daemon["on_accounted"] and daemon["ratio"] > 0 and daemon["target"] == 0.95
    assert record["mqtt_received"] > 0  # the bridge really published to the broker
    assert record["delivered"]["mqtt"] > 0 and record["delivered"]["opcua"] > 0
