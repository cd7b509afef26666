"""`ClockMap`: camera timestamps on the host clock, following drift, ignoring delays."""

from __future__ import annotations

import numpy as np
import pytest

from defectd.daemon.clients.camera.clock import ClockMap


def test_the_minimum_offset_rejects_transfer_delays() -> None:
    clock = ClockMap(window=8)
    true_offset = 1_700_000_000 * 10**9
    delays = [3_000_000, 500_000, 9_000_000, 700_000, 2_000_000]  # ns, never negative
    mapped = [
        clock.capture_ns(device, device + true_offset + delay)
        for device, delay in zip(range(0, 5 * 20_000_000, 20_000_000), delays, strict=True)
    ]
    # Each frame is placed at most its window's smallest delay after its true time.
    assert mapped[-1] - (4 * 20_000_000 + true_offset) == 500_000
    assert clock.offset_ns == true_offset + 500_000
    # A late frame (a long delay) never moves the map.
    clock.capture_ns(100_000_000, 100_000_000 + true_offset + 50_000_000)
    assert clock.offset_ns == true_offset + 500_000


def test_drift_is_followed_within_one_window() -> None:
    rng = np.random.default_rng(5)
    ppm = 50e-6  # the camera's clock runs 50 ppm slow against the host's
    frame_ns = 20_000_000  # 50 fps
    hours = 2
    frames = int(hours * 3600e9 // frame_ns)
    window = 256
    drifting, fixed = ClockMap(window), ClockMap(window=frames + 1)  # fixed: first offset only
    errors, fixed_errors = [], []
    for index in range(frames):
        host_true = index * frame_ns
        device = round(host_true * (1 - ppm))
        host_arrival = host_true + int(rng.exponential(2e6)) + 200_000
        errors.append(drifting.capture_ns(device, host_arrival) - host_true)
        fixed_errors.append(fixed.capture_ns(device, host_arrival) - host_true)
    # 50 ppm over two hours is 360 ms; the windowed map stays within one window's drift
    # (256 frames, 5.1 s: 0.26 ms) plus the smallest delay (0.2 ms) of the truth.
    assert abs(fixed_errors[-1]) > 300e6
    assert max(abs(e) for e in errors[window:]) < 1e6  # once a window is full


def test_reset_forgets_the_old_clock_and_the_window_is_checked() -> None:
    clock = ClockMap(4)
    clock.capture_ns(10, 1_000)
    clock.reset()
    assert clock.offset_ns is None
    assert clock.capture_ns(0, 5_000) == 5_000  # a reopened camera's clock starts at 0
    with pytest.raises(ValueError, match="at least 1 frame"):
        ClockMap(0)
