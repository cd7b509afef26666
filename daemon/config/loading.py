"""The config file: read it (the service's is `DEFAULT_CONFIG_PATH`), parse its YAML
strictly, and hand the result to the typed reader.

The YAML loader refuses duplicate keys, which PyYAML would silently resolve to the last; every
problem, syntax or otherwise, becomes a `ConfigError` that names the file (and the line).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml
from yaml.constructor import ConstructorError as YamlConstructorError

from defectd.daemon.config.errors import ConfigError
from defectd.daemon.config.reader import parse_config
from defectd.daemon.config.schema import DaemonConfig
from defectd.engines.strict_yaml import StrictLoader

DEFAULT_CONFIG_PATH = Path("/etc/defectd/defectd.yaml")


def read_yaml(text: str, source: str) -> object:
    """Parsed YAML text; `ConfigError` with the line and column of a syntax error."""
    try:
        return yaml.load(text, Loader=StrictLoader)
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
