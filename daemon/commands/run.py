"""`defectd run`: the inspection daemon (docs/daemon.md)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from defectd.daemon.config import (
    DEFAULT_CONFIG_PATH,
    LOG_FORMATS,
    ConfigError,
    check_model,
    load_config,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `run` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="run the inspection daemon (receivers, engine, post-processing, publisher)",
        description=(
            "Run defectd in the foreground until SIGTERM or Ctrl-C: receive camera frames, "
            "batch them onto the engine, publish defect events and serve metrics. The first "
            "signal drains frames in flight (shutdown.drain_timeout_s) and exits 0; a second "
            "one exits at once. Config keys: docs/configuration.md; how it works: docs/daemon.md."
        ),
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        metavar="FILE",
        help=f"the config file (default: {DEFAULT_CONFIG_PATH})",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="log lines as text or JSON (default: the config's logging.format)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load the config and run the supervisor; 2 with `file: key: problem` lines when the
    config (or the model it names) cannot be used."""
    from defectd.daemon.logs import configure_logging, stream_is_journal
    from defectd.daemon.metrics_mode import multiprocess_mode

    # Under systemd the problems are errors in the journal too (`journalctl -p err`).
    prefix = "<3>" if stream_is_journal(sys.stderr) else ""
    environ = dict(os.environ)  # as it was before `multiprocess_mode` exports its directory
    try:
        config = load_config(args.config, environ)
    except ConfigError as exc:
        for problem in exc.problems:
            print(prefix + problem, file=sys.stderr)
        return 2
    level = "debug" if getattr(args, "verbose", False) else config.logging.level
    log_format = args.log_format or config.logging.format
    configure_logging(level, log_format)
    try:
        model = check_model(config)  # a model that does not fit: exit 2 before anything starts
        with multiprocess_mode(config.metrics.multiprocess_dir, config.source) as metrics_dir:
            # Only now: importing the supervisor imports prometheus_client, which reads
            # $PROMETHEUS_MULTIPROC_DIR once, at import.
            from defectd.daemon.supervisor import run_daemon

            return run_daemon(
                config,
                metrics_dir,
                model,
                log_level=level,
                log_format=log_format,
                config_path=Path(args.config),
                environ=environ,
            )
    except ConfigError as exc:
        for problem in exc.problems:
            print(prefix + problem, file=sys.stderr)
        return 2
