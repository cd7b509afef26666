"""`WebView`: the read-only web view as a daemon output (`outputs.base.Output`).

It keeps the live state from the events the output stage hands it, reads the defect store in
a thread of its own (`poller`), renders the line page's live parts twice a second when
something changed (at least once a second, for the ages) and hands them to every open page
(`fanout`), and serves the pages (`server`). `defectd web` builds the same object outside the
daemon and feeds it from the daemon's public event socket instead (`subscriber`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from defectd.daemon.config.endpoints import parse_http_bind
from defectd.daemon.config.schema import WebSettings
from defectd.daemon.outputs.base import OutputStats
from defectd.daemon.outputs.web.app import WebApp
from defectd.daemon.outputs.web.auth import TokenGate
from defectd.daemon.outputs.web.fanout import Broadcast
from defectd.daemon.outputs.web.live import LiveState
from defectd.daemon.outputs.web.pages import live_update
from defectd.daemon.outputs.web.poller import POLL_S, StorePoller
from defectd.daemon.outputs.web.server import WebServer
from defectd.daemon.outputs.web.store_reader import StoreReader

log = logging.getLogger(__name__)

PUSH_S = 0.5  # how often the live parts are rendered when something changed
PUSH_IDLE_S = 1.0  # and at least this often (the heartbeat's age moves on)


class WebView:
    """The web view (module docstring).

    `settings`: the config's ``web:``; `store_url`: the defect store (None: the daemon keeps
    none); `line`, `cameras`, `classes`: this daemon's line name, camera ids and the model's
    class names (empty: learnt from what comes). `live`: False for coil pages only (no event
    feed). `crops_dir`: where the crops are (None: beside the store, as the daemon keeps them).
    """

    def __init__(
        self,
        settings: WebSettings,
        store_url: str | None,
        line: str | None,
        cameras: Sequence[str] = (),
        classes: Sequence[str] = (),
        *,
        live: bool = True,
        crops_dir: Path | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        if crops_dir is None and store_url is not None:
            from defectd.daemon.stages.store import crops_directory

            crops_dir = crops_directory(store_url)
        endpoint = parse_http_bind(settings.bind)
        self._stats = OutputStats()
        self.live = LiveState(line, cameras) if live else None
        self.reader = StoreReader(store_url, crops_dir=crops_dir)
        self.poller = StorePoller(self.reader, self.live, line, interval_s=poll_s)
        self.broadcast = Broadcast()
        self.app = WebApp(settings.title, self.reader, self.poller, self.live, line, classes)
        self._gate_file = settings.token_file
        self._host, self._port = endpoint.host or "127.0.0.1", endpoint.port or 0
        self.server: WebServer | None = None
        self._stop = threading.Event()
        self._pusher: threading.Thread | None = None

    @property
    def stats(self) -> OutputStats:
        return self._stats

    @property
    def port(self) -> int:
        """The port the pages are served on (the picked one, for port 0)."""
        return self._port if self.server is None else self.server.port

    def start(self) -> None:
        """Read the token file, listen, start the store poller and the pusher; a `UserError`
        naming the fix when the token file or the address is wrong."""
        gate = TokenGate.from_file(self._gate_file)
        self.server = WebServer(self.app, gate, self.broadcast, self._host, self._port)
        self.server.start()
        self._stats.connected = True
        self.poller.start()
        if self.live is not None:
            self._pusher = threading.Thread(target=self._push, name="web-pusher", daemon=True)
            self._pusher.start()

    def handle(self, topic: str, payload: dict[str, Any]) -> None:
        """One event from the daemon: into the live state (quick: no I/O)."""
        if self.live is None:
            return
        before = self.live.unreadable
        self.live.handle(topic, payload)
        if self.live.unreadable > before:
            self._stats.drop("unreadable")

    def tick(self) -> None:
        """Counts for the metrics: updates sent to pages, pages open."""
        self._stats.delivered = self.broadcast.sent
        self._stats.connected = self.server is not None and not self.broadcast.closed

    def close(self) -> None:
        """Stop the pusher, the poller and the server; close the store connection."""
        self._stop.set()
        if self._pusher is not None:
            self._pusher.join(timeout=2.0)
        if self.server is not None:
            self.server.close()
        self.poller.close()
        self.reader.close()
        self._stats.connected = False
        self.tick()

    def push_now(self) -> None:
        """Render the live parts and hand them to every open page."""
        if self.live is not None:
            self.broadcast.publish(live_update(self.live.snapshot(), self.poller.latest()))

    def _push(self) -> None:
        seen: tuple[int, object] | None = None
        last = 0.0
        while not self._stop.wait(PUSH_S):
            assert self.live is not None
            now = time.monotonic()
            state = (self.live.version, self.poller.latest())
            if state == seen and now - last < PUSH_IDLE_S:
                continue
            try:
                self.push_now()
            except Exception:  # a bug in a fragment must not freeze every open page
                log.exception("web view: rendering the live update failed")
            seen, last = state, now
