"""deploy/prometheus: the rules pass `promtool check rules` and their unit tests, and the scrape
config is a valid Prometheus configuration."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "defectd-rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "defectd-rules.test.yml"
SCRAPE = PROMETHEUS_DIR / "scrape.yml"
ALERTS = {
    "DefectdTargetDown",
    "DefectdNotReady",
    "DefectdCameraSilent",
    "DefectdFramesDropped",
    "DefectdLatencyOverBudget",
    "DefectdWorkerRestarted",
    "DefectdWorkerCrashLooping",
    "DefectdModelSwapFailed",
    "DefectdReloadRefused",
    "DefectdDefectRateSpike",
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not found: install Debian's `prometheus` package (.ci/run does)")
    return path


def _run(*args: str, cwd: Path = PROMETHEUS_DIR) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    output = _run(promtool(), "check", "rules", str(RULES))
    assert f"SUCCESS: {len(_rules())} rules found" in output


def test_promtool_rule_unit_tests_pass() -> None:
    assert "SUCCESS" in _run(promtool(), "test", "rules", str(RULE_TESTS))


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    assert {rule["alert"] for rule in _rules() if "alert" in rule} == ALERTS
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == ALERTS, ALERTS - firing
    assert quiet == ALERTS, ALERTS - quiet


def test_every_alert_has_a_severity_and_a_summary() -> None:
    for rule in _rules():
        if "alert" in rule:
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule
            assert {"summary", "description"} <= set(rule["annotations"]), rule


def test_scrape_config_is_valid(tmp_path: Path) -> None:
    config = yaml.safe_load(SCRAPE.read_text())
    # the installed path of the rules does not exist here: point it at the checked-in file
    config["rule_files"] = [str(RULES)]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    output = _run(promtool(), "check", "config", str(tmp_path / "prometheus.yml"), cwd=tmp_path)
    assert "SUCCESS" in output
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "defectd"  # DefectdTargetDown matches up{job="defectd"}
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9108"]
    assert job["scrape_interval"] == "5s"
