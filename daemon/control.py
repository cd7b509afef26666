"""The control socket: how `defectd reload` asks the running daemon to re-read its config,
and what the supervisor tells its stages when it does.

Two channels, two trust levels:

- ``control.socket`` (`control_endpoint`): a ZeroMQ ``ipc://`` socket on the file system, 0660
  under systemd's RuntimeDirectory. The supervisor binds a ROUTER there; `request_reload`
  (a REQ) sends ``{"command": "reload"}`` and gets a `ReloadReply` back, as JSON: nothing
  that arrives there is unpickled.
- the run directory's private ``control`` PUB (0700, `RunPaths.control`): the supervisor
  publishes `Reconfigure` to the receivers, the inference process and the post-processing
  workers, which apply what concerns them and say so in their reports (`Report.generation`).

`SwapOutcome` is the inference process's answer to a model swap.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import zmq

from defectd.daemon.config import DaemonConfig
from defectd.engines.errors import UserError

RELOAD_TIMEOUT_S = 180.0  # `defectd reload`: a model swap opens, warms and checks an engine


@dataclass(frozen=True)
class Reconfigure:
    """A new config for the stages (generation counts reloads from 0 at start)."""

    generation: int
    config: DaemonConfig
    assignment: tuple[tuple[str, int], ...]  # socket endpoint → the receiver that reads it


@dataclass(frozen=True)
class SwapOutcome:
    """How a model swap ended in the inference process."""

    generation: int
    ok: bool
    model: str  # "name version" of the model serving now (the old one when not ok)
    detail: str  # why it failed, or the golden check's line
    seconds: float  # from the request to the switch (or the failure)


@dataclass(frozen=True)
class ReloadReply:
    """The daemon's answer to `defectd reload`."""

    ok: bool  # False: refused, nothing changed
    generation: int  # the config generation running after it
    lines: tuple[str, ...]  # each change and how it applied, or each problem
    model: str  # the model serving after it

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "ok": self.ok,
                "generation": self.generation,
                "lines": list(self.lines),
                "model": self.model,
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ReloadReply:
        raw = json.loads(data)
        return cls(bool(raw["ok"]), int(raw["generation"]), tuple(raw["lines"]), str(raw["model"]))


class ControlError(UserError):
    """`defectd reload` could not reach the daemon or got no answer."""


def control_endpoint(config: DaemonConfig, environ: Mapping[str, str] | None = None) -> str:
    """The control socket of the daemon running `config`: ``control.socket``, else
    ``$RUNTIME_DIRECTORY/control.sock`` (systemd), else ``<tmp>/defectd-<line>.control.sock``."""
    return control_endpoint_for(config.control.socket, config.line.name, environ)


def control_endpoint_for(
    socket: str | None, line: str, environ: Mapping[str, str] | None = None
) -> str:
    """`control_endpoint` from the two keys it depends on."""
    if socket is not None:
        return f"ipc://{socket}"
    env = os.environ if environ is None else environ
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return f"ipc://{Path(runtime) / 'control.sock'}"
    return f"ipc://{Path(tempfile.gettempdir()) / f'defectd-{line}.control.sock'}"


def request_reload(endpoint: str, timeout_s: float = RELOAD_TIMEOUT_S) -> ReloadReply:
    """Ask the daemon at `endpoint` to reload; its reply (ControlError: no daemon there)."""
    path = endpoint.removeprefix("ipc://")
    if endpoint.startswith("ipc://") and not Path(path).exists():
        raise ControlError(
            f"no daemon control socket at {path}: is `defectd run` running with this config? "
            "(its socket is control.socket, or control.sock in $RUNTIME_DIRECTORY)"
        )
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        socket = context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(endpoint)
        socket.send(json.dumps({"command": "reload"}).encode())
        if not socket.poll(int(timeout_s * 1000)):
            raise ControlError(
                f"the daemon at {path} did not answer within {timeout_s:g} s; its log says what "
                "it is doing (a model swap opens, warms and checks the new engine first)"
            )
        return ReloadReply.from_json(socket.recv())
    finally:
        context.destroy(linger=0)
