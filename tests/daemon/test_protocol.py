"""The frame message format: header parsing, message splitting, payload checks, the schema."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from defectd.daemon.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    MAX_HEADER_BYTES,
    MAX_SEQ,
    REJECT_REASONS,
    FrameHeader,
    Rejected,
    check_camera,
    check_payload,
    check_topic,
    encode_frame,
    header_to_json,
    parse_header,
    read_message,
    split_message,
)

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "frame-header.schema.json"
VALID: dict[str, Any] = {
    "camera_id": "top-1",
    "seq": 7,
    "capture_ns": 1_700_000_000_000_000_000,
    "encoding": "mono8",
    "width": 4,
    "height": 2,
}


def header(**changes: Any) -> FrameHeader:
    return FrameHeader(**{**VALID, **changes})


def raw(values: Any) -> bytes:
    return json.dumps(values).encode()


class JsonText(str):
    """A value written into the header as this JSON text, verbatim."""


def rejected(reason: str, data: bytes) -> Rejected:
    with pytest.raises(Rejected) as info:
        parse_header(data)
    assert info.value.reason == reason, info.value
    return info.value


# --- parse_header ------------------------------------------------------------------------


def test_parse_minimal_header() -> None:
    parsed = parse_header(raw(VALID))
    assert parsed == FrameHeader("top-1", 7, 1_700_000_000_000_000_000, "mono8", 4, 2)
    assert parsed.schema == 1
    assert parsed.coil_id is None and parsed.position_m is None
    assert parsed.raw_size == 8


def test_parse_full_header_from_memoryview() -> None:
    values = {**VALID, "coil_id": "C-2024/0815 ö", "position_m": 12, "schema": 1}
    parsed = parse_header(memoryview(raw(values)))
    assert parsed.coil_id == "C-2024/0815 ö"
    assert parsed.position_m == 12.0 and type(parsed.position_m) is float


def test_unknown_keys_are_ignored() -> None:
    parsed = parse_header(raw({**VALID, "exposure_us": 120, "gain": [1, 2]}))
    assert parsed == header()


def test_null_optional_fields_mean_absent() -> None:
    assert parse_header(raw({**VALID, "coil_id": None, "position_m": None})) == header()


def test_extreme_valid_values() -> None:
    values = {**VALID, "seq": MAX_SEQ, "capture_ns": 2**63 - 1, "width": 16384, "height": 1}
    assert parse_header(raw(values)).seq == 2**64 - 1


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"\xff\xfe{}",  # not UTF-8
        b"[1, 2]",
        b'"camera"',
        b"null",
        raw({**VALID})[:-1],
        b"[" * 5000 + b"]" * 5000,  # deeper than the JSON parser's recursion limit
        b'{"a": 1' + b"9" * 5000 + b"}",  # more digits than Python parses
    ],
    ids=["empty", "truncated", "utf16", "array", "string", "null", "cut", "deep", "digits"],
)
def test_not_a_json_object(data: bytes) -> None:
    rejected("malformed_header", data)


def test_header_size_limit() -> None:
    big = raw({**VALID, "note": "x" * MAX_HEADER_BYTES})
    assert "limit" in rejected("malformed_header", big).detail


def test_duplicate_keys() -> None:
    data = b'{"camera_id": "a", "camera_id": "b", "seq": 1}'
    assert "twice" in rejected("malformed_header", data).detail


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_constants(constant: str) -> None:
    data = raw(VALID)[:-1] + f', "position_m": {constant}}}'.encode()
    assert "finite" in rejected("malformed_header", data).detail


def test_missing_keys_are_named() -> None:
    values = {k: v for k, v in VALID.items() if k not in ("seq", "width")}
    error = rejected("malformed_header", raw(values))
    assert "seq, width" in error.detail
    assert error.camera_id == "top-1"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("camera_id", ""),
        ("camera_id", "x" * 65),
        ("camera_id", "top 1"),
        ("camera_id", "top1\n"),
        ("camera_id", "kamera-ä"),
        ("camera_id", 7),
        ("seq", -1),
        ("seq", MAX_SEQ + 1),
        ("seq", True),
        ("seq", 7.0),
        ("seq", "7"),
        ("capture_ns", -5),
        ("capture_ns", 2**63),
        ("capture_ns", 1.7e18),
        ("width", 0),
        ("width", 16385),
        ("height", False),
        ("height", None),
        ("coil_id", ""),
        ("coil_id", "c" * 65),
        ("coil_id", "coil\n7"),
        ("coil_id", 42),
        ("position_m", -0.5),
        ("position_m", JsonText("1e400")),  # inf after parsing
        ("position_m", 10**400),
        ("position_m", True),
        ("position_m", "12.5"),
        ("schema", 2),
        ("schema", True),
        ("schema", 1.0),
        ("encoding", 3),
    ],
)
def test_bad_field_values(key: str, value: Any) -> None:
    if isinstance(value, JsonText):
        data = raw(VALID)[:-1] + f', "{key}": {value}}}'.encode()
    else:
        data = raw({**VALID, key: value})
    error = rejected("malformed_header", data)
    assert key in error.detail
    assert len(error.detail) < 300  # huge values are cut short, not logged in full


def test_unknown_encoding() -> None:
    error = rejected("unknown_encoding", raw({**VALID, "encoding": "rgb8"}))
    assert "mono8, bgr8, jpeg, png" in error.detail
    assert error.camera_id == "top-1"


def test_lone_surrogate_coil_id() -> None:
    data = raw(VALID)[:-1] + b', "coil_id": "\\ud800"}'
    rejected("malformed_header", data)


def test_header_json_round_trip() -> None:
    full = header(coil_id="C1", position_m=3.25, encoding="jpeg")
    assert parse_header(header_to_json(full)) == full
    assert b"coil_id" not in header_to_json(header())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_reject(data: bytes) -> None:
    try:
        parse_header(data)
    except Rejected as error:
        assert error.reason in REJECT_REASONS


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*VALID, "coil_id", "position_m", "schema"]), JSON_VALUES))
def test_arbitrary_json_only_rejects(changes: dict[str, Any]) -> None:
    """Any JSON value in any field: a header or a Rejected, never another exception."""
    data = json.dumps({**VALID, **changes}).encode()  # allow_nan: NaN/Infinity tokens too
    try:
        parse_header(data)
    except Rejected as error:
        assert error.reason in ("malformed_header", "unknown_encoding")


# --- the JSON Schema agrees with parse_header ----------------------------------------------


@pytest.fixture(scope="module")
def schema_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema", reason="pip install 'defectd[dev]'")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def parser_accepts(values: dict[str, Any]) -> bool:
    try:
        parse_header(json.dumps(values).encode())
    except Rejected:
        return False
    return True


AGREEMENT_CASES = [
    VALID,
    {**VALID, "coil_id": "C1", "position_m": 0, "schema": 1, "extra": {"x": 1}},
    {**VALID, "coil_id": None, "position_m": None},
    {**VALID, "seq": MAX_SEQ, "capture_ns": 2**63 - 1, "width": 16384, "position_m": 1e6},
    {k: v for k, v in VALID.items() if k != "encoding"},
    {**VALID, "camera_id": ""},
    {**VALID, "camera_id": "x" * 65},
    {**VALID, "camera_id": "top1\n"},
    {**VALID, "camera_id": "a.b"},
    {**VALID, "seq": -1},
    {**VALID, "seq": MAX_SEQ + 1},
    {**VALID, "seq": True},
    {**VALID, "seq": 1.5},
    {**VALID, "capture_ns": 2**63},
    {**VALID, "encoding": "yuv422"},
    {**VALID, "width": 0},
    {**VALID, "height": 16385},
    {**VALID, "coil_id": ""},
    {**VALID, "coil_id": "a\tb"},
    {**VALID, "coil_id": "c" * 65},
    {**VALID, "position_m": -1},
    {**VALID, "position_m": 1e6 + 1},
    {**VALID, "position_m": False},
    {**VALID, "schema": 2},
    {**VALID, "schema": True},
    [VALID],
]

# JSON Schema cannot tell 5 from 5.0 (the same JSON number), and Python's json module, which
# the test uses to give the schema its instance, reads NaN: defectd rejects both.
STRICTER_THAN_SCHEMA = [
    {**VALID, "width": 4.0},
    {**VALID, "schema": 1.0},
    {**VALID, "position_m": float("nan")},
]


@pytest.mark.parametrize("values", AGREEMENT_CASES)
def test_schema_agrees_with_parser(schema_validator: Any, values: Any) -> None:
    schema_ok = schema_validator.is_valid(values)
    if not isinstance(values, dict):
        assert not schema_ok
        rejected("malformed_header", raw(values))
        return
    assert schema_ok == parser_accepts(values)


@pytest.mark.parametrize("values", STRICTER_THAN_SCHEMA)
def test_parser_stricter_than_schema(schema_validator: Any, values: dict[str, Any]) -> None:
    assert schema_validator.is_valid(values)
    assert not parser_accepts(values)


FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "camera_id": st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True) | st.text(max_size=70),
    "seq": st.integers(-2, MAX_SEQ + 2),
    "capture_ns": st.integers(-2, 2**63 + 2),
    "encoding": st.sampled_from(["mono8", "bgr8", "jpeg", "png", "rgb8", "MONO8"]),
    "width": st.integers(-1, 16386),
    "height": st.integers(-1, 16386),
    "coil_id": st.none() | st.text(max_size=70),
    "position_m": st.none() | st.integers(-2, 10**6 + 2) | st.floats(-1, 1e6 + 1),
    "schema": st.integers(0, 2),
}
OTHER_JSON = (
    st.none()
    | st.booleans()
    | st.text(max_size=3)
    | st.lists(st.integers(), max_size=2)
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer())
)


def field_value(key: str) -> st.SearchStrategy[tuple[str, Any]]:
    """Mostly values of the field's own type (near its limits), sometimes any other JSON."""
    return st.tuples(st.just(key), st.one_of(FIELD_VALUES[key], FIELD_VALUES[key], OTHER_JSON))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(list(FIELD_VALUES)).flatmap(field_value), max_size=3),
    st.sampled_from([None, None, None, None, *VALID]),
)
def test_schema_agrees_with_parser_on_generated_headers(
    schema_validator: Any, changes: list[tuple[str, Any]], dropped: str | None
) -> None:
    """A valid header with up to three fields changed, sometimes one required key dropped."""
    values = {key: value for key, value in {**VALID, **dict(changes)}.items() if key != dropped}
    assert schema_validator.is_valid(values) == parser_accepts(values), values


# --- split_message, check_* and read_message -----------------------------------------------


def test_encode_and_split_with_topic() -> None:
    parts = encode_frame(header(), b"\x01" * 8, with_topic=True)
    assert parts[0] == b"top-1"
    topic, head, payload = split_message(parts, has_topic=True)
    assert topic == b"top-1" and parse_header(head) == header()
    assert bytes(payload) == b"\x01" * 8


def test_encode_and_split_without_topic() -> None:
    parts = encode_frame(header(), b"\x01" * 8, with_topic=False)
    assert len(parts) == 2
    topic, _, payload = split_message(parts, has_topic=False)
    assert topic is None and payload.nbytes == 8


def test_split_does_not_copy_the_payload() -> None:
    payload = bytearray(8)
    _, _, view = split_message([header_to_json(header()), payload], has_topic=False)
    payload[0] = 9
    assert view[0] == 9


def test_split_zmq_frames() -> None:
    parts = [zmq.Frame(p) for p in encode_frame(header(), b"\x02" * 8, with_topic=True)]
    message = read_message(parts, has_topic=True)
    assert message.header == header() and bytes(message.payload) == b"\x02" * 8


@pytest.mark.parametrize(
    ("count", "has_topic", "hint"),
    [(2, True, "PUSH"), (3, False, "PUB"), (1, True, ""), (4, False, ""), (0, False, "")],
)
def test_wrong_part_count(count: int, has_topic: bool, hint: str) -> None:
    with pytest.raises(Rejected) as info:
        split_message([b"x"] * count, has_topic)
    assert info.value.reason == "malformed_message"
    assert hint in info.value.detail and f"got {count}" in info.value.detail


def test_topic_must_equal_camera_id() -> None:
    check_topic(b"top-1", header())
    check_topic(None, header())
    with pytest.raises(Rejected) as info:
        check_topic(b"top-10", header())
    assert info.value.reason == "malformed_header"
    assert "topic b'top-10' differs from the header's camera_id 'top-1'" in info.value.detail


def test_unknown_camera() -> None:
    check_camera(header(), None)
    check_camera(header(), {"top-1", "bottom-1"})
    with pytest.raises(Rejected) as info:
        check_camera(header(), {"bottom-1"})
    assert info.value.reason == "unknown_camera" and info.value.camera_id == "top-1"


def test_payload_checks() -> None:
    check_payload(header(), b"\x00" * 8, DEFAULT_MAX_FRAME_BYTES)
    check_payload(header(encoding="bgr8"), memoryview(b"\x00" * 24), 24)
    check_payload(header(encoding="jpeg"), b"\x00" * 3, 100)  # size unknown until decoded
    with pytest.raises(Rejected) as info:
        check_payload(header(), b"\x00" * 7, DEFAULT_MAX_FRAME_BYTES)
    assert info.value.reason == "size_mismatch"
    assert "mono8 4×2 is 8 bytes, the payload is 7" in info.value.detail
    with pytest.raises(Rejected) as info:
        check_payload(header(encoding="bgr8"), b"\x00" * 8, DEFAULT_MAX_FRAME_BYTES)
    assert info.value.reason == "size_mismatch"
    with pytest.raises(Rejected) as info:
        check_payload(header(encoding="png"), b"\x00" * 101, 100)
    assert info.value.reason == "too_large" and "101 bytes" in info.value.detail


def test_read_message_order_and_reasons() -> None:
    good = encode_frame(header(), b"\x00" * 8, with_topic=True)
    assert read_message(good, True, {"top-1"}).header.seq == 7
    cases = [
        (good[1:], "malformed_message"),
        ([good[0], b"{}", good[2]], "malformed_header"),
        ([b"other", *good[1:]], "malformed_header"),
        (encode_frame(header(camera_id="side"), b"\x00" * 8, True), "unknown_camera"),
        ([*good[:2], b"\x00" * 9], "size_mismatch"),
        ([*good[:2], b"\x00" * 9000], "too_large"),
    ]
    for parts, reason in cases:
        with pytest.raises(Rejected) as info:
            read_message(parts, True, {"top-1"}, max_frame_bytes=1000)
        assert info.value.reason == reason


def test_frame_header_validates_on_construction() -> None:
    with pytest.raises(Rejected):
        header(width=-1)
    with pytest.raises(ValueError):  # Rejected is a ValueError for code that builds headers
        header(encoding="h264")


def test_rejected_is_picklable_and_readable() -> None:
    error = Rejected("too_large", "payload is 9 bytes", "top-1")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.detail, copy.camera_id) == (
        "too_large",
        "payload is 9 bytes",
        "top-1",
    )
    assert str(copy) == "camera top-1: too_large: payload is 9 bytes"
    with pytest.raises(ValueError, match="unknown reject reason"):
        Rejected("bad_luck", "x")
