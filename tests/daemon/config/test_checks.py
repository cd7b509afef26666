"""Checks across keys: unique ids, one mode per endpoint, addresses bound twice, one frame
size, limits that depend on other keys."""

from __future__ import annotations

from typing import Any

import pytest

from defectd.daemon.config.schema import MIN_GROUP_SLOTS
from defectd.daemon.slots import SlotGroup
from tests.daemon.config.helpers import camera, config, only_problem, parse, problems


def test_duplicate_camera_ids() -> None:
    cameras = [camera(), camera(endpoint="tcp://10.0.0.22:5555")]
    assert only_problem(config(cameras=cameras)) == (
        "test.yaml: cameras[1].id: 'top-0' is also cameras[0]'s id: ids must be unique"
    )


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


def test_cameras_of_several_frame_sizes_share_the_slots_by_size() -> None:
    cameras = [camera(), camera(id="b", height=512), camera(id="c"), camera(id="d", width=64)]
    parsed = parse(config(cameras=cameras, slots={"count": 40}))
    assert parsed.frame_sizes == ((256, 1600), (512, 1600), (256, 64))
    assert parsed.slot_groups == (
        SlotGroup(20, 256, 1600, ("top-0", "c")),
        SlotGroup(10, 512, 1600, ("b",)),
        SlotGroup(10, 256, 64, ("d",)),
    )
    one = parse(config(cameras=[camera(), camera(id="c")], slots={"count": 40}))
    assert one.slot_groups == (SlotGroup(40, 256, 1600),)  # one size: any camera, as before
    few = parse(
        config(
            cameras=[camera(), *[camera(id=f"c{i}") for i in range(9)], camera(id="w", width=64)],
            slots={"count": 32},
        )
    )
    assert [group.count for group in few.slot_groups] == [29, 3]
    lone = parse(
        config(
            cameras=[camera(), *[camera(id=f"c{i}") for i in range(19)], camera(id="w", width=64)],
            slots={"count": 32},
        )
    )
    assert [group.count for group in lone.slot_groups] == [30, MIN_GROUP_SLOTS]


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


def test_coils_rules_and_the_store_are_checked() -> None:
    rules = [{"grade": "B", "class": "scratches", "count_over": 3}, {"grade": "C", "gap_m_over": 1}]
    found = problems(config(coils={"rules": rules, "silence_s": 0}))
    assert found == [
        "test.yaml: coils.rules: rule grade 'C' is not one of the grades ['A', 'B', 'reject']",
        "test.yaml: coils.silence_s: must be more than 0, got 0",
    ]
    own = [
        {"grade": "hold", "class": "scratches", "count_over": 3},
        {"grade": "hold", "gap_m_over": 5},
    ]
    good = parse(config(coils={"grades": ["ok", "hold"], "rules": own}))
    assert good.coils.rules[0].class_name == "scratches" and good.coils.grades == ("ok", "hold")
    assert only_problem(config(store={"enabled": True})).startswith(
        "test.yaml: store.enabled: cameras[0] (top-0) has no across_mm_per_px"
    )
    placed = [camera(across_mm_per_px=0.5)]
    assert only_problem(config(cameras=placed, store={"enabled": True, "url": "mysql://x"})) == (
        "test.yaml: store.url: 'mysql://x': use sqlite:///PATH/defects.db or "
        "postgresql://USER@HOST/DB"
    )
    assert parse(config(cameras=placed, store={"enabled": True})).store.enabled


def test_outputs_beyond_loopback_need_their_protection() -> None:
    found = problems(
        config(
            web={"enabled": True, "bind": "0.0.0.0:8088"},
            mqtt={"enabled": True, "username": "line1", "ca_file": "/etc/ca.pem"},
            opcua={"enabled": True, "endpoint": "opc.tcp://10.0.0.5:4840/defectd"},
        )
    )
    assert [problem.split(": ")[1] for problem in found] == [
        "web.token_file",
        "mqtt.ca_file",
        "mqtt.password_file",
        "opcua.certificate",
    ]
    assert "reachable from other machines" in found[0] and "bind 127.0.0.1" in found[0]
    fine = parse(
        config(
            web={"enabled": True, "bind": "0.0.0.0:8088", "token_file": "/etc/defectd/web.token"},
            opcua={"enabled": True, "endpoint": "opc.tcp://localhost:4840/x"},
            mqtt={"enabled": True, "host": "broker.plant", "tls": True},
        )
    )
    assert fine.web.enabled and fine.opcua.enabled and fine.mqtt.tls
    (coil,) = problems(config(cameras=[camera(id="coil")], mqtt={"enabled": True}))
    assert "cameras[0].id: 'coil' is the MQTT bridge's topic level" in coil
    (bad,) = problems(config(opcua={"endpoint": "tcp://127.0.0.1:4840"}))
    assert "write opc.tcp://HOST:PORT/PATH" in bad
