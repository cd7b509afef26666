"""The line's layout on loopback (part of `tools.loopback`): free ports, the daemon config."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FRAME_WIDTH, FRAME_HEIGHT = 1600, 256  # the synthetic line's frames


class LoopbackError(RuntimeError):
    """The daemon did not start, exited while it was needed, or did not answer in time; the
    message says which, and names its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LoopbackPorts:
    """The daemon's ports: cameras (simulator side), events (publish) and HTTP."""

    camera: int = field(default_factory=free_port)
    publish: int = field(default_factory=free_port)
    http: int = field(default_factory=free_port)

    @property
    def camera_endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.camera}"

    @property
    def publish_endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.publish}"

    @property
    def http_address(self) -> str:
        return f"127.0.0.1:{self.http}"


def line_config(
    ports: LoopbackPorts,
    cameras: tuple[str, ...],
    *,
    push: bool,
    engine: Mapping[str, Any],
    width: int = FRAME_WIDTH,
    height: int = FRAME_HEIGHT,
    line: str = "line1",
    sections: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A daemon config (as a mapping) for `cameras` on one loopback endpoint.

    `push`: the daemon binds a PULL socket the simulator's PUSH connects to (back-pressure,
    nothing lost); otherwise the simulator binds PUB and the daemon's SUB connects. `sections`
    are merged over the defaults, key by key.
    """
    mode = "bind" if push else "connect"
    config: dict[str, Any] = {
        "line": {"name": line},
        "cameras": [
            {
                "id": camera,
                "endpoint": ports.camera_endpoint,
                "mode": mode,
                "width": width,
                "height": height,
            }
            for camera in cameras
        ],
        "engine": dict(engine),
        "publish": {"bind": ports.publish_endpoint, "status_interval_s": 0.5},
        "metrics": {"bind": ports.http_address},
        "shutdown": {"drain_timeout_s": 20.0},
    }
    for name, values in (sections or {}).items():
        config[name] = {**config.get(name, {}), **values}
    return config


def write_config(path: Path, config: Mapping[str, Any]) -> Path:
    """`config` as the YAML file `defectd run --config` reads; `path` again."""
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path
