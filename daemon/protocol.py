"""The frame message format cameras send to defectd (see docs/protocol.md).

A message is a ZeroMQ multipart message: ``[topic, header, payload]`` on SUB sockets (the
topic is the camera id, so subscribers can filter by camera) and ``[header, payload]`` on
PULL sockets. The header is a UTF-8 JSON object (`FrameHeader`; JSON Schema in
docs/schemas/frame-header.schema.json); the payload is the picture, raw (mono8, bgr8) or
compressed (jpeg, png).

Everything that can be wrong with a message is a `Rejected` with a machine-readable
``reason`` from `REJECT_REASONS` (a fixed set, so it can be a metric label) and a ``detail``
that tells the camera integrator what to fix. `read_message` runs every check that needs no
decoding, in order; `daemon.decode.decode_frame` does the rest.

Unknown header keys are ignored, so cameras may add fields (or send a newer minor revision)
without breaking older daemons; a `schema` version defectd does not know is rejected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

REJECT_REASONS = (
    "malformed_message",  # wrong number of multipart parts
    "malformed_header",  # header is not valid JSON, a field is missing or has a bad value
    "unknown_camera",  # camera_id is not in the config
    "unknown_encoding",  # encoding is not one of ENCODINGS
    "size_mismatch",  # payload or picture size disagrees with the header
    "too_large",  # payload or pixel count over the configured limit
    "undecodable",  # jpeg/png payload that does not decode
    "wrong_frame_size",  # frame size differs from the camera's configured width and height
)
ENCODINGS = ("mono8", "bgr8", "jpeg", "png")
RAW_CHANNELS = {"mono8": 1, "bgr8": 3}  # bytes per pixel of the raw encodings
SCHEMA_VERSIONS = (1,)

MAX_DIMENSION = 16384  # pixels, width and height
MAX_ID_LENGTH = 64  # characters, camera_id and coil_id
MAX_SEQ = 2**64 - 1  # seq is a uint64
MAX_CAPTURE_NS = 2**63 - 1  # int64 nanoseconds: until the year 2262
MAX_POSITION_M = 1e6  # 1000 km: far beyond any coil, small enough to catch garbage
MAX_HEADER_BYTES = 16384  # a header is a few hundred bytes; this bounds JSON parsing work
DEFAULT_MAX_FRAME_BYTES = 16 * 2**20  # a 1600×256 bgr8 frame is 1.2 MiB

REQUIRED = ("camera_id", "seq", "capture_ns", "encoding", "width", "height")
OPTIONAL = ("coil_id", "position_m", "schema")

_CAMERA_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Rejected(ValueError):
    """A message defectd drops: ``reason`` (one of `REJECT_REASONS`) and a human ``detail``.

    ``camera_id`` is set once the header's camera id is known to be well formed, so drops can
    be counted per camera.
    """

    def __init__(self, reason: str, detail: str, camera_id: str | None = None) -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}; use one of {REJECT_REASONS}")
        super().__init__(reason, detail, camera_id)
        self.reason = reason
        self.detail = detail
        self.camera_id = camera_id

    def __str__(self) -> str:
        where = f"camera {self.camera_id}: " if self.camera_id is not None else ""
        return f"{where}{self.reason}: {self.detail}"


class FrameLike(Protocol):
    """What pyzmq's ``recv_multipart(copy=False)`` returns per part (`zmq.Frame`)."""

    @property
    def buffer(self) -> memoryview: ...


Part = bytes | bytearray | memoryview | FrameLike


def _show(value: object, limit: int = 40) -> str:
    """`repr` of an untrusted value, cut short: details end up in logs."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: object) -> bool:
    return type(value) is int  # bool is an int subclass: JSON true is not a number


@dataclass(frozen=True)
class FrameHeader:
    """The JSON header of one frame; constructing one validates every field."""

    camera_id: str  # 1..64 of [A-Za-z0-9_-]; also the topic on PUB/SUB
    seq: int  # uint64, +1 per frame per camera
    capture_ns: int  # capture time, ns since the Unix epoch
    encoding: str  # one of ENCODINGS
    width: int  # pixels, 1..MAX_DIMENSION
    height: int  # pixels, 1..MAX_DIMENSION
    coil_id: str | None = None  # 1..64 characters, no control characters
    position_m: float | None = None  # position along the strip, metres
    schema: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.camera_id, str) or not _CAMERA_ID.fullmatch(self.camera_id):
            raise Rejected(
                "malformed_header",
                f"camera_id must be 1 to {MAX_ID_LENGTH} characters from A-Z a-z 0-9 _ -, "
                f"got {_show(self.camera_id)}",
            )
        camera = self.camera_id

        def bad(detail: str, reason: str = "malformed_header") -> Rejected:
            return Rejected(reason, detail, camera)

        if not _is_int(self.schema) or self.schema not in SCHEMA_VERSIONS:
            raise bad(
                f"header schema {_show(self.schema)} is not supported; this defectd reads "
                f"schema {', '.join(map(str, SCHEMA_VERSIONS))}: send that, or upgrade defectd"
            )
        for name, high in (
            ("seq", MAX_SEQ),
            ("capture_ns", MAX_CAPTURE_NS),
            ("width", MAX_DIMENSION),
            ("height", MAX_DIMENSION),
        ):
            value = getattr(self, name)
            low = 1 if name in ("width", "height") else 0
            if not _is_int(value) or not low <= value <= high:
                raise bad(f"{name} must be a whole number in {low}..{high}, got {_show(value)}")
        if not isinstance(self.encoding, str):
            raise bad(f"encoding must be a string, got {_show(self.encoding)}")
        if self.encoding not in ENCODINGS:
            raise bad(
                f"encoding {_show(self.encoding)} is not supported: send one of "
                f"{', '.join(ENCODINGS)}",
                "unknown_encoding",
            )
        if self.coil_id is not None and not _valid_coil_id(self.coil_id):
            raise bad(
                f"coil_id must be 1 to {MAX_ID_LENGTH} characters without control characters "
                f"(omit it or send null when the coil is unknown), got {_show(self.coil_id)}"
            )
        position = self.position_m
        if position is not None and not (
            type(position) in (int, float) and 0 <= position <= MAX_POSITION_M
        ):
            raise bad(
                f"position_m must be a number of metres in 0..{MAX_POSITION_M:g} "
                f"(omit it or send null when unknown), got {_show(position)}"
            )
        if type(position) is int:
            object.__setattr__(self, "position_m", float(position))

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def raw_size(self) -> int | None:
        """Payload bytes the header implies for raw encodings; None for jpeg/png."""
        channels = RAW_CHANNELS.get(self.encoding)
        return None if channels is None else self.pixels * channels


def _valid_coil_id(value: object) -> bool:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_LENGTH:
        return False
    if _CONTROL.search(value):
        return False
    try:
        value.encode("utf-8")  # JSON "\ud800" escapes give lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def _view(part: Part) -> memoryview:
    """A flat byte view of one message part, without copying it."""
    view = memoryview(part) if isinstance(part, bytes | bytearray | memoryview) else part.buffer
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    return view


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; send a finite number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {_show(key)} appears twice")
        result[key] = value
    return result


def parse_header(raw: bytes | memoryview) -> FrameHeader:
    """The header of a message from its raw JSON bytes; `Rejected` on any problem.

    Strict about types (``true`` is not 1, ``5.0`` is not 5, NaN and Infinity are not JSON)
    and ranges; unknown keys are ignored so cameras can send extra fields.
    """
    size = raw.nbytes if isinstance(raw, memoryview) else len(raw)
    if size > MAX_HEADER_BYTES:
        raise Rejected(
            "malformed_header",
            f"header is {size} bytes, the limit is {MAX_HEADER_BYTES}: send only the frame's "
            "fields, no pixel data or large metadata",
        )
    try:
        text = bytes(raw).decode("utf-8")
        values = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as exc:
        raise Rejected("malformed_header", f"header is not UTF-8 ({exc.reason})") from None
    except (ValueError, RecursionError) as exc:
        raise Rejected("malformed_header", f"header is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise Rejected(
            "malformed_header", f"header must be a JSON object, got {type(values).__name__}"
        )
    missing = [key for key in REQUIRED if key not in values]
    if missing:
        camera = values.get("camera_id")
        raise Rejected(
            "malformed_header",
            f"header lacks {', '.join(missing)} (required: {', '.join(REQUIRED)})",
            camera if isinstance(camera, str) and _CAMERA_ID.fullmatch(camera) else None,
        )
    known = {key: values[key] for key in (*REQUIRED, *OPTIONAL) if key in values}
    return FrameHeader(**known)


def header_to_json(header: FrameHeader) -> bytes:
    """The header as compact UTF-8 JSON; optional fields that are None are left out."""
    values: dict[str, Any] = {key: getattr(header, key) for key in REQUIRED}
    for key in OPTIONAL:
        value = getattr(header, key)
        if value is not None:
            values[key] = value
    return json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_frame(
    header: FrameHeader, payload: bytes | bytearray | memoryview, with_topic: bool
) -> list[bytes]:
    """The multipart message for `header` and `payload` (copied), for the simulator and tests.

    Checks nothing about the payload, so tests can build messages that must be rejected.
    """
    parts = [header_to_json(header), bytes(payload)]
    return [header.camera_id.encode("ascii"), *parts] if with_topic else parts


def split_message(
    parts: Sequence[Part], has_topic: bool
) -> tuple[bytes | None, memoryview, memoryview]:
    """(topic, header, payload) of a received multipart message, without copying the payload.

    `has_topic`: the socket is SUB (``[topic, header, payload]``) rather than PULL
    (``[header, payload]``). Only the part count is checked here: `check_topic` compares the
    topic with the parsed header.
    """
    expected = 3 if has_topic else 2
    if len(parts) != expected:
        layout = "[topic, header, payload] on SUB" if has_topic else "[header, payload] on PULL"
        hint = ""
        if has_topic and len(parts) == 2:
            hint = ": the sender left out the topic (PUSH socket?); send the camera id first"
        elif not has_topic and len(parts) == 3:
            hint = ": the sender added a topic (PUB socket?); PUSH senders send no topic"
        raise Rejected(
            "malformed_message",
            f"expected {expected} parts {layout} sockets, got {len(parts)}{hint}",
        )
    views = [_view(part) for part in parts]
    topic = bytes(views[0]) if has_topic else None
    return topic, views[-2], views[-1]


def check_topic(topic: bytes | None, header: FrameHeader) -> None:
    """`Rejected` unless the topic part (when there is one) is the header's camera id."""
    if topic is not None and topic != header.camera_id.encode("ascii"):
        raise Rejected(
            "malformed_header",
            f"topic {_show(topic)} differs from the header's camera_id "
            f"{header.camera_id!r}: send the camera id, exactly, as the topic part",
        )


def check_camera(header: FrameHeader, cameras: Collection[str] | None) -> None:
    """`Rejected` when `cameras` (the configured ids; None: any) does not hold the camera."""
    if cameras is not None and header.camera_id not in cameras:
        raise Rejected(
            "unknown_camera",
            f"camera_id {header.camera_id!r} is not configured: add it to the daemon's "
            "cameras, or fix the camera's id",
            header.camera_id,
        )


def check_payload(header: FrameHeader, payload: memoryview | bytes, max_frame_bytes: int) -> None:
    """`Rejected` when the payload is over `max_frame_bytes` or, for raw encodings, is not
    width × height × channels bytes."""
    size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    if size > max_frame_bytes:
        raise Rejected(
            "too_large",
            f"payload is {size} bytes, the limit (max_frame_bytes) is {max_frame_bytes}: "
            "send smaller frames, compress them (jpeg/png), or raise the limit",
            header.camera_id,
        )
    expected = header.raw_size
    if expected is not None and size != expected:
        raise Rejected(
            "size_mismatch",
            f"{header.encoding} {header.width}×{header.height} is {expected} bytes, the "
            f"payload is {size}: send exactly width × height × "
            f"{RAW_CHANNELS[header.encoding]} bytes, rows packed without padding",
            header.camera_id,
        )


@dataclass(frozen=True)
class FrameMessage:
    """A message that passed every check short of decoding; `payload` is a view, not a copy."""

    header: FrameHeader
    payload: memoryview


def read_message(
    parts: Sequence[Part],
    has_topic: bool,
    cameras: Collection[str] | None = None,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> FrameMessage:
    """Split, parse and check one received message; `Rejected` on the first problem found.

    Order: part count, header, topic, camera, payload size. Decoding (and the model's frame
    size) is `daemon.decode.decode_frame`'s job.
    """
    topic, raw_header, payload = split_message(parts, has_topic)
    header = parse_header(raw_header)
    check_topic(topic, header)
    check_camera(header, cameras)
    check_payload(header, payload, max_frame_bytes)
    return FrameMessage(header, payload)
