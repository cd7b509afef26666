"""The dependency rule of the README's "Layout" section, enforced.

    runtime  ←  clients, tools          (defectd.daemon: what `defectd run` loads)
    engines  ←  training                (engines never imports daemon or training)
    training ←  its commands only       (train, export, tune, crossval)
    torch    ←  training, the torch backend, and guarded probes in the benchmarks

Every `import` in the package is read from the source (function-level and TYPE_CHECKING
imports too), so a lazy import cannot slip past; then a real `defectd run` import is checked
in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARTS = {"daemon": "defectd.daemon", "engines": "defectd.engines", "training": "defectd.training"}
CLIENTS = "defectd.daemon.clients"
TOOLS = "defectd.daemon.tools"
COMMANDS = "defectd.daemon.commands"
CLI = "defectd.daemon.cli"
TRAINING = "defectd.training"
TRAINING_COMMANDS = {f"{COMMANDS}.{name}" for name in ("train", "export", "tune", "crossval")}
TORCH_USERS = ("defectd.training", "defectd.engines.backends.torch_backend")
TORCH_PROBES = ("defectd.engines.benchmarks",)  # optional, inside try/except ImportError


def _modules() -> Iterator[tuple[str, Path]]:
    for folder, package in PARTS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join([package, *parts]), path


def _imports(path: Path, module: str) -> set[str]:
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _is_runtime(module: str) -> bool:
    return _under(module, "defectd.daemon") and not _under(module, CLIENTS, TOOLS, COMMANDS, CLI)


def _violations(module: str, imported: set[str]) -> list[str]:
    found = []
    if _under(module, "defectd.engines"):
        found += [n for n in imported if _under(n, "defectd.daemon", TRAINING)]
    if _is_runtime(module):
        found += [n for n in imported if _under(n, CLIENTS, TOOLS, COMMANDS, CLI)]
    if _under(module, CLIENTS):
        found += [n for n in imported if _under(n, TOOLS, COMMANDS, CLI)]
    if not _under(module, TRAINING) and module not in TRAINING_COMMANDS:
        found += [n for n in imported if _under(n, TRAINING)]
    if not _under(module, *TORCH_USERS, *TORCH_PROBES):
        found += [n for n in imported if _under(n, "torch")]
    return sorted(set(found))


def test_the_rule_sees_every_module() -> None:
    modules = dict(_modules())
    assert f"{CLIENTS}.tail" in modules and "defectd.daemon.stages.inference" in modules
    # and it would catch a breach: a runtime module importing a client is refused
    assert _violations("defectd.daemon.supervisor", {f"{CLIENTS}.tail"}) == [f"{CLIENTS}.tail"]


@pytest.mark.parametrize(("module", "path"), list(_modules()), ids=lambda v: str(v))
def test_imports_follow_the_layering(module: str, path: Path) -> None:
    bad = _violations(module, _imports(path, module))
    assert not bad, f"{path.relative_to(REPO)} imports {', '.join(bad)} (README: Layout)"


def test_defectd_run_loads_only_the_runtime() -> None:
    code = (
        "import sys\n"
        "from defectd.daemon.cli import build_parser\n"
        "build_parser('run')\n"
        "import defectd.daemon.supervisor\n"
        "for stage in ('receiver', 'inference', 'postprocess', 'publisher'):\n"
        "    __import__(f'defectd.daemon.stages.{stage}')\n"
        "import defectd.engines.selection, defectd.engines.backends.onnxruntime_backend\n"
        "bad = ('defectd.daemon.clients', 'defectd.daemon.tools', 'defectd.training',\n"
        "       'torch', 'tensorrt')\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith(bad))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"`defectd run` imported {done.stdout.strip()}"


def test_help_imports_no_command() -> None:
    code = (
        "import sys\n"
        "from defectd.daemon.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = [m for m in sys.modules if m.startswith('defectd.daemon.commands.')]\n"
        "print('loaded:' + ','.join(sorted(loaded)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "service (the inspection PC):" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "loaded:", done.stdout
