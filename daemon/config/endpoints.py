"""Addresses in the config: ZeroMQ endpoints, the HTTP ``HOST:PORT``, and camera ids.

Each parser returns the parsed value or raises ValueError with a message that names the fix;
the section reader places that message at the key that holds the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from defectd.daemon.slots import CAMERA_BYTES
from defectd.daemon.topics import check_segment

MODES = ("connect", "bind")  # connect: SUB to a camera's PUB; bind: PULL that cameras push to
TRANSPORTS = ("tcp", "ipc", "inproc")
MAX_IPC_PATH = 107  # bytes: sockaddr_un.sun_path less its terminating NUL

_HOST = re.compile(r"\*|\[[0-9A-Fa-f:.%\w]+\]|[A-Za-z0-9._%-]+")
_ANY_HOST = ("*", "0.0.0.0", "[::]")


@dataclass(frozen=True)
class Endpoint:
    """A parsed ZeroMQ endpoint (or HTTP ``HOST:PORT``); ``host`` and ``port`` for tcp only."""

    transport: str
    address: str  # what follows "://"
    host: str | None = None
    port: int | None = None

    def clashes(self, other: Endpoint) -> bool:
        """Whether binding both fails: one tcp port on overlapping hosts, or one path."""
        if self.transport != other.transport:
            return False
        if self.transport != "tcp":
            return self.address == other.address
        if self.port != other.port:
            return False
        return self.host == other.host or self.host in _ANY_HOST or other.host in _ANY_HOST


def _host_port(text: str, address: str, example: str) -> tuple[str, int]:
    """HOST and PORT of `address` (part of `text`, which messages show)."""
    host, colon, port = address.rpartition(":")
    if not colon or not host:
        raise ValueError(f"{text!r} needs a host and a port, like {example}")
    if ":" in host and not host.startswith("["):
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, like [::1]:{port}")
    if not _HOST.fullmatch(host):
        raise ValueError(f"{text!r}: {host!r} is not a host name, address or interface")
    if port in ("*", "0"):
        raise ValueError(f"{text!r}: give a fixed port; peers cannot find a random one")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: port {port!r} is not a number in 1..65535")
    return host, int(port)


def parse_endpoint(text: str, bind: bool | None = None) -> Endpoint:
    """`text` as a ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH, inproc://NAME), or ValueError
    saying what is wrong. `bind` False refuses the ``*`` host, which only a bind can use."""
    transport, sep, address = text.partition("://")
    if not sep or transport not in TRANSPORTS:
        raise ValueError(
            f"{text!r} is not a ZeroMQ endpoint: use tcp://HOST:PORT, ipc://PATH or inproc://NAME"
        )
    if not address or any(c.isspace() for c in address):
        raise ValueError(f"{text!r}: the address after {transport}:// is empty or has spaces")
    if transport == "ipc" and len(address.encode()) > MAX_IPC_PATH:
        raise ValueError(
            f"{text!r}: the socket path is {len(address.encode())} bytes, Unix sockets take "
            f"at most {MAX_IPC_PATH}: use a shorter path"
        )
    if transport != "tcp":
        return Endpoint(transport, address)
    host, port = _host_port(text, address, "tcp://192.168.10.21:5555")
    if host == "*" and bind is False:
        raise ValueError(f"{text!r}: '*' (every interface) is for binding; name the peer's host")
    return Endpoint(transport, address, host, port)


def parse_http_bind(text: str) -> Endpoint:
    """``HOST:PORT`` of the metrics/health HTTP server, as a tcp `Endpoint`."""
    if "://" in text:
        raise ValueError(f"{text!r}: write HOST:PORT without a scheme, like 127.0.0.1:9108")
    host, port = _host_port(text, text, "127.0.0.1:9108")
    if host == "*":
        raise ValueError(f"{text!r}: use 0.0.0.0:{port} to listen on every interface")
    return Endpoint("tcp", text, host, port)


def is_loopback(host: str | None) -> bool:
    """Whether `host` is this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host in (None, ""):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def opcua_host(endpoint: str) -> str:
    """The host of an ``opc.tcp://HOST:PORT/path`` endpoint; ValueError naming the form."""
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    if parts.scheme != "opc.tcp" or not parts.hostname or parts.port is None:
        raise ValueError(
            f"{endpoint!r}: write opc.tcp://HOST:PORT/PATH, like opc.tcp://127.0.0.1:4840/defectd"
        )
    return parts.hostname


def check_camera_id(text: str) -> None:
    """ValueError unless `text` is a camera id: a topic segment that fits a frame slot."""
    check_segment(text, "camera id")
    if len(text) > CAMERA_BYTES:
        raise ValueError(
            f"camera id {text!r} has {len(text)} characters, frame slots hold {CAMERA_BYTES}"
        )
