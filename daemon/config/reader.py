"""The typed reader: parsed YAML in, a frozen `DaemonConfig` out, or every problem at once.

Strict about types (``true`` is not 1, ``"16"`` is not 16, ``16.0`` is not a whole number),
it reads each section against its dataclass's type hints and field metadata (`schema.py`),
puts each problem at its key path, then runs the checks that span keys (`checks.py`).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import MISSING, Field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from defectd.daemon.coils.grading import parse_rules
from defectd.daemon.config.checks import check_across_keys
from defectd.daemon.config.errors import ConfigError, Problems, key_path
from defectd.daemon.config.schema import (
    REQUIRED_SECTIONS,
    SECTIONS,
    CameraSettings,
    CoilSettings,
    DaemonConfig,
    ModelSettings,
    ThresholdOverride,
)
from defectd.engines.model_card import default_model_dir
from defectd.engines.selection import EngineConfig

T = TypeVar("T")


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
    value: object, hint: Any, meta: Mapping[str, Any], path: str, problems: Problems
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


def _mapping(raw: object, path: str, problems: Problems) -> dict[Any, Any] | None:
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
    problems: Problems,
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
        checked = _value(value, hints[key], spec[key].metadata, key_path(path, key), problems)
        ok = ok and checked is not _BAD
        kwargs[key] = checked
    for name, item in spec.items():
        if name not in values and item.default is MISSING and item.default_factory is MISSING:
            problems.add(key_path(path, name), "required key is missing")
            ok = False
    if cls is EngineConfig:  # its own checks too, even when a key was wrong
        engine = _engine({k: v for k, v in kwargs.items() if v is not _BAD}, problems)
        return typing.cast(T, engine) if ok else None
    return cls(**kwargs) if ok else None


def _engine(values: Mapping[str, Any], problems: Problems) -> EngineConfig | None:
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


def _cameras(raw: object, problems: Problems) -> list[tuple[int, CameraSettings]]:
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


def _model(raw: object, problems: Problems, base_dir: Path | None) -> ModelSettings | None:
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


def _coils(raw: object, problems: Problems) -> CoilSettings | None:
    """``coils:``: its numbers, then the grades and rules (`daemon.coils.grading`)."""
    values = _mapping(raw, "coils", problems)
    if values is None:
        return None
    values = dict(values)
    grades = values.pop("grades", ["A", "B", "reject"])
    rules = values.pop("rules", None) or []
    count = len(problems.items)
    if not isinstance(grades, list) or not grades or not all(isinstance(g, str) for g in grades):
        problems.add("coils.grades", f"expected a list of grade names, best first, got "
                     f"{_describe(grades)}")  # fmt: skip
        return None
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        problems.add("coils.rules", f"expected a list of rules (mappings), got {_describe(rules)}")
        return None
    given: dict[str, object] = {"grades": tuple(grades), "rules": ()}
    try:
        parsed = parse_rules(grades, rules)
        given["rules"] = parsed.rules
    except ValueError as exc:
        found = re.match(r"(rules\[\d+\](?:\.[a-z_0-9]+)?): (.*)", str(exc), re.DOTALL)
        if found:
            problems.add(f"coils.{found[1]}", found[2])
        else:
            problems.add("coils.rules", str(exc))
    settings = _section(CoilSettings, values, "coils", problems, given)
    return settings if len(problems.items) == count else None


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
    problems = Problems()
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
        elif name == "coils":
            parts[name] = _coils(raw, problems)
        else:
            parts[name] = _section(cls, raw, name, problems)
    metrics = parts["metrics"]
    if metrics is not None and metrics.multiprocess_dir is None:
        found = _metrics_dir(os.environ if environ is None else environ)
        parts["metrics"] = replace(metrics, multiprocess_dir=found)
    listed = mapping.get("cameras")
    complete = isinstance(listed, list) and 0 < len(parts.get("cameras", ())) == len(listed)
    _resolve_key_paths(parts, base_dir)
    check_across_keys(parts, complete, problems)
    if problems.items:
        raise ConfigError(problems.formatted(source))
    parts["cameras"] = tuple(camera for _, camera in parts["cameras"])
    return DaemonConfig(**parts, source=source)


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
    output_keys: dict[str, tuple[str, ...]] = {
        "web": ("token_file",),
        "mqtt": ("password_file", "ca_file"),
        "opcua": ("certificate", "private_key", "trusted_clients_dir"),
        "shadow": ("model_dir", "dir"),
        "control": ("socket",),
    }
    for name, names in output_keys.items():
        section = parts.get(name)
        if section is not None:
            parts[name] = replace(
                section, **{key: resolved(getattr(section, key)) for key in names}
            )
    parts["cameras"] = [
        (index, replace(camera, server_public_key=resolved(camera.server_public_key)))
        for index, camera in parts.get("cameras", [])
    ]
