"""The typed reader: empty sections, numbers, the environment, and each kind of problem in a key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.daemon.config.helpers import camera, config, only_problem, parse, problems


def test_empty_sections_mean_defaults() -> None:
    assert parse(config(ingest=None, engine=None, model=None)) == parse(config())


def test_whole_numbers_are_numbers() -> None:
    loaded = parse(config(batching={"max_wait_ms": 5}, shutdown={"drain_timeout_s": 3}))
    assert loaded.batching.max_wait_ms == 5.0 and type(loaded.batching.max_wait_ms) is float
    assert loaded.shutdown.drain_timeout_s == 3.0


def test_metrics_dir_comes_from_the_environment() -> None:
    def metrics_dir(environ: dict[str, str], **metrics: Any) -> str | None:
        return parse(config(metrics=metrics), environ=environ).metrics.multiprocess_dir

    assert metrics_dir({"PROMETHEUS_MULTIPROC_DIR": "/tmp/p", "RUNTIME_DIRECTORY": "/run/d"}) == (
        "/tmp/p"
    )
    assert metrics_dir({"RUNTIME_DIRECTORY": "/run/defectd:/run/other"}) == "/run/defectd/metrics"
    assert metrics_dir({}) is None
    assert metrics_dir({"RUNTIME_DIRECTORY": "/run/d"}, multiprocess_dir="/srv/m") == "/srv/m"


def test_model_dir_default_follows_defectd_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFECTD_MODEL", "/opt/models/x")
    assert parse(config()).model.dir == Path("/opt/models/x")


def test_unknown_keys_suggest_the_closest() -> None:
    found = problems(
        {
            **config(cameras=[camera(widht=1600)]),
            "ingset": {},
            "batching": {"max_wait": 5},
            "engine": {"max_bach": 8},
        }
    )
    assert "test.yaml: ingset: unknown key; did you mean 'ingest'?" in found[0]
    text = "\n".join(found)
    assert "test.yaml: cameras[0].widht: unknown key; did you mean 'width'?" in text
    assert "test.yaml: batching.max_wait: unknown key; did you mean 'max_wait_ms'?" in text
    assert "test.yaml: engine.max_bach: unknown key; did you mean 'max_batch'?" in text
    assert "known here: max_wait_ms, policy" in text


def test_moved_keys_say_where_they_live() -> None:
    assert "the batch size is engine.max_batch" in only_problem(config(batching={"max_batch": 8}))
    assert "model.thresholds" in only_problem(config(thresholds={"pits": {"pixel": 0.5}}))


@pytest.mark.parametrize(
    ("section", "value", "expected"),
    [
        (
            {"ingest": {"rcvhwm": "1000"}},
            "ingest.rcvhwm",
            "expected a whole number, got text '1000'",
        ),
        ({"ingest": {"rcvhwm": True}}, "ingest.rcvhwm", "got true (YAML reads yes/no/on/off"),
        ({"ingest": {"rcvhwm": 1000.0}}, "ingest.rcvhwm", "got the number 1000.0"),
        ({"ingest": {"rcvhwm": None}}, "ingest.rcvhwm", "got nothing (null)"),
        (
            {"batching": {"max_wait_ms": "1e3"}},
            "batching.max_wait_ms",
            "an exponent needs a dot to be a number: write 1.0e3",
        ),
        ({"batching": {"max_wait_ms": float("nan")}}, "batching.max_wait_ms", "a finite number"),
        ({"postprocess": {"include_rle": 1}}, "postprocess.include_rle", "expected true or false"),
        ({"line": {"name": 7}}, "line.name", "expected text, got the number 7"),
        ({"line": {"name": ""}}, "line.name", "got an empty string"),
        ({"engine": {"max_batch": "16"}}, "engine.max_batch", "expected a whole number"),
        ({"engine": {"precision": 16}}, "engine.precision", "expected text"),
        ({"publish": ["tcp://*:1"]}, "publish", "expected a mapping of keys, got a list"),
    ],
)
def test_wrong_types(section: dict[str, Any], value: str, expected: str) -> None:
    problem = only_problem(config(**section))
    assert problem.startswith(f"test.yaml: {value}: "), problem
    assert expected in problem


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            {"batching": {"policy": "drop_newest"}},
            "batching.policy: 'drop_newest' is not one of "
            "drop_oldest, block (did you mean 'drop_oldest'?)",
        ),
        (
            {"logging": {"level": "INFO"}},
            "logging.level: 'INFO' is not one of debug, info, "
            "warning, error, critical (did you mean 'info'?)",
        ),
        ({"logging": {"format": "xml"}}, "logging.format: 'xml' is not one of text, json"),
        ({"cameras": [camera(mode="pub")]}, "cameras[0].mode: 'pub' is not one of connect, bind"),
        ({"cameras": [camera(encoding="rgb8")]}, "cameras[0].encoding: 'rgb8' is not one of"),
        ({"engine": {"backend": "gpu"}}, "engine.backend: 'gpu' is not one of auto"),
        ({"engine": {"device": "tpu"}}, "engine.device: 'tpu': use cpu or cuda"),
    ],
)
def test_bad_choices(section: dict[str, Any], expected: str) -> None:
    assert only_problem(config(**section)).startswith(f"test.yaml: {expected}")


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"slots": {"count": 1}}, "slots.count: must be at least 2, got 1"),
        ({"ingest": {"receivers": 0}}, "ingest.receivers: must be at least 1, got 0"),
        ({"publish": {"status_interval_s": 0}}, "publish.status_interval_s: must be more than 0"),
        ({"cameras": [camera(width=20000)]}, "cameras[0].width: must be at most 16384, got 20000"),
        ({"engine": {"max_batch": 0}}, "engine.max_batch: must be at least 1, got 0"),
        ({"engine": {"opt_batch": 20}}, "engine.opt_batch: must be in 1..max_batch (16), got 20"),
    ],
)
def test_out_of_range(section: dict[str, Any], expected: str) -> None:
    assert only_problem(config(**section)).startswith(f"test.yaml: {expected}")


def test_required_keys_and_sections() -> None:
    assert problems({"cameras": [camera()]}) == ["test.yaml: line: required section is missing"]
    assert problems({"line": {"name": "l"}}) == ["test.yaml: cameras: required section is missing"]
    assert problems(config(cameras=[])) == [
        "test.yaml: cameras: expected a list of at least one camera, got an empty list"
    ]
    assert problems(config(cameras=[{"id": "a", "width": 1, "height": 1}])) == [
        "test.yaml: cameras[0].endpoint: required key is missing"
    ]
    assert problems(None) == ["test.yaml: the config is empty; it needs at least line and cameras"]
    assert "expected a mapping of sections" in problems(["line"])[0]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"pits": {"pixel": 1.5}}, "model.thresholds.pits.pixel: must be at most 1, got 1.5"),
        (
            {"pits": {"pixels": 0.5}},
            "model.thresholds.pits.pixels: unknown key; did you mean 'pixel'?",
        ),
        (
            {"pits": {"min_mask_area": 10.5}},
            "model.thresholds.pits.min_mask_area: expected a whole number",
        ),
        ({"pits": {}}, "model.thresholds.pits: sets nothing"),
        ({0: {"pixel": 0.5}}, "model.thresholds.0: name a class by its id (1, 2, ...) or its name"),
        ({True: {"pixel": 0.5}}, "model.thresholds.True: name a class by its id"),
        ({"pits": 0.5}, "model.thresholds.pits: expected a mapping of keys, got the number 0.5"),
    ],
)
def test_bad_threshold_overrides(table: dict[Any, Any], expected: str) -> None:
    assert only_problem(config(model={"thresholds": table})).startswith(f"test.yaml: {expected}")


def test_many_problems_reported_together() -> None:
    found = problems(
        {
            "line": {"name": "line 1"},
            "cameras": [camera(width="1600"), camera(endpoint="tcp://h")],
            "batching": {"policy": "newest"},
            "engine": {"backend": "gpu", "threds": 2},
            "logging": {"levle": "debug"},
        }
    )
    paths = [problem.split(": ")[1] for problem in found]
    assert paths == [
        "line.name",
        "cameras[0].width",
        "cameras[1].endpoint",
        "batching.policy",
        "engine.threds",
        "engine.backend",
        "logging.levle",
    ]
    assert all(problem.startswith("test.yaml: ") for problem in found)
    with pytest.raises(ValueError, match=r"line\.name") as caught:
        parse({"line": {"name": "line 1"}, "cameras": [camera(width="1600")]})
    assert str(caught.value).count("\n") == 1  # the message holds every problem, one a line
