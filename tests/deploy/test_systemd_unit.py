"""deploy/systemd/defectd.service: what it must say, and `systemd-analyze verify` on it.

`verify` refuses a unit whose ExecStart binaries are missing, so it runs on a copy whose
/opt/defectd/venv/bin/defectd is a stub in a temporary folder. It only *warns* (exit 0) about
unknown keys and unparsable values, so a warning that names the unit counts as a failure
too; deliberately broken copies check that this catches what it must.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from defectd.daemon.config import DEFAULT_CONFIG_PATH

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "defectd.service"
CONFIG = REPO / "deploy" / "config" / "defectd.yaml"
BINARY = "/opt/defectd/venv/bin/defectd"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian: apt install systemd)"
)


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections → (key, value) in file order; repeated keys kept (Environment=, DeviceAllow=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{line!r} before any [Section]"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=value: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [value for name, value in unit.get(section, []) if name == key]


def one(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}= set {len(found)} times: {found}"
    return found[0]


def seconds(text: str) -> float:
    """A systemd time span (``30s``, ``1min 30s``, ``30min``, plain seconds) in seconds."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "": 1}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text):
        total += float(number) * units[unit]
    return total


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def test_notify_watchdog_and_restart(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert one(unit, "Service", "Type") == "notify"
    # The supervisor (the main process) sends READY/WATCHDOG; stages never do.
    assert one(unit, "Service", "NotifyAccess") == "main"
    assert 10 < seconds(one(unit, "Service", "WatchdogSec")) <= 120
    assert one(unit, "Service", "Restart") == "on-failure"
    assert 1 <= seconds(one(unit, "Service", "RestartSec")) <= 60
    assert one(unit, "Service", "RestartPreventExitStatus") == "2"  # config/model unusable
    assert one(unit, "Service", "KillMode") == "mixed"  # the supervisor stops the stages
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_commands_use_the_installed_venv_and_config(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    config = str(DEFAULT_CONFIG_PATH)
    assert one(unit, "Service", "ExecStart") == f"{BINARY} run --config {config}"
    # "-": a failure is left to the daemon, whose exit 2 (bad config) is not restarted.
    assert one(unit, "Service", "ExecStartPre") == f"-{BINARY} build-engine --config {config}"
    # No "-": a refused reload or a failed swap fails `systemctl reload`, and says why.
    assert one(unit, "Service", "ExecReload") == f"{BINARY} reload --config {config}"
    assert one(unit, "Service", "User") == "defectd"


def test_directories_line_up_with_the_daemon(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert one(unit, "Service", "RuntimeDirectory") == "defectd"  # → /run/defectd/metrics
    assert one(unit, "Service", "StateDirectory") == "defectd"
    assert one(unit, "Service", "ConfigurationDirectory") == DEFAULT_CONFIG_PATH.parent.name
    assert DEFAULT_CONFIG_PATH.parent == Path("/etc") / "defectd"
    assert "DEFECTD_ENGINE_CACHE=%S/defectd/engines" in values(unit, "Service", "Environment")


def test_stop_timeout_covers_the_drain(unit: dict[str, list[tuple[str, str]]]) -> None:
    drain = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["shutdown"]["drain_timeout_s"]
    # drain, then up to 5 s for each of receivers, inference, post-processing, publisher
    assert seconds(one(unit, "Service", "TimeoutStopSec")) >= drain + 4 * 5 + 5
    assert seconds(one(unit, "Service", "TimeoutStartSec")) >= 10 * 60  # engine builds


def test_gpu_access_and_hardening(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert one(unit, "Service", "LimitMEMLOCK") == "infinity"
    assert "char-nvidia* rw" in values(unit, "Service", "DeviceAllow")
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectControlGroups": "yes",
        "RemoveIPC": "yes",
    }.items():
        assert one(unit, "Service", key) == value, key
    families = set(one(unit, "Service", "RestrictAddressFamilies").split())
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= families
    # Each would break the GPU or the engines; see the unit's comments.
    for key in ("PrivateDevices", "MemoryDenyWriteExecute", "ProcSubset", "DevicePolicy"):
        assert not values(unit, "Service", key), f"{key}= breaks the GPU or the engines"
    # /dev/shm (the frame slots) must stay writable: nothing may hide or freeze /dev.
    for key in ("ReadOnlyPaths", "InaccessiblePaths", "TemporaryFileSystem"):
        assert not any("/dev" in v for v in values(unit, "Service", key)), key


def test_parse_unit_reads_repeats_and_continuations() -> None:
    parsed = parse_unit("[A]\n# c\nX=1\nX=2\nY=a \\\n  b\n[B]\nZ=\n")
    assert parsed == {"A": [("X", "1"), ("X", "2"), ("Y", "a b")], "B": [("Z", "")]}
    assert seconds("1min 30s") == 90 and seconds("30min") == 1800 and seconds("60") == 60


# --- systemd-analyze verify ------------------------------------------------------------------


def stubbed(tmp_path: Path, text: str, name: str = "defectd.service") -> Path:
    """`text` with the venv's defectd replaced by an executable stub under `tmp_path`."""
    stub = tmp_path / "bin" / "defectd"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    stub.chmod(0o755)
    path = tmp_path / name
    path.write_text(text.replace(BINARY, str(stub)), encoding="utf-8")
    return path


def verify(path: Path) -> list[str]:
    """Problems `systemd-analyze verify` finds in the unit at `path` (empty: it verifies)."""
    assert ANALYZE is not None
    done = subprocess.run(
        [ANALYZE, "verify", "--man=no", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""},
    )
    output = (done.stdout + done.stderr).splitlines()
    # Warnings about *this* unit (unknown keys, bad values are only warnings); others are
    # about the host's units that ours names (network-online.target, say).
    problems = [line for line in output if path.name in line or str(path) in line]
    if done.returncode != 0:
        problems.append(f"exit status {done.returncode}: " + " | ".join(output))
    return problems


@needs_analyze
def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    text = UNIT.read_text(encoding="utf-8")
    assert text.count(BINARY) == 3  # ExecStartPre, ExecStart and ExecReload, stubbed below
    # verify skips the existence check for "-" commands; ExecStart and ExecReload have none.
    assert verify(stubbed(tmp_path, text)) == []


@needs_analyze
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("Type=notify", "Typ=notify"), "Unknown key"),
        (("Restart=on-failure", "Restart=sometimes"), "restart"),
        (("KillMode=mixed", "KillMode=gently"), "kill mode"),
        (("WatchdogSec=30s", "WatchdogSec=thirty"), "sec value"),
        ((f"ExecStart={BINARY}", "ExecStart=bin/defectd"), "absolute path"),
        (("ProtectSystem=strict", "ProtectSystem=very"), "protect system"),
    ],
)
def test_verify_catches_a_broken_unit(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    text = UNIT.read_text(encoding="utf-8")
    directive = re.compile(f"^{re.escape(change[0])}", re.MULTILINE)  # not in a comment
    assert len(directive.findall(text)) == 1
    problems = verify(stubbed(tmp_path, directive.sub(change[1], text)))
    assert problems, f"{change[1]!r} passed verify"
    assert expected.lower() in " ".join(problems).lower()


@needs_analyze
@pytest.mark.skipif(Path(BINARY).exists(), reason=f"{BINARY} is installed on this machine")
def test_verify_needs_the_binaries(tmp_path: Path) -> None:
    """Unstubbed, the unit names a venv that is not installed here: verify refuses it."""
    path = tmp_path / "defectd.service"
    shutil.copy(UNIT, path)
    problems = verify(path)
    assert any("not executable" in line for line in problems), problems


@pytest.mark.skipif(
    any(importlib.util.find_spec(name) for name in ("tensorrt", "pycuda")),
    reason="TensorRT is installed here: ExecStartPre would really build",
)
def test_exec_start_pre_records_the_cpu_engine_without_tensorrt(tmp_path: Path) -> None:
    """What ExecStartPre runs on a CPU-only PC, as a process: exit 0, no TensorRT engine,
    the CPU engine choice recorded."""
    command = one(parse_unit(UNIT.read_text(encoding="utf-8")), "Service", "ExecStartPre")
    arguments = command.split()[1:]  # the binary is the venv's defectd: run this checkout's
    assert arguments == ["build-engine", "--config", str(DEFAULT_CONFIG_PATH)]
    arguments[-1] = str(CONFIG)
    env = {
        **os.environ,
        "DEFECTD_ENGINE_CACHE": str(tmp_path / "engines"),
        "CUDA_VISIBLE_DEVICES": "",
    }
    code = "import sys; from defectd.daemon.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, *arguments],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("no TensorRT engine to build")
    # Instead, the CPU engines the bundled model may use are timed once and the fastest
    # recorded for engine.backend auto (it has an INT8 file that passed on ONNX Runtime).
    assert "CPU engine recorded: " in done.stdout, done.stdout
    assert [p.name[:11] for p in (tmp_path / "engines").iterdir()] == ["cpu-choice-"]
