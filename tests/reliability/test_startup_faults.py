"""What `defectd run` does with a config, model or metrics directory it cannot use.

Each case runs the real command as a subprocess: exit status 2, one line per problem naming
the file or key and the fix, no traceback, nothing started and no segment in /dev/shm.
In-process checks of the same messages: tests/daemon/test_config.py and
tests/daemon/commands/test_run.py; the engine cache (corrupt or unwritable):
tests/engines/test_engine_cache.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from defectd.daemon.tools.loopback import LoopbackPorts, run_once, write_config
from defectd.engines.model_card import default_model_dir
from tests.daemon.pipeline_helpers import small_line
from tests.reliability.conftest import segments_of

pytestmark = pytest.mark.slow


def _with(tmp_path: Path, **sections: dict[str, object]) -> Path:
    return write_config(tmp_path / "defectd.yaml", small_line(LoopbackPorts(), **sections))


def _model_without(name: str) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        model = tmp_path / "model"
        shutil.copytree(default_model_dir(), model)
        (model / name).unlink()
        return _with(tmp_path, model={"dir": str(model)}, engine={"backend": "onnxruntime"})

    return make


def _metrics_under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("")
    return _with(tmp_path, metrics={"multiprocess_dir": str(tmp_path / "a-file" / "metrics")})


def _invalid_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "defectd.yaml"
    path.write_text("line: {name: line1}\ncameras: [\n")
    return path


def _invalid_values(tmp_path: Path) -> Path:
    path = _with(tmp_path)
    document = yaml.safe_load(path.read_text())
    document["slots"]["count"] = -4
    document["batching"]["polcy"] = "block"
    path.write_text(yaml.safe_dump(document))
    return path


CASES: dict[str, tuple[Callable[[Path], Path], list[str]]] = {
    "config-missing": (
        lambda tmp_path: tmp_path / "nowhere.yaml",
        ["nowhere.yaml: no such config file", "docs/configuration.md"],
    ),
    "config-not-yaml": (_invalid_yaml, ["defectd.yaml: line 3, column 1: YAML syntax error"]),
    "config-invalid-values": (
        _invalid_values,
        ["defectd.yaml: slots.count:", "defectd.yaml: batching.polcy: unknown key"],
    ),
    "model-file-missing": (
        _model_without("model.onnx"),
        ["model.dir:", "model.onnx: listed in the model card but missing"],
    ),
    "model-card-missing": (_model_without("model_card.json"), ["model.dir:", "model_card.json"]),
    "metrics-dir-unwritable": (
        _metrics_under_a_file,
        ["metrics.multiprocess_dir:", "a-file/metrics is not writable", "Not a directory"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_unusable_start_up_input_is_one_clear_line_and_exit_2(case: str, tmp_path: Path) -> None:
    make, expected = CASES[case]
    pid, done = run_once(make(tmp_path))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    problems = done.stderr.strip().splitlines()
    assert 1 <= len(problems) <= 2, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr
    assert segments_of(pid) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere; permissions not testable")
def test_metrics_dir_without_write_permission(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        _, done = run_once(_with(tmp_path, metrics={"multiprocess_dir": str(locked)}))
    finally:
        locked.chmod(0o700)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"metrics.multiprocess_dir: {locked} is not writable" in done.stderr
