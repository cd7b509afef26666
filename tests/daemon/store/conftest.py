"""A real PostgreSQL server for the store's tests, started once per session.

The server binaries come from DEFECTD_PG_BINDIR, else the highest /usr/lib/postgresql/*/bin
(Debian's `postgresql` package), else `pg_config --bindir`. PostgreSQL refuses to run as
root: under root, initdb, pg_ctl and the server run as an unprivileged user (``postgres``
where the package created it, else ``nobody``) through subprocess's `user=`/`group=` (a
setuid in the child; no su, runuser or PAM), in a directory under /tmp that that user owns.
Not root: they run as the current user. Without the binaries or psycopg, the tests that use
the server skip with the reason.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import pytest

SUPERUSER = "defectd"
_UNPRIVILEGED = ("postgres", "nobody")
_database_numbers = count(1)


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None."""
    candidates: list[Path] = []
    if os.environ.get("DEFECTD_PG_BINDIR"):
        candidates.append(Path(os.environ["DEFECTD_PG_BINDIR"]))

    def version(path: Path) -> tuple[int, ...]:
        name = path.parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            candidates.append(Path(done.stdout.strip()))
    for candidate in candidates:
        if all((candidate / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return candidate
    return None


def _run_as() -> pwd.struct_passwd | None:
    """The account to run the server as: None for the current one (not root)."""
    if os.geteuid() != 0:
        return None
    for name in _UNPRIVILEGED:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip(f"running as root and none of the users {_UNPRIVILEGED} exists to run PostgreSQL")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1:`port`, its sockets in its own folder."""

    bindir: Path
    root: Path
    account: pwd.struct_passwd | None
    port: int = field(default_factory=_free_port)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        options: dict[str, Any] = {"cwd": self.root}
        if self.account is not None:
            options.update(user=self.account.pw_uid, group=self.account.pw_gid, extra_groups=[])
        # Output to a file, not a pipe: pg_ctl's server child would hold a pipe open.
        with open(self.root / "commands.log", "ab") as out:
            done = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, **options)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({done.returncode}):\n{self._tail('commands.log')}"
                f"\n{self._tail('server.log')}"
            )

    def _tail(self, name: str) -> str:
        path = self.root / name
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        sockets = self.root / "sockets"
        sockets.mkdir()
        if self.account is not None:
            os.chown(sockets, self.account.pw_uid, self.account.pw_gid)
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{sockets}'\n"
                # a test server: speed over durability
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "shared_buffers = 16MB\nmax_connections = 40\n"
            )

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def start(self) -> None:
        """Start the server and wait until it takes connections."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-w", "-t", "30", "start")  # fmt: skip

    def stop(self) -> None:
        """Stop the server now (fast: open connections are cut, as in a crash of the
        network or a restart of the database host)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                  "-w", "-t", "30", "stop")  # fmt: skip

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"test_{next(_database_numbers)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session (skips without binaries or psycopg)."""
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install 'defectd[postgres]'")
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in "
            "/usr/lib/postgresql/*/bin or `pg_config --bindir`: apt-get install postgresql, "
            "or set DEFECTD_PG_BINDIR"
        )
    account = _run_as()
    # Under /tmp, not pytest's tmp_path: that sits in a folder only root may enter.
    root = Path(tempfile.mkdtemp(prefix="defectd-pg-", dir="/tmp" if account else None))
    if account is not None:
        os.chown(root, account.pw_uid, account.pw_gid)
    server = PostgresServer(bindir, root, account)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database on the session's server; restarts the server after the test if the
    test left it stopped."""
    if not postgres_server.running:
        postgres_server.start()
    yield postgres_server.create_database()
    # Not dropped: DROP DATABASE waits for a checkpoint, and the whole cluster goes at the
    # end of the session.
    if not postgres_server.running:
        postgres_server.start()
