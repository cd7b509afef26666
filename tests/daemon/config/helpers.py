"""Shared by the config tests: a minimal valid config, parsing it, and the problems it raises."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from defectd.daemon.config import ConfigError, DaemonConfig, parse_config

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def camera(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": "top-0",
        "endpoint": "tcp://10.0.0.21:5555",
        "width": 1600,
        "height": 256,
    }
    return {**values, **changes}


def config(**sections: Any) -> dict[str, Any]:
    """A minimal valid config mapping with `sections` replaced or added."""
    return {"line": {"name": "line1"}, "cameras": [camera()], **sections}


def parse(mapping: Any, **kwargs: Any) -> DaemonConfig:
    return parse_config(mapping, "test.yaml", environ=kwargs.pop("environ", {}), **kwargs)


def problems(mapping: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(mapping, **kwargs)
    return caught.value.problems


def only_problem(mapping: Any) -> str:
    found = problems(mapping)
    assert len(found) == 1, found
    return found[0]


def doc_yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
