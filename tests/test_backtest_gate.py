"""Champion/challenger rule, and alias moves recorded in a real MLflow registry (SQLite)."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from aibridge.backtest.gate import decide, load_decision
from aibridge.backtest.settings import GateSettings
from aibridge.promotion import apply_gate, promote, rollback

RULE = GateSettings(metric="sharpe", min_improvement=0.1, max_drawdown_pct=15.0, min_trades=30)


def metrics(sharpe: float, dd: float = 10.0, trades: float = 50, net: float = 100.0):
    """A challenger that clears the floor (expectancy and its CI low > 0); the floor itself
    is tested in tests/test_gate_floor.py."""
    return {
        "sharpe": sharpe,
        "max_drawdown_pct": dd,
        "trade_count": trades,
        "net_profit": net,
        "expectancy_r": 0.3,
        "expectancy_r_ci_low": 0.05,
    }


@pytest.mark.parametrize(
    ("challenger", "champion", "promote_it", "why"),
    [
        (metrics(1.0), None, True, "no champion yet"),
        (metrics(1.0), metrics(0.8), True, "challenger sharpe 1.0000 > champion 0.8000 + 0.1"),
        (metrics(0.9), metrics(0.8), False, "challenger sharpe 0.9000 <= champion 0.8000 + 0.1"),
        (metrics(3.0, dd=15.01), metrics(0.8), False, "max drawdown 15.01% > 15.0%"),
        (metrics(3.0, trades=29), None, False, "made 29 trades < 30"),
    ],
)
def test_gate_rule(challenger, champion, promote_it, why) -> None:
    d = decide(challenger, champion, RULE)
    assert d.promote is promote_it
    assert why in d.reason


def test_gate_tags_carry_the_numbers() -> None:
    tags = decide(metrics(1.0), metrics(0.8), RULE).as_tags()
    assert tags["gate.decision"] == "promote"
    assert tags["gate.challenger.sharpe"] == "1"
    assert tags["gate.champion.sharpe"] == "0.8"
    assert tags["gate.rule.min_trades"] == "30"


def test_decision_file_round_trip(tmp_path) -> None:
    d = decide(metrics(1.0), metrics(0.8), RULE)
    d.write(tmp_path / "gate.json")
    assert load_decision(tmp_path / "gate.json") == d


@pytest.fixture
def registry(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("aibridge-EURUSD-H1")
    for _ in range(3):
        client.create_model_version("aibridge-EURUSD-H1", source=(tmp_path / "m").as_uri())
    client.set_registered_model_alias("aibridge-EURUSD-H1", "champion", "1")
    return client


def test_gate_promotes_then_rollback_restores(registry, tmp_path) -> None:
    name, journal = "aibridge-EURUSD-H1", tmp_path / "promotions.jsonl"
    win = decide(metrics(1.0), metrics(0.5), RULE)
    move = apply_gate(name, "2", win, journal=journal, client=registry)
    assert move is not None and (move.from_version, move.to_version) == ("1", "2")
    assert str(registry.get_model_version_by_alias(name, "champion").version) == "2"
    tags = registry.get_model_version(name, "2").tags
    assert tags["gate.decision"] == "promote"
    assert tags["promotion.previous_champion"] == "1"
    assert tags["promotion"].startswith("gate_promote by "), tags["promotion"]
    assert len([k for k in tags if k.startswith("promotion")]) == 2, sorted(tags)

    lose = decide(metrics(0.2), metrics(1.0), RULE)
    assert apply_gate(name, "3", lose, journal=journal, client=registry) is None
    assert str(registry.get_model_version_by_alias(name, "champion").version) == "2"
    assert registry.get_model_version(name, "3").tags["gate.decision"] == "keep_champion"

    back = rollback(name, "v2 misbehaves live", journal=journal, client=registry)
    assert (back.from_version, back.to_version, back.action) == ("2", "1", "rollback")
    assert str(registry.get_model_version_by_alias(name, "champion").version) == "1"

    by_hand = promote(name, "3", "manual pick after review", journal=journal, client=registry)
    assert by_hand.to_version == "3"
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    assert [x["action"] for x in lines] == ["gate_promote", "rollback", "promote"]
    assert lines[-1]["reason"] == "manual pick after review"


def test_promotion_needs_a_reason_and_a_real_version(registry) -> None:
    with pytest.raises(ValueError, match="reason"):
        promote("aibridge-EURUSD-H1", "2", " ", client=registry)
    with pytest.raises(Exception, match="9"):
        promote("aibridge-EURUSD-H1", "9", "typo", client=registry)


def test_rollback_walks_back_the_history_instead_of_toggling(registry, tmp_path) -> None:
    """v1 champion → gate promotes v2 → gate promotes v3; rollback → v2, rollback → v1 (not
    v3 again), a third rollback has nowhere to go."""
    name, journal = "aibridge-EURUSD-H1", tmp_path / "promotions.jsonl"
    registry.create_model_version(name, source=(tmp_path / "m").as_uri())  # v4, unused
    assert apply_gate(name, "2", decide(metrics(1.0), metrics(0.5), RULE), client=registry)
    assert apply_gate(name, "3", decide(metrics(2.0), metrics(1.0), RULE), client=registry)
    first = rollback(name, "v3 misbehaves", journal=journal, client=registry)
    assert (first.from_version, first.to_version) == ("3", "2")
    second = rollback(name, "v2 misbehaves too", journal=journal, client=registry)
    assert (second.from_version, second.to_version) == ("2", "1")
    assert registry.get_model_version(name, "3").tags["promotion.rolled_back"] == "v3 misbehaves"
    with pytest.raises(ValueError, match="no earlier champion"):
        rollback(name, "again", client=registry)
    assert str(registry.get_model_version_by_alias(name, "champion").version) == "1"
    # promoting a rolled-back version by hand clears its mark and starts history afresh
    promote(name, "3", "fixed", client=registry)
    assert "promotion.rolled_back" not in registry.get_model_version(name, "3").tags
    assert rollback(name, "no, not fixed", client=registry).to_version == "1"
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    assert [x["action"] for x in lines] == ["rollback", "rollback"]
