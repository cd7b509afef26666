"""`defectd run --config FILE` as a child process: started, asked over HTTP, stopped.

`DaemonProcess` is the daemon while it runs (its log in a file, ``/readyz``, ``/metrics``,
its stage processes, SIGTERM and the exit status); `run_once` runs it to its end with stdout
and stderr apart, for a daemon that is expected to refuse to start.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from defectd.daemon.tools.loopback.line import LoopbackError, LoopbackPorts, write_config

# Variables a parent's service manager or metrics setup may have set: the child daemon must
# not ping systemd or share a metrics directory with anything else.
_INHERITED = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "PROMETHEUS_MULTIPROC_DIR")
_STOP_MARGIN_S = 10.0  # beyond the drain deadline, for the stages to finish and exit
_DEFAULT_DRAIN_S = 20.0
_SAMPLE = re.compile(r"(\w+)(?:\{(.*)\})? (\S+)")


def daemon_command(config_path: Path) -> list[str]:
    """The command line of the real daemon with `config_path`."""
    return [sys.executable, "-m", "defectd.daemon.cli", "run", "--config", str(config_path)]


def daemon_environ(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without `_INHERITED`, then `env` over it."""
    environ = {k: v for k, v in os.environ.items() if k not in _INHERITED}
    environ.update(env or {})
    return environ


class DaemonProcess:
    """`defectd run` with `config` (written to ``WORKDIR/defectd.yaml``), stdout and stderr
    into `log` (default ``WORKDIR/daemon.log``); `env` is set over the environment.

    The child gets a session of its own, so a Ctrl-C on the terminal reaches only the parent,
    which then stops the daemon in order (`stop`: SIGTERM, drain, exit). Use as a context
    manager: leaving it stops the daemon, and kills it if it does not stop in time.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        workdir: Path,
        ports: LoopbackPorts,
        *,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        self.ports = ports
        self.config_path = write_config(workdir / "defectd.yaml", config)
        self.log_path = log or workdir / "daemon.log"
        self.env = dict(env or {})
        drain = dict(config.get("shutdown", {})).get("drain_timeout_s", _DEFAULT_DRAIN_S)
        self.stop_timeout_s = float(drain) + _STOP_MARGIN_S
        # Stage processes: receivers, inference, post-processing workers, publisher.
        receivers = int(dict(config.get("ingest", {})).get("receivers", 1))
        workers = int(dict(config.get("postprocess", {})).get("workers", 1))
        self.stage_count = receivers + 1 + workers + 1
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> DaemonProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the daemon (once)."""
        if self._process is not None:
            raise LoopbackError(f"the daemon of {self.config_path} was started already")
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            daemon_command(self.config_path),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=daemon_environ(self.env),
            start_new_session=True,
        )

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The supervisor process (LoopbackError before `start`)."""
        if self._process is None:
            raise LoopbackError(f"the daemon of {self.config_path} is not started")
        return self._process

    @property
    def returncode(self) -> int | None:
        """The exit status; None while it runs or before it started."""
        return None if self._process is None else self._process.poll()

    def http(self, path: str, timeout_s: float = 2.0) -> tuple[int, str]:
        """The status and body of GET `path`; LoopbackError when nothing answers."""
        url = f"http://{self.ports.http_address}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as answer:
                return int(answer.status), answer.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            raise LoopbackError(f"GET {url}: nothing answers ({error})") from error

    def http_status(self, path: str) -> int | None:
        """The HTTP status of GET `path`, None when nothing answers yet."""
        try:
            return self.http(path)[0]
        except LoopbackError:
            return None

    def metrics(self) -> str:
        """The ``/metrics`` exposition (text format); read values with `metric`."""
        code, body = self.http("/metrics")
        if code != 200:
            raise LoopbackError(f"GET /metrics answered {code}: {body[:200]}")
        return body

    def children(self) -> dict[str, int]:
        """The stage processes, by name (``defectd-<stage>`` in /proc/PID/comm)."""
        parent = self.process.pid
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                comm = (entry / "comm").read_text().strip()
            except OSError:  # exited meanwhile
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent and comm.startswith("defectd-"):
                found[comm.removeprefix("defectd-")] = int(entry.name)
        return found

    def wait_ready(self, timeout_s: float = 30.0, stop: threading.Event | None = None) -> bool:
        """Until ``/readyz`` answers 200 and every stage process runs (True), or `stop` is set
        (False); LoopbackError when the daemon exits or `timeout_s` passes first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                return False
            if self.returncode is not None:
                raise LoopbackError(
                    f"the daemon exited with status {self.returncode} before it was ready; "
                    f"see {self.log_path}:\n{self.log_tail()}"
                )
            # Ready, and every stage has named itself (defectd-<stage>): under load the last
            # ones may do so just after /readyz turns 200.
            if self.http_status("/readyz") == 200 and len(self.children()) >= self.stage_count:
                return True
            time.sleep(0.1)
        raise LoopbackError(
            f"the daemon was not ready after {timeout_s:g} s; see {self.log_path}:\n"
            f"{self.log_tail()}"
        )

    def wait(self, timeout_s: float) -> int | None:
        """The exit status once the daemon has exited; None if it still runs after
        `timeout_s`."""
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM (the daemon drains and exits), SIGKILL after `timeout_s` (default: the
        config's drain deadline and 10 s more); the exit status, None if never started."""
        process = self._process
        if process is None:
            return None
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(self.stop_timeout_s if timeout_s is None else timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
                except BaseException:  # a second Ctrl-C while it drains: do not wait
                    process.kill()
                    process.wait(5)
                    raise
            return process.returncode
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def log_text(self) -> str:
        """Everything the daemon wrote so far ("" before it started)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the log, for an error message."""
        return "\n".join(self.log_text().splitlines()[-lines:])


def run_once(
    config_path: Path, *, timeout_s: float = 60.0, env: Mapping[str, str] | None = None
) -> tuple[int, subprocess.CompletedProcess[str]]:
    """`defectd run --config FILE` to its end: its pid and what it said (stdout and stderr
    apart); LoopbackError, after a SIGKILL, when it still runs after `timeout_s`."""
    command = daemon_command(config_path)
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=daemon_environ(env),
        text=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            raise LoopbackError(
                f"the daemon still ran after {timeout_s:g} s; it said:\n{stderr[-2000:]}"
            ) from None
    return process.pid, subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def metric(exposition: str, name: str, **labels: str) -> float:
    """The value of one series in a /metrics exposition: `name` with exactly `labels` (0
    when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in exposition.splitlines():
        match = _SAMPLE.fullmatch(line)
        if match and match[1] == name:
            found = ",".join(sorted(match[2].split(","))) if match[2] else ""
            if found == wanted:
                return float(match[3])
    return 0.0
