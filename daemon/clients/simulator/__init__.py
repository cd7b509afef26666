"""The camera simulator behind `defectd simulate`: frames over ZeroMQ, as cameras send them.

`Simulator(config).run(stop)` sends frames from N simulated cameras, each with its own
``seq`` counter, paced against an absolute schedule, until `frames` per camera are sent,
`seconds` have passed, or `stop` is set (docs/simulator.md). The parts:

- `config`: `SimulatorConfig` and its checks, socket defaults, `camera_endpoint`
  (``{i}``, ``{N+i}`` and ``{camera}`` placeholders), `SimulatorError`;
- `sources`: the frames, from the synthetic line (with truth) or a folder of images (with
  truth when it is a Severstal-layout folder), optionally pooled;
- `truth`: the Kaggle-layout truth CSV of every frame sent, keyed by `truth_image_id`
  (``"<camera_id>-<seq>.jpg"``, the same id a defect event's camera id and seq give);
- `sender`: the `Simulator` itself (sockets, CURVE, pacing) and its `SimulatorResult`.
"""

from __future__ import annotations

from defectd.daemon.clients.simulator.config import (
    DEFAULT_PUB_ENDPOINT,
    DEFAULT_PUSH_ENDPOINT,
    DEFAULT_SNDHWM,
    MODES,
    PUB_LINGER_MS,
    PUSH_LINGER_MS,
    SYNTH,
    Mode,
    SimulatorConfig,
    SimulatorError,
    camera_endpoint,
)
from defectd.daemon.clients.simulator.sender import CameraStats, Simulator, SimulatorResult
from defectd.daemon.clients.simulator.sources import (
    FolderSource,
    FrameSource,
    Picture,
    PooledSource,
    SynthSource,
    UInt8Array,
    encode_image,
    open_source,
)
from defectd.daemon.clients.simulator.truth import (
    TruthWriter,
    parse_truth_image_id,
    truth_image_id,
)

__all__ = [
    "DEFAULT_PUB_ENDPOINT",
    "DEFAULT_PUSH_ENDPOINT",
    "DEFAULT_SNDHWM",
    "MODES",
    "PUB_LINGER_MS",
    "PUSH_LINGER_MS",
    "SYNTH",
    "CameraStats",
    "FolderSource",
    "FrameSource",
    "Mode",
    "Picture",
    "PooledSource",
    "Simulator",
    "SimulatorConfig",
    "SimulatorError",
    "SimulatorResult",
    "SynthSource",
    "TruthWriter",
    "UInt8Array",
    "camera_endpoint",
    "encode_image",
    "open_source",
    "parse_truth_image_id",
    "truth_image_id",
]
