"""The daemon's configuration: one YAML file, typed, checked in full before anything starts.

`load_config` reads the file (the service's is `DEFAULT_CONFIG_PATH`) and `parse_config` turns
the parsed YAML into a frozen `DaemonConfig`. Every problem is reported, not just the first,
as ``FILE: key.path: problem`` lines in one `ConfigError`: unknown keys (with "did you mean"),
wrong types (strict: ``true`` is not 1, ``"16"`` is not 16, ``16.0`` is not a whole number),
values out of range, and what spans keys (duplicate camera ids, geometry that places
nothing, addresses bound twice, enough slots for double buffering).

What needs the model (do the frames fit it, which classes the threshold overrides name) is
`check_model`'s job: the daemon runs it at start, ``defectd check-config --model-check`` on
demand. Every key, its default and its meaning: docs/configuration.md.

The modules, each one job (each imports only those above it):

- `endpoints`: ZeroMQ endpoints, the HTTP bind address, camera ids.
- `schema`: the section dataclasses and `DaemonConfig`.
- `errors`: `ConfigError`, and the problems collected on the way to one.
- `checks`: what spans keys, and the CURVE key files.
- `reader`: the typed reader, `parse_config`.
- `loading`: the strict YAML loader and `load_config`.
- `model_check`: `effective_thresholds` and `check_model`.
"""

from __future__ import annotations

from defectd.daemon.config.checks import config_warnings
from defectd.daemon.config.endpoints import (
    MAX_IPC_PATH,
    MODES,
    TRANSPORTS,
    Endpoint,
    check_camera_id,
    parse_endpoint,
    parse_http_bind,
)
from defectd.daemon.config.errors import ConfigError
from defectd.daemon.config.loading import DEFAULT_CONFIG_PATH, load_config, read_yaml
from defectd.daemon.config.model_check import ModelCheck, check_model, effective_thresholds
from defectd.daemon.config.reader import parse_config
from defectd.daemon.config.schema import (
    LOG_FORMATS,
    LOG_LEVELS,
    MOVED,
    REQUIRED_SECTIONS,
    SECTIONS,
    BatchingSettings,
    CameraSettings,
    ControlSettings,
    DaemonConfig,
    IngestSettings,
    IngestSocket,
    LineSettings,
    LoggingSettings,
    MetricsSettings,
    ModelSettings,
    PostprocessSettings,
    PublishSettings,
    RestartSettings,
    SecuritySettings,
    ShadowSettings,
    ShutdownSettings,
    SlotSettings,
    ThresholdOverride,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MAX_IPC_PATH",
    "MODES",
    "MOVED",
    "REQUIRED_SECTIONS",
    "SECTIONS",
    "TRANSPORTS",
    "BatchingSettings",
    "CameraSettings",
    "ConfigError",
    "ControlSettings",
    "DaemonConfig",
    "Endpoint",
    "IngestSettings",
    "IngestSocket",
    "LineSettings",
    "LoggingSettings",
    "MetricsSettings",
    "ModelCheck",
    "ModelSettings",
    "PostprocessSettings",
    "PublishSettings",
    "RestartSettings",
    "SecuritySettings",
    "ShadowSettings",
    "ShutdownSettings",
    "SlotSettings",
    "ThresholdOverride",
    "check_camera_id",
    "check_model",
    "config_warnings",
    "effective_thresholds",
    "load_config",
    "parse_config",
    "parse_endpoint",
    "parse_http_bind",
    "read_yaml",
]
