"""The HTTP side of the web view: a stdlib `ThreadingHTTPServer` in a thread of its own.

Every request passes the token gate (`auth.TokenGate`) first: without the token, a 401 page
that says how to give it. ``GET /events`` is the event stream the line page listens to
(`fanout.Broadcast`, one thread per open page); every other address is `app.WebApp`'s. The
server only reads: GET and HEAD, anything else 405. Each answer carries a strict
Content-Security-Policy (nothing but this server's own files, no inline script or style).
"""

from __future__ import annotations

import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from defectd.daemon.outputs.web.app import Response, WebApp
from defectd.daemon.outputs.web.auth import QUERY, TokenGate
from defectd.daemon.outputs.web.fanout import Broadcast
from defectd.engines.errors import InvalidSetting

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0  # a comment on an idle event stream this often
CLIENT_TIMEOUT_S = 20.0  # a client that takes no bytes for this long is dropped
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # an event stream never holds up the stop
    block_on_close = False

    def __init__(self, address: tuple[str, int], web: WebServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.web = web
        super().__init__(address, _Handler)


class WebServer:
    """Serves `app` on `host`:`port` behind `gate`, with `broadcast` as the event stream."""

    def __init__(
        self,
        app: WebApp,
        gate: TokenGate,
        broadcast: Broadcast,
        host: str,
        port: int,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self.app = app
        self.gate = gate
        self.broadcast = broadcast
        self.keepalive_s = keepalive_s
        self._address = (host.strip("[]"), port)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.requests = 0

    @property
    def port(self) -> int:
        """The port listened on (the one given, or the one picked for port 0)."""
        if self._httpd is None:
            return self._address[1]
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        """Listen, and serve in a thread; InvalidSetting naming the fix when the address
        cannot be had."""
        host, port = self._address
        try:
            self._httpd = _Server((host, port), self)
        except OSError as exc:
            raise InvalidSetting(
                f"web view: cannot listen on {host}:{port} ({exc.strerror or exc}): pick a free "
                "port or an address of this machine in web.bind (defectd web --bind), or stop "
                "what listens there"
            ) from None
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="web-http"
        )
        self._thread.daemon = True
        self._thread.start()
        log.info("web view on http://%s:%d/", host, self.port)

    def close(self) -> None:
        """End the event streams, stop listening, wait for the serving thread."""
        self.broadcast.close()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "defectd-web"
    sys_version = ""
    timeout = CLIENT_TIMEOUT_S

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_POST(self) -> None:
        self._refuse()

    do_PUT = do_DELETE = do_PATCH = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _refuse(self) -> None:
        answer = Response(405, "text/plain; charset=utf-8", b"read-only: GET and HEAD only\n")
        self._send(answer, body=True, extra=(("Allow", "GET, HEAD"),))

    def _answer(self, body: bool) -> None:
        web = self.server.web
        web.requests += 1
        url = urlsplit(self.path)
        pairs = parse_qsl(url.query, keep_blank_values=True)
        query = dict(pairs)
        access = web.gate.check(
            query.get(QUERY), self.headers.get("Authorization"), self.headers.get("Cookie")
        )
        if not access.allowed:
            self._send(web.app.unauthorised(), body)
            return
        if access.clean_url:
            rest = urlencode([(k, v) for k, v in pairs if k != QUERY])
            location = url.path + (f"?{rest}" if rest else "")
            extra = (("Set-Cookie", access.set_cookie),) if access.set_cookie else ()
            self._send(Response.redirect(location), body, extra)
            return
        if url.path == "/events":
            self._stream(web, body)
            return
        try:
            answer = web.app.respond(url.path, query)
        except Exception:  # a bug in one page must not take the server down
            log.exception("web view: %s failed", url.path)
            answer = Response(500, "text/plain; charset=utf-8", b"internal error: see the log\n")
        self._send(answer, body)

    def _send(self, answer: Response, body: bool, extra: tuple[tuple[str, str], ...] = ()) -> None:
        try:
            self.send_response(answer.status, HTTPStatus(answer.status).phrase)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.send_header("Cache-Control", answer.cache)
            for name, value in (*SECURITY_HEADERS, *answer.headers, *extra):
                self.send_header(name, value)
            self.end_headers()
            if body:
                self.wfile.write(answer.body)
        except OSError as exc:  # the client went away
            log.debug("web view: answer to %s not sent: %s", self.address_string(), exc)

    def _stream(self, web: WebServer, body: bool) -> None:
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            for name, value in SECURITY_HEADERS:
                self.send_header(name, value)
            self.end_headers()
            if not body:
                return

            def write(text: str) -> None:
                self.wfile.write(text.encode("utf-8"))
                self.wfile.flush()

            web.broadcast.stream(write, web.keepalive_s)
        except OSError as exc:
            log.debug("web view: event stream to %s ended: %s", self.address_string(), exc)
