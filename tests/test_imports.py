"""The runtime packages must not pull torch in: the daemon runs on machines without it."""

from __future__ import annotations

import subprocess
import sys

import pytest

RUNTIME_MODULES = [
    "daemon",
    "defectd.daemon.cli",
    "engines",
    "defectd.engines.rle",
    "defectd.engines.labels",
    "defectd.engines.scoring",
    "defectd.engines.severstal",
    "defectd.engines.synth",
    "defectd.engines.engine",
    "defectd.engines.selection",
    "defectd.engines.postprocess",
    "defectd.engines.backends.onnxruntime_backend",
    "defectd.engines.backends.torch_backend",
    "defectd.engines.backends.tensorrt_backend",
    "defectd.daemon.protocol",
    "defectd.daemon.decode",
    "defectd.daemon.events",
    "defectd.daemon.slots",
    "defectd.daemon.batcher",
    "defectd.daemon.accounting",
    "defectd.daemon.config",
    "defectd.daemon.metrics",
    "defectd.daemon.health",
    "defectd.daemon.sdnotify",
]


@pytest.mark.parametrize("module", RUNTIME_MODULES)
def test_runtime_module_does_not_import_torch(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "from defectd.daemon.cli import build_parser\n"
        "build_parser()\n"  # every subcommand module is imported while building the parser
        "heavy = sorted(m for m in ('torch', 'defectd.training', 'tensorrt') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"{module} imported {done.stdout.strip()}"
