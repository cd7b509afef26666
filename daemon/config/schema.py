"""The config's shape: one frozen dataclass per section, and `DaemonConfig` that holds them.

Each field's metadata tells the section reader (`reader.py`) its bounds, choices or check;
`SECTIONS` lists the top-level keys in file order, `MOVED` the keys people reach for that
live elsewhere. Nothing here reads YAML or reports problems.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from defectd.daemon.coils.grading import GradeRule
from defectd.daemon.config.endpoints import (
    MODES,
    check_camera_id,
    opcua_host,
    parse_endpoint,
    parse_http_bind,
)
from defectd.daemon.events import MAX_REGIONS
from defectd.daemon.protocol import ENCODINGS, MAX_DIMENSION
from defectd.daemon.slots import POLICIES, SlotGroup
from defectd.daemon.topics import check_segment
from defectd.engines.selection import EngineConfig, FrameFormat

MIN_GROUP_SLOTS = 2  # slots of a frame size shared by fewer cameras than the others
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")


# Field metadata the section reader understands: bounds, choices, and a check raising ValueError.
def _bounds(
    low: float | None = None, high: float | None = None, above: float | None = None
) -> dict[str, Any]:
    return {"min": low, "max": high, "above": above}


def _choices(options: Sequence[str]) -> dict[str, Any]:
    return {"choices": tuple(options)}


def _checked(check: Callable[[str], object]) -> dict[str, Any]:
    return {"check": check}


# --- the sections ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LineSettings:
    """``line:``: which production line this daemon inspects (a topic segment)."""

    name: str = field(metadata=_checked(lambda text: check_segment(text, "line name")))


@dataclass(frozen=True, kw_only=True)
class CameraSettings:
    """One entry of ``cameras:``; `mode` says which side binds."""

    id: str = field(metadata=_checked(check_camera_id))
    endpoint: str = field(metadata=_checked(parse_endpoint))
    mode: str = field(default="connect", metadata=_choices(MODES))
    width: int = field(metadata=_bounds(1, MAX_DIMENSION))
    height: int = field(metadata=_bounds(1, MAX_DIMENSION))
    encoding: str | None = field(default=None, metadata=_choices(ENCODINGS))  # None: any
    # security.curve with a `connect` camera: the camera's PUB is the CURVE server, this is
    # its public certificate (.key); the daemon is its client.
    server_public_key: str | None = None
    # Where the frame lies on the strip (daemon/geometry.py); None: events in pixels only.
    across_mm_per_px: float | None = field(default=None, metadata=_bounds(high=1000, above=0))
    left_mm: float = field(default=0.0, metadata=_bounds(-100_000, 100_000))
    along_mm_per_px: float | None = field(default=None, metadata=_bounds(high=1000, above=0))
    along_from: str = field(default="position_m", metadata=_choices(("position_m", "frames")))

    @property
    def has_topic(self) -> bool:
        """SUB sockets receive ``[topic, header, payload]``, PULL ones ``[header, payload]``."""
        return self.mode == "connect"


@dataclass(frozen=True, kw_only=True)
class IngestSettings:
    """``ingest:``: the receiver processes and their sockets' options."""

    receivers: int = field(default=1, metadata=_bounds(1))
    rcvhwm: int = field(default=1000, metadata=_bounds(1))
    reconnect_ivl_ms: int = field(default=100, metadata=_bounds(1))
    reconnect_ivl_max_ms: int = field(default=5000, metadata=_bounds(1))
    heartbeat_ivl_ms: int = field(default=1000, metadata=_bounds(0))  # 0: no heartbeats
    heartbeat_timeout_ms: int = field(default=3000, metadata=_bounds(1))
    max_frame_bytes: int = field(default=4 * 2**20, metadata=_bounds(1))


@dataclass(frozen=True, kw_only=True)
class SlotSettings:
    """``slots:``: shared-memory frame slots, each one camera frame in size (cameras of
    several frame sizes share `count` in proportion, `DaemonConfig.slot_groups`)."""

    count: int = field(default=64, metadata=_bounds(2))


@dataclass(frozen=True, kw_only=True)
class BatchingSettings:
    """``batching:``; the batch size is ``engine.max_batch``."""

    max_wait_ms: float = field(default=20.0, metadata=_bounds(0))
    policy: str = field(default="drop_oldest", metadata=_choices(POLICIES))
    # Frames of another size than the model's input are cut into tiles sharing at least this
    # many px (engines.tiled_engine.DEFAULT_OVERLAP says why 0 is the default).
    tile_overlap: int = field(default=0, metadata=_bounds(0))


@dataclass(frozen=True, kw_only=True)
class ThresholdOverride:
    """One class's entry of ``model.thresholds``; None keeps the model card's value."""

    target: int | str  # 1-based class id, or class name
    presence: float | None = field(default=None, metadata=_bounds(0, 1))
    pixel: float | None = field(default=None, metadata=_bounds(0, 1))
    min_component_area: int | None = field(default=None, metadata=_bounds(0))
    min_mask_area: int | None = field(default=None, metadata=_bounds(0))

    def changes(self) -> dict[str, Any]:
        """The thresholds this override sets, by name."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "target"}
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    """``model:``: the model directory and per-class threshold overrides."""

    dir: Path
    thresholds: tuple[ThresholdOverride, ...] = ()


@dataclass(frozen=True, kw_only=True)
class PostprocessSettings:
    """``postprocess:``: the post-processing stage (its thresholds come from ``model``)."""

    workers: int = field(default=1, metadata=_bounds(1))
    include_rle: bool = False
    max_regions: int = field(default=MAX_REGIONS, metadata=_bounds(0))  # 0: counts only


@dataclass(frozen=True, kw_only=True)
class PublishSettings:
    """``publish:``: the PUB socket that defect, frame and status events go out on."""

    bind: str = field(default="tcp://127.0.0.1:5560", metadata=_checked(parse_endpoint))
    sndhwm: int = field(default=10000, metadata=_bounds(1))
    status_interval_s: float = field(default=1.0, metadata=_bounds(above=0))


@dataclass(frozen=True, kw_only=True)
class MetricsSettings:
    """``metrics:``: Prometheus metrics and health over HTTP."""

    bind: str = field(default="127.0.0.1:9108", metadata=_checked(parse_http_bind))
    multiprocess_dir: str | None = None  # None: a private temporary directory made at start


@dataclass(frozen=True, kw_only=True)
class SecuritySettings:
    """``security:``: ZeroMQ CURVE on the ingest and event sockets (docs/security.md).

    Paths name pyzmq certificate files (``defectd keygen``); relative ones are taken from the
    config file's folder. Only paths are held here: keys are read by the processes that use
    them, so no secret is ever part of the config, its repr or check-config's output.
    """

    curve: bool = False
    server_secret_key: str | None = None  # the daemon's own .key_secret
    ingest_clients_dir: str | None = None  # public certificates of cameras allowed to push
    subscriber_clients_dir: str | None = None  # public certificates of subscribers allowed


@dataclass(frozen=True, kw_only=True)
class CoilSettings:
    """``coils:``: how frames become coils and how a coil is graded (daemon/coils/)."""

    silence_s: float = field(default=30.0, metadata=_bounds(above=0))  # no frame: coil ends
    largest: int = field(default=10, metadata=_bounds(0))  # defects a coil record lists
    tolerance_mm: float = field(default=2.0, metadata=_bounds(0, 1000))  # joining regions
    grades: tuple[str, ...] = ("A", "B", "reject")  # best first
    rules: tuple[GradeRule, ...] = ()


@dataclass(frozen=True, kw_only=True)
class StoreSettings:
    """``store:``: the defect store (daemon/store/): strip defects, coils, coverage gaps."""

    enabled: bool = False
    # null: SQLite at $STATE_DIRECTORY/defects.db (systemd), else ./defectd-state/defects.db;
    # or postgresql://user@host/db (several inspection PCs, one database)
    url: str | None = None
    queue: int = field(default=1024, metadata=_bounds(1))  # batches waiting for the writer
    spool_max_mb: float = field(default=1024.0, metadata=_bounds(above=0))
    retention_days: float | None = field(default=90.0, metadata=_bounds(above=0))
    max_defects: int | None = field(default=None, metadata=_bounds(1))
    crops: bool = True  # a JPEG of each defect's box beside the store
    crop_margin_px: int = field(default=16, metadata=_bounds(0, 4096))
    crops_max_mb: float = field(default=2048.0, metadata=_bounds(above=0))


@dataclass(frozen=True, kw_only=True)
class WebSettings:
    """``web:``: the read-only web view for operators (daemon/outputs/web/)."""

    enabled: bool = False
    bind: str = field(default="127.0.0.1:8088", metadata=_checked(parse_http_bind))
    # Required when bind is not a loopback address: the file holding the access token.
    token_file: str | None = None
    title: str = "defectd"


@dataclass(frozen=True, kw_only=True)
class MqttSettings:
    """``mqtt:``: the MQTT bridge: events to ``<topic_prefix>/<line>/…`` (daemon/outputs/)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = field(default=1883, metadata=_bounds(1, 65535))
    topic_prefix: str = "defectd"
    client_id: str | None = None  # None: defectd-<line>
    username: str | None = None
    password_file: str | None = None
    tls: bool = False
    ca_file: str | None = None  # with tls: the broker's CA; None: the system's
    qos: int = field(default=1, metadata=_bounds(0, 2))
    buffer: int = field(default=10000, metadata=_bounds(1))  # messages kept while away
    frames: bool = False  # also every frame summary (a message per frame)
    keepalive_s: int = field(default=30, metadata=_bounds(5, 3600))


@dataclass(frozen=True, kw_only=True)
class OpcUaSettings:
    """``opcua:``: the OPC UA server (OPC 40100 Machine Vision where it fits)."""

    enabled: bool = False
    endpoint: str = field(default="opc.tcp://127.0.0.1:4840/defectd", metadata=_checked(opcua_host))
    # Required when the endpoint is not a loopback address (Basic256Sha256): PEM or DER files.
    certificate: str | None = None
    private_key: str | None = None
    trusted_clients_dir: str | None = None  # client certificates allowed; None: any signed one


@dataclass(frozen=True, kw_only=True)
class ShadowSettings:
    """``shadow:``: a candidate model run beside the live one on a share of the frames; its
    defects are compared with the live model's, never published (docs/deploy.md)."""

    model_dir: str | None = None  # None: no shadow run
    share: float = field(default=0.1, metadata=_bounds(high=1, above=0))  # of frames
    # null: $STATE_DIRECTORY/shadow (systemd), else ./defectd-state/shadow
    dir: str | None = None
    queue: int = field(default=8, metadata=_bounds(1))  # frames waiting; more are skipped
    max_saved: int = field(default=2000, metadata=_bounds(0))  # disagreements with pictures


@dataclass(frozen=True, kw_only=True)
class ControlSettings:
    """``control:``: the socket `defectd reload` talks to (docs/deploy.md)."""

    # null: $RUNTIME_DIRECTORY/control.sock (systemd), else <tmp>/defectd-<line>.control.sock
    socket: str | None = None


@dataclass(frozen=True, kw_only=True)
class ShutdownSettings:
    """``shutdown:``: how long SIGTERM waits for frames in flight."""

    drain_timeout_s: float = field(default=10.0, metadata=_bounds(0))


@dataclass(frozen=True, kw_only=True)
class RestartSettings:
    """``restart:``: how a stage process that died is started again."""

    backoff_initial_s: float = field(default=0.5, metadata=_bounds(above=0))
    backoff_max_s: float = field(default=30.0, metadata=_bounds(above=0))


@dataclass(frozen=True, kw_only=True)
class LoggingSettings:
    """``logging:``."""

    level: str = field(default="info", metadata=_choices(LOG_LEVELS))
    format: str = field(default="text", metadata=_choices(LOG_FORMATS))


# Top-level keys in file order (`cameras` is a list of CameraSettings). Only `line` and
# `cameras` are required.
SECTIONS: dict[str, type[Any]] = {
    "line": LineSettings,
    "cameras": CameraSettings,
    "ingest": IngestSettings,
    "slots": SlotSettings,
    "batching": BatchingSettings,
    "engine": EngineConfig,
    "model": ModelSettings,
    "postprocess": PostprocessSettings,
    "publish": PublishSettings,
    "metrics": MetricsSettings,
    "security": SecuritySettings,
    "coils": CoilSettings,
    "store": StoreSettings,
    "web": WebSettings,
    "mqtt": MqttSettings,
    "opcua": OpcUaSettings,
    "shadow": ShadowSettings,
    "control": ControlSettings,
    "shutdown": ShutdownSettings,
    "restart": RestartSettings,
    "logging": LoggingSettings,
}
REQUIRED_SECTIONS = ("line", "cameras")

# Keys people reach for that live elsewhere: the hint replaces "did you mean".
_THRESHOLDS_HINT = "per-class thresholds are model.thresholds (over the model card's)"
MOVED = {
    "batching.max_batch": "the batch size is engine.max_batch (one key for batcher and engine)",
    "postprocess.thresholds": _THRESHOLDS_HINT,
    "thresholds": _THRESHOLDS_HINT,
    "slots.width": "the frame size is the cameras' width and height",
    "slots.height": "the frame size is the cameras' width and height",
}


@dataclass(frozen=True)
class IngestSocket:
    """One socket the receivers open; cameras that share an endpoint share its socket."""

    endpoint: str
    mode: str
    cameras: tuple[str, ...]
    server_public_key: str | None = None  # connect with CURVE: the camera's public key file


@dataclass(frozen=True, kw_only=True)
class DaemonConfig:
    """The whole configuration; `to_mapping` gives it back as YAML-ready data."""

    line: LineSettings
    cameras: tuple[CameraSettings, ...]
    ingest: IngestSettings = IngestSettings()
    slots: SlotSettings = SlotSettings()
    batching: BatchingSettings = BatchingSettings()
    engine: EngineConfig = EngineConfig()  # noqa: RUF009 (frozen: one instance is safe)
    model: ModelSettings
    postprocess: PostprocessSettings = PostprocessSettings()
    publish: PublishSettings = PublishSettings()
    metrics: MetricsSettings = MetricsSettings()
    security: SecuritySettings = SecuritySettings()
    coils: CoilSettings = CoilSettings()
    store: StoreSettings = StoreSettings()
    web: WebSettings = WebSettings()
    mqtt: MqttSettings = MqttSettings()
    opcua: OpcUaSettings = OpcUaSettings()
    shadow: ShadowSettings = ShadowSettings()
    control: ControlSettings = ControlSettings()
    shutdown: ShutdownSettings = ShutdownSettings()
    restart: RestartSettings = RestartSettings()
    logging: LoggingSettings = LoggingSettings()
    source: str = field(default="<string>", compare=False)  # the file, for messages

    @property
    def max_batch(self) -> int:
        """Frames per batch: the batcher's and the engine's limit."""
        return self.engine.max_batch

    @property
    def frame_format(self) -> FrameFormat:
        """What the cameras send, for the model check: grey frames; the size given is the
        first camera's (each camera's own is in `frame_sizes`; every size is tiled)."""
        return FrameFormat(height=self.cameras[0].height, width=self.cameras[0].width)

    @property
    def frame_sizes(self) -> tuple[tuple[int, int], ...]:
        """The cameras' distinct frame sizes (height, width), in config order."""
        return tuple(dict.fromkeys((camera.height, camera.width) for camera in self.cameras))

    @property
    def slot_groups(self) -> tuple[SlotGroup, ...]:
        """The slot pool's groups: one per frame size, holding its cameras' frames.

        ``slots.count`` is shared among the sizes in proportion to their cameras, at least
        `MIN_GROUP_SLOTS` each (one size: all of them, as before).
        """
        sizes = self.frame_sizes
        cameras = {
            size: tuple(c.id for c in self.cameras if (c.height, c.width) == size) for size in sizes
        }
        total = self.slots.count
        if len(sizes) == 1:
            return (SlotGroup(total, *sizes[0]),)
        return tuple(
            SlotGroup(max(MIN_GROUP_SLOTS, round(total * len(ids) / len(self.cameras))), *size, ids)
            for size, ids in cameras.items()
        )

    @property
    def sockets(self) -> tuple[IngestSocket, ...]:
        """The receivers' sockets, one per distinct camera endpoint, in config order."""
        groups: dict[str, list[CameraSettings]] = {}
        for camera in self.cameras:
            groups.setdefault(camera.endpoint, []).append(camera)
        return tuple(
            IngestSocket(
                endpoint, group[0].mode, tuple(c.id for c in group), group[0].server_public_key
            )
            for endpoint, group in groups.items()
        )

    def to_mapping(self) -> dict[str, Any]:
        """The effective config, defaults filled in, as plain data that `parse_config` reads
        back to an equal config."""
        result: dict[str, Any] = {}
        for name in SECTIONS:
            if name == "cameras":
                result[name] = [_plain(camera) for camera in self.cameras]
            elif name == "model":
                overrides = {o.target: o.changes() for o in self.model.thresholds}
                result[name] = {"dir": str(self.model.dir), "thresholds": overrides}
            elif name == "coils":
                result[name] = {**_plain(self.coils), "grades": list(self.coils.grades)}
                result[name]["rules"] = [rule.to_mapping() for rule in self.coils.rules]
            else:
                result[name] = _plain(getattr(self, name))
        return result


def _plain(section: Any) -> dict[str, Any]:
    return {f.name: getattr(section, f.name) for f in fields(section)}
