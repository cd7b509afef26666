"""Every dashboard query and every rule expression, evaluated by a real Prometheus scraping a
real daemon.

The test starts `defectd run` on a loopback line (null engine, cameras cam0 and cam1 sending
frames, cam2 configured but silent, a shadow run of the bundled model) and Prometheus
(Debian's `prometheus` binary) on a free loopback port, scraping /metrics every second and
loading deploy/prometheus/defectd-rules.yml unchanged. Once the rules have been evaluated it
asks Prometheus' HTTP API:

- each dashboard variable's `label_values` (as `group by (label) (selector)`): non-empty, and
  the values found are what the panel queries are then run with;
- each panel query, with the template variables substituted the way Grafana would: it must
  parse and return at least one series with a finite value (a ratio of defect pixels, NaN
  while none was found, only the series: `NAN_WITHOUT_DEFECTS`);
- each recording rule's expression, and the series the rule wrote: non-empty;
- each alert's expression with every comparison turned into a `bool` comparison (`a > 0.01`
  becomes `a > bool 0.01`): a healthy line makes most alerts' expressions filter everything
  out, which would prove nothing; with `bool` the same expression returns 0 or 1 for every
  series it compares, so it must parse, every series it reads must exist, every join must
  match, and the result must be non-empty;
- the alerts that are firing: only DefectdCameraSilent for cam2, which never sent a frame.

It also runs `promtool check metrics` on the daemon's /metrics.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from defectd.daemon.background import Background
from defectd.daemon.tools.loopback import (
    Camera,
    DaemonProcess,
    LoopbackPorts,
    free_port,
    line_config,
)
from defectd.engines.model_card import default_model_dir

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "defectd-rules.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "defectd.json"
LINE = "line1"
SENDING = ("cam0", "cam1")
SILENT = "cam2"  # configured, never sends: DefectdCameraSilent must fire for it
# What Grafana puts in for its built-in variables (a 1 s scrape interval here).
BUILTINS = {"__rate_interval": "15s", "__interval": "5s", "__range": "1m"}
COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(\s*bool\b)?")


def comparisons_as_bool(expr: str) -> str:
    """`expr` with `bool` after each comparison operator outside label matchers and strings.

    A filtering comparison (`a > 1`) drops the series that fail it; `a > bool 1` keeps every
    series with the value 0 or 1, so an alert expression returns data whether it fires or not.
    """
    out: list[str] = []
    depth, quote, i = 0, "", 0
    while i < len(expr):
        char = expr[i]
        if quote:
            out.append(expr[i : i + 2] if char == "\\" else char)
            i += 2 if char == "\\" else 1
            if char == quote:
                quote = ""
            continue
        if char in "\"'`":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif depth == 0 and (match := COMPARISON.match(expr, i)):
            out.append(match[0] if match[2] else f"{match[1]} bool")
            i = match.end()
            continue
        out.append(char)
        i += 1
    return "".join(out)


def test_comparisons_as_bool() -> None:
    assert comparisons_as_bool("a > 0.01") == "a > bool 0.01"
    assert comparisons_as_bool('time() - x{camera!="(unknown)"} > 10') == (
        'time() - x{camera!="(unknown)"} > bool 10'
    )
    assert comparisons_as_bool("a > on () group_left () b") == "a > bool on () group_left () b"
    assert comparisons_as_bool('up{job=~"d.*"} == 0') == 'up{job=~"d.*"} == bool 0'
    assert comparisons_as_bool("a >= bool 1 and b <= 2") == "a >= bool 1 and b <= bool 2"
    assert comparisons_as_bool('label_replace(a, "x", ">", "", "")') == (
        'label_replace(a, "x", ">", "", "")'
    )


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Grafana's `$name` / `${name}` interpolation (longest names first)."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    assert "$" not in expr, f"a variable is left in {expr!r}"
    return expr


@dataclass
class Prometheus:
    """A Prometheus server on 127.0.0.1:`port` and its HTTP API."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as error:  # a bad query: 400 with the parser's message
            return json.loads(error.read())

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; fails the test with Prometheus' error when it does not parse."""
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", f"{expr}\n{answer.get('error')}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def query_range(self, expr: str, seconds: int = 10) -> list[dict[str, Any]]:
        end = time.time()
        answer = self.get(
            "/api/v1/query_range",
            query=expr,
            start=f"{end - seconds:.3f}",
            end=f"{end:.3f}",
            step="1",
        )
        assert answer["status"] == "success", f"{expr}\n{answer.get('error')}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def until(self, expr: str, timeout_s: float, what: str) -> list[dict[str, Any]]:
        """Poll `expr` until it returns something."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log.read_text()}")
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}: {expr}")
            time.sleep(0.5)


# Panels whose value is undefined (NaN) until a defect is found: the null engine finds none.
NAN_WITHOUT_DEFECTS = {"Shadow model Dice against the live one"}


def finite(result: list[dict[str, Any]]) -> bool:
    """Whether any sample in an instant or range result is a finite number."""
    for series in result:
        samples = series.get("values") or [series["value"]]
        if any(math.isfinite(float(value)) for _, value in samples):
            return True
    return False


@pytest.fixture
def binaries() -> tuple[str, str]:
    found = shutil.which("prometheus"), shutil.which("promtool")
    if None in found:
        pytest.skip(
            "prometheus/promtool not found: install Debian's `prometheus` package "
            "(.ci/run does) to check the dashboard and rules against a real Prometheus"
        )
    return found  # type: ignore[return-value]


def _send_frames(endpoint: str, stop: threading.Event) -> None:
    """cam0 and cam1 at about 20 frames/s each until `stop`."""
    with Camera(endpoint, linger_ms=0) as camera:
        seq = 0
        while not stop.is_set():
            for name in SENDING:
                camera.send(name, seq)
            seq += 1
            stop.wait(0.05)


@pytest.fixture
def line(tmp_path: Path) -> Iterator[DaemonProcess]:
    """The daemon on a loopback line, ready, with two cameras sending."""
    ports = LoopbackPorts()
    config = line_config(
        ports,
        (*SENDING, SILENT),
        push=True,
        engine={"backend": "null", "max_batch": 4},
        line=LINE,
        # A shadow run of the bundled model (on the null engine too), so its series exist.
        sections={
            "slots": {"count": 16},
            "shadow": {"model_dir": str(default_model_dir()), "dir": str(tmp_path / "shadow")},
        },
    )
    workdir = tmp_path / "daemon"
    workdir.mkdir()
    stop = threading.Event()
    with DaemonProcess(config, workdir, ports) as daemon:
        daemon.wait_ready(30)
        sender = Background(lambda: _send_frames(ports.camera_endpoint, stop), "cameras").start()
        try:
            yield daemon
        finally:
            stop.set()
            sender.result(timeout_s=5)
    assert daemon.returncode == 0, daemon.log_tail()


@pytest.fixture
def prometheus(
    binaries: tuple[str, str], line: DaemonProcess, tmp_path: Path
) -> Iterator[Prometheus]:
    """Prometheus scraping `line`'s daemon every second, with the rules loaded."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "defectd",  # as in deploy/prometheus/scrape.yml
                "static_configs": [
                    {"targets": [f"127.0.0.1:{line.ports.http}"], "labels": {"line": LINE}}
                ],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binaries[0],
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(process, port, log)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"prometheus not ready:\n{log.read_text()}") from None
                time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _label_values(definition: str) -> tuple[str, str]:
    match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", definition)
    assert match, definition
    return match[1], match[2]


@pytest.mark.slow
def test_dashboard_and_rules_return_data_from_a_real_prometheus(
    prometheus: Prometheus, line: DaemonProcess, binaries: tuple[str, str]
) -> None:
    started = time.monotonic()
    # /metrics as Prometheus sees it passes promtool's linter
    with urllib.request.urlopen(f"http://127.0.0.1:{line.ports.http}/metrics") as answer:
        exposition = answer.read()
    checked = subprocess.run(
        [binaries[1], "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # Scraped, frames flowing, and every recording rule evaluated (the groups run every 5 s).
    prometheus.until(f'up{{job="defectd", line="{LINE}"}} == 1', 20, "the first scrape")
    prometheus.until(
        "count(camera:defectd_frames_processed:rate1m > 0) == 2", 30, "fps of both cameras"
    )
    for rule in _rules():
        if "record" in rule:
            prometheus.until(rule["record"], 15, f"recorded series {rule['record']}")
    health = prometheus.get("/api/v1/rules")["data"]["groups"]
    for group in health:
        for rule in group["rules"]:
            assert rule["health"] == "ok", rule

    # Dashboard variables: the values Grafana would offer, from Prometheus itself.
    board = json.loads(DASHBOARD.read_text())
    variables = dict(BUILTINS)
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        selector, label = _label_values(variable["definition"])
        result = prometheus.query(
            f"group by ({label}) ({substitute(selector, {**variables, 'line': '.*'})})"
        )
        values = sorted(series["metric"][label] for series in result)
        assert values, f"variable {variable['name']}: no values for {variable['definition']}"
        variables[variable["name"]] = "|".join(values)  # Grafana's "All" of a multi-value
    assert variables["line"] == LINE
    assert set(variables["camera"].split("|")) == {*SENDING, SILENT}

    # Every panel query: parses, returns series, at least one finite value.
    checked_queries = 0
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = substitute(target["expr"], variables)
            query = prometheus.query if target["instant"] else prometheus.query_range
            result = query(expr)
            assert result, f"panel {panel['title']!r}: no data for {expr}"
            if panel["title"] not in NAN_WITHOUT_DEFECTS:
                assert finite(result), f"panel {panel['title']!r}: only NaN for {expr}: {result}"
            checked_queries += 1
    assert checked_queries >= 20

    # Every rule expression.
    for rule in _rules():
        if "record" in rule:
            result = prometheus.query(rule["expr"])
            assert result and finite(result), f"record {rule['record']}: {result}"
        else:
            expr = comparisons_as_bool(rule["expr"])
            result = prometheus.query(expr)
            assert result, f"alert {rule['alert']}: no data for {expr}"

    # A healthy line raises nothing, except the camera that never sent a frame.
    deadline = time.monotonic() + 20
    while True:
        alerts = prometheus.get("/api/v1/alerts")["data"]["alerts"]
        firing = sorted(
            (alert["labels"]["alertname"], alert["labels"].get("camera", ""))
            for alert in alerts
            if alert["state"] == "firing"
        )
        if firing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert firing == [("DefectdCameraSilent", SILENT)], alerts
    assert time.monotonic() - started < 60
