"""Write-then-rename, so a crash never leaves a half-written file where a good one was."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def atomic_write(path: Path, write: Callable[[Path], T]) -> T:
    """Call `write(partial)` on ``PATH.partial``, then rename it to `path`; return its result."""
    partial = path.with_name(path.name + ".partial")
    result = write(partial)
    os.replace(partial, path)
    return result


def write_json(obj: Any, path: Path) -> None:
    """`obj` as indented JSON at `path`, atomically."""
    text = json.dumps(obj, indent=2) + "\n"
    atomic_write(path, lambda partial: partial.write_text(text, encoding="utf-8"))
