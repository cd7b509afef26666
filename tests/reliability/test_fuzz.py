"""Fuzzed camera messages against a real daemon's PULL socket.

Hypothesis builds random and mutated ``[header, payload]`` messages: missing and extra parts,
truncated, non-JSON, non-UTF-8, oversized or non-object headers, fields missing or replaced
by huge, negative, fractional, boolean, string, list or object values, unknown encodings,
payloads truncated, extended, corrupted (raw, JPEG, PNG), empty, random or far over
``ingest.max_frame_bytes``. All go to one `defectd run` process; afterwards no stage may have
restarted, every message must be counted (processed, or dropped under a reject reason:
``Σ defectd_frames_dropped_total + Σ defectd_frames_processed_total == sent``), and the
receiver's RSS must stay flat.

A few hundred messages by default; ``DEFECTD_FUZZ_EXAMPLES=10000`` for the full run
(docs/reliability.md records its figures). The parser alone: tests/daemon/test_protocol.py.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import cv2
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from defectd.daemon.protocol import ENCODINGS, MAX_HEADER_BYTES, OPTIONAL, REJECT_REASONS, REQUIRED
from defectd.daemon.tools.loopback import Camera, DaemonProcess, Listener, LoopbackPorts
from defectd.engines.synth import SyntheticLine
from tests.daemon.pipeline_helpers import HEIGHT, WIDTH, small_line

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("DEFECTD_FUZZ_EXAMPLES", "300"))
LIMIT = 3 * HEIGHT * WIDTH  # ingest.max_frame_bytes: one bgr8 frame
RSS_GROWTH_LIMIT = 32 * 2**20  # bytes the receiver may grow from the first sample to the last
STAGE_KINDS = ("receiver", "inference", "postprocess", "publisher")

_IMAGE = SyntheticLine(5).frame(0).image
BASE = {
    "mono8": _IMAGE.tobytes(),
    "bgr8": cv2.cvtColor(_IMAGE, cv2.COLOR_GRAY2BGR).tobytes(),
    "jpeg": cv2.imencode(".jpg", _IMAGE)[1].tobytes(),
    "png": cv2.imencode(".png", _IMAGE)[1].tobytes(),
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
edge_numbers = st.sampled_from(
    [-1, -(2**63), 0, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30, 0.5, 1e308, -0.0]
)


@st.composite
def headers(draw: st.DrawFn) -> tuple[bytes, str]:
    """A header's raw bytes, and the encoding the payload is built for."""
    encoding = draw(st.sampled_from((*ENCODINGS, "rgb565", "", "MONO8", "jpg")))
    fields: dict[str, Any] = {
        "camera_id": draw(
            st.sampled_from(("cam0", "cam1") * 4 + ("cam9", "", "bad id!", "c" * 65))
        ),
        "seq": draw(st.integers(min_value=0, max_value=2**20)),
        "capture_ns": time.time_ns(),
        "encoding": encoding,
        "width": draw(st.sampled_from((WIDTH, WIDTH, 800, 1, 16384, 20000))),
        "height": HEIGHT,
    }
    mutations = draw(st.sampled_from((0, 0, 0, 1, 2)))
    keys = st.sampled_from((*REQUIRED, *OPTIONAL, "extra"))
    for key in draw(st.lists(keys, min_size=mutations, max_size=mutations)):
        action = draw(st.sampled_from(("delete", "number", "value")))
        if action == "delete":
            fields.pop(key, None)
        else:
            fields[key] = draw(edge_numbers if action == "number" else json_values)
    raw = json.dumps(fields).encode()  # NaN and Infinity come out as non-JSON words
    form = draw(
        st.sampled_from(("json",) * 8 + ("truncated", "garbage", "not-object", "huge", "latin-1"))
    )
    if form == "truncated":
        raw = raw[: draw(st.integers(min_value=0, max_value=max(0, len(raw) - 1)))]
    elif form == "garbage":
        raw = draw(st.binary(max_size=64))
    elif form == "not-object":
        raw = json.dumps(draw(json_values)).encode()
    elif form == "huge":
        raw = raw[:-1] + b', "pad": "' + b"x" * MAX_HEADER_BYTES + b'"}'
    elif form == "latin-1":
        raw = raw.replace(b'"cam', b'"\xe9cam', 1)
    return raw, encoding


@st.composite
def payloads(draw: st.DrawFn, encoding: str) -> bytes:
    base = BASE.get(encoding, BASE["mono8"])
    kind = draw(
        st.sampled_from(
            (
                "exact",
                "exact",
                "truncated",
                "extended",
                "corrupted",
                "empty",
                "random",
                "over-limit",
                "other-format",
            )
        )
    )
    if kind == "truncated":
        return base[: draw(st.integers(min_value=0, max_value=len(base) - 1))]
    if kind == "extended":
        return base + draw(st.binary(min_size=1, max_size=32))
    if kind == "corrupted":
        data = bytearray(base)
        for _ in range(draw(st.integers(min_value=1, max_value=16))):
            data[draw(st.integers(min_value=0, max_value=len(data) - 1))] = draw(
                st.integers(min_value=0, max_value=255)
            )
        return bytes(data)
    if kind == "empty":
        return b""
    if kind == "random":
        return draw(st.binary(max_size=256))
    if kind == "over-limit":
        return bytes(LIMIT * draw(st.sampled_from((1, 2, 4))) + 1)
    if kind == "other-format":
        return BASE[draw(st.sampled_from(("jpeg", "png", "mono8")))]
    return base


@st.composite
def messages(draw: st.DrawFn) -> list[bytes]:
    """One multipart message as a camera (or anything else) might push it."""
    header, encoding = draw(headers())
    payload = draw(payloads(encoding))
    layout = draw(
        st.sampled_from(("ok",) * 12 + ("header-only", "payload-only", "extra", "topic", "swap"))
    )
    if layout == "header-only":
        return [header]
    if layout == "payload-only":
        return [payload]
    if layout == "extra":
        return [header, payload, *draw(st.lists(st.binary(max_size=16), min_size=1, max_size=3))]
    if layout == "topic":
        return [b"cam0", header, payload]
    if layout == "swap":
        return [payload, header]
    return [header, payload]


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def _total(exposition: str, name: str) -> tuple[float, dict[str, float]]:
    """The sum of every series of `name`, and the sums by its ``reason`` label."""
    total, by_reason = 0.0, dict[str, float]()
    for line in exposition.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match and match[1] == name:
            total += float(match[3])
            reason = re.search(r'reason="(\w+)"', match[2] or "")
            if reason and float(match[3]):  # every reason's series exists from the start
                by_reason[reason[1]] = by_reason.get(reason[1], 0.0) + float(match[3])
    return total, by_reason


def test_fuzzed_messages_are_all_counted_and_crash_nothing(
    tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    ports = LoopbackPorts()
    config = small_line(ports, ingest={"max_frame_bytes": LIMIT})
    with (
        DaemonProcess(config, tmp_path, ports) as daemon,
        Listener(ports.publish_endpoint, keep=False, strict=True) as subscriber,
    ):
        daemon.wait_ready()
        stages = daemon.children()
        receiver = stages["recv0"]
        assert subscriber.wait_subscribed()
        camera = Camera(ports.camera_endpoint, context=context)
        sent = 0
        rss: list[int] = []
        started = time.monotonic()

        @settings(
            max_examples=EXAMPLES,
            # The default run (make test, CI) replays the same examples every time, so a red
            # CI is reproducible; a full run (DEFECTD_FUZZ_EXAMPLES set) explores afresh.
            derandomize="DEFECTD_FUZZ_EXAMPLES" not in os.environ,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(message=messages())
        def send(message: list[bytes]) -> None:
            nonlocal sent
            camera.send_raw(message)
            sent += 1
            if sent % max(1, EXAMPLES // 20) == 0:
                rss.append(_rss(receiver))

        send()
        sending_s = time.monotonic() - started

        def counted() -> bool:
            frames = (subscriber.last_status() or {}).get("frames", {})
            return bool(frames.get("received") == sent) and frames["received"] == frames[
                "processed"
            ] + sum(frames["dropped"].values())

        subscriber.until(counted, 60, f"all {sent} messages counted")
        status = subscriber.last_status()
        assert status is not None
        exposition = daemon.metrics()
        processed, _ = _total(exposition, "defectd_frames_processed_total")
        dropped, by_reason = _total(exposition, "defectd_frames_dropped_total")
        restarts, _ = _total(exposition, "defectd_worker_restarts_total")
        rss.append(_rss(receiver))
        print(
            f"fuzz: {sent} messages in {sending_s:.1f} s; processed {processed:.0f}, "
            f"rejected {dropped:.0f} {dict(sorted(by_reason.items()))}; receiver RSS "
            f"{rss[0] / 2**20:.1f} → {rss[-1] / 2**20:.1f} MiB (max {max(rss) / 2**20:.1f})"
        )
        assert sent >= EXAMPLES // 2  # hypothesis ran (it may stop early on a small space)
        assert processed + dropped == sent
        assert set(by_reason) <= set(REJECT_REASONS)  # no queue_full, crash or engine drops
        assert len(by_reason) >= 5  # the generator reaches most checks
        assert restarts == 0 and daemon.children() == stages
        assert status["ready"] and daemon.http("/readyz")[0] == 200
        assert rss[-1] - rss[0] <= RSS_GROWTH_LIMIT, [r // 2**20 for r in rss]
        assert daemon.stop() == 0
    log = daemon.log_text()
    assert "Traceback" not in log and "died with exit code" not in log
