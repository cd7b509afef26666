"""`defectd golden check | write` through the module's own parser, on the bundled model."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from defectd.daemon.commands import golden
from defectd.engines.errors import UserError
from defectd.engines.golden import GOLDEN_FRAMES, GOLDEN_JSON, GoldenError, read_golden
from defectd.engines.model_card import bundled_model_dir


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="defectd")
    golden.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    status: int = args.handler(args)
    return status


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundled_model_dir("default"), tmp_path / "model"))


def test_check_passes_on_the_bundled_model(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEFECTD_MODEL", raising=False)  # no --model: the bundled default
    assert _run("golden", "check", "--threads", "2") == 0
    out = capsys.readouterr().out
    assert out.startswith("golden check ok:") and "onnxruntime fp32" in out


def test_check_fp16_passes(model_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("golden", "check", "--model", str(model_copy), "--precision", "fp16") == 0
    assert "onnxruntime fp16" in capsys.readouterr().out


def test_a_mismatch_is_one_user_error_naming_the_failures(
    model_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = model_copy / GOLDEN_JSON
    data = json.loads(path.read_text())
    data["frames"][1]["presence"][0] += 0.2
    data["frames"][3]["peak"][3] -= 0.2
    path.write_text(json.dumps(data))
    with pytest.raises(UserError) as caught:
        _run("golden", "check", "--model", str(model_copy), "--threads", "2")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"2 golden mismatch(es) for {model_copy} on onnxruntime fp32: ")
    assert "frame 1 class 1: presence" in message and "frame 3 class 4: peak" in message
    printed = capsys.readouterr().out
    assert "FAILED (2 mismatches)" in printed and "  frame 1 class 1: presence" in printed


def test_check_without_golden_files_names_the_write_command(model_copy: Path) -> None:
    (model_copy / GOLDEN_JSON).unlink()
    with pytest.raises(GoldenError, match=f"defectd golden write --model {model_copy}"):
        _run("golden", "check", "--model", str(model_copy))


def test_write_keeps_the_stored_frames_then_check_passes(
    model_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = read_golden(model_copy)
    assert _run("golden", "write", "--model", str(model_copy), "--threads", "2") == 0
    out = capsys.readouterr().out
    assert f"wrote {model_copy / GOLDEN_FRAMES} (4 frames" in out
    assert "  frame 0: clean" in out and "class 3" in out
    after = read_golden(model_copy)
    assert (after.frames == before.frames).all() and after.expected == before.expected
    assert after.source == before.source and after.source["kind"] == "synthetic"
    assert _run("golden", "check", "--model", str(model_copy)) == 0


def test_write_without_the_json_keeps_the_frames(model_copy: Path) -> None:
    before = read_golden(model_copy)
    (model_copy / GOLDEN_JSON).unlink()
    assert _run("golden", "write", "--model", str(model_copy), "--threads", "2") == 0
    after = read_golden(model_copy)
    assert (after.frames == before.frames).all() and after.expected == before.expected
    assert after.source == {"kind": "given"}  # where they came from was in the lost json


def test_write_new_frames_replaces_unreadable_ones(model_copy: Path) -> None:
    (model_copy / GOLDEN_FRAMES).write_bytes(b"not a zip")
    with pytest.raises(GoldenError, match="--new-frames"):
        _run("golden", "write", "--model", str(model_copy))
    assert _run("golden", "write", "--model", str(model_copy), "--new-frames") == 0
    assert read_golden(model_copy).source["kind"] == "synthetic"


def test_write_needs_a_model_dir() -> None:
    with pytest.raises(SystemExit):
        _run("golden", "write")
