"""Logging set-up shared by the supervisor and its stage processes: one line per record on
stderr, as text or JSON.

When stderr is systemd's journal stream (``$JOURNAL_STREAM`` names stderr's device and
inode, as systemd documents), each line starts with an sd-daemon(3) priority prefix (``<3>``
error, ``<4>`` warning, ``<6>`` info, ``<7>`` debug) so ``journalctl -p warning`` filters by
level, and text lines carry no timestamp: journald stamps every entry itself. Elsewhere (a
terminal, a file, a child of a service whose stderr was redirected) text lines are
timestamped and unprefixed. Either way a record is one line: journald would make every line
of a traceback an entry of its own, so newlines are written as the two characters ``\\n``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
JOURNAL_TEXT_FORMAT = "%(levelname)s %(processName)s %(name)s: %(message)s"  # journald stamps


def syslog_priority(levelno: int) -> int:
    """The syslog priority (sd-daemon(3) ``SD_*``) for a logging level number."""
    if levelno >= logging.CRITICAL:
        return 2  # SD_CRIT
    if levelno >= logging.ERROR:
        return 3  # SD_ERR
    if levelno >= logging.WARNING:
        return 4  # SD_WARNING
    if levelno >= logging.INFO:
        return 6  # SD_INFO
    return 7  # SD_DEBUG


def stream_is_journal(
    stream: TextIO | None = None, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether `stream` (default stderr) is the journal stream systemd connected.

    systemd sets ``$JOURNAL_STREAM=DEVICE:INODE`` for the stream it hands a service; comparing
    it with the stream's own device and inode (rather than trusting the variable, or
    ``$INVOCATION_ID``) keeps timestamps where a service's child writes to a file instead.
    """
    env = os.environ if environ is None else environ
    device, sep, inode = env.get("JOURNAL_STREAM", "").partition(":")
    if not sep or not device.isdigit() or not inode.isdigit():
        return False
    target = sys.stderr if stream is None else stream
    try:
        info = os.fstat(target.fileno())
    except (AttributeError, OSError, ValueError):  # closed, or not a file (pytest's capture)
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


def _one_line(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")


class TextFormatter(logging.Formatter):
    """``LEVEL process logger: message`` on one line; timestamped unless for the journal."""

    def __init__(self, journal: bool = False) -> None:
        super().__init__(JOURNAL_TEXT_FORMAT if journal else TEXT_FORMAT)
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        line = _one_line(super().format(record))
        return f"<{syslog_priority(record.levelno)}>{line}" if self.journal else line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, process, logger, message and
    exception. For the journal the line gets the priority prefix, which journald strips."""

    def __init__(self, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "process": record.processName,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        line = json.dumps(entry, ensure_ascii=False)  # escapes newlines: always one line
        return f"<{syslog_priority(record.levelno)}>{line}" if self.journal else line


def configure_logging(level: str = "info", fmt: str = "text", journal: bool | None = None) -> None:
    """Send every record at `level` or above to stderr as `fmt` (``text`` or ``json``).

    `journal` None: detect whether stderr is systemd's journal stream (`stream_is_journal`).
    """
    if journal is None:
        journal = stream_is_journal(sys.stderr)
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter(journal) if fmt == "json" else TextFormatter(journal)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
