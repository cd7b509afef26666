"""The line the end-to-end tests run the loopback harness with (daemon/tools/loopback/).

Two pushing cameras on one PULL socket, the null engine, a small slot pool, frequent
heartbeats and quick restarts: small and fast enough for a test, and every frame accounted
for (``batching.policy: block``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from defectd.daemon.tools.loopback import FRAME_HEIGHT, FRAME_WIDTH, LoopbackPorts, line_config

REPO = Path(__file__).resolve().parents[2]
HEIGHT, WIDTH = FRAME_HEIGHT, FRAME_WIDTH
CAMERAS = ("cam0", "cam1")

_DEFAULTS: dict[str, dict[str, Any]] = {
    "engine": {"backend": "null", "max_batch": 4},
    "slots": {"count": 16},
    "batching": {"max_wait_ms": 10.0, "policy": "block"},
    "publish": {"status_interval_s": 0.2},
    "shutdown": {"drain_timeout_s": 10.0},
    "restart": {"backoff_initial_s": 0.2, "backoff_max_s": 1.0},
}


def small_line(ports: LoopbackPorts, **sections: dict[str, Any]) -> dict[str, Any]:
    """The tests' daemon config on `ports`; `sections` are merged over it, key by key."""
    merged = {
        name: {**_DEFAULTS.get(name, {}), **sections.get(name, {})}
        for name in {**_DEFAULTS, **sections}
    }
    engine = merged.pop("engine")
    return line_config(ports, CAMERAS, push=True, engine=engine, sections=merged)
