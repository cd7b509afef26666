"""`plan_reload`: what a reload changes and how each change applies; `assign_sockets`."""

from __future__ import annotations

from defectd.daemon.config.changes import LIVE, RESTART, SWAP, assign_sockets, plan_reload
from tests.daemon.config.helpers import camera, config, parse


def test_nothing_changed() -> None:
    old = parse(config())
    plan = plan_reload(old, parse(config()))
    assert plan.changes == () and plan.lines() == ["no change"] and not plan.swap
    assert plan.running == old


def test_thresholds_and_postprocessing_apply_live() -> None:
    old = parse(config())
    new = parse(
        config(
            model={"thresholds": {"scratches": {"pixel": 0.7}}},
            postprocess={"max_regions": 5},
            batching={"max_wait_ms": 5},
        )
    )
    plan = plan_reload(old, new)
    assert {(c.key, c.how) for c in plan.changes} == {
        ("model.thresholds", LIVE),
        ("postprocess.max_regions", LIVE),
        ("batching.max_wait_ms", LIVE),
    }
    assert plan.running == new and not plan.waiting


def test_restart_keys_keep_their_running_value_and_say_why() -> None:
    old = parse(config())
    new = parse(config(slots={"count": 128}, ingest={"rcvhwm": 10}, postprocess={"workers": 2}))
    plan = plan_reload(old, new)
    assert {c.key for c in plan.waiting} == {"slots.count", "ingest.rcvhwm", "postprocess.workers"}
    assert plan.running.slots.count == 64 and plan.running.ingest.rcvhwm == 1000
    assert plan.running.postprocess.workers == 1
    line = next(c for c in plan.changes if c.key == "slots.count").describe()
    assert line == (
        "slots.count: needs a restart (the shared-memory slot pool is sized at start); "
        "the running value is kept"
    )


def test_model_dir_and_engine_are_a_swap(tmp_path: object) -> None:
    old = parse(config())
    new = parse(config(engine={"precision": "fp16"}))
    plan = plan_reload(old, new)
    assert plan.swap and [(c.key, c.how) for c in plan.changes] == [("engine.precision", SWAP)]
    assert plan.changes[0].describe() == "engine.precision: applied by a model swap"


def test_cameras_added_removed_changed_live_where_their_size_has_slots() -> None:
    old = parse(config(cameras=[camera(), camera(id="top-1", endpoint="tcp://10.0.0.22:5555")]))
    new = parse(
        config(
            cameras=[
                camera(left_mm=40.0, across_mm_per_px=0.5),  # geometry changed
                camera(id="top-2", endpoint="tcp://10.0.0.23:5555"),  # added, same size
                camera(id="wide", endpoint="tcp://10.0.0.24:5555", width=2048),  # new size
            ]
        )
    )
    plan = plan_reload(old, new)
    hows = {c.key: (c.how, c.detail) for c in plan.changes}
    assert hows["cameras.top-0"] == (LIVE, "changed")
    assert hows["cameras.top-2"] == (LIVE, "added")
    assert hows["cameras.top-1"] == (LIVE, "removed")
    assert hows["cameras.wide"][0] == RESTART and "2048×256" in hows["cameras.wide"][1]
    assert [c.id for c in plan.running.cameras] == ["top-0", "top-2"]  # wide waits


def test_with_the_store_cameras_wait_for_a_restart() -> None:
    store = {"enabled": True}
    geometry = {"across_mm_per_px": 0.5, "along_mm_per_px": 0.5}
    placed = camera(**geometry)
    old = parse(config(store=store, cameras=[placed]))
    other = camera(id="top-1", endpoint="tcp://10.0.0.22:5555", left_mm=800.0, **geometry)
    new = parse(config(store=store, cameras=[placed, other]))
    plan = plan_reload(old, new)
    assert [(c.key, c.how) for c in plan.changes] == [("cameras.top-1", RESTART)]
    assert [c.id for c in plan.running.cameras] == ["top-0"]


def test_sockets_keep_their_receiver_and_new_ones_go_to_the_least_busy() -> None:
    first = assign_sockets(("a", "b", "c"), 2)
    assert first == {"a": 0, "b": 1, "c": 0}
    again = assign_sockets(("b", "c", "d", "e"), 2, first)  # a left; d and e new
    assert again["b"] == 1 and again["c"] == 0
    assert sorted(again.values()).count(0) == 2 and sorted(again.values()).count(1) == 2
