"""`defectd bench SUITE`: benchmarks that print (and with --json record) their numbers.

One subcommand per suite, each with only the options it uses. They never judge timings: the
figures go to docs/benchmarks.md with the machine, date and command they print.
"""

from __future__ import annotations

import argparse

from defectd.daemon.commands.bench import (
    engine,
    micro,
    outputs,
    peak,
    pipeline,
    soak,
    store,
    swap,
    tiling,
)

# Order of `defectd bench --help`: quick suites first, the long-running ones last.
SUITES: tuple[str, ...] = (
    *micro.SUITES,
    "peak",
    "engine",
    "tiling",
    "store",
    "outputs",
    "swap",
    "pipeline",
    "soak",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `bench` and one subcommand per suite."""
    parser = subparsers.add_parser(
        "bench",
        description="Benchmarks, one suite per subcommand. Medians of many repeats; compare "
        "figures only within one run. `defectd bench SUITE --help` for a suite's options.",
    )
    suites = parser.add_subparsers(dest="suite", metavar="SUITE", required=True)
    micro.register(suites)
    peak.register(suites)
    engine.register(suites)
    tiling.register(suites)
    store.register(suites)
    outputs.register(suites)
    swap.register(suites)
    pipeline.register(suites)
    soak.register(suites)
