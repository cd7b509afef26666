"""Shared test data for the event tests: real post-processing output, a frame header, a
heartbeat, and an encode → decode round trip."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from defectd.daemon.events import (
    FrameCounts,
    FrameMeta,
    FrameSummary,
    StatusEvent,
    TopicSequencer,
    decode_message,
    encode,
    frame_summary,
)
from defectd.engines.engine import EngineInfo
from defectd.engines.postprocess import FrameDefects, PostprocessConfig, postprocess

CLASSES = ("pits", "crazing", "scratches", "patches")
MODEL = "defectd-default 1.0.0"
RUN = "0123456789abcdef"
CAPTURE_NS = 1_700_000_000_123_000_000
RECEIVE_NS = CAPTURE_NS + 5_000_000
ENGINE = EngineInfo("onnxruntime", "cpu", "fp32", 8, MODEL, CLASSES)


@dataclass(frozen=True)
class Frame:
    """The header fields the events use (a `FrameMeta`, like `daemon.protocol.FrameHeader`)."""

    camera_id: str = "cam0"
    seq: int = 1234
    capture_ns: int = CAPTURE_NS
    coil_id: str | None = None
    position_m: float | None = None


def defective_frame(presence: tuple[float, ...] = (0.9, 0.1, 0.95, 0.1)) -> FrameDefects:
    """Class 1: a 20×30 block at p=0.8 and a 3×3 speck at p=0.9; class 3: a 10×10 at 0.6."""
    probs = np.zeros((4, 64, 128), np.float32)
    probs[0, 10:30, 20:50] = 0.8
    probs[0, 50:53, 100:103] = 0.9
    probs[2, 40:50, 60:70] = 0.6
    return postprocess(probs, presence, PostprocessConfig())


def summary_of(
    frame: FrameMeta,
    defects: FrameDefects,
    publish_ns: int = 0,
    batch_size: int = 1,
    line: str = "line1",
) -> FrameSummary:
    return frame_summary(
        frame,
        defects,
        CLASSES,
        line=line,
        receive_ns=RECEIVE_NS,
        publish_ns=publish_ns,
        batch_size=batch_size,
    )


def clean_frame() -> FrameDefects:
    return postprocess(np.zeros((4, 64, 128), np.float32), [0.1] * 4, PostprocessConfig())


def status(ready: bool = True) -> StatusEvent:
    return StatusEvent(
        publish_ns=CAPTURE_NS,
        uptime_s=3723.5,
        fps=24.96,
        frames=FrameCounts(1000, 990, {"queue_full": 7, "bad_header": 3}, lost=2),
        queue_depth=3,
        slots_used=5,
        slots_total=32,
        engine=ENGINE if ready else None,
        ready=ready,
    )


def round_trip(event: Any, sequencer: TopicSequencer | None = None) -> dict[str, Any]:
    return decode_message(encode(event, sequencer or TopicSequencer(RUN)))
