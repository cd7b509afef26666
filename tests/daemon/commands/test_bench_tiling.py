"""`defectd bench tiling` with its daemon phase: wide frames through a real daemon; structure
and accounting only, never timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectd.daemon.cli import main

pytestmark = pytest.mark.slow


def test_wide_frames_go_through_a_daemon_beside_the_bare_engine(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tiling.json"
    assert main(["bench", "tiling", "--model", str(tiny_model), "--frame", "1600x512",
                 "--threads", "1", "--max-batch", "4", "--seconds", "1.5", "--rounds", "1",
                 "--json", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "| daemon (receive, tile, infer, stitch, post-process, publish) |" in printed
    assert "every frame sent processed" in printed
    record = json.loads(out.read_text(encoding="utf-8"))
    daemon = record["daemon"]
    assert daemon["frame"] == [512, 1600] and daemon["tiles_per_frame"] == 2
    run = daemon["capacity"]
    assert run["sent"] > 0 and run["accounted"] and run["frames_per_s"] > 0, run
    assert run["received"] == run["processed"] == run["sent"] and run["dropped"] == {}
    assert daemon["tiles_per_s"] == pytest.approx(2 * run["frames_per_s"])
    assert daemon["kept"] == pytest.approx(
        daemon["tiles_per_s"] / record["tiling"]["bare_tiles_per_s"]
    )
