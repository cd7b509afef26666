"""What each address answers: the routes of the web view, as plain functions of the request.

`WebApp.respond` takes a path and its query and gives a `Response` (status, type, body); the
HTTP plumbing, the token and the event stream are `server`'s. Nothing here writes: every
route reads the live state (`live`), the store as last polled (`poller`) or the store itself
(`reader`), and a store that is off, not there yet or away is a page that says so.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from defectd.daemon.coils.model import CoilRecord, CoverageGap, StripDefect
from defectd.daemon.outputs.web.assets import STATIC
from defectd.daemon.outputs.web.coil_map import map_png, open_record
from defectd.daemon.outputs.web.coil_pages import (
    coil_page,
    coils_page,
    message_page,
    open_coil_page,
)
from defectd.daemon.outputs.web.live import CoilSummary, LiveState
from defectd.daemon.outputs.web.pages import line_page
from defectd.daemon.outputs.web.poller import StorePoller
from defectd.daemon.outputs.web.store_reader import StoreAbsent, StoreReader
from defectd.daemon.store.backend import Store

HTML = "text/html; charset=utf-8"
LISTED = 100  # coils on /coils
_GRADES_FROM = 500  # recent coils whose grades the filter offers

Bundle = tuple[CoilRecord, list[StripDefect], list[CoverageGap]]


@dataclass(frozen=True)
class Response:
    """One answer: status, content type, body and extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    cache: str = "no-store"

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, HTML, text.encode("utf-8"))

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(303, "text/plain; charset=utf-8", b"see other\n", (("Location", location),))


class WebApp:
    """The routes (module docstring). `live` None: no live feed (`defectd web` without
    ``--connect``): the line page is left out and ``/`` goes to the coils. `line`: only that
    line's coils (None: every line in the store); `classes`: the model's class names."""

    def __init__(
        self,
        site: str,
        reader: StoreReader,
        poller: StorePoller,
        live: LiveState | None,
        line: str | None,
        classes: Sequence[str] = (),
    ) -> None:
        self.site = site
        self.reader = reader
        self.poller = poller
        self.live = live
        self.line = line or None
        self.classes = tuple(classes)

    def respond(self, path: str, query: Mapping[str, str]) -> Response:
        """The answer to GET `path` (still %-encoded) with `query`."""
        parts = [unquote(p) for p in path.split("/")[1:]]
        if parts in ([], [""]):
            if self.live is None:
                return Response.redirect("/coils")
            return Response.html(line_page(self.site, self.live.snapshot(), self.poller.latest()))
        head, rest = parts[0], parts[1:]
        if head == "coils" and rest in ([], [""]):
            return self._coils(query.get("grade") or None)
        if head == "coils" and len(rest) == 1:
            return self._coil(rest[0], query.get("line") or None)
        if head == "coils" and len(rest) == 2 and rest[1] == "map.png":
            return self._map(rest[0], query.get("line") or None)
        if head == "crops" and rest:
            return self._crop("/".join(rest))
        if head == "static" and len(rest) == 1 and rest[0] in STATIC:
            content_type, text = STATIC[rest[0]]
            return Response(200, content_type, text.encode("utf-8"), cache="max-age=300")
        if head == "healthz" and not rest:
            return self._health()
        return self._not_found(
            f"Nothing at {path}: the pages are / (the line), /coils and /coils/<coil id>."
        )

    # -- routes ------------------------------------------------------------------------------

    def _coils(self, grade: str | None) -> Response:
        def read(store: Store) -> tuple[list[CoilRecord], list[CoilRecord]]:
            listed = store.coils(line=self.line, grade=grade, limit=LISTED)
            recent = store.coils(line=self.line, limit=_GRADES_FROM)
            return listed, recent

        coils: list[CoilSummary] = []
        grades: list[str] = []
        problem = None
        try:
            listed, recent = self.reader.read(read)
        except StoreAbsent as exc:
            problem = str(exc)
        else:
            coils = [CoilSummary.of(c) for c in listed]
            grades = sorted({c.grade for c in recent})
        text = coils_page(
            self.site,
            coils,
            grade=grade,
            grades=grades,
            problem=problem,
            live_nav=self.live is not None,
        )
        return Response.html(text)

    def _coil(self, coil_id: str, line: str | None) -> Response:
        try:
            bundle = self.reader.read(lambda store: _bundle(store, coil_id, line or self.line))
        except StoreAbsent as exc:
            if self._is_live(coil_id):
                return Response.html(open_coil_page(self.site, coil_id, live_nav=True))
            return Response.html(self._message("No defect store", str(exc)), 503)
        if bundle is None:
            if self._is_live(coil_id):
                return Response.html(open_coil_page(self.site, coil_id, live_nav=True))
            return self._not_found(
                f"No closed coil {coil_id!r} in the store {self.reader.where}: a coil appears "
                "when it closes; the coils the store holds are listed under Coils."
            )
        coil, defects, gaps = bundle
        text = coil_page(
            self.site,
            coil,
            defects,
            gaps,
            has_crop=lambda crop: self.reader.crop_file(crop) is not None,
            live_nav=self.live is not None,
        )
        return Response.html(text)

    def _map(self, coil_id: str, line: str | None) -> Response:
        line = line or self.line
        bundle: Bundle | None = None
        defects: list[StripDefect] = []
        gaps: list[CoverageGap] = []
        try:
            bundle = self.reader.read(lambda store: _bundle(store, coil_id, line))
            if bundle is None:
                defects, gaps = self.reader.read(
                    lambda store: (store.defects(coil_id, line), store.gaps(coil_id, line))
                )
        except StoreAbsent:
            pass  # an open coil's map can still be drawn from the events alone
        if bundle is None:
            extent = self.live.extent(coil_id) if self.live is not None else None
            if extent is None and not defects:
                return self._not_found(f"No coil {coil_id!r} in the store or under the cameras.")
            live_line = self.live.snapshot().line if self.live is not None else None
            record = open_record(line or live_line or "", coil_id, extent, defects, gaps)
            bundle = (record, defects, gaps)
        png = map_png(*bundle, self.classes)
        return Response(200, "image/png", png)

    def _crop(self, relative: str) -> Response:
        path = self.reader.crop_file(relative)
        if path is None:
            return self._not_found(f"No crop {relative!r} in the crop directory.")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(200, content_type, path.read_bytes(), cache="private, max-age=3600")

    def _health(self) -> Response:
        view = self.poller.latest()
        document = {
            "status": "ok",
            "live": self.live is not None,
            "events": self.live.snapshot().events if self.live is not None else 0,
            "store": view.problem or ("ok" if self.reader.url else "off"),
        }
        body = (json.dumps(document) + "\n").encode()
        return Response(200, "application/json", body)

    # -- helpers -----------------------------------------------------------------------------

    def _is_live(self, coil_id: str) -> bool:
        if self.live is None:
            return False
        coil = self.live.snapshot().open_coil
        return coil is not None and coil.coil_id == coil_id

    def _message(self, title: str, text: str) -> str:
        return message_page(self.site, title, text, live_nav=self.live is not None)

    def _not_found(self, text: str) -> Response:
        return Response.html(self._message("Not found", text), 404)

    def unauthorised(self) -> Response:
        """The 401 page: what to add to the address."""
        text = (
            "This web view needs its access token: open it once as /?token=TOKEN (the line "
            "in the file web.token_file names), or send Authorization: Bearer TOKEN."
        )
        page = message_page(self.site, "Token needed", text, live_nav=False, kind="bad")
        return Response(401, HTML, page.encode(), (("WWW-Authenticate", 'Bearer realm="defectd"'),))


def _bundle(store: Store, coil_id: str, line: str | None) -> Bundle | None:
    coil = store.coil(coil_id, line=line)
    if coil is None:
        return None
    return coil, store.defects(coil.coil_id, coil.line), store.gaps(coil.coil_id, coil.line)
