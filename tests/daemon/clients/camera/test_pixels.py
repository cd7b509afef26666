"""Camera buffers to 8-bit frames: Mono8 to Mono16 with a window, line-scan assembly."""

from __future__ import annotations

import numpy as np
import pytest

from defectd.daemon.clients.camera.pixels import LineAssembler, Window, to_mono8
from defectd.engines.errors import InvalidInput, InvalidSetting


def test_mono8_passes_through_and_deeper_formats_map_through_the_window() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert (to_mono8(grey.tobytes(), "Mono8", 4, 3) == grey).all()
    words = np.array([[0, 512, 1023, 100]], dtype="<u2")
    assert to_mono8(words.tobytes(), "Mono10", 4, 1).tolist() == [[0, 128, 255, 25]]
    windowed = to_mono8(words.tobytes(), "Mono10", 4, 1, Window(100, 612))
    assert windowed.tolist() == [[0, 205, 255, 0]]  # (512 - 100) × 255 / 512 = 205.2
    deep = np.array([[65535, 0]], dtype="<u2")
    assert to_mono8(deep.tobytes(), "Mono16", 2, 1).tolist() == [[255, 0]]


def test_bad_buffers_and_formats_are_named() -> None:
    with pytest.raises(InvalidInput, match="needs 8 bytes, the buffer has 4"):
        to_mono8(b"\0" * 4, "Mono12", 2, 2)
    with pytest.raises(InvalidSetting, match="takes Mono8, Mono10, Mono12, Mono16"):
        to_mono8(b"\0" * 4, "Mono12p", 2, 2)
    with pytest.raises(InvalidSetting, match="low < high"):
        Window(10, 10)


def test_lines_are_gathered_into_frames() -> None:
    assembler = LineAssembler(4)
    lines = [np.full((3, 2), i, np.uint8) for i in range(3)]
    assert assembler.add(lines[0]) == []
    first = assembler.add(lines[1])  # 6 lines: one frame of 4, 2 kept
    assert len(first) == 1 and first[0][:, 0].tolist() == [0, 0, 0, 1]
    second = assembler.add(lines[2])  # 2 + 3 = 5: one frame, 1 kept
    assert second[0][:, 0].tolist() == [1, 1, 2, 2]
