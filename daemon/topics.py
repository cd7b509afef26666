"""ZeroMQ topic strings of the published events, general to specific.

A SUB socket filters by byte prefix, so every topic starts with its kind and narrows from
there:

- ``defect.<line>.<camera>.<class_name>``: one defect class found on one frame;
- ``frame.<line>.<camera>``: the summary of every processed frame;
- ``status``: the daemon's heartbeat.

Subscribe to ``defect.`` for every defect, ``defect.line1.`` for one line,
``defect.line1.cam0.`` for one camera. Prefixes end with the separator: ``defect.line1.cam0``
without it also matches camera ``cam01``; `prefix` builds them that way.

Segments come from configuration and from camera headers, so each one goes through
`sanitise_segment`: a camera called ``cam0.pits`` or ``cam0\\x00`` cannot pose as another topic
or split one segment in two.
"""

from __future__ import annotations

import re

from defectd.engines.errors import InvalidSetting

SEPARATOR = "."
MAX_SEGMENT = 64
DEFECT = "defect"
FRAME = "frame"
STATUS = "status"
COIL = "coil"
KINDS = (DEFECT, FRAME, STATUS, COIL)

_FORBIDDEN = re.compile(r"[^A-Za-z0-9_-]")  # explicit ranges: ASCII only, unlike \w
_CLEAN = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_SEGMENT}}}")


def sanitise_segment(text: str) -> str:
    """`text` made safe as one topic segment.

    Every character outside ``[A-Za-z0-9_-]`` becomes ``_`` (one per code point: ``"cämera"``
    → ``"c_mera"``), an empty segment becomes ``_`` and the result is cut to 64 characters.
    Different ids can therefore share a segment (``cam.1`` and ``cam_1``); configuration should
    reject such ids up front with `check_segment`, this is the last line of defence for ids
    that arrive in frame headers.
    """
    cleaned = _FORBIDDEN.sub("_", text)[:MAX_SEGMENT]
    return cleaned or "_"


def is_clean_segment(text: str) -> bool:
    """Whether `text` is already a valid segment (`sanitise_segment` would not change it)."""
    return _CLEAN.fullmatch(text) is not None


def check_segment(text: str, what: str) -> str:
    """`text` unchanged, or ValueError naming `what` and the allowed characters.

    For configuration (line names, camera ids, class names), where refusing to start beats
    publishing under a rewritten name.
    """
    if not is_clean_segment(text):
        raise InvalidSetting(
            f"{what} {text!r} cannot be used in a topic: use 1 to {MAX_SEGMENT} characters "
            f"from A-Z a-z 0-9 _ - (for example {sanitise_segment(text)!r})"
        )
    return text


def defect_topic(line: str, camera_id: str, class_name: str) -> str:
    """``defect.<line>.<camera>.<class_name>``, each segment sanitised."""
    return _join(DEFECT, line, camera_id, class_name)


def frame_topic(line: str, camera_id: str) -> str:
    """``frame.<line>.<camera>``, each segment sanitised."""
    return _join(FRAME, line, camera_id)


def coil_topic(line: str, coil_id: str) -> str:
    """``coil.<line>.<coil_id>``, each segment sanitised."""
    return _join(COIL, line, coil_id)


def status_topic() -> str:
    """``status``: the heartbeat has one topic per daemon."""
    return STATUS


def prefix(kind: str, *segments: str) -> str:
    """A SUB filter for `kind` narrowed by leading `segments`, ending with the separator.

    ``prefix("defect", "line1", "cam0")`` is ``"defect.line1.cam0."``: every class of that
    camera and nothing of ``cam01``. With every segment of a topic given, use the topic itself.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown topic kind {kind!r}; choose from {KINDS}")
    return _join(kind, *segments) + SEPARATOR


def kind_of(topic: str) -> str:
    """The kind (first segment) of `topic`: ``defect``, ``frame``, ``status`` or other text."""
    return topic.split(SEPARATOR, 1)[0]


def _join(kind: str, *segments: str) -> str:
    return SEPARATOR.join((kind, *(sanitise_segment(s) for s in segments)))
