"""A clear error when a training command runs on a runtime-only install (no torch)."""

from __future__ import annotations

import importlib.util

from defectd.daemon.cli import CommandError


def require_torch(command: str) -> None:
    """Raise CommandError naming the extra to install when torch is missing."""
    if importlib.util.find_spec("torch") is None:
        raise CommandError(
            f"`defectd {command}` needs PyTorch: pip install 'defectd[train]' "
            "(the runtime install has no torch)"
        )
