"""The supervisor's HTTP endpoints: ``/metrics``, ``/healthz``, ``/readyz``.

A stdlib `ThreadingHTTPServer` in a thread of the supervisor, bound to 127.0.0.1:9108 by
default (Prometheus scrapes it locally or through a proxy; nothing here is meant for the
plant network). What it serves comes in as callables, so tests can drive each one:

- ``/metrics``: `render()`, the multiprocess exposition (`daemon.metrics.render`);
- ``/healthz``: 200 ``ok`` while `alive()` is true, i.e. while the supervisor loop still turns
  (`Heartbeat`); this thread answering proves only that the process exists;
- ``/readyz``: 200 when every check of `ready()` passes (engine loaded and warmed, every stage
  running), else 503 with a JSON body naming the checks that fail.

Anything else is 404. Request lines are logged at debug level: Prometheus scrapes every few
seconds and journald does not need to know.
"""

from __future__ import annotations

import json
import logging
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

from defectd.daemon.metrics import CONTENT_TYPE
from defectd.daemon.ratelimit import RateLimitedLog
from defectd.engines.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9108
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"

ReadyCheck = Callable[[], Mapping[str, bool]]  # check name -> passes


class HealthServerError(UserError, RuntimeError):
    """The server could not start (typically: the port is taken)."""


class Heartbeat:
    """The supervisor loop's pulse: alive while `beat` was called within `timeout` seconds."""

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        if timeout <= 0:
            raise ValueError(f"heartbeat timeout must be positive seconds, got {timeout}")
        self._timeout = timeout
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        """The loop turned (call once per iteration)."""
        self._last = self._clock()

    def age(self) -> float:
        """Seconds since the last beat."""
        return self._clock() - self._last

    def __call__(self) -> bool:
        return self.age() <= self._timeout


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck scrape must not hold up the supervisor's exit
    health: HealthServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the host's name (getfqdn) only to fill
        # server_name, which nothing here reads; without DNS that can stall start-up.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "defectd"
    sys_version = ""  # no Python version in the Server header
    timeout = 10  # seconds a client may take to send its request

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _answer(self, send_body: bool) -> None:
        status, content_type, body = self.server.health.respond(urlsplit(self.path).path)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)


class HealthServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on `host`:`port` (0: any free port).

    Use as a context manager, or `start` and `close`; `port` is the bound port.
    """

    def __init__(
        self,
        render: Callable[[], bytes],
        ready: ReadyCheck,
        alive: Callable[[], bool],
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
    ) -> None:
        self._render = render
        self._ready = ready
        self._alive = alive
        self._host = host
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._errors = RateLimitedLog(log, period_s=60.0)

    @property
    def port(self) -> int:
        """The bound port (the real one when started with port 0)."""
        if self._server is None:
            raise RuntimeError("health server is not started; call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> HealthServer:
        """Bind and serve in a daemon thread; HealthServerError naming the fix if binding fails."""
        if self._server is not None:
            raise RuntimeError("health server is already started")
        try:
            server = _Server((self._host, self._requested_port), _Handler)
        except OSError as error:
            raise HealthServerError(
                f"cannot serve metrics and health on {self._host}:{self._requested_port}: "
                f"{error.strerror or error}; stop whatever holds the port or set another "
                "health port in the config"
            ) from error
        server.health = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="health-http"
        )
        self._thread.daemon = True
        self._thread.start()
        log.info("metrics and health on %s (/metrics /healthz /readyz)", self.url)
        return self

    def close(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()  # waits for serve_forever to return
        server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> HealthServer:
        return self.start() if self._server is None else self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def respond(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of `path`."""
        if path == "/metrics":
            return self._metrics()
        if path == "/healthz":
            if self._call(self._alive, "healthz"):
                return HTTPStatus.OK, TEXT, b"ok\n"
            return HTTPStatus.SERVICE_UNAVAILABLE, TEXT, b"supervisor loop is not turning\n"
        if path == "/readyz":
            return self._readiness()
        return HTTPStatus.NOT_FOUND, TEXT, b"not found: try /metrics, /healthz or /readyz\n"

    def _metrics(self) -> tuple[int, str, bytes]:
        try:
            return HTTPStatus.OK, CONTENT_TYPE, self._render()
        except Exception as error:  # a scrape must get an answer, and the daemon must go on
            self._errors.error("metrics", "rendering /metrics failed: %r", error)
            return HTTPStatus.INTERNAL_SERVER_ERROR, TEXT, f"metrics failed: {error}\n".encode()

    def _readiness(self) -> tuple[int, str, bytes]:
        try:
            checks = {name: bool(passed) for name, passed in self._ready().items()}
        except Exception as error:
            self._errors.error("readyz", "readiness check failed: %r", error)
            body = {"ready": False, "error": f"readiness check failed: {error}"}
            return HTTPStatus.SERVICE_UNAVAILABLE, JSON, _json(body)
        failing = [name for name, passed in checks.items() if not passed]
        body = {"ready": not failing, "not_ready": failing, "checks": checks}
        status = HTTPStatus.SERVICE_UNAVAILABLE if failing else HTTPStatus.OK
        return status, JSON, _json(body)

    def _call(self, check: Callable[[], bool], name: str) -> bool:
        try:
            return bool(check())
        except Exception as error:
            self._errors.error(name, "%s check failed: %r", name, error)
            return False


def _json(value: object) -> bytes:
    return (json.dumps(value, sort_keys=True) + "\n").encode()
