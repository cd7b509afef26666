"""The daemon config: defaults, round trip, every kind of problem, and the documented keys."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from defectd.daemon.config import (
    DEFAULT_CONFIG_PATH,
    SECTIONS,
    ConfigError,
    DaemonConfig,
    IngestSocket,
    ThresholdOverride,
    check_model,
    effective_thresholds,
    load_config,
    parse_config,
    parse_endpoint,
    parse_http_bind,
)
from defectd.engines.model_card import default_model_dir, read_card

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def camera(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": "top-0",
        "endpoint": "tcp://10.0.0.21:5555",
        "width": 1600,
        "height": 256,
    }
    return {**values, **changes}


def config(**sections: Any) -> dict[str, Any]:
    """A minimal valid config mapping with `sections` replaced or added."""
    return {"line": {"name": "line1"}, "cameras": [camera()], **sections}


def parse(mapping: Any, **kwargs: Any) -> DaemonConfig:
    return parse_config(mapping, "test.yaml", environ=kwargs.pop("environ", {}), **kwargs)


def problems(mapping: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(mapping, **kwargs)
    return caught.value.problems


def only_problem(mapping: Any) -> str:
    found = problems(mapping)
    assert len(found) == 1, found
    return found[0]


def doc_yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)


# --- valid configs -----------------------------------------------------------------------------


def test_minimal_config_takes_the_defaults() -> None:
    loaded = parse(config())
    assert loaded.line.name == "line1"
    assert loaded.cameras[0].mode == "connect" and loaded.cameras[0].has_topic
    assert loaded.cameras[0].encoding is None
    assert loaded.ingest.receivers == 1 and loaded.ingest.max_frame_bytes == 4 * 2**20
    assert loaded.slots.count == 64
    assert (loaded.batching.max_wait_ms, loaded.batching.policy) == (20.0, "drop_oldest")
    assert loaded.max_batch == loaded.engine.max_batch == 16
    assert loaded.model.dir == default_model_dir() and loaded.model.thresholds == ()
    assert loaded.publish.bind == "tcp://127.0.0.1:5560"
    assert loaded.metrics.bind == "127.0.0.1:9108"
    assert loaded.metrics.multiprocess_dir is None  # no environment: a private folder at start
    assert (loaded.logging.level, loaded.logging.format) == ("info", "text")
    assert (loaded.frame_format.width, loaded.frame_format.height) == (1600, 256)
    assert loaded.source == "test.yaml"


def test_empty_sections_mean_defaults() -> None:
    assert parse(config(ingest=None, engine=None, model=None)) == parse(config())


def test_whole_numbers_are_numbers() -> None:
    loaded = parse(config(batching={"max_wait_ms": 5}, shutdown={"drain_timeout_s": 3}))
    assert loaded.batching.max_wait_ms == 5.0 and type(loaded.batching.max_wait_ms) is float
    assert loaded.shutdown.drain_timeout_s == 3.0


def test_full_example_round_trips() -> None:
    full = doc_yaml_blocks()[-1]
    loaded = parse(yaml.safe_load(full))
    assert [c.id for c in loaded.cameras] == ["top-0", "bottom-0", "edge-0"]
    assert [c.mode for c in loaded.cameras] == ["connect", "connect", "bind"]
    assert loaded.max_batch == 32 and loaded.engine.backend == "tensorrt"
    assert loaded.model.thresholds == (
        ThresholdOverride(target="scratches", pixel=0.6),
        ThresholdOverride(target=1, min_mask_area=200),
    )
    mapping = loaded.to_mapping()
    assert parse(mapping) == loaded
    # ... and through YAML text, as check-config prints it.
    assert parse(yaml.safe_load(yaml.safe_dump(mapping, sort_keys=False))) == loaded
    assert list(mapping) == list(SECTIONS)


def test_every_yaml_example_in_the_docs_parses() -> None:
    blocks = doc_yaml_blocks()
    assert len(blocks) >= 3
    for block in blocks:
        data = yaml.safe_load(block)
        if "line" not in data:  # a fragment: put it into the smallest config
            data = {**config(), **data}
        parse(data)


def test_shared_bind_endpoint_is_one_socket() -> None:
    cameras = [
        camera(id="a", endpoint="tcp://*:5570", mode="bind"),
        camera(id="b", endpoint="tcp://*:5570", mode="bind"),
        camera(id="c", endpoint="tcp://10.0.0.23:5555"),
        camera(id="d", endpoint="tcp://10.0.0.23:5555"),  # a gateway publishing two cameras
    ]
    loaded = parse(config(cameras=cameras, ingest={"receivers": 2}))
    assert loaded.sockets == (
        IngestSocket("tcp://*:5570", "bind", ("a", "b")),
        IngestSocket("tcp://10.0.0.23:5555", "connect", ("c", "d")),
    )
    assert not loaded.cameras[0].has_topic


def test_metrics_dir_comes_from_the_environment() -> None:
    def metrics_dir(environ: dict[str, str], **metrics: Any) -> str | None:
        return parse(config(metrics=metrics), environ=environ).metrics.multiprocess_dir

    assert metrics_dir({"PROMETHEUS_MULTIPROC_DIR": "/tmp/p", "RUNTIME_DIRECTORY": "/run/d"}) == (
        "/tmp/p"
    )
    assert metrics_dir({"RUNTIME_DIRECTORY": "/run/defectd:/run/other"}) == "/run/defectd/metrics"
    assert metrics_dir({}) is None
    assert metrics_dir({"RUNTIME_DIRECTORY": "/run/d"}, multiprocess_dir="/srv/m") == "/srv/m"


def test_model_dir_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "defectd.yaml"
    path.write_text(yaml.safe_dump(config(model={"dir": "models/mine"})))
    assert load_config(path, environ={}).model.dir == tmp_path / "models" / "mine"
    assert parse(config(model={"dir": "/abs/model"})).model.dir == Path("/abs/model")


def test_model_dir_default_follows_defectd_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFECTD_MODEL", "/opt/models/x")
    assert parse(config()).model.dir == Path("/opt/models/x")


@pytest.mark.parametrize(
    "text", ["tcp://10.0.0.1:5555", "tcp://[::1]:5555", "tcp://eth0:1", "tcp://cam-3.line:65535"]
)
def test_valid_tcp_endpoints(text: str) -> None:
    assert parse_endpoint(text, bind=False).transport == "tcp"


def test_endpoint_parts() -> None:
    assert parse_endpoint("tcp://*:5570", bind=True).port == 5570
    assert parse_endpoint("ipc:///run/defectd/cams.sock").address == "/run/defectd/cams.sock"
    assert parse_endpoint("inproc://cameras").transport == "inproc"
    assert parse_http_bind("[::1]:9108").host == "[::1]"


# --- problems ----------------------------------------------------------------------------------


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


def test_duplicate_camera_ids() -> None:
    cameras = [camera(), camera(endpoint="tcp://10.0.0.22:5555")]
    assert only_problem(config(cameras=cameras)) == (
        "test.yaml: cameras[1].id: 'top-0' is also cameras[0]'s id: ids must be unique"
    )


@pytest.mark.parametrize(
    ("camera_id", "expected"),
    [
        ("top.0", "cannot be used in a topic: use 1 to 64 characters from A-Z a-z 0-9 _ -"),
        ("kamera-ü", "for example 'kamera-_'"),
        ("c" * 33, "has 33 characters, frame slots hold 32"),
    ],
)
def test_bad_camera_ids(camera_id: str, expected: str) -> None:
    problem = only_problem(config(cameras=[camera(id=camera_id)]))
    assert problem.startswith("test.yaml: cameras[0].id: ") and expected in problem


@pytest.mark.parametrize(
    ("endpoint", "mode", "expected"),
    [
        ("udp://10.0.0.1:5555", "connect", "is not a ZeroMQ endpoint: use tcp://HOST:PORT"),
        ("10.0.0.1:5555", "connect", "is not a ZeroMQ endpoint"),
        ("tcp://10.0.0.1", "connect", "needs a host and a port, like tcp://192.168.10.21:5555"),
        ("tcp://10.0.0.1:99999", "connect", "port '99999' is not a number in 1..65535"),
        ("tcp://10.0.0.1:*", "bind", "give a fixed port"),
        ("tcp://*:5555", "connect", "'*' (every interface) is for binding"),
        ("tcp://::1:5555", "connect", "write an IPv6 address in brackets"),
        ("tcp://cam 1:5555", "connect", "empty or has spaces"),
        ("tcp://cam;x:5555", "connect", "is not a host name, address or interface"),
        ("ipc://", "bind", "empty or has spaces"),
        ("ipc:///" + "x" * 120, "bind", "Unix sockets take at most 107"),
    ],
)
def test_invalid_endpoints(endpoint: str, mode: str, expected: str) -> None:
    problem = only_problem(config(cameras=[camera(endpoint=endpoint, mode=mode)]))
    assert problem.startswith("test.yaml: cameras[0].endpoint: "), problem
    assert expected in problem


def test_one_endpoint_one_mode() -> None:
    cameras = [camera(id="a", endpoint="tcp://*:5570", mode="bind"), camera(id="b")]
    cameras[1]["endpoint"] = "tcp://*:5570"
    cameras[1]["mode"] = "connect"
    found = problems(config(cameras=cameras))
    assert any(
        p.startswith("test.yaml: cameras[1].mode: cameras[0] binds tcp://*:5570") for p in found
    )


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        (
            {"cameras": [camera(endpoint="tcp://*:5560", mode="bind")]},
            "publish.bind: tcp://127.0.0.1:5560 is also bound by cameras[0].endpoint",
        ),
        (
            {"publish": {"bind": "tcp://0.0.0.0:9108"}},
            "metrics.bind: 127.0.0.1:9108 is also bound by publish.bind (tcp://0.0.0.0:9108)",
        ),
        (
            {
                "cameras": [
                    camera(id="a", endpoint="ipc:///run/c.sock", mode="bind"),
                    camera(id="b", endpoint="ipc:///run/c.sock", mode="bind"),
                ],
                "publish": {"bind": "ipc:///run/c.sock"},
            },
            "publish.bind: ipc:///run/c.sock is also bound by cameras[0].endpoint",
        ),
    ],
)
def test_addresses_bound_twice(sections: dict[str, Any], expected: str) -> None:
    assert only_problem(config(**sections)).startswith(f"test.yaml: {expected}")


def test_different_hosts_same_port_do_not_clash() -> None:
    parse(config(publish={"bind": "tcp://192.168.10.5:9108"}))


def test_cameras_send_one_frame_size() -> None:
    cameras = [camera(), camera(id="b", height=512)]
    assert only_problem(config(cameras=cameras)) == (
        "test.yaml: cameras[1]: sends 1600×512, cameras[0] 1600×256: slots and batches hold "
        "one frame size"
    )


def test_cross_key_limits() -> None:
    found = problems(
        config(
            cameras=[camera(encoding="bgr8")],
            ingest={
                "receivers": 2,
                "reconnect_ivl_ms": 500,
                "reconnect_ivl_max_ms": 100,
                "heartbeat_timeout_ms": 500,
                "max_frame_bytes": 1600 * 256,
            },
            slots={"count": 20},
            engine={"max_batch": 16},
            restart={"backoff_initial_s": 5, "backoff_max_s": 1},
        )
    )
    assert found == [
        "test.yaml: ingest.reconnect_ivl_max_ms: must be at least reconnect_ivl_ms (500), got 100",
        "test.yaml: ingest.heartbeat_timeout_ms: must be at least heartbeat_ivl_ms (1000), got 500",
        "test.yaml: ingest.receivers: 2 receivers for 1 camera socket(s): one process reads a "
        "socket",
        "test.yaml: ingest.max_frame_bytes: less than one bgr8 frame of cameras[0] (1228800 bytes)",
        "test.yaml: slots.count: must be at least 2 × engine.max_batch = 32, got 20",
        "test.yaml: restart.backoff_max_s: must be at least backoff_initial_s (5), got 1",
    ]


def test_no_heartbeat_needs_no_timeout() -> None:
    parse(config(ingest={"heartbeat_ivl_ms": 0, "heartbeat_timeout_ms": 1}))


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


# --- threshold overrides -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def card() -> Any:
    return read_card(default_model_dir())  # classes pits, crazing, scratches, patches


def overrides(table: dict[Any, Any]) -> tuple[ThresholdOverride, ...]:
    return parse(config(model={"thresholds": table})).model.thresholds


def test_overrides_by_name_and_id_merge_over_the_card(card: Any) -> None:
    merged = effective_thresholds(
        card, overrides({"scratches": {"pixel": 0.6}, 1: {"min_mask_area": 200}})
    )
    assert merged.classes[2].pixel == 0.6
    assert merged.classes[2].presence == card.thresholds.classes[2].presence
    assert merged.classes[0].min_mask_area == 200
    assert merged.classes[1] == card.thresholds.classes[1]
    assert effective_thresholds(card, ()) == card.thresholds


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            {"scratch": {"pixel": 0.6}},
            "model.thresholds.scratch: model defectd-default has no "
            "class 'scratch'; did you mean 'scratches'? its classes are 1 pits, 2 crazing, "
            "3 scratches, 4 patches",
        ),
        ({7: {"pixel": 0.6}}, "model.thresholds.7: model defectd-default has no class 7;"),
        (
            {3: {"pixel": 0.6}, "scratches": {"presence": 0.1}},
            "model.thresholds.scratches: class 3 (scratches) is already set by model.thresholds.3",
        ),
    ],
)
def test_overrides_naming_classes_the_model_lacks(
    card: Any, table: dict[Any, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        effective_thresholds(card, overrides(table), "f.yaml")
    (problem,) = caught.value.problems
    assert problem.startswith(f"f.yaml: {expected}")


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


def test_check_model_with_the_bundled_model() -> None:
    loaded = parse(config(model={"thresholds": {"scratches": {"pixel": 0.6}}}))
    checked = check_model(loaded)
    assert checked.card.name == "defectd-default"
    assert checked.thresholds.classes[2].pixel == 0.6


def test_check_model_problems(tmp_path: Path) -> None:
    small = parse(
        config(cameras=[camera(width=800)], model={"thresholds": {"scratch": {"pixel": 0.6}}})
    )
    with pytest.raises(ConfigError) as caught:
        check_model(small, verify=False)
    assert [p.split(": ")[1] for p in caught.value.problems] == [
        "cameras",
        "model.thresholds.scratch",
    ]
    assert "takes 1600×256 frames, the cameras are configured for 800×256" in str(caught.value)
    missing = parse(config(model={"dir": str(tmp_path)}))
    with pytest.raises(ConfigError, match=r"test.yaml: model.dir: .* is not a model directory"):
        check_model(missing)


# --- the file ----------------------------------------------------------------------------------


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "defectd.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def load_problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    return caught.value.problems


def test_load_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, yaml.safe_dump(config()))
    loaded = load_config(path, environ={})
    assert loaded == parse(config()) and loaded.source == str(path)


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "line:\n  name: line1\ncameras: [\n  {id: a}\nslots:\n")
    (problem,) = load_problems(path)
    assert re.fullmatch(
        rf"{re.escape(str(path))}: line \d+, column \d+: YAML syntax error: .*", problem
    )
    assert "flow sequence on line 3" in problem
    path = write(tmp_path, "line:\n  name: line1\n   bad: 1\n")
    assert load_problems(path) == [
        f"{path}: line 3, column 7: YAML syntax error: mapping values are not allowed here"
    ]


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "line: {name: a}\ncameras: []\nline: {name: b}\n")
    assert load_problems(path) == [
        f"{path}: line 3, column 1: key 'line' appears twice (first on line 1)"
    ]


def test_problems_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "line: {name: a}\ncameras: [{id: c, endpoint: 'tcp://h:1'}]\n")
    assert load_problems(path) == [
        f"{path}: cameras[0].width: required key is missing",
        f"{path}: cameras[0].height: required key is missing",
    ]


def test_missing_file_names_the_default(tmp_path: Path) -> None:
    (problem,) = load_problems(tmp_path / "nope.yaml")
    assert problem.startswith(f"{tmp_path / 'nope.yaml'}: no such config file")
    assert str(DEFAULT_CONFIG_PATH) in problem and "docs/configuration.md" in problem


def test_unreadable_files(tmp_path: Path) -> None:
    assert "cannot read the config" in load_problems(tmp_path)[0]
    assert "not UTF-8 text" in load_problems(write(tmp_path, b"line: \xff\n"))[0]
    assert "the config is empty" in load_problems(write(tmp_path, "# nothing yet\n"))[0]


# --- the documentation -------------------------------------------------------------------------


def documented() -> dict[str, dict[str, str]]:
    """Section → key → default cell, from the tables under each ``## `section` `` heading."""
    found: dict[str, dict[str, str]] = {}
    section = None
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"## `(\w+)`", line)
        if heading:
            section = heading[1]
            found[section] = {}
        elif line.startswith("## "):
            section = None
        row = re.match(r"\| `(\w+)` \| ([^|]+) \|", line)
        if section and row:
            found[section][row[1]] = row[2].strip()
    return found


def test_the_documented_messages_are_real() -> None:
    cameras = [
        camera(id="a"),
        camera(id="b", endpoint="tcp://10.0.0.22:5555"),
        camera(id="c", endpoint="tcp://10.0.0.23"),
    ]
    mapping = config(cameras=cameras, batching={"max_wait": 5}, engine={"max_batch": "16"})
    with pytest.raises(ConfigError) as caught:
        parse_config(mapping, str(DEFAULT_CONFIG_PATH), environ={})
    shown = re.search(r"```text\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert shown is not None
    assert caught.value.problems == shown[1].splitlines()


def test_every_key_is_documented_with_its_default() -> None:
    docs = documented()
    assert list(docs) == list(SECTIONS)
    effective = parse(config()).to_mapping()
    environment = {("model", "dir")}  # the others are null without environment variables
    for name, cls in SECTIONS.items():
        keys = [f.name for f in fields(cls)]
        if name == "model":
            keys += [f.name for f in fields(ThresholdOverride) if f.name != "target"]
        assert sorted(docs[name]) == sorted(keys), name
        defaults = effective["cameras"][0] if name == "cameras" else effective[name]
        for key, cell in docs[name].items():
            if key not in defaults:  # the threshold override keys: the card's
                assert cell == "the card's", (name, key)
            elif cell == "required":
                assert key in ("name", "id", "endpoint", "width", "height"), (name, key)
            elif (name, key) in environment:
                assert not cell.startswith("`"), (name, key)
            else:
                literal = re.match(r"`([^`]*)`", cell)
                assert literal, f"{name}.{key}: default {cell!r} is not a `literal`"
                assert yaml.safe_load(literal[1]) == defaults[key], (name, key, cell)
