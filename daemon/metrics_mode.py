"""prometheus_client's multiprocess mode, chosen the documented way: before it is imported.

prometheus_client decides when it is first imported whether metric values live in memory or
in files under ``$PROMETHEUS_MULTIPROC_DIR``. defectd runs as several processes, so `defectd
run` prepares the directory and exports the variable before anything imports prometheus_client
(`defectd.daemon.metrics` and the supervisor included); the stage processes are spawned and
inherit it. This module itself never imports prometheus_client.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from defectd.daemon.config import ConfigError

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(path: str | os.PathLike[str]) -> Path:
    """Create `path` and delete the metric files a previous run left there; returns it.

    Call once at start, before any process creates a metric: counters from the last run would
    otherwise be added to this run's, and a dead pid's ``live*`` gauges would never go away.
    Only ``*.db`` files (the ones prometheus_client writes) are removed, so a mistaken path such
    as ``/tmp`` loses nothing else.
    """
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    stale = sorted(directory.glob("*.db"))
    for file in stale:
        file.unlink(missing_ok=True)
    if stale:
        log.debug("removed %d metric files of a previous run from %s", len(stale), directory)
    return directory


def multiprocess_enabled() -> bool:
    """Whether this process writes its metric values to files (the variable was set)."""
    return bool(os.environ.get(MULTIPROC_ENV))


@contextlib.contextmanager
def multiprocess_mode(directory: str | None, source: str = "config") -> Iterator[str]:
    """Prepare the metrics directory and export it, for this process and its children.

    `directory` is ``metrics.multiprocess_dir`` (None: a private temporary one, removed on
    exit). A directory that cannot be written is a `ConfigError` naming the key. Entering after
    prometheus_client was imported with another setting is a bug in the caller, refused.
    """
    made = None
    if directory is None:
        directory = made = tempfile.mkdtemp(prefix="defectd-metrics-")
    try:
        try:
            path = str(prepare_multiprocess_dir(directory))
            if not os.access(path, os.W_OK | os.X_OK):
                raise PermissionError(13, "permission denied")
        except OSError as exc:
            # Every process writes its metric values there: nothing can start without it.
            raise ConfigError(
                [
                    f"{source}: metrics.multiprocess_dir: {directory} is not writable "
                    f"({exc.strerror or exc}): set metrics.multiprocess_dir "
                    f"(${MULTIPROC_ENV}) to a writable directory or fix its permissions"
                ]
            ) from None
        if "prometheus_client" in sys.modules and os.environ.get(MULTIPROC_ENV) != path:
            raise RuntimeError(
                "prometheus_client was imported before the metrics directory was chosen: "
                "import defectd.daemon.metrics only inside multiprocess_mode()"
            )
        os.environ[MULTIPROC_ENV] = path
        yield path
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
