"""`ConfigError`, and `Problems`: the problems found so far, which become one `ConfigError`.

Readers and checks add ``(key path, message)`` pairs and go on, so that one run reports every
problem; `Problems.formatted` turns them into the ``FILE: key.path: problem`` lines.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from defectd.daemon.config.schema import MOVED
from defectd.engines.errors import UserError


class ConfigError(UserError, ValueError):
    """The config cannot be used; ``problems`` holds one ``FILE: key.path: problem`` each."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class Problems:
    """Problems found so far, as (key path, message)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        """Note `message` about the key at `path` ("" for the whole file)."""
        self.items.append((path, message))

    def unknown(self, path: str, key: object, known: Sequence[str]) -> None:
        """Note that `key` is not one of `known` under `path`, with where it lives or the
        closest known key."""
        where = key_path(path, key)
        if where in MOVED:
            self.add(where, f"unknown key: {MOVED[where]}")
            return
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.add(where, f"unknown key{hint} (known here: {', '.join(known)})")

    def formatted(self, source: str) -> list[str]:
        """The problems as ``FILE: key.path: problem`` lines, in the order found."""
        return [
            f"{source}: {path}: {text}" if path else f"{source}: {text}"
            for path, text in self.items
        ]


def key_path(path: str, key: object) -> str:
    """``path.key``, or ``key`` at the top level."""
    return f"{path}.{key}" if path else str(key)
