"""Alertmanager routes for every alert rule, checked with Debian's real ``amtool``.

``amtool`` comes from the ``prometheus-alertmanager`` Debian package
(``apt-get install -y prometheus-alertmanager``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
AMTOOL = shutil.which("amtool")

needs_amtool = pytest.mark.skipif(
    AMTOOL is None,
    reason="amtool not installed (Debian: apt-get install -y prometheus-alertmanager)",
)

# The documented policy (header of alertmanager.yml): model-lifecycle alerts also go to the
# ML webhook; critical pages on-call, warnings go to the ops mailbox.
LIFECYCLE = re.compile(
    r"AibridgeRetrain.*|AibridgeFeatureDrift|AibridgeServedVersionNotChampion"
    r"|AibridgeModelReloadFailed|AibridgeShadow.*"
)


def expected_receivers(alertname: str, severity: str) -> list[str]:
    out = ["ml-webhook"] if LIFECYCLE.fullmatch(alertname) else []
    return [*out, "oncall" if severity == "critical" else "ops-email"]


def alert_rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def amtool(*args: str) -> subprocess.CompletedProcess:
    assert AMTOOL is not None
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, timeout=60)


def test_every_rule_has_a_severity_the_routes_know() -> None:
    for rule in alert_rules():
        assert rule.get("labels", {}).get("severity") in ("critical", "warning"), rule["alert"]


def test_example_receivers_cover_email_webhook_telegram() -> None:
    doc = yaml.safe_load(CONFIG.read_text())
    kinds = {key for r in doc["receivers"] for key in r if key.endswith("_configs")}
    assert kinds == {"email_configs", "webhook_configs", "telegram_configs"}


@needs_amtool
def test_amtool_check_config() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "3 receivers" in result.stdout


@needs_amtool
def test_every_alert_rule_is_routed_as_documented() -> None:
    rules = alert_rules()
    assert len(rules) >= 10
    for rule in rules:
        severity = rule["labels"]["severity"]
        result = amtool(
            "config", "routes", "test", f"--config.file={CONFIG}",
            f"alertname={rule['alert']}", f"severity={severity}", "instance=mt4-vps:9108",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        got = result.stdout.strip().split(",")
        assert got == expected_receivers(rule["alert"], severity), rule["alert"]


@needs_amtool
def test_amtool_rejects_a_route_to_a_missing_receiver(tmp_path: Path) -> None:
    """The check is real: a route naming an undefined receiver fails it."""
    broken = CONFIG.read_text().replace("- receiver: oncall", "- receiver: on-call", 1)
    assert broken != CONFIG.read_text()
    path = tmp_path / "alertmanager.yml"
    path.write_text(broken)
    result = amtool("check-config", str(path))
    assert result.returncode != 0
    assert "on-call" in result.stdout + result.stderr
