"""What a simulator run sends, how fast, and where: `SimulatorConfig` and its checks.

Also the pieces a config decides before any socket opens: the socket defaults (high-water
mark, linger, default endpoints), `camera_endpoint` (an endpoint template with ``{i}``,
``{N+i}`` or ``{camera}`` filled in per camera) and the coil ids the headers carry.
`SimulatorError` is the simulator's user-facing failure (an endpoint that does not bind or
connect, no subscriber).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from defectd.daemon.protocol import ENCODINGS, FrameHeader
from defectd.daemon.topics import check_segment
from defectd.engines.errors import InvalidSetting, UserError

Mode = Literal["pub", "push"]
MODES: tuple[Mode, ...] = ("pub", "push")
SYNTH = "synth"
# Frames a socket queues before PUB drops them / PUSH blocks: 100 mono8 frames are 40 MB.
DEFAULT_SNDHWM = 100
DEFAULT_PUB_ENDPOINT = "tcp://127.0.0.1:5555"  # pub binds: the daemon's SUB connects
DEFAULT_PUSH_ENDPOINT = "tcp://127.0.0.1:5556"  # push connects to the daemon's PULL
# push promises every frame: at the end, give a busy daemon time to take the queued ones.
PUSH_LINGER_MS = 30_000
PUB_LINGER_MS = 1_000
_PLACEHOLDER = re.compile(r"\{(?:(\d+)\+i|i|camera)\}")


class SimulatorError(UserError, RuntimeError):
    """The simulator cannot run: an endpoint that does not bind or connect, no subscriber."""


def camera_endpoint(template: str, index: int, camera_id: str) -> str:
    """`template` with ``{i}`` (camera index), ``{N+i}`` (N plus index, for ports) and
    ``{camera}`` (camera id) filled in: ``tcp://127.0.0.1:{5555+i}`` → ``…:5556`` for camera 1."""

    def fill(match: re.Match[str]) -> str:
        if match.group(0) == "{camera}":
            return camera_id
        base = match.group(1)
        return str(index + (int(base) if base is not None else 0))

    endpoint = _PLACEHOLDER.sub(fill, template)
    if "{" in endpoint or "}" in endpoint:
        raise InvalidSetting(
            f"endpoint {template!r} has an unknown placeholder: use {{i}}, {{N+i}} "
            "(e.g. tcp://127.0.0.1:{5555+i}) or {camera}"
        )
    return endpoint


@dataclass(frozen=True)
class SimulatorConfig:
    """What `defectd simulate` sends, how fast, and where (docs/simulator.md)."""

    source: str = SYNTH  # "synth", or a folder of images / a Severstal-layout folder
    seed: int = 0  # synthetic line seed
    width: int = 1600  # synthetic frames' size (a folder's images keep theirs)
    height: int = 256
    cameras: tuple[str, ...] = ("cam0",)
    fps: float = 10.0  # per camera; 0: as fast as possible
    frames: int | None = None  # per camera; None: no limit
    seconds: float | None = None  # None: no limit
    line: str = "line1"  # for logs only: the daemon's config names the line
    mode: Mode = "pub"
    endpoint: str = DEFAULT_PUB_ENDPOINT  # may hold {i}, {N+i}, {camera}
    bind: bool = True  # bind (the daemon connects) or connect (the daemon binds)
    encoding: str | None = None  # None: mono8 for synth, the file's own format for folders
    jpeg_quality: int = 95
    sndhwm: int = DEFAULT_SNDHWM
    linger_ms: int | None = None  # how long closing waits for queued frames to leave;
    # None: PUSH_LINGER_MS for push (its frames must all arrive), PUB_LINGER_MS for pub
    coil_frames: int = 0  # frames per coil; 0: no coil_id / position_m in the headers
    coil_prefix: str = "SIM"
    mm_per_px: float = 1.0  # strip travel per frame row: position_m advances height × this
    long_scratches: float = 0.0  # share of frames where a scratch over 2–8 frames starts
    pool: int = 0  # prepare this many distinct frames once and cycle them; 0: every frame new
    wait_subscribers: int = 0  # pub: wait for this many subscriptions per camera first
    wait_timeout_s: float = 30.0
    truth_out: Path | None = None  # Kaggle-layout truth CSV of every frame sent
    status_interval_s: float = 1.0  # how often `progress` is called
    # CURVE (docs/security.md). Connecting (push to the daemon's PULL): the daemon's public
    # .key and this camera's .key_secret. Binding (pub, the daemon connects): this camera's
    # own .key_secret as the server's key; no client key.
    curve_server_key: Path | None = None
    curve_client_key: Path | None = None

    @property
    def effective_linger_ms(self) -> int:
        if self.linger_ms is not None:
            return self.linger_ms
        return PUSH_LINGER_MS if self.mode == "push" else PUB_LINGER_MS

    def __post_init__(self) -> None:
        if not self.cameras:
            raise InvalidSetting("give at least one camera id")
        if not (64 <= self.width <= 16384 and 64 <= self.height <= 16384):
            raise InvalidSetting(
                f"synthetic frames are 64…16384 px each way, got {self.width}×{self.height}"
            )
        if self.source != SYNTH and (self.width, self.height) != (1600, 256):
            raise InvalidSetting(
                "--width/--height size synthetic frames; a folder's images keep their own size"
            )
        for camera in self.cameras:
            check_segment(camera, "camera id")
        repeated = sorted({c for c in self.cameras if self.cameras.count(c) > 1})
        if repeated:
            raise InvalidSetting(f"camera ids must differ: {', '.join(repeated)} repeats")
        for index, camera in enumerate(self.cameras):
            camera_endpoint(self.endpoint, index, camera)  # placeholders checked up front
        if self.mode not in MODES:
            raise InvalidSetting(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.encoding is not None and self.encoding not in ENCODINGS:
            raise InvalidSetting(f"encoding {self.encoding!r} is not one of {', '.join(ENCODINGS)}")
        if self.seed < 0:
            raise InvalidSetting(f"seed must be non-negative, got {self.seed}")
        checks = (
            ("fps", self.fps, 0.0, "0 sends as fast as possible"),
            ("frames", self.frames, 1, "frames per camera"),
            ("seconds", self.seconds, 1e-9, "seconds to run"),
            ("sndhwm", self.sndhwm, 1, "frames queued per socket"),
            ("linger_ms", self.linger_ms, 0, "ms"),
            ("coil_frames", self.coil_frames, 0, "0: no coil"),
            ("mm_per_px", self.mm_per_px, 1e-9, "mm of strip per frame row"),
            ("pool", self.pool, 0, "0: every frame new"),
            ("wait_subscribers", self.wait_subscribers, 0, "subscriptions per camera"),
            ("wait_timeout_s", self.wait_timeout_s, 0.0, "seconds"),
            ("status_interval_s", self.status_interval_s, 1e-3, "seconds"),
        )
        for name, value, low, hint in checks:
            if value is not None and not value >= low:
                raise InvalidSetting(f"{name} must be at least {low:g} ({hint}), got {value}")
        if not 0.0 <= self.long_scratches <= 1.0:
            raise InvalidSetting(
                f"long_scratches is a share of frames, 0…1, got {self.long_scratches:g}"
            )
        if self.long_scratches and self.source != SYNTH:
            raise InvalidSetting("long_scratches are drawn on the synthetic line only")
        if not 1 <= self.jpeg_quality <= 100:
            raise InvalidSetting(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.wait_subscribers and self.mode != "pub":
            raise InvalidSetting(
                "wait_subscribers is for pub mode: a PUSH socket queues frames until the "
                "daemon connects, so nothing is lost by starting early"
            )
        if self.bind and self.curve_client_key is not None:
            raise InvalidSetting(
                "curve_client_key is for connecting; a binding camera is the CURVE server: "
                "give only curve_server_key, its own .key_secret"
            )
        if not self.bind and (self.curve_server_key is None) != (self.curve_client_key is None):
            raise InvalidSetting(
                "a connecting camera is a CURVE client: give both curve_server_key (the "
                "daemon's .key) and curve_client_key (this camera's .key_secret)"
            )
        # The coil ids this config makes must pass the header checks; fail before any socket.
        if self.coil_frames:
            FrameHeader(self.cameras[0], 0, 0, "mono8", 1, 1, coil_id=self.coil_id(0))

    def coil_id(self, seq: int) -> str:
        """The coil id in the header of a camera's frame `seq` (when `coil_frames` is set):
        a new coil every `coil_frames` frames, ``SIM-00001`` first."""
        return f"{self.coil_prefix}-{seq // self.coil_frames + 1:05d}"
