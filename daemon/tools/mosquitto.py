"""A throwaway Mosquitto broker on a loopback port, for benchmarks and demos.

`Broker` writes a minimal config (one listener on 127.0.0.1, anonymous, no persistence) into a
temporary folder, starts Debian's ``mosquitto`` with it and stops it on exit. Tests start
their own brokers the same way (tests/daemon/outputs).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from defectd.engines.errors import MissingDependency


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_mosquitto() -> str | None:
    """The broker's executable, or None."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto",) if Path(p).is_file()), None
    )


class Broker:
    """`with Broker() as broker:` a broker on 127.0.0.1:`broker.port`."""

    def __init__(self, port: int | None = None) -> None:
        executable = find_mosquitto()
        if executable is None:
            raise MissingDependency(
                "mosquitto is not installed: apt-get install mosquitto (Debian), or point "
                "the benchmark at a broker of your own"
            )
        self.executable = executable
        self.port = port or _free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="defectd-mosquitto-"))
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        config = self._dir / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"log_dest file {self._dir / 'mosquitto.log'}\n",
            encoding="utf-8",
        )
        self._process = subprocess.Popen(
            [self.executable, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{self.port} within 10 s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
