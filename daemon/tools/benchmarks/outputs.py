"""`defectd bench outputs`: the daemon's frames/s with the web view, OPC UA and MQTT on vs off.

Two daemons (`on_off.compare_on_off`): one plain, one with all three outputs enabled — the web
view and the OPC UA server on loopback ports, the MQTT bridge publishing to a Mosquitto broker
this benchmark starts (`tools.mosquitto`), a subscriber reading every message — pushed in turn
at their maximum rate. Target: ≥ 0.95 of the plain daemon's frames/s.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from defectd.daemon.tools.benchmarks.on_off import OnOff, compare_on_off, format_on_off
from defectd.daemon.tools.loopback import DaemonProcess, metric
from defectd.daemon.tools.mosquitto import Broker
from defectd.engines.benchmarks import machine_summary

RATIO_TARGET = 0.95


@dataclass(frozen=True)
class OutputsBenchResult:
    machine: str
    date: str
    daemon: OnOff
    mqtt_received: int  # messages the benchmark's subscriber got
    delivered: dict[str, float]  # output → defectd_output_delivered_total at the end

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["daemon"]["ratio"] = self.daemon.ratio
        out["daemon"]["target"] = RATIO_TARGET
        return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Subscriber:
    """Counts every message under the bridge's topic prefix."""

    def __init__(self, port: int) -> None:
        from defectd.daemon.outputs.mqtt_bridge import import_paho

        mqtt = import_paho()
        self.count = 0
        self._lock = threading.Lock()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub")
        self._client.on_connect = lambda c, *_: c.subscribe("defectd/#", qos=1)
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def _on_message(self, *_: Any) -> None:
        with self._lock:
            self.count += 1

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def run_outputs_bench(
    *,
    backend: str,
    seconds: float,
    rounds: int,
    batch: int,
    threads: int | None,
    workdir: Path,
) -> OutputsBenchResult:
    delivered: dict[str, float] = {}
    with Broker() as broker:
        subscriber = _Subscriber(broker.port)
        web, opcua = _free_port(), _free_port()

        def sections(directory: Path) -> dict[str, dict[str, Any]]:
            return {
                "store": {"enabled": True, "url": f"sqlite:///{directory / 'defects.db'}"},
                "web": {"enabled": True, "bind": f"127.0.0.1:{web}"},
                "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port},
                "opcua": {"enabled": True, "endpoint": f"opc.tcp://127.0.0.1:{opcua}/defectd"},
            }

        def collect(daemon: DaemonProcess) -> None:
            text = daemon.metrics()
            for output in ("web", "mqtt", "opcua"):
                delivered[output] = metric(text, "defectd_output_delivered_total", output=output)

        try:
            result = compare_on_off(
                backend=backend,
                seconds=seconds,
                rounds=rounds,
                batch=batch,
                workdir=workdir,
                threads=threads,
                sections=sections,
                while_running=collect,
            )
        finally:
            subscriber.close()
    return OutputsBenchResult(
        machine_summary(), dt.date.today().isoformat(), result, subscriber.count, delivered
    )


def format_markdown(result: OutputsBenchResult) -> str:
    extra = (
        f"; the MQTT subscriber got {result.mqtt_received:,} messages; delivered by each "
        f"output: {', '.join(f'{k} {v:,.0f}' for k, v in result.delivered.items())}"
    )
    return "\n".join(format_on_off(result.daemon, "web + OPC UA + MQTT", RATIO_TARGET, extra))
