"""The runtime packages must not pull torch in: the daemon runs on machines without it."""

from __future__ import annotations

import subprocess
import sys

import pytest

RUNTIME_MODULES = [
    "daemon",
    "daemon.cli",
    "engines",
    "engines.rle",
    "engines.labels",
    "engines.scoring",
    "engines.severstal",
    "engines.synth",
    "engines.engine",
    "engines.selection",
    "engines.postprocess",
    "engines.backends.onnxruntime_backend",
    "engines.backends.torch_backend",
    "engines.backends.tensorrt_backend",
    "daemon.protocol",
    "daemon.decode",
    "daemon.events",
    "daemon.slots",
    "daemon.batcher",
    "daemon.accounting",
    "daemon.config",
    "daemon.metrics",
    "daemon.health",
    "daemon.sdnotify",
]


@pytest.mark.parametrize("module", RUNTIME_MODULES)
def test_runtime_module_does_not_import_torch(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "from daemon.cli import build_parser\n"
        "build_parser()\n"  # every subcommand module is imported while building the parser
        "heavy = sorted(m for m in ('torch', 'training', 'tensorrt') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"{module} imported {done.stdout.strip()}"
