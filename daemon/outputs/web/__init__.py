"""The read-only web view for line operators (an optional daemon output, and `defectd web`).

Plain server-rendered pages from the stdlib HTTP server, live by server-sent events, nothing
fetched from the Internet, no build step. Pages: ``/`` the line (status, cameras, the coil
under the cameras with its map growing, live defects with their crops, recent coils),
``/coils`` and ``/coils/<id>`` (a coil's report), ``/events`` (the stream the line page
listens to), ``/healthz``. docs/integration.md has the operator's side.

One job per module:

- `view`: `WebView`, the `Output` the daemon's output stage runs; wires the rest together;
- `live`: the live state from the events; `extent`: where an open coil lies on the strip;
- `store_reader`: the defect store as the pages read it; `poller`: its reads off the
  request path; `coil_map`: a coil's map picture, also while it is open;
- `layout`, `pages`, `coil_pages`: the HTML (everything escaped); `assets`: CSS, JS, icon;
- `app`: the routes; `server`: HTTP, the token gate (`auth`) and the event stream (`fanout`);
- `subscriber`: the daemon's public event socket as a feed, for `defectd web --connect`.
"""

from __future__ import annotations

from defectd.daemon.outputs.web.view import WebView

__all__ = ["WebView"]
