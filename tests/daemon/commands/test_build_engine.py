"""`defectd build-engine --config`: the systemd unit's ExecStartPre.

It must build exactly what `defectd run --config` would open (same model, same cache key),
and do nothing, successfully, where the config does not resolve to TensorRT. The real
TensorRT build is tested in tests/engines/backends/test_tensorrt_backend.py (GPU).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

import defectd.engines.backends.tensorrt_backend as tensorrt_backend
import defectd.engines.selection as selection
import defectd.engines.tensorrt_build as tensorrt_build
from defectd.daemon import cli
from defectd.engines.model_card import default_model_dir
from defectd.engines.selection import EngineConfig, Platform, TensorRTSettings

HAS_TENSORRT = all(importlib.util.find_spec(name) for name in ("tensorrt", "pycuda"))
CPU_ONLY = Platform(tensorrt=False, torch=False, torch_cuda=False, onnxruntime_cuda=False)
TRT_GPU = Platform(tensorrt=True, torch=False, torch_cuda=False, onnxruntime_cuda=False)


def write_config(tmp_path: Path, engine: str = "") -> Path:
    path = tmp_path / "defectd.yaml"
    path.write_text(
        "line: {name: l1}\n"
        "cameras:\n"
        '  - {id: c0, endpoint: "tcp://10.0.0.1:5555", width: 1600, height: 256}\n'
        f"model: {{dir: {default_model_dir()}}}\n" + engine,
        encoding="utf-8",
    )
    return path


def platform(monkeypatch: pytest.MonkeyPatch, value: Platform) -> None:
    monkeypatch.setattr(selection, "detect_platform", lambda: value)


def test_nothing_to_build_without_tensorrt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    platform(monkeypatch, CPU_ONLY)
    path = write_config(tmp_path)
    assert cli.main(["build-engine", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"no TensorRT engine to build: {path} runs onnxruntime on cpu here")


@pytest.mark.parametrize("backend", ["onnxruntime", "'null'", "torch"])
def test_other_backends_need_no_engine(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform(
        monkeypatch, Platform(tensorrt=True, torch=True, torch_cuda=True, onnxruntime_cuda=True)
    )
    path = write_config(tmp_path, f"engine: {{backend: {backend}}}\n")
    assert cli.main(["build-engine", "--config", str(path)]) == 0


def test_tensorrt_required_but_missing_fails_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    platform(monkeypatch, CPU_ONLY)
    path = write_config(tmp_path, "engine: {backend: tensorrt}\n")
    assert cli.main(["build-engine", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "engine.backend tensorrt" in err and "defectd[gpu]" in err


def test_a_config_the_daemon_rejects_fails_with_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, "engine: {max_batch: '16'}\n")
    assert cli.main(["build-engine", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: engine.max_batch: expected a whole number")


def test_engine_flags_with_config_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    assert cli.main(["build-engine", "--config", str(path), "--max-batch", "8"]) == 2
    assert "--max-batch with --config" in capsys.readouterr().err


def test_model_or_config_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["build-engine"])
    assert exc.value.code == 2
    assert "one of the arguments --model --config is required" in capsys.readouterr().err


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT and pycuda are installed here")
def test_tensorrt_selected_goes_on_to_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """auto on a TensorRT machine builds: here it reaches the TensorRT import and its hint."""
    platform(monkeypatch, TRT_GPU)
    path = write_config(tmp_path)
    assert cli.main(["build-engine", "--config", str(path)]) == 2
    assert "pip install defectd[gpu]" in capsys.readouterr().err


def test_config_mode_builds_what_the_daemon_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The model and every key field come from the config; TensorRT itself is stubbed here
    (its build is the GPU tests' business), the decision and the settings are not."""
    platform(monkeypatch, TRT_GPU)
    calls: dict[str, Any] = {}

    class Key:
        def digest(self) -> str:
            return "0" * 64

        def describe(self) -> str:
            return "stub"

    def fake_key(card: Any, max_batch: int, opt_batch: int, workspace_mb: int) -> Key:
        calls["key"] = (card.directory, max_batch, opt_batch, workspace_mb)
        return Key()

    def fake_ensure(card: Any, *settings: Any, force: bool = False) -> tuple[Path, bool]:
        calls["ensure"] = settings
        return tmp_path / "plan.engine", True

    monkeypatch.setattr(tensorrt_build, "import_tensorrt", lambda: None)
    monkeypatch.setattr(tensorrt_build, "import_cuda", lambda: None)
    monkeypatch.setattr(tensorrt_backend, "engine_key", fake_key)
    monkeypatch.setattr(tensorrt_backend, "ensure_engine", fake_ensure)
    cache = tmp_path / "cache"
    path = write_config(
        tmp_path, f"engine: {{max_batch: 12, workspace_mb: 2048, cache_dir: {cache}}}\n"
    )
    assert cli.main(["build-engine", "--config", str(path)]) == 0
    assert calls["key"] == (default_model_dir(), 12, 8, 2048)
    assert calls["ensure"] == (12, 8, cache, 2048)
    assert capsys.readouterr().out.startswith("built engine: ")


def test_settings_resolve_the_defaults_like_the_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFECTD_ENGINE_CACHE", "/var/lib/defectd/engines")
    assert TensorRTSettings.of(EngineConfig()) == TensorRTSettings(
        16, 8, Path("/var/lib/defectd/engines"), 4096
    )
    assert TensorRTSettings.of(EngineConfig(max_batch=4)).opt_batch == 4
    settings = TensorRTSettings.of(EngineConfig(opt_batch=2, cache_dir="/x", workspace_mb=64))
    assert (settings.opt_batch, settings.cache_dir, settings.workspace_mb) == (2, Path("/x"), 64)
