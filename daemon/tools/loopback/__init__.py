"""A whole line on loopback: the real daemon as a subprocess, cameras, and a subscriber.

The one harness of `defectd demo` (daemon/tools/demo.py), `defectd bench pipeline` and
`bench soak` (daemon/tools/benchmarks/) and the end-to-end tests. Each writes a daemon config
on free loopback ports, starts the real daemon (`python -m defectd.daemon.cli run`, its log
in a file), waits for ``/readyz``, sends frames (the simulator, or `Camera` for hand-made
ones), listens to what the daemon publishes, scrapes ``/metrics`` and stops it with SIGTERM
(it drains frames in flight and exits 0) to collect the exit status. Import from here; the
parts are its modules:

- `line`: `LoopbackPorts`, `line_config`, `write_config`, `LoopbackError`;
- `process`: `DaemonProcess` (the daemon while it runs), `run_once` (to its end),
  `metric` (one value of a /metrics exposition);
- `listener`: `Listener` (a SUB socket read by a thread), `settled`;
- `camera`: `Camera` (a PUSH socket sending the frames it is given), `PacedCamera` (one
  camera at a steady rate from a thread).
"""

from __future__ import annotations

from defectd.daemon.tools.loopback.camera import Camera, PacedCamera
from defectd.daemon.tools.loopback.line import (
    FRAME_HEIGHT,
    FRAME_WIDTH,
    LoopbackError,
    LoopbackPorts,
    free_port,
    line_config,
    write_config,
)
from defectd.daemon.tools.loopback.listener import Collected, Listener, settled
from defectd.daemon.tools.loopback.process import DaemonProcess, metric, run_once

__all__ = [
    "FRAME_HEIGHT",
    "FRAME_WIDTH",
    "Camera",
    "Collected",
    "DaemonProcess",
    "Listener",
    "LoopbackError",
    "LoopbackPorts",
    "PacedCamera",
    "free_port",
    "line_config",
    "metric",
    "run_once",
    "settled",
    "write_config",
]
