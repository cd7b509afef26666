"""The web view's access token: who may read the pages when they are reachable from the plant
network.

With ``web.token_file`` every request must carry the token from that file (one line): as
``Authorization: Bearer TOKEN`` (scripts), or once as ``?token=TOKEN`` in the address, after
which the browser keeps an HttpOnly cookie (so the token leaves the address bar and the
browser history, and the page's event stream carries it too). The cookie holds an HMAC of the
token, not the token. Tokens are compared in constant time. Without a token file every
request is let in (the config allows that only on a loopback bind).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from pathlib import Path

from defectd.daemon.curve import loose_permissions
from defectd.engines.errors import InvalidSetting

log = logging.getLogger(__name__)

COOKIE = "defectd_web"
QUERY = "token"
_COOKIE_KEY = b"defectd web session"


@dataclass(frozen=True)
class Access:
    """What to do with one request."""

    allowed: bool
    set_cookie: str | None = None  # a Set-Cookie header value to send
    clean_url: bool = False  # the token came in the address: redirect to it without


class TokenGate:
    """Checks requests against `token` (None: everyone is let in)."""

    def __init__(self, token: str | None) -> None:
        if token is not None and not token:
            raise InvalidSetting("the web token is empty: put a long random line in the file")
        self._token = None if token is None else token.encode()
        self._cookie = None if token is None else _session(token.encode())

    @classmethod
    def from_file(cls, path: str | Path | None) -> TokenGate:
        """The gate for ``web.token_file`` (None: no token needed)."""
        if path is None:
            return cls(None)
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidSetting(
                f"web.token_file {path} does not exist: write the token into it, e.g. "
                f"`openssl rand -hex 24 > {path}; chmod 600 {path}`"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidSetting(f"web.token_file {path} cannot be read: {exc}") from None
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if len(lines) != 1:
            raise InvalidSetting(
                f"web.token_file {path} must hold one line, the token (it holds {len(lines)}): "
                f"e.g. `openssl rand -hex 24 > {path}`"
            )
        readers = loose_permissions(path)
        if readers:
            log.warning("web.token_file %s is readable by %s: chmod 600 %s", path, readers, path)
        return cls(lines[0])

    @property
    def required(self) -> bool:
        return self._token is not None

    def check(
        self, query_token: str | None, authorization: str | None, cookie_header: str | None
    ) -> Access:
        """Whether a request with these parts may be answered (`Access`)."""
        if self._token is None or self._cookie is None:
            return Access(True)
        if authorization is not None:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer" and _same(credentials.strip().encode(), self._token):
                return Access(True)
        if query_token is not None and _same(query_token.encode(), self._token):
            return Access(True, set_cookie=self._set_cookie(), clean_url=True)
        sent = _cookie_value(cookie_header)
        if sent is not None and _same(sent.encode(), self._cookie.encode()):
            return Access(True)
        return Access(False)

    def _set_cookie(self) -> str:
        return f"{COOKIE}={self._cookie}; Path=/; HttpOnly; SameSite=Strict"


def _session(token: bytes) -> str:
    return hmac.new(token, _COOKIE_KEY, hashlib.sha256).hexdigest()


def _same(given: bytes, expected: bytes) -> bool:
    # compare_digest takes time independent of where the bytes differ.
    return hmac.compare_digest(given, expected)


def _cookie_value(header: str | None) -> str | None:
    if not header:
        return None
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(header)
    except CookieError:
        return None
    morsel = cookies.get(COOKIE)
    return None if morsel is None else morsel.value
