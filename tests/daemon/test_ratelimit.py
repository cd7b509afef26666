"""Rate-limited warnings, with a fake clock."""

from __future__ import annotations

import logging

import pytest

from defectd.daemon.ratelimit import RateLimitedLog

LOGGER = "tests.daemon.ratelimit"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(clock: Clock) -> RateLimitedLog:
    return RateLimitedLog(logging.getLogger(LOGGER), period_s=10, clock=clock)


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


def test_first_then_once_per_period_with_count(
    log: RateLimitedLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    assert log.warning("cam1:size_mismatch", "camera %s: %s", "cam1", "bad size")
    for _ in range(5):
        clock.now += 1
        assert not log.warning("cam1:size_mismatch", "camera %s: %s", "cam1", "bad size")
    assert log.held("cam1:size_mismatch") == 5
    clock.now += 5  # 10 s after the first line
    assert log.warning("cam1:size_mismatch", "camera %s: %s", "cam1", "bad size")
    assert messages(caplog) == [
        "camera cam1: bad size",
        "camera cam1: bad size (5 more since last)",
    ]
    assert log.held("cam1:size_mismatch") == 0


def test_quiet_key_logs_plainly_again(
    log: RateLimitedLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    log.warning("k", "one")
    clock.now += 60
    log.warning("k", "two")
    assert messages(caplog) == ["one", "two"]


def test_keys_are_independent(log: RateLimitedLog, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    assert log.warning("a", "a")
    assert log.warning("b", "b")
    assert not log.warning("a", "a")
    assert messages(caplog) == ["a", "b"]


def test_percent_in_message_without_args(
    log: RateLimitedLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    log.warning("k", "queue 100% full")
    log.warning("k", "queue 100% full")
    clock.now += 10
    log.warning("k", "queue 100% full")
    assert messages(caplog) == ["queue 100% full", "queue 100% full (1 more since last)"]


def test_levels_and_caller(log: RateLimitedLog, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    log.error("e", "broken")
    log.log(logging.INFO, "i", "note %d", 3)
    records = [r for r in caplog.records if r.name == LOGGER]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.ERROR, "broken"),
        (logging.INFO, "note 3"),
    ]
    assert all(r.filename == "test_ratelimit.py" for r in records)  # the caller, not ratelimit


def test_key_memory_is_bounded(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    log = RateLimitedLog(logging.getLogger(LOGGER), period_s=10, clock=clock, max_keys=2)
    log.warning("a", "a")
    log.warning("b", "b")
    log.warning("c", "c")  # forgets "a", the key logged longest ago
    assert not log.warning("b", "b")
    assert log.warning("a", "a")  # early, but bounded memory matters more
    assert messages(caplog) == ["a", "b", "c", "a"]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="period_s"):
        RateLimitedLog(logging.getLogger(LOGGER), period_s=0)
    with pytest.raises(ValueError, match="max_keys"):
        RateLimitedLog(logging.getLogger(LOGGER), max_keys=0)
