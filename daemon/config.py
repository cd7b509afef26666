"""The daemon's configuration: one YAML file, typed, checked in full before anything starts.

`load_config` reads the file (the service's is `DEFAULT_CONFIG_PATH`) and `parse_config` turns
the parsed YAML into a frozen `DaemonConfig`. Every problem is reported, not just the first,
as ``FILE: key.path: problem`` lines in one `ConfigError`: unknown keys (with "did you mean"),
wrong types (strict: ``true`` is not 1, ``"16"`` is not 16, ``16.0`` is not a whole number),
values out of range, and what spans keys (duplicate camera ids, one frame size for all
cameras, addresses bound twice, enough slots for double buffering).

What needs the model (do the frames fit it, which classes the threshold overrides name) is
`check_model`'s job: the daemon runs it at start, ``defectd check-config --model-check`` on
demand. Every key, its default and its meaning: docs/configuration.md.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import typing
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.constructor import ConstructorError as YamlConstructorError

from defectd.daemon.events import MAX_REGIONS
from defectd.daemon.protocol import ENCODINGS, MAX_DIMENSION, RAW_CHANNELS
from defectd.daemon.slots import CAMERA_BYTES, POLICIES
from defectd.daemon.topics import check_segment
from defectd.engines.model_card import ModelCard, default_model_dir, read_card
from defectd.engines.postprocess import PostprocessConfig
from defectd.engines.selection import EngineConfig, FrameFormat, check_model_fits

DEFAULT_CONFIG_PATH = Path("/etc/defectd/defectd.yaml")
MODES = ("connect", "bind")  # connect: SUB to a camera's PUB; bind: PULL that cameras push to
TRANSPORTS = ("tcp", "ipc", "inproc")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
MAX_IPC_PATH = 107  # bytes: sockaddr_un.sun_path less its terminating NUL

T = TypeVar("T")


class ConfigError(ValueError):
    """The config cannot be used; ``problems`` holds one ``FILE: key.path: problem`` each."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


# Field metadata the section reader understands: bounds, choices, and a check raising ValueError.
def _bounds(
    low: float | None = None, high: float | None = None, above: float | None = None
) -> dict[str, Any]:
    return {"min": low, "max": high, "above": above}


def _choices(options: Sequence[str]) -> dict[str, Any]:
    return {"choices": tuple(options)}


def _checked(check: Callable[[str], object]) -> dict[str, Any]:
    return {"check": check}


# --- addresses ---------------------------------------------------------------------------------

_HOST = re.compile(r"\*|\[[0-9A-Fa-f:.%\w]+\]|[A-Za-z0-9._%-]+")
_ANY_HOST = ("*", "0.0.0.0", "[::]")


@dataclass(frozen=True)
class Endpoint:
    """A parsed ZeroMQ endpoint (or HTTP ``HOST:PORT``); ``host`` and ``port`` for tcp only."""

    transport: str
    address: str  # what follows "://"
    host: str | None = None
    port: int | None = None

    def clashes(self, other: Endpoint) -> bool:
        """Whether binding both fails: one tcp port on overlapping hosts, or one path."""
        if self.transport != other.transport:
            return False
        if self.transport != "tcp":
            return self.address == other.address
        if self.port != other.port:
            return False
        return self.host == other.host or self.host in _ANY_HOST or other.host in _ANY_HOST


def _host_port(text: str, address: str, example: str) -> tuple[str, int]:
    """HOST and PORT of `address` (part of `text`, which messages show)."""
    host, colon, port = address.rpartition(":")
    if not colon or not host:
        raise ValueError(f"{text!r} needs a host and a port, like {example}")
    if ":" in host and not host.startswith("["):
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, like [::1]:{port}")
    if not _HOST.fullmatch(host):
        raise ValueError(f"{text!r}: {host!r} is not a host name, address or interface")
    if port in ("*", "0"):
        raise ValueError(f"{text!r}: give a fixed port; peers cannot find a random one")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: port {port!r} is not a number in 1..65535")
    return host, int(port)


def parse_endpoint(text: str, bind: bool | None = None) -> Endpoint:
    """`text` as a ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH, inproc://NAME), or ValueError
    saying what is wrong. `bind` False refuses the ``*`` host, which only a bind can use."""
    transport, sep, address = text.partition("://")
    if not sep or transport not in TRANSPORTS:
        raise ValueError(
            f"{text!r} is not a ZeroMQ endpoint: use tcp://HOST:PORT, ipc://PATH or inproc://NAME"
        )
    if not address or any(c.isspace() for c in address):
        raise ValueError(f"{text!r}: the address after {transport}:// is empty or has spaces")
    if transport == "ipc" and len(address.encode()) > MAX_IPC_PATH:
        raise ValueError(
            f"{text!r}: the socket path is {len(address.encode())} bytes, Unix sockets take "
            f"at most {MAX_IPC_PATH}: use a shorter path"
        )
    if transport != "tcp":
        return Endpoint(transport, address)
    host, port = _host_port(text, address, "tcp://192.168.10.21:5555")
    if host == "*" and bind is False:
        raise ValueError(f"{text!r}: '*' (every interface) is for binding; name the peer's host")
    return Endpoint(transport, address, host, port)


def parse_http_bind(text: str) -> Endpoint:
    """``HOST:PORT`` of the metrics/health HTTP server, as a tcp `Endpoint`."""
    if "://" in text:
        raise ValueError(f"{text!r}: write HOST:PORT without a scheme, like 127.0.0.1:9108")
    host, port = _host_port(text, text, "127.0.0.1:9108")
    if host == "*":
        raise ValueError(f"{text!r}: use 0.0.0.0:{port} to listen on every interface")
    return Endpoint("tcp", text, host, port)


def _camera_id(text: str) -> None:
    check_segment(text, "camera id")
    if len(text) > CAMERA_BYTES:
        raise ValueError(
            f"camera id {text!r} has {len(text)} characters, frame slots hold {CAMERA_BYTES}"
        )


# --- the sections ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LineSettings:
    """``line:``: which production line this daemon inspects (a topic segment)."""

    name: str = field(metadata=_checked(lambda text: check_segment(text, "line name")))


@dataclass(frozen=True, kw_only=True)
class CameraSettings:
    """One entry of ``cameras:``; `mode` says which side binds."""

    id: str = field(metadata=_checked(_camera_id))
    endpoint: str = field(metadata=_checked(parse_endpoint))
    mode: str = field(default="connect", metadata=_choices(MODES))
    width: int = field(metadata=_bounds(1, MAX_DIMENSION))
    height: int = field(metadata=_bounds(1, MAX_DIMENSION))
    encoding: str | None = field(default=None, metadata=_choices(ENCODINGS))  # None: any
    # security.curve with a `connect` camera: the camera's PUB is the CURVE server, this is
    # its public certificate (.key); the daemon is its client.
    server_public_key: str | None = None

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
    """``slots:``: shared-memory frame slots, each one camera frame in size."""

    count: int = field(default=64, metadata=_bounds(2))


@dataclass(frozen=True, kw_only=True)
class BatchingSettings:
    """``batching:``; the batch size is ``engine.max_batch``."""

    max_wait_ms: float = field(default=20.0, metadata=_bounds(0))
    policy: str = field(default="drop_oldest", metadata=_choices(POLICIES))


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
        """What the cameras send (one size for all, checked at parse time)."""
        return FrameFormat(height=self.cameras[0].height, width=self.cameras[0].width)

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
            else:
                result[name] = _plain(getattr(self, name))
        return result


def _plain(section: Any) -> dict[str, Any]:
    return {f.name: getattr(section, f.name) for f in fields(section)}


# --- reading sections --------------------------------------------------------------------------


class _Problems:
    """Problems found so far, as (key path, message)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def unknown(self, path: str, key: object, known: Sequence[str]) -> None:
        where = _join(path, key)
        if where in MOVED:
            self.add(where, f"unknown key: {MOVED[where]}")
            return
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.add(where, f"unknown key{hint} (known here: {', '.join(known)})")

    def formatted(self, source: str) -> list[str]:
        return [
            f"{source}: {path}: {text}" if path else f"{source}: {text}"
            for path, text in self.items
        ]


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _describe(value: object) -> str:
    """What a YAML value is, for "expected X, got Y", naming YAML's traps."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (YAML reads yes/no/on/off as booleans: quote text)"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        if "e" in value.lower():  # YAML 1.1 floats need a dot: 1e3 is text, 1.0e3 a number
            return f"text {value!r} (an exponent needs a dot to be a number: write 1.0e3)"
        return f"text {value!r} (write numbers without quotes)"
    if isinstance(value, str):
        return f"text {value!r}"
    if isinstance(value, list):
        return "a list"
    return "a mapping" if isinstance(value, dict) else type(value).__name__


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_BAD = object()  # a value that failed its check (None can be a valid value)
_EXPECTED = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _value(
    value: object, hint: Any, meta: Mapping[str, Any], path: str, problems: _Problems
) -> object:
    """`value` checked against a field's type `hint` and metadata, or `_BAD` (problem added)."""
    args = typing.get_args(hint)
    if type(None) in args:
        if value is None:
            return None
        (hint,) = (a for a in args if a is not type(None))
    if hint is float and type(value) is int:
        value = float(value)  # whole numbers are numbers; not the other way round
    if type(value) is not hint or value == "":
        got = "an empty string" if value == "" else _describe(value)
        problems.add(path, f"expected {_EXPECTED[hint]}, got {got}")
        return _BAD
    if isinstance(value, float) and not math.isfinite(value):
        problems.add(path, f"expected a finite number, got {value!r}")
        return _BAD
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        close = difflib.get_close_matches(str(value).lower(), choices, n=1)
        hint_text = f" (did you mean {close[0]!r}?)" if close else ""
        problems.add(path, f"{value!r} is not one of {', '.join(choices)}{hint_text}")
        return _BAD
    if isinstance(value, int | float):
        low, high, above = meta.get("min"), meta.get("max"), meta.get("above")
        limit = None
        if low is not None and value < low:
            limit = f"at least {low:g}"
        elif above is not None and value <= above:
            limit = f"more than {above:g}"
        elif high is not None and value > high:
            limit = f"at most {high:g}"
        if limit:
            problems.add(path, f"must be {limit}, got {value:g}")
            return _BAD
    check = meta.get("check")
    if check is not None:
        try:
            check(value)
        except ValueError as exc:
            problems.add(path, str(exc))
            return _BAD
    return value


def _mapping(raw: object, path: str, problems: _Problems) -> dict[Any, Any] | None:
    """A section's mapping (a bare ``section:`` is null: all defaults), or None (problem)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping of keys, got {_describe(raw)}")
        return None
    return raw


def _section(
    cls: type[T],
    raw: object,
    path: str,
    problems: _Problems,
    given: Mapping[str, object] | None = None,
) -> T | None:
    """Settings dataclass `cls` from its YAML mapping, or None with its problems added.

    `given` are constructor arguments that do not come from YAML (a threshold's class).
    """
    values = _mapping(raw, path, problems)
    if values is None:
        return None
    kwargs = dict(given or {})
    hints = typing.get_type_hints(cls)
    spec: dict[str, Field[Any]] = {
        f.name: f for f in fields(typing.cast(Any, cls)) if f.name not in kwargs
    }
    ok = True
    for key, value in values.items():
        if key not in spec:
            problems.unknown(path, key, list(spec))
            ok = False
            continue
        checked = _value(value, hints[key], spec[key].metadata, _join(path, key), problems)
        ok = ok and checked is not _BAD
        kwargs[key] = checked
    for name, item in spec.items():
        if name not in values and item.default is MISSING and item.default_factory is MISSING:
            problems.add(_join(path, name), "required key is missing")
            ok = False
    if cls is EngineConfig:  # its own checks too, even when a key was wrong
        engine = _engine({k: v for k, v in kwargs.items() if v is not _BAD}, problems)
        return typing.cast(T, engine) if ok else None
    return cls(**kwargs) if ok else None


def _engine(values: Mapping[str, Any], problems: _Problems) -> EngineConfig | None:
    """``engine:`` through EngineConfig's own checks, its messages placed at their key."""
    try:
        return EngineConfig.from_mapping(values)
    except ValueError as exc:
        found = re.match(r"(engine\.[a-z_]+)[ :]+(.*)", str(exc), re.DOTALL)
        if found:
            problems.add(found[1], found[2])
        else:
            problems.add("engine", str(exc).removeprefix("engine: "))
        return None


def _cameras(raw: object, problems: _Problems) -> list[tuple[int, CameraSettings]]:
    """The cameras that parsed, with their list index (problems added for the rest)."""
    if not isinstance(raw, list) or not raw:
        got = "an empty list" if raw == [] else _describe(raw)
        problems.add("cameras", f"expected a list of at least one camera, got {got}")
        return []
    parsed = []
    for index, entry in enumerate(raw):
        camera = _section(CameraSettings, entry, f"cameras[{index}]", problems)
        if camera is not None:
            parsed.append((index, camera))
    return parsed


def _model(raw: object, problems: _Problems, base_dir: Path | None) -> ModelSettings | None:
    """``model:``, its directory resolved (default: the bundled model)."""
    values = _mapping(raw, "model", problems)
    if values is None:
        return None
    count = len(problems.items)
    for key in values:
        if key not in ("dir", "thresholds"):
            problems.unknown("model", key, ["dir", "thresholds"])
    directory = default_model_dir()
    if values.get("dir") is not None:
        text = _value(values["dir"], str, {}, "model.dir", problems)
        if isinstance(text, str):
            directory = Path(text) if base_dir is None else base_dir / text
    overrides = []
    table = _mapping(values.get("thresholds"), "model.thresholds", problems) or {}
    for key, entry in table.items():
        path = f"model.thresholds.{key}"
        if type(key) not in (int, str) or key == "" or (type(key) is int and key < 1):
            problems.add(path, "name a class by its id (1, 2, ...) or its name")
            continue
        override = _section(ThresholdOverride, entry, path, problems, {"target": key})
        if override is not None and not override.changes():
            keys = "presence, pixel, min_component_area or min_mask_area"
            problems.add(path, f"sets nothing: give {keys}, or remove the class")
        elif override is not None:
            overrides.append(override)
    if len(problems.items) > count:
        return None
    return ModelSettings(dir=directory, thresholds=tuple(overrides))


def _metrics_dir(environ: Mapping[str, str]) -> str | None:
    """$PROMETHEUS_MULTIPROC_DIR, else $RUNTIME_DIRECTORY/metrics (systemd), else None."""
    if environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return environ["PROMETHEUS_MULTIPROC_DIR"]
    runtime = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]  # the first of several
    return str(Path(runtime) / "metrics") if runtime else None


def parse_config(
    mapping: object,
    source: str = "<string>",
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> DaemonConfig:
    """The config from parsed YAML, or `ConfigError` with every problem found.

    A relative ``model.dir`` is taken from `base_dir` (`load_config`: the file's folder); an
    unset ``metrics.multiprocess_dir`` from `environ` (default: the process environment).
    """
    if mapping is None:
        raise ConfigError([f"{source}: the config is empty; it needs at least line and cameras"])
    if not isinstance(mapping, dict):
        got = _describe(mapping)
        raise ConfigError(
            [f"{source}: expected a mapping of sections (line, cameras, ...), got {got}"]
        )
    problems = _Problems()
    for key in mapping:
        if key not in SECTIONS:
            problems.unknown("", key, list(SECTIONS))
    parts: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        raw = mapping.get(name)
        if name in REQUIRED_SECTIONS and name not in mapping:
            problems.add(name, "required section is missing")
        elif name == "cameras":
            parts[name] = _cameras(raw, problems)
        elif name == "model":
            parts[name] = _model(raw, problems, base_dir)
        else:
            parts[name] = _section(cls, raw, name, problems)
    metrics = parts["metrics"]
    if metrics is not None and metrics.multiprocess_dir is None:
        found = _metrics_dir(os.environ if environ is None else environ)
        parts["metrics"] = replace(metrics, multiprocess_dir=found)
    listed = mapping.get("cameras")
    complete = isinstance(listed, list) and 0 < len(parts.get("cameras", ())) == len(listed)
    _resolve_key_paths(parts, base_dir)
    _check_cameras(parts.get("cameras", []), problems)
    _check_sections(parts, complete, problems)
    _check_security(parts, problems)
    if problems.items:
        raise ConfigError(problems.formatted(source))
    parts["cameras"] = tuple(camera for _, camera in parts["cameras"])
    return DaemonConfig(**parts, source=source)


# --- checks across keys ------------------------------------------------------------------------


def _resolve_key_paths(parts: dict[str, Any], base_dir: Path | None) -> None:
    """Key files and allow-lists relative to the config file's folder, like ``model.dir``."""
    if base_dir is None:
        return

    def resolved(text: str | None) -> str | None:
        return None if text is None else str(base_dir / text)

    security = parts.get("security")
    if security is not None:
        keys = ("server_secret_key", "ingest_clients_dir", "subscriber_clients_dir")
        parts["security"] = replace(
            security, **{key: resolved(getattr(security, key)) for key in keys}
        )
    parts["cameras"] = [
        (index, replace(camera, server_public_key=resolved(camera.server_public_key)))
        for index, camera in parts.get("cameras", [])
    ]


def _check_security(parts: Mapping[str, Any], problems: _Problems) -> None:
    """With ``security.curve``: every key file and allow-list named, present and readable."""
    security: SecuritySettings | None = parts.get("security")
    if security is None or not security.curve:
        return
    from defectd.daemon import curve  # imports zmq, which `defectd --help` does without

    cameras: Sequence[tuple[int, CameraSettings]] = parts.get("cameras", [])

    def check(path: str, value: str | None, load: Callable[[Path], object], why: str) -> None:
        if value is None:
            problems.add(path, f"required with security.curve: {why}")
            return
        try:
            load(Path(value))
        except curve.CurveKeyError as exc:
            problems.add(path, str(exc))

    check(
        "security.server_secret_key",
        security.server_secret_key,
        curve.load_key_pair,
        "the daemon's .key_secret (defectd keygen)",
    )
    if any(camera.mode == "bind" for _, camera in cameras):
        check(
            "security.ingest_clients_dir",
            security.ingest_clients_dir,
            curve.load_allow_list,
            "the folder of the public keys (.key) of the cameras allowed to push frames",
        )
    check(
        "security.subscriber_clients_dir",
        security.subscriber_clients_dir,
        curve.load_allow_list,
        "the folder of the public keys (.key) of the subscribers allowed to read events",
    )
    keyed: dict[str, tuple[int, str | None]] = {}
    for index, camera in cameras:
        first, key = keyed.setdefault(camera.endpoint, (index, camera.server_public_key))
        if camera.mode == "connect" and key != camera.server_public_key:
            message = f"cameras[{first}] shares {camera.endpoint} with another key: one socket"
            problems.add(f"cameras[{index}].server_public_key", f"{message}, one server key")
        elif camera.mode == "connect" and first == index:
            check(
                f"cameras[{index}].server_public_key",
                camera.server_public_key,
                curve.load_public_key,
                "the camera's public key (.key): its PUB is the CURVE server",
            )


def config_warnings(config: DaemonConfig) -> list[str]:
    """What is allowed but unwise, as ``FILE: key: warning`` lines (logged at start, printed
    by check-config): a secret key file others can read, an empty allow-list."""
    security = config.security
    if not security.curve:
        return []
    from defectd.daemon import curve

    warnings = []
    if security.server_secret_key is not None:
        readers = curve.loose_permissions(Path(security.server_secret_key))
        if readers:
            warnings.append(
                f"{config.source}: security.server_secret_key: {security.server_secret_key} "
                f"is readable by {readers}: chmod 600 it (and make the daemon's user own it)"
            )
    for key in ("ingest_clients_dir", "subscriber_clients_dir"):
        directory = getattr(security, key)
        if directory is None:
            continue
        try:
            empty = not curve.load_allow_list(Path(directory))
        except curve.CurveKeyError:
            continue  # a config problem, reported by parse_config
        if empty:
            warnings.append(
                f"{config.source}: security.{key}: {directory} holds no *.key certificate: "
                "every client is refused"
            )
    return warnings


def _check_cameras(cameras: Sequence[tuple[int, CameraSettings]], problems: _Problems) -> None:
    """Unique ids, one mode per endpoint, one frame size."""
    first_id: dict[str, int] = {}
    first_mode: dict[str, tuple[int, str]] = {}
    for index, camera in cameras:
        where = f"cameras[{index}]"
        if camera.id in first_id:
            other = f"cameras[{first_id[camera.id]}]"
            problems.add(f"{where}.id", f"{camera.id!r} is also {other}'s id: ids must be unique")
        first_id.setdefault(camera.id, index)
        try:
            parse_endpoint(camera.endpoint, bind=camera.mode == "bind")
        except ValueError as exc:
            problems.add(f"{where}.endpoint", str(exc))
        user, mode = first_mode.setdefault(camera.endpoint, (index, camera.mode))
        if mode != camera.mode:
            message = (
                f"cameras[{user}] {mode}s {camera.endpoint}: one endpoint, one socket, one mode"
            )
            problems.add(f"{where}.mode", message)
    for index, camera in cameras[1:]:
        first_index, first = cameras[0]
        if (camera.width, camera.height) != (first.width, first.height):
            message = (
                f"sends {camera.width}×{camera.height}, cameras[{first_index}] "
                f"{first.width}×{first.height}: slots and batches hold one frame size"
            )
            problems.add(f"cameras[{index}]", message)


def _check_sections(parts: Mapping[str, Any], complete: bool, problems: _Problems) -> None:
    """Limits that depend on other keys, and addresses bound twice."""
    cameras: Sequence[tuple[int, CameraSettings]] = parts.get("cameras", [])
    ingest, slots, engine = parts["ingest"], parts["slots"], parts["engine"]
    if ingest is not None:
        _not_below(ingest, "ingest", "reconnect_ivl_ms", "reconnect_ivl_max_ms", problems)
        if ingest.heartbeat_ivl_ms:
            _not_below(ingest, "ingest", "heartbeat_ivl_ms", "heartbeat_timeout_ms", problems)
        sockets = len({camera.endpoint for _, camera in cameras})
        if complete and ingest.receivers > sockets:
            message = f"{ingest.receivers} receivers for {sockets} camera socket(s)"
            problems.add("ingest.receivers", f"{message}: one process reads a socket")
        for index, camera in cameras:
            encoding = camera.encoding or "mono8"
            needed = camera.width * camera.height * RAW_CHANNELS.get(encoding, 1)
            if ingest.max_frame_bytes < needed:
                message = f"less than one {encoding} frame of cameras[{index}] ({needed} bytes)"
                problems.add("ingest.max_frame_bytes", message)
                break
    if slots is not None and engine is not None and slots.count < 2 * engine.max_batch:
        # One batch is in the engine while the next one fills; fewer slots starve the engine.
        message = f"must be at least 2 × engine.max_batch = {2 * engine.max_batch}"
        problems.add("slots.count", f"{message}, got {slots.count}")
    if parts["restart"] is not None:
        _not_below(parts["restart"], "restart", "backoff_initial_s", "backoff_max_s", problems)
    _check_binds(cameras, parts["publish"], parts["metrics"], problems)


def _not_below(section: Any, path: str, low: str, high: str, problems: _Problems) -> None:
    """``path.high`` must be at least ``path.low``."""
    low_value, high_value = getattr(section, low), getattr(section, high)
    if high_value < low_value:
        message = f"must be at least {low} ({low_value:g}), got {high_value:g}"
        problems.add(f"{path}.{high}", message)


def _check_binds(
    cameras: Sequence[tuple[int, CameraSettings]],
    publish: PublishSettings | None,
    metrics: MetricsSettings | None,
    problems: _Problems,
) -> None:
    """What the daemon binds must not clash (cameras that share an endpoint share a socket)."""
    binds: list[tuple[str, str, Endpoint]] = []  # (key path, address, parsed)
    for index, camera in cameras:
        if camera.mode == "bind" and all(text != camera.endpoint for _, text, _ in binds):
            parsed = parse_endpoint(camera.endpoint)  # valid: checked with the camera
            binds.append((f"cameras[{index}].endpoint", camera.endpoint, parsed))
    if publish is not None:
        binds.append(("publish.bind", publish.bind, parse_endpoint(publish.bind)))
    if metrics is not None:
        binds.append(("metrics.bind", metrics.bind, parse_http_bind(metrics.bind)))
    for later, (path, text, endpoint) in enumerate(binds):
        clash = next((b for b in binds[:later] if endpoint.clashes(b[2])), None)
        if clash is not None:
            message = f"{text} is also bound by {clash[0]} ({clash[1]})"
            problems.add(path, f"{message}: use another port or path")


# --- the file ----------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Hashable, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                message = f"key {key!r} appears twice (first on line {seen[key] + 1})"
                raise YamlConstructorError(None, None, message, key_node.start_mark)
            if isinstance(key, Hashable):
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def read_yaml(text: str, source: str) -> object:
    """Parsed YAML text; `ConfigError` with the line and column of a syntax error."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = ""
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            context = f" ({exc.context} on line {exc.context_mark.line + 1})"
        problem = exc.problem or exc.context or "not valid YAML"
        if "'\\t'" in problem:
            problem += " (YAML indents with spaces, not tabs)"
        kind = "" if isinstance(exc, YamlConstructorError) else "YAML syntax error: "
        raise ConfigError([f"{source}: {where}{kind}{problem}{context}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: YAML syntax error: {exc}"]) from None


def load_config(path: Path | str, environ: Mapping[str, str] | None = None) -> DaemonConfig:
    """Read, parse and check the config file at `path`; `ConfigError` with every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        default = "" if path == DEFAULT_CONFIG_PATH else f" (the default is {DEFAULT_CONFIG_PATH})"
        message = f"{path}: no such config file{default}"
        raise ConfigError([f"{message}; docs/configuration.md has an example"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config: {exc.strerror or exc}"]) from None
    mapping = read_yaml(text, str(path))
    return parse_config(mapping, str(path), base_dir=path.parent.absolute(), environ=environ)


# --- what needs the model ----------------------------------------------------------------------


def effective_thresholds(
    card: ModelCard, overrides: Sequence[ThresholdOverride], source: str = "<config>"
) -> PostprocessConfig:
    """The card's tuned thresholds with `overrides` (``model.thresholds``) applied over them;
    `ConfigError` when an override names a class the model lacks, or one class twice."""
    problems = _Problems()
    listing = ", ".join(f"{i} {name}" for i, name in enumerate(card.classes, start=1))
    classes = list(card.thresholds.classes)
    taken: dict[int, int | str] = {}
    for override in overrides:
        path, target = f"model.thresholds.{override.target}", override.target
        if isinstance(target, int):
            index = target - 1
        else:
            index = card.classes.index(target) if target in card.classes else -1
        if not 0 <= index < min(len(classes), len(card.classes)):
            close = difflib.get_close_matches(str(target), card.classes, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            message = f"model {card.name} has no class {target!r}; {hint}its classes are"
            problems.add(path, f"{message} {listing}")
        elif index in taken:
            message = f"class {index + 1} ({card.classes[index]}) is already set by"
            problems.add(path, f"{message} model.thresholds.{taken[index]}")
        else:
            taken[index] = target
            classes[index] = replace(classes[index], **override.changes())
    if problems.items:
        raise ConfigError(problems.formatted(source))
    return PostprocessConfig(tuple(classes))


@dataclass(frozen=True)
class ModelCheck:
    """The model a config runs, and the thresholds it runs it with."""

    card: ModelCard
    thresholds: PostprocessConfig


def check_model(config: DaemonConfig, verify: bool = True) -> ModelCheck:
    """Read ``model.dir``'s card, check the cameras' frames fit the model and apply the
    threshold overrides (`verify`: also each model file's sha256); `ConfigError` if not."""
    try:
        card = read_card(config.model.dir)
        if verify:
            card.verify()
    except ValueError as exc:
        raise ConfigError([f"{config.source}: model.dir: {exc}"]) from None
    problems = []
    try:
        check_model_fits(card, config.frame_format)
    except ValueError as exc:
        problems.append(f"{config.source}: cameras: {exc}")
    thresholds = card.thresholds
    try:
        thresholds = effective_thresholds(card, config.model.thresholds, config.source)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return ModelCheck(card, thresholds)
