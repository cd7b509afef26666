"""Log lines for journald and for log shippers (daemon/logs.py)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from defectd.daemon.logs import (
    JsonFormatter,
    TextFormatter,
    configure_logging,
    stream_is_journal,
    syslog_priority,
)

REPO = Path(__file__).resolve().parents[2]
STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def record(
    level: int = logging.INFO, message: str = "hello", exc: bool = False
) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("engine gone\nsecond line")
        except RuntimeError:
            exc_info = sys.exc_info()
    made = logging.LogRecord("daemon.test", level, __file__, 1, message, None, exc_info)
    made.processName = "defectd-infer"
    return made


def journal_env(path: Path) -> dict[str, str]:
    info = os.stat(path)
    return {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, 7),
        (logging.INFO, 6),
        (logging.WARNING, 4),
        (logging.ERROR, 3),
        (logging.CRITICAL, 2),
        (logging.INFO + 5, 6),  # custom levels fall to the level below
        (logging.NOTSET, 7),
    ],
)
def test_syslog_priority(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority


def test_journal_stream_must_name_the_stream_itself(tmp_path: Path) -> None:
    path = tmp_path / "err.log"
    other = tmp_path / "other.log"
    other.touch()
    with path.open("w") as stream:
        assert stream_is_journal(stream, journal_env(path))
        assert not stream_is_journal(stream, journal_env(other))  # redirected: keep stamps
        assert not stream_is_journal(stream, {})
        assert not stream_is_journal(stream, {"INVOCATION_ID": "0123abcd"})
        assert not stream_is_journal(stream, {"JOURNAL_STREAM": "8:x"})
        assert not stream_is_journal(stream, {"JOURNAL_STREAM": "garbage"})
    assert not stream_is_journal(stream, journal_env(path))  # closed


def test_text_for_the_journal_has_a_priority_and_no_timestamp() -> None:
    formatter = TextFormatter(journal=True)
    assert formatter.format(record()) == "<6>INFO defectd-infer daemon.test: hello"
    assert formatter.format(record(logging.WARNING)).startswith("<4>WARNING ")
    assert formatter.format(record(logging.ERROR)).startswith("<3>ERROR ")
    assert formatter.format(record(logging.DEBUG)).startswith("<7>DEBUG ")


def test_text_elsewhere_is_timestamped_without_a_prefix() -> None:
    line = TextFormatter().format(record())
    assert STAMP.match(line)
    assert line.endswith(" INFO defectd-infer daemon.test: hello")
    assert not line.startswith("<")


@pytest.mark.parametrize("journal", [True, False])
def test_text_folds_tracebacks_and_newlines_into_one_line(journal: bool) -> None:
    formatter = TextFormatter(journal=journal)
    line = formatter.format(record(logging.ERROR, "batch failed\r\nretrying", exc=True))
    assert "\n" not in line and "\r" not in line
    assert "batch failed\\nretrying" in line
    assert "\\nTraceback (most recent call last):\\n" in line
    assert line.endswith("RuntimeError: engine gone\\nsecond line")
    assert line.startswith("<3>ERROR") == journal


def test_json_is_one_object_per_line_with_utc_time() -> None:
    line = JsonFormatter().format(record(logging.ERROR, "two\nlines", exc=True))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "error"
    assert entry["process"] == "defectd-infer"
    assert entry["logger"] == "daemon.test"
    assert entry["message"] == "two\nlines"
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])


def test_json_for_the_journal_gets_the_prefix_journald_strips() -> None:
    line = JsonFormatter(journal=True).format(record(logging.WARNING))
    assert line.startswith("<4>{")
    assert json.loads(line[3:])["level"] == "warning"


def test_configure_logging_detects_the_journal_on_stderr(tmp_path: Path) -> None:
    """A real process whose stderr is the stream $JOURNAL_STREAM names, as under systemd."""
    code = (
        "import logging; from defectd.daemon.logs import configure_logging\n"
        "configure_logging('debug', 'text')\n"
        "logging.getLogger('x').debug('d'); logging.getLogger('x').warning('w')\n"
        "try:\n    1/0\nexcept ZeroDivisionError:\n    logging.getLogger('x').exception('boom')\n"
    )
    path = tmp_path / "journal.log"
    path.touch()
    env = {**os.environ, **journal_env(path)}
    with path.open("w") as err:
        subprocess.run([sys.executable, "-c", code], stderr=err, env=env, cwd=REPO, check=True)
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert lines[0] == "<7>DEBUG MainProcess x: d"
    assert lines[1] == "<4>WARNING MainProcess x: w"
    assert lines[2].startswith("<3>ERROR MainProcess x: boom\\nTraceback")
    # The same process writing to a file it was redirected to keeps its timestamps.
    other = tmp_path / "file.log"
    with other.open("w") as err:
        subprocess.run([sys.executable, "-c", code], stderr=err, env=env, cwd=REPO, check=True)
    lines = other.read_text().splitlines()
    assert len(lines) == 3 and all(STAMP.match(line) for line in lines)


def test_run_reports_config_problems_as_journal_errors(tmp_path: Path) -> None:
    config = tmp_path / "defectd.yaml"
    config.write_text("line: {name: l1}\ncameras: []\nbatching: {max_wait: 5}\n")
    path = tmp_path / "journal.log"
    path.touch()
    env = {**os.environ, **journal_env(path)}
    code = "import sys; from defectd.daemon.cli import main; sys.exit(main(sys.argv[1:]))"
    with path.open("w") as err:
        done = subprocess.run(
            [sys.executable, "-c", code, "run", "--config", str(config)],
            stderr=err,
            env=env,
            cwd=REPO,
        )
    assert done.returncode == 2
    lines = path.read_text().splitlines()
    assert lines and all(line.startswith(f"<3>{config}: ") for line in lines)


def test_configure_logging_replaces_handlers_and_sets_the_level() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("warning", "json", journal=True)
        assert len(root.handlers) == 1
        formatter = root.handlers[0].formatter
        assert isinstance(formatter, JsonFormatter) and formatter.journal
        assert root.level == logging.WARNING
        configure_logging("info", "text", journal=False)
        formatter = root.handlers[0].formatter
        assert isinstance(formatter, TextFormatter) and not formatter.journal
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.mark.slow
def test_daemon_under_a_journal_stream(tmp_path: Path) -> None:
    """The real daemon (null engine) writing to the stream $JOURNAL_STREAM names, stopped
    the way the unit stops it (KillMode=mixed: SIGTERM to the supervisor only): every line
    of every process has a priority and no timestamp, and the drain is clean."""
    from defectd.daemon.tools.loopback import DaemonProcess, LoopbackPorts, line_config

    ports = LoopbackPorts()
    config = line_config(
        ports,
        ("c0",),
        push=False,
        engine={"backend": "null", "max_batch": 4},
        line="l1",
        sections={"slots": {"count": 16}},
    )
    path = tmp_path / "journal.log"
    path.touch()  # the daemon's stderr is this file, the one $JOURNAL_STREAM names
    env = {**journal_env(path), "RUNTIME_DIRECTORY": str(tmp_path / "run")}
    with DaemonProcess(config, tmp_path, ports, env=env, log=path) as daemon:
        daemon.wait_ready(90)
        assert daemon.stop(60) == 0
    lines = path.read_text().splitlines()
    assert lines
    assert all(re.match(r"<[2-7]>[A-Z]+ ", line) for line in lines), lines
    assert not any(STAMP.search(line) for line in lines)
    processes = {line.split()[1] for line in lines}
    assert {"MainProcess", "inference", "publisher", "receiver-0"} <= processes
    assert not [line for line in lines if line.startswith(("<3>", "<2>", "<4>"))], lines
    assert any("stopped: received 0, processed 0" in line for line in lines)
    assert (tmp_path / "run" / "metrics").is_dir()  # $RUNTIME_DIRECTORY/metrics, as in the unit
