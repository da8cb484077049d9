"""Prometheus rules and the Grafana dashboard, checked with Debian's real ``promtool``.

``promtool`` comes from the ``prometheus`` Debian package (``apt-get install -y prometheus``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from aibridge.server.metrics import ServerMetrics

REPO = Path(__file__).resolve().parents[1]
PROM = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "aibridge.json"
PROMTOOL = shutil.which("promtool")

# Series the alerts need that the server does not export yet (none left).
REQUESTED_FROM_SERVER: set[str] = set()
# Series Prometheus itself adds to every scrape target.
PROMETHEUS_SERIES = {"up"}
REQUIRED_ALERTS = {
    "AibridgeServerDown",
    "AibridgeNoEAHeartbeat",
    "AibridgeHighErrorRate",
    "AibridgePredictLatencyP99High",
    "AibridgeModelReloadFailed",
    "AibridgeServedVersionNotChampion",
    "AibridgeUnprotectedPosition",
    "AibridgeOrphanPosition",
    "AibridgeMissingClose",
    "AibridgeClockMismatch",
    "AibridgeRetrainFailed",
    "AibridgeRetrainStale",
    "AibridgeRetrainNoNewData",
    "AibridgeFeatureDrift",
}

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian: apt-get install -y prometheus)",
)


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict]:
    doc = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def exported_series() -> set[str]:
    """Every series name the real server metrics render, with each labelled child touched."""
    m = ServerMetrics()
    m.requests.labels("predict", "ok").inc()
    m.latency.labels("predict").observe(0.001)
    m.decisions.labels("aibridge-EURUSD-H1", "BUY").inc()
    m.model_info.labels("EURUSD", "H1", "aibridge-EURUSD-H1", "1", "champion", "r").set(1)
    m.set_registry_version("aibridge-EURUSD-H1", "champion", "2")
    m.reloads.labels("aibridge-EURUSD-H1").inc()
    m.reload_failures.labels("aibridge-EURUSD-H1").inc()
    m.reload_failing.labels("aibridge-EURUSD-H1").set(0)
    m.clock_mismatches.labels("predict", "EURUSD", "H1").inc()
    m.set_ledger(12345, 20261125, "EURUSD", {"orphans": 0, "unprotected": 1, "missing_closes": 0})
    m.feature_psi.labels("EURUSD", "H1", "atr").set(0.1)
    m.drift_psi_max.labels("EURUSD", "H1").set(0.1)
    m.drift_psi_median.labels("EURUSD", "H1").set(0.05)
    m.drift_rows.labels("EURUSD", "H1").set(500)
    m.drift_enabled.labels("EURUSD", "H1").set(1)
    m.shadow_decisions.labels("EURUSD", "H1", "4", "agree").inc()
    m.shadow_lag.set(0)
    m.shadow_dropped.inc(0)
    names = set()
    for line in m.render().decode().splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def textfile_series(tmp: Path) -> set[str]:
    """Series ``aibridge retrain`` writes for node_exporter's textfile collector."""
    from aibridge.loop.retrain import Export, RetrainResult, write_textfile

    new = Export(Path("in/EURUSD60.csv"), Path("data/EURUSD60.csv"), "EURUSD H1", True, "0")
    result = RetrainResult(
        status="promoted", started_at=1.0, seconds=2.0, version="3", exports=[new]
    )
    text = write_textfile(result, tmp, Path("/p")).read_text()
    return {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, labels, keywords removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    tokens = re.findall(r"(?<![\w$.])[a-zA-Z_:][\w:]*\b(?!\s*\()", text)
    return {t for t in tokens if t.lower() not in _KEYWORDS}


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in doc["panels"] for t in panel.get("targets", [])]


def test_metric_name_extraction() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (instance, le) (rate(aibridge_request_seconds_bucket"
        '{type="predict", le=~"x_y"}[5m]))) > 0.003 and on (instance) up{job="a"} == 0 '
        "unless time() - foo_bar offset 5m > 1"
    )
    assert metric_names(expr) == {"aibridge_request_seconds_bucket", "up", "foo_bar"}


def test_required_alerts_present() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert names >= REQUIRED_ALERTS, REQUIRED_ALERTS - names


def test_alerts_use_real_metric_names(tmp_path: Path) -> None:
    known = exported_series() | PROMETHEUS_SERIES | REQUESTED_FROM_SERVER
    known |= textfile_series(tmp_path)
    for rule in alert_rules():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule['alert']}: {sorted(unknown)} not exported by the server"


def test_dashboard_uses_real_metric_names(tmp_path: Path) -> None:
    known = exported_series() | PROMETHEUS_SERIES | textfile_series(tmp_path)
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= known, f"{sorted(names - known)} in {expr!r} not exported by the server"
        used |= names
    # The dashboard shows every family the server exports (not necessarily every suffix).
    families = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in exported_series()}
    shown = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in used}
    assert families <= shown, f"not on the dashboard: {sorted(families - shown)}"


def test_every_alert_has_firing_and_silent_cases() -> None:
    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"]
    firing: set[str] = set()
    silent: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names <= firing, f"no firing case for {sorted(names - firing)}"
    assert names <= silent, f"no silent case for {sorted(names - silent)}"


@needs_promtool
def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


@needs_promtool
def test_promtool_check_config() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_unit_tests_catch_a_changed_threshold(tmp_path: Path) -> None:
    """The unit tests pin the thresholds: a p99 budget of 10 ms must fail them."""
    rules = (PROM / "alerts.yml").read_text()
    assert rules.count("> 0.003") == 1
    (tmp_path / "alerts.yml").write_text(rules.replace("> 0.003", "> 0.010"))
    shutil.copy(PROM / "alerts_test.yml", tmp_path / "alerts_test.yml")
    result = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "AibridgePredictLatencyP99High" in result.stdout + result.stderr


@needs_promtool
def test_unit_tests_catch_a_slower_unprotected_page(tmp_path: Path) -> None:
    """An unprotected position pages after 1 minute; waiting 5 must fail the unit tests."""
    rules = (PROM / "alerts.yml").read_text()
    rule = "(aibridge_ledger_unprotected_positions) > 0\n        for: 1m"
    assert rules.count(rule) == 1
    (tmp_path / "alerts.yml").write_text(rules.replace(rule, rule.replace("1m", "5m")))
    shutil.copy(PROM / "alerts_test.yml", tmp_path / "alerts_test.yml")
    result = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "AibridgeUnprotectedPosition" in result.stdout + result.stderr


@needs_promtool
def test_dashboard_exprs_are_valid_promql(tmp_path: Path) -> None:
    """Each panel query (Grafana variables filled in) passes promtool's PromQL parser."""
    rules = []
    for i, expr in enumerate(dashboard_exprs()):
        concrete = expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
        assert "$" not in concrete, f"unhandled Grafana variable in {expr!r}"
        rules.append({"record": f"aibridge:dashboard_query_{i}", "expr": concrete})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
