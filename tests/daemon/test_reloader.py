"""The supervisor's side of a reload, on real ZeroMQ sockets: `defectd reload`'s request on
the control socket, the `Reconfigure` the stages get, and the answer once they applied it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from prometheus_client import CollectorRegistry

from defectd.daemon.config import load_config
from defectd.daemon.control import (
    Reconfigure,
    ReloadReply,
    SwapOutcome,
    control_endpoint,
    request_reload,
)
from defectd.daemon.metrics import create_metrics
from defectd.daemon.reloader import Reloader
from defectd.daemon.tools.loopback import write_config
from defectd.daemon.tools.model_variants import renamed_copy
from defectd.engines.model_card import default_model_dir


def mapping(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    camera = {"id": "cam0", "endpoint": "tcp://127.0.0.1:5555", "width": 1600, "height": 256}
    return {
        "line": {"name": "line1"},
        "cameras": [camera],
        "control": {"socket": str(tmp_path / "control.sock")},
        **sections,
    }


class Harness:
    def __init__(self, tmp_path: Path, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        self.path = write_config(tmp_path / "defectd.yaml", mapping(tmp_path))
        config = load_config(self.path, {})
        publish = context.socket(zmq.PUB)
        publish.bind(f"ipc://{tmp_path}/control")
        self.inbox = context.socket(zmq.SUB)
        self.inbox.setsockopt(zmq.SUBSCRIBE, b"")
        self.inbox.connect(f"ipc://{tmp_path}/control")
        router = context.socket(zmq.ROUTER)
        self.endpoint = control_endpoint(config)
        router.bind(self.endpoint)
        self.registry = CollectorRegistry()
        metrics = create_metrics(["cam0"], registry=self.registry)
        self.reloader = Reloader(config, self.path, metrics, publish, router, environ={})
        time.sleep(0.2)  # the SUB's subscription reaches the PUB

    def ask(self, stages: list[str], answer: Any = None) -> tuple[ReloadReply, list[Reconfigure]]:
        """`defectd reload` from a thread; the supervisor's turns until it is answered, with
        `answer(message)` standing in for the stages' reports."""
        replies: list[ReloadReply] = []
        thread = threading.Thread(target=lambda: replies.append(request_reload(self.endpoint, 10)))
        thread.start()
        got: list[Reconfigure] = []
        deadline = time.monotonic() + 10
        while not replies and time.monotonic() < deadline:
            self.reloader.turn(stages)
            while self.inbox.poll(0):
                message = self.inbox.recv_pyobj()
                if not got or message.generation != got[-1].generation:
                    got.append(message)
                    if answer is not None:
                        answer(message)
            time.sleep(0.01)
        thread.join(timeout=5)
        assert replies, "no answer"
        return replies[0], got

    def count(self, outcome: str) -> float:
        value = self.registry.get_sample_value("defectd_reloads_total", {"outcome": outcome})
        return value or 0.0


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield Harness(tmp_path, context)
    context.destroy(linger=0)


def test_unchanged_file(harness: Harness) -> None:
    reply, sent = harness.ask(["receiver-0"])
    assert reply.ok and reply.lines == ("no change",) and reply.generation == 0 and not sent
    assert harness.count("unchanged") == 1


def test_answer_waits_until_every_stage_applied_it(harness: Harness, tmp_path: Path) -> None:
    write_config(harness.path, mapping(tmp_path, postprocess={"max_regions": 3}))
    stages = ["receiver-0", "postprocess-0"]

    def applied(message: Reconfigure) -> None:
        for stage in stages:
            harness.reloader.on_report(stage, message.generation, None)

    reply, sent = harness.ask(stages, applied)
    assert reply.ok and reply.generation == 1
    assert reply.lines == ("postprocess.max_regions: applied live",)
    assert [m.generation for m in sent] == [1] and sent[0].config.postprocess.max_regions == 3
    assert sent[0].assignment == (("tcp://127.0.0.1:5555", 0),)
    assert harness.count("applied") == 1


def test_a_stage_that_never_applies_it_is_named(harness: Harness, tmp_path: Path) -> None:
    import defectd.daemon.reloader as reloader_module

    write_config(harness.path, mapping(tmp_path, postprocess={"max_regions": 3}))
    saved = reloader_module.REPLY_WITHIN_S
    reloader_module.REPLY_WITHIN_S = 0.5
    try:
        reply, _ = harness.ask(["receiver-0"])
    finally:
        reloader_module.REPLY_WITHIN_S = saved
    assert not reply.ok and "not confirmed within 0.5 s: receiver-0" in reply.lines[-1]


def test_an_invalid_file_is_refused_and_nothing_sent(harness: Harness, tmp_path: Path) -> None:
    write_config(harness.path, mapping(tmp_path, slots={"count": "64"}))
    reply, sent = harness.ask(["receiver-0"])
    assert not reply.ok and not sent and reply.generation == 0
    assert reply.lines == (
        f"{harness.path}: slots.count: expected a whole number, got text '64' (write numbers "
        "without quotes)",
    )
    assert harness.count("refused") == 1


def test_a_swap_is_answered_by_its_outcome(harness: Harness, tmp_path: Path) -> None:
    other = renamed_copy(default_model_dir(), tmp_path / "b", "9.9.9")
    write_config(harness.path, mapping(tmp_path, model={"dir": str(other)}))

    def swapped(message: Reconfigure) -> None:
        # Stages restarted meanwhile still open the serving model, until the swap is done.
        assert harness.reloader.config.model.dir == default_model_dir()
        assert message.config.model.dir == other
        outcome = SwapOutcome(message.generation, True, "defectd-default 9.9.9", "ok", 1.5)
        harness.reloader.on_report("inference", message.generation, outcome)

    reply, _ = harness.ask(["inference"], swapped)
    assert reply.ok and reply.model == "defectd-default 9.9.9"
    assert reply.lines[-1] == "model swap: defectd-default 9.9.9 serves after 1.5 s"
    assert harness.reloader.config.model.dir == other


def test_a_failed_swap_keeps_the_serving_model(harness: Harness, tmp_path: Path) -> None:
    other = renamed_copy(default_model_dir(), tmp_path / "b", "9.9.9")
    write_config(harness.path, mapping(tmp_path, model={"dir": str(other)}))

    def failed(message: Reconfigure) -> None:
        outcome = SwapOutcome(message.generation, False, "defectd-default 1.1.0", "golden: x", 2)
        harness.reloader.on_report("inference", message.generation, outcome)

    reply, _ = harness.ask(["inference"], failed)
    assert not reply.ok
    assert reply.lines[-1] == "model swap failed, defectd-default 1.1.0 keeps serving: golden: x"
    assert harness.reloader.config.model.dir == default_model_dir()
