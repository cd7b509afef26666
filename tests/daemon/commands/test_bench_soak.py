"""`defectd bench soak`: a few seconds at a fixed rate; structure and verdicts, never timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectd.daemon.cli import main
from defectd.daemon.tools.benchmarks.soak import Sample, growth, process_tree

pytestmark = pytest.mark.slow


def test_soak_suite_samples_the_tree_prints_block_and_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "soak.json"
    args = ["bench", "soak", "--backend", "null", "--minutes", "0.1", "--fps", "100"]
    args += ["--warmup-s", "2", "--interval-s", "0.5", "--no-progress"]
    args += ["--out", str(tmp_path / "run"), "--json", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Command: `defectd bench soak --backend null --minutes 0.1 --fps 100" in printed
    assert "| RSS growth over the window |" in printed
    assert "| shm segments left after exit | 0 | 0 | yes |" in printed
    result = json.loads(out.read_text())["soak"]
    assert result["passed"] and result["exit_status"] == 0 and result["capacity_fps"] is None
    assert result["sent"] > 0 and result["processed"] == result["received"] == result["sent"]
    window = [s for s in result["samples"] if s["t_s"] >= 2]
    assert len(window) >= 6
    # supervisor, 4 stages, multiprocessing's resource tracker; one slot-pool segment
    assert all(s["processes"] == 6 and s["shm_segments"] == 1 for s in window)
    assert all(s["rss_bytes"] > 0 and s["fds"] > 0 and s["threads"] >= 6 for s in window)


def test_growth_compares_the_medians_of_the_window_edges() -> None:
    def at(t: float, fds: int) -> Sample:
        return Sample(t, 1, 100, fds, 1, 1, 0, 0)

    flat_with_a_blip = tuple(at(t, fds) for t, fds in enumerate([10, 10, 10, 11, 10, 10, 10]))
    assert growth(flat_with_a_blip, "fds") == 0
    leaking = tuple(at(t, 10 + t) for t in range(8))
    assert growth(leaking, "fds") == 5


def test_process_tree_holds_this_process() -> None:
    import os

    assert process_tree(os.getpid())[0] == os.getpid()
