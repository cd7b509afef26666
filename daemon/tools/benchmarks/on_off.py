"""Two daemons, one with a feature off and one with it on, pushed in turn: what it costs.

Both run the same config but for the `sections` the "on" one adds (the defect store, the
plant outputs). Raw frames with coil ids are pushed into each at its maximum rate
(``block`` back-pressure) in interleaved rounds, so both see the same machine; frames/s is the
slope of the processed count in each daemon's heartbeats (`pipeline.run_phase`). The ratio of
the medians, on over off, is the feature's cost.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defectd.daemon.tools.benchmarks.pipeline import Heartbeats, push_config, run_phase
from defectd.daemon.tools.loopback import DaemonProcess, Listener, LoopbackPorts

COIL_FRAMES = 200  # the simulator's frames per coil during the rounds


@dataclass(frozen=True)
class OnOff:
    """The daemon's frames/s with the feature off and on, interleaved rounds."""

    backend: str
    rounds: int
    seconds: float  # per phase
    off_fps: tuple[float, ...]
    on_fps: tuple[float, ...]
    on_accounted: bool  # every frame sent to the "on" daemon was processed

    @property
    def ratio(self) -> float:
        off = statistics.median(self.off_fps)
        return statistics.median(self.on_fps) / off if off else 0.0


def compare_on_off(
    *,
    backend: str,
    seconds: float,
    rounds: int,
    batch: int,
    workdir: Path,
    threads: int | None,
    sections: Callable[[Path], Mapping[str, Mapping[str, Any]]],
    while_running: Callable[[DaemonProcess], None] | None = None,
) -> OnOff:
    """Run the rounds; `sections(directory)` gives the "on" daemon's extra config sections;
    `while_running(on_daemon)` is called once the rounds are done, before the daemons stop."""
    engine: dict[str, Any] = {"backend": backend, "max_batch": batch}
    if threads is not None and backend != "null":
        engine["threads"] = threads
    runs: dict[bool, list[float]] = {False: [], True: []}
    accounted = True
    with contextlib.ExitStack() as stack:
        phases = []
        for enabled in (False, True):
            ports = LoopbackPorts()
            config = push_config(ports, ("cam0",), engine, batch, 20.0, None)
            config["cameras"][0].update(across_mm_per_px=1.0, along_from="position_m")
            directory = workdir / ("on" if enabled else "off")
            directory.mkdir(parents=True, exist_ok=True)
            if enabled:
                config.update({name: dict(values) for name, values in sections(directory).items()})
            daemon = stack.enter_context(DaemonProcess(config, directory, ports))
            phases.append((enabled, ports, daemon))
        for _, _, daemon in phases:
            daemon.wait_ready(300.0)
        listeners = []
        for enabled, ports, _ in phases:
            beats = Heartbeats()
            listener = stack.enter_context(
                Listener(ports.publish_endpoint, topics=(), on_status=beats.add)
            )
            listener.wait_subscribed(10.0)
            listeners.append((enabled, ports, listener, beats, [0]))
        for _ in range(rounds):
            for enabled, ports, listener, beats, sent in listeners:
                run = run_phase(listener, beats, ports, ("cam0",), 0.0, seconds, backend, batch,
                                already=sent[0], coil_frames=COIL_FRAMES)  # fmt: skip
                sent[0] += run.sent
                runs[enabled].append(run.frames_per_s)
                if enabled:
                    accounted = accounted and run.accounted
        if while_running is not None:
            while_running(phases[1][2])
    return OnOff(backend, rounds, seconds, tuple(runs[False]), tuple(runs[True]), accounted)


def format_on_off(result: OnOff, feature: str, target: float, extra: str = "") -> list[str]:
    """Markdown lines: the rounds, the medians and the ratio against `target`."""
    verdict = "met" if result.ratio >= target else "**missed**"
    return [
        f"Daemon with the {result.backend} engine, {result.rounds} interleaved rounds of "
        f"{result.seconds:g} s per phase, max rate:",
        "",
        f"| {feature} | frames/s per round | median |",
        "|---|---|---:|",
        f"| off | {', '.join(f'{v:,.1f}' for v in result.off_fps)} | "
        f"{statistics.median(result.off_fps):,.1f} |",
        f"| on | {', '.join(f'{v:,.1f}' for v in result.on_fps)} | "
        f"{statistics.median(result.on_fps):,.1f} |",
        "",
        f"On / off: **{result.ratio:.4f}** (target ≥ {target}: {verdict}); with it on every "
        f"frame was {'accounted' if result.on_accounted else '**not all accounted**'}{extra}.",
    ]
