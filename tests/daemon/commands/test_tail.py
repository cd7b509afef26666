"""`defectd tail` end to end: the test publishes real events on an XPUB socket (which shows
when the tail's subscription has arrived, so nothing is lost to the slow joiner) and checks
what the command prints."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import zmq

from defectd.daemon.cli import main
from defectd.daemon.clients.subscriber import format_event
from defectd.daemon.events import TopicSequencer, decode_message, defect_events, encode
from tests.daemon.events.helpers import CLASSES, MODEL, RUN, Frame, defective_frame, status

Publish = Callable[[zmq.Socket[bytes]], None]


@pytest.fixture
def publisher() -> Iterator[Callable[[Publish], str]]:
    """Start a publisher thread: it waits for the first subscription, then calls `publish`."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    threads: list[threading.Thread] = []

    def start(publish: Publish) -> str:
        socket = context.socket(zmq.XPUB)
        socket.setsockopt(zmq.LINGER, 0)
        port = socket.bind_to_random_port("tcp://127.0.0.1")

        def serve() -> None:
            try:
                if socket.poll(10_000):
                    socket.recv()  # the tail's subscription: it will get what comes next
                    publish(socket)
                    socket.poll(2_000)  # keep the socket open while the tail reads
            finally:
                socket.close(linger=0)

        threads.append(threading.Thread(target=serve, daemon=True))
        threads[-1].start()
        return f"tcp://127.0.0.1:{port}"

    yield start
    for thread in threads:
        thread.join(15)
    context.term()


def events() -> tuple[list[list[bytes]], TopicSequencer]:
    """A status heartbeat and a frame's two defect events, numbered by one sequencer."""
    sequencer = TopicSequencer(RUN)
    pits, scratches = defect_events(Frame(), defective_frame(), CLASSES, line="line1", model=MODEL)
    return [encode(event, sequencer) for event in (status(), pits, scratches)], sequencer


def test_tail_prints_formatted_events(
    publisher: Callable[[Publish], str], capsys: pytest.CaptureFixture[str]
) -> None:
    messages, _ = events()
    endpoint = publisher(lambda socket: [socket.send_multipart(m) for m in messages])
    assert main(["tail", "--connect", endpoint, "--count", "3", "--timeout", "10", "--utc"]) == 0
    out, err = capsys.readouterr()
    expected = [format_event(m[0].decode(), decode_message(m), tz=dt.UTC) for m in messages]
    assert out.splitlines() == expected
    assert "defect line1/cam0 #1234 class 1 pits: 2 regions" in out
    assert err.strip() == "tail: 3 message(s), 0 missed"


def test_tail_reports_gaps(
    publisher: Callable[[Publish], str], capsys: pytest.CaptureFixture[str]
) -> None:
    sequencer = TopicSequencer(RUN)

    def publish(socket: zmq.Socket[bytes]) -> None:
        for number in range(5):
            message = encode(status(), sequencer)
            if number not in (2, 3):  # topic_seq 2 and 3 never reach the tail
                socket.send_multipart(message)

    endpoint = publisher(publish)
    assert main(["tail", "--connect", endpoint, "--count", "3", "--timeout", "10"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 4 and lines[2] == "-- status: 2 messages missed (topic_seq 2–3)"
    assert all(" status " in line for line in lines[:2] + lines[3:])
    assert err.strip() == "tail: 3 message(s), 2 missed"


def test_tail_json_lines_and_topic_filter(
    publisher: Callable[[Publish], str], capsys: pytest.CaptureFixture[str]
) -> None:
    messages, _ = events()
    unreadable = [b"defect.line1.cam0.pits", b"not json"]

    def publish(socket: zmq.Socket[bytes]) -> None:
        socket.send_multipart(unreadable)
        for message in messages:  # the XPUB filters: only the defects reach the tail
            socket.send_multipart(message)

    endpoint = publisher(publish)
    argv = ["tail", "--connect", endpoint, "--topic", "defect.line1.", "--json", "-"]
    assert main([*argv, "--count", "2", "--timeout", "10"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [messages[1][1].decode(), messages[2][1].decode()]
    assert [json.loads(line)["class_name"] for line in out.splitlines()] == ["pits", "scratches"]
    assert "tail: skipped a message: unreadable message on b'defect.line1.cam0.pits'" in err
    assert err.splitlines()[-1] == "tail: 2 message(s), 0 missed, 1 unreadable"


def test_tail_timeout(
    publisher: Callable[[Publish], str], capsys: pytest.CaptureFixture[str]
) -> None:
    messages, _ = events()
    endpoint = publisher(lambda socket: socket.send_multipart(messages[0]))
    assert main(["tail", "--connect", endpoint, "--count", "5", "--timeout", "1"]) == 1
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 1
    assert err.strip() == "tail: 1 message(s), 0 missed; timed out before 5 messages"


def test_tail_timeout_without_count_is_success(capsys: pytest.CaptureFixture[str]) -> None:
    # Nobody publishes: the tail listens for its time and ends cleanly.
    assert main(["tail", "--connect", "tcp://127.0.0.1:1", "--timeout", "0.3"]) == 0
    assert capsys.readouterr().err.strip() == "tail: 0 message(s), 0 missed"


def test_tail_publisher_restart(
    publisher: Callable[[Publish], str], capsys: pytest.CaptureFixture[str]
) -> None:
    def publish(socket: zmq.Socket[bytes]) -> None:
        first = TopicSequencer(RUN)
        socket.send_multipart(encode(status(), first))
        restarted = TopicSequencer("fedcba9876543210")
        restarted.next("status")  # message 0 of the new run is lost
        socket.send_multipart(encode(replace(status(), ready=False), restarted))

    endpoint = publisher(publish)
    assert main(["tail", "--connect", endpoint, "--count", "2", "--timeout", "10"]) == 0
    out, err = capsys.readouterr()
    assert "-- status: publisher restarted, 1 message of its new run missed" in out
    assert "1 publisher restart(s)" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--count", "0"], "count must be at least 1"),
        (["--timeout", "0"], "timeout must be positive"),
        (["--connect", "nowhere"], "cannot connect to 'nowhere'"),
    ],
)
def test_tail_errors(extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tail", *extra]) == 2
    assert message in capsys.readouterr().err
