"""`defectd web`: the read-only web view without the daemon: coil pages from a defect store,
and with --connect also the live line page from a running daemon's published events."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from defectd.daemon.cli import CommandError
from defectd.daemon.commands.curve_options import add_subscriber_curve_options

if TYPE_CHECKING:
    from defectd.daemon.config import DaemonConfig
    from defectd.daemon.outputs.web import WebView

_BIND = "127.0.0.1:8088"  # config.schema.WebSettings' default
_ENDPOINT = "tcp://127.0.0.1:5560"  # outputs.web.subscriber.DEFAULT_ENDPOINT, without zmq


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `web` subcommand."""
    parser = subparsers.add_parser(
        "web",
        help="the read-only web view: line status, live defects, coils",
        description="Serve the operators' web view (docs/integration.md) outside the daemon: "
        "the coil pages from a defect store (--store URL, else the config's store.url, else "
        "the default SQLite file) and, with --connect, the live line page from a running "
        "daemon's events. Inside the daemon the same view is the `web:` output. Stops on "
        "Ctrl-C or SIGTERM.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--store", metavar="URL", help="sqlite:///PATH or postgresql://…")
    source.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the daemon's config: its store, web section, line, cameras and model classes",
    )
    parser.add_argument(
        "--bind",
        metavar="HOST:PORT",
        help=f"where to serve (default: the config's web.bind, else {_BIND}); an address "
        "other machines reach needs --token-file",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="the access token every request must carry (one line; default: the config's "
        "web.token_file)",
    )
    parser.add_argument(
        "--connect",
        nargs="?",
        const="",
        metavar="ENDPOINT",
        help="also the live line page, from the daemon's publish endpoint (default with no "
        f"value: the config's publish.bind, else {_ENDPOINT})",
    )
    parser.add_argument("--line", help="only this line's coils (default: the config's line)")
    parser.add_argument("--title", help="the name on every page (default: web.title)")
    add_subscriber_curve_options(parser, "this web view")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM."""
    from defectd.daemon.commands.simulate import stop_on_signals
    from defectd.daemon.config.endpoints import is_loopback, parse_http_bind
    from defectd.daemon.config.schema import WebSettings
    from defectd.daemon.outputs.web import WebView
    from defectd.daemon.stages.store import default_store_url

    config = _config(args.config)
    web = config.web if config is not None else WebSettings()
    bind = args.bind or (web.bind if config is not None else _BIND)
    try:
        host = parse_http_bind(bind).host
    except ValueError as exc:
        raise CommandError(f"--bind {exc}") from None
    token_file = str(args.token_file) if args.token_file else web.token_file
    if token_file is None and not is_loopback(host):
        raise CommandError(
            f"--bind {bind} is reachable from other machines: give --token-file FILE (one "
            "line, the token browsers must send), or bind 127.0.0.1"
        )
    settings = WebSettings(
        enabled=True, bind=bind, token_file=token_file, title=args.title or web.title
    )
    url = args.store or (config.store.url if config is not None else None) or default_store_url()
    line = args.line or (config.line.name if config is not None else None)
    cameras = tuple(c.id for c in config.cameras) if config is not None else ()
    view = WebView(settings, url, line, cameras, _classes(config), live=args.connect is not None)
    view.start()
    stop = threading.Event()
    try:
        where = f"http://{bind}/"
        print(f"web: serving {where} (store {view.reader.where})", file=sys.stderr, flush=True)
        with stop_on_signals(stop):
            if args.connect is None:
                while not stop.wait(1.0):
                    view.tick()
            else:
                _follow(args, config, view, stop)
    finally:
        view.close()
    print("web: stopped", file=sys.stderr)
    return 0


def _follow(
    args: argparse.Namespace, config: DaemonConfig | None, view: WebView, stop: threading.Event
) -> None:
    from defectd.daemon.outputs.web.subscriber import FeedSettings, run_feed

    endpoint = args.connect or _publish_endpoint(config)
    settings = FeedSettings(endpoint, args.curve_server_key, args.curve_client_key)
    print(f"web: live pages from {endpoint}", file=sys.stderr, flush=True)
    run_feed(settings, view.handle, stop, view.tick)


def _config(path: Path | None) -> DaemonConfig | None:
    if path is None:
        return None
    from defectd.daemon.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise CommandError("; ".join(exc.problems)) from None


def _classes(config: DaemonConfig | None) -> tuple[str, ...]:
    if config is None:
        return ()
    from defectd.engines.model_card import read_card

    return tuple(read_card(config.model.dir).classes)


def _publish_endpoint(config: DaemonConfig | None) -> str:
    """Where to subscribe: the config's publish.bind, with a bind-only host made loopback."""
    if config is None:
        return _ENDPOINT
    endpoint = config.publish.bind
    for anywhere in ("*", "0.0.0.0", "[::]"):
        endpoint = endpoint.replace(f"://{anywhere}:", "://127.0.0.1:")
    return endpoint
