"""Shadow challenger on real sockets: the EA (ea-sim) only ever gets the champion's answer,
the challenger's decision on the same window is journaled off the hot path, and the forward
test compares them on the live bars."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
import pytest

from aibridge.ea_sim import EaEmulator, SimConfig, build_predict, load_candles
from aibridge.loop.shadow import ShadowRunner, forward_report, shadow_uri
from aibridge.paths import sample_data_path
from aibridge.server.models import ModelSet
from aibridge.serving_model import ModelInfo
from tests.server_fixtures import ReqClient, running_server
from tests.test_reconcile_report import MomentumModel

NAME = "aibridge-EURUSD-H1"


def registry() -> tuple[dict[str, ModelInfo], dict[str, MomentumModel]]:
    """Champion v7 (signals on 0.7 ATR moves) and challenger v8 (0.3 ATR: trades more)."""
    v7 = ModelInfo(NAME, "7", "champion", "run7", "", "", "EURUSD", "H1")
    v8 = ModelInfo(NAME, "8", "challenger", "run8", "", "", "EURUSD", "H1")
    infos = {f"models:/{NAME}@champion": v7, f"models:/{NAME}@challenger": v8}
    models = {
        f"models:/{NAME}/7": MomentumModel(v7),
        f"models:/{NAME}/8": MomentumModel(v8, threshold=0.3),
    }
    return infos, models


def champions() -> tuple[ModelSet, tuple[dict[str, ModelInfo], dict[str, MomentumModel]]]:
    infos, models = registry()
    ms = ModelSet(
        [f"models:/{NAME}@champion"], resolver=infos.__getitem__, loader=models.__getitem__
    )
    return ms, (infos, models)


def test_shadow_uri() -> None:
    assert shadow_uri(f"models:/{NAME}@champion", "challenger") == f"models:/{NAME}@challenger"


@pytest.mark.slow
def test_shadow_challenger_on_live_requests(tmp_path: Path) -> None:
    ms, (infos, models) = champions()
    with running_server(tmp_path, ms) as (server, endpoint):
        runner = ShadowRunner.load(
            server.models, alias="challenger", uris=None, resolver=infos.__getitem__,
            loader=models.__getitem__, journal=server.journal, metrics=server.metrics,
        )  # fmt: skip
        server.attach_shadow(runner)
        sim = EaEmulator(SimConfig(endpoint=endpoint, bars=300, quiet=True, account=7))
        summary = sim.run()
        assert summary.predict_versions and set(summary.predict_versions) == {"7"}
        runner.flush()
        server.journal.flush()
        port = server.http.port
        status = orjson.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json").read())
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    snap = status["shadow"][0]
    assert snap["challenger"] == f"{NAME} v8" and snap["decisions"] == 300
    assert 0 < snap["agreement"] < 1 and snap["signals_challenger"] > snap["signals_champion"]
    assert 'aibridge_shadow_decisions_total{agreement="agree",challenger_version="8"' in metrics
    conn = sqlite3.connect(tmp_path / "journal.sqlite")
    conn.row_factory = sqlite3.Row
    preds = {
        r["request_id"]: json.loads(r["reply"])
        for r in conn.execute("SELECT * FROM requests WHERE type='predict' AND status='ok'")
    }
    rows = conn.execute("SELECT * FROM shadow ORDER BY id").fetchall()
    events = conn.execute("SELECT event FROM model_events").fetchall()
    conn.close()
    assert ("shadow_loaded",) in [tuple(e) for e in events]
    assert len(rows) == len(preds) == 300
    c = load_candles(sample_data_path())
    pos = {int(t): i for i, t in enumerate(c.time)}
    for r in rows:
        reply = preds[r["request_id"]]
        # the champion's answer, as sent; the challenger's, recomputed on the same window
        assert (r["champion_action"], r["champion_version"]) == (reply["action"], "7")
        i = pos[r["bar_time"]]
        w = slice(i - 29, i + 1)
        d = models[f"models:/{NAME}/8"].decide(
            c.time[w], c.open[w], c.high[w], c.low[w], c.close[w], c.volume[w]
        )
        assert (r["challenger_action"], r["challenger_version"]) == (d.action, "8")
        assert r["latency_us"] >= 0
    doc = forward_report(tmp_path / "journal.sqlite", "EURUSD", "H1")
    assert doc["decisions"] == 300 and doc["agreement"] == snap["agreement"]
    assert sum(sum(v.values()) for v in doc["confusion"].values()) == 300
    assert doc["challenger"]["signals"] == snap["signals_challenger"]
    assert doc["champion"]["trades"] > 0 and doc["challenger"]["trades"] > 0
    # the champion's replay equals what the emulator traded on the same bars
    assert doc["champion"]["trades"] == len(sim.trade_table())
    proc = subprocess.run(
        [sys.executable, "-m", "aibridge.loop", "shadow-report", "--symbol", "EURUSD",
         "--journal", str(tmp_path / "journal.sqlite")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "# Shadow forward test: EURUSD H1" in proc.stdout and "| trades |" in proc.stdout


def test_broken_challenger_never_hurts_the_champion(tmp_path: Path) -> None:
    ms, (infos, models) = champions()

    class Broken(MomentumModel):
        def decide(self, *a, **k):  # type: ignore[no-untyped-def]
            raise RuntimeError("challenger bug")

    models[f"models:/{NAME}/8"] = Broken(infos[f"models:/{NAME}@challenger"])
    c = load_candles(sample_data_path())
    with running_server(tmp_path, ms) as (server, endpoint):
        runner = ShadowRunner.load(
            server.models, alias="challenger", uris=None, resolver=infos.__getitem__,
            loader=models.__getitem__, journal=server.journal,
        )  # fmt: skip
        server.attach_shadow(runner)
        with ReqClient(endpoint) as client:
            for i in range(40, 50):
                reply = client.call(build_predict(c, i, 30, 5, "EURUSD", "H1", f"r{i}", 10))
                assert reply["status"] == "ok" and reply["model_version"] == "7"
        runner.flush()
        snap = runner.snapshot()[0]
    assert snap["decisions"] == 0 and snap["error"] == "RuntimeError: challenger bug"
    assert runner.stats[("EURUSD", "H1")].errors == 10


def test_missing_challenger_alias_is_skipped(tmp_path: Path) -> None:
    ms, (infos, models) = champions()
    del infos[f"models:/{NAME}@challenger"]
    ms.load_all()
    runner = ShadowRunner.load(
        ms, alias="challenger", uris=None, resolver=infos.__getitem__,
        loader=models.__getitem__, journal=None,
    )  # fmt: skip
    try:
        assert runner.sets == {}
    finally:
        runner.stop()


@pytest.mark.slow
def test_real_registry_shadow_and_drift(trained_model_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`aibridge serve --shadow challenger` as run.build_server assembles it, on the pipeline's
    registry (v1 served by number: whether it is champion is the gate's call; it is always
    the challenger) with the features stage's table as drift reference."""
    import threading

    from aibridge.server.run import build_server
    from aibridge.server.settings import ServeSettings
    from tests.server_fixtures import private_store

    store = trained_model_store
    settings = ServeSettings(
        host="127.0.0.1", port=0, metrics_port=0, poll_interval_s=0, log_path=None,
        models=[f"models:/{NAME}/1"], tracking_uri=private_store(store, tmp_path),
        journal_path=tmp_path / "journal.sqlite", model_cache_dir=tmp_path / "cache",
        shadow={"alias": "challenger"},
        drift={"reference_features": store.root / "artifacts" / "features.parquet",
               "min_rows": 50, "interval_s": 0.1},
    )  # fmt: skip
    server = build_server(settings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert server.ready.wait(30), "the server thread did not get ready"
        sim = EaEmulator(SimConfig(endpoint=f"tcp://127.0.0.1:{server.port}", bars=120, quiet=True))
        sim.run()
        server.shadow.flush()
        server.drift.flush()
        shadow = server.shadow.snapshot()[0]
        drift = server.drift.snapshot()[0]
    finally:
        server.request_stop()
        thread.join(timeout=15)
    assert shadow["challenger"] == f"{NAME} v1" and shadow["decisions"] == 120
    assert shadow["agreement"] == 1.0  # the same version on both aliases
    # training stores the reference in the bundle (the parquet table is only the fallback)
    assert drift["enabled"] and drift["reference"].endswith("bundle")
    assert drift["rows"] == 120 and drift["psi_median"] is not None
    assert drift["psi_median"] < 0.2, drift  # the sample's own bars: no drift alert


def _side(trades: int, profit: float, dd: float, exp_r: float, exp_lo: float) -> dict:
    metrics = {
        "trade_count": trades,
        "net_profit": profit,
        "max_drawdown_pct": dd,
        "expectancy_r": exp_r,
        "expectancy_r_ci_low": exp_lo,
        "sharpe": 1.0,
        "days": 30,
    }
    return {"trades": trades, "net_profit": profit, "max_drawdown_pct": dd, "metrics": metrics}


def _doc(decisions: int = 600, ch_profit: float = 150.0, ch_trades: int = 25,
         exp_lo: float = 0.05) -> dict:  # fmt: skip
    return {
        "decisions": decisions,
        "challenger_versions": ["8"],
        "champion": _side(20, 100.0, 2.0, 0.1, -0.05),
        "challenger": _side(ch_trades, ch_profit, 3.0, 0.2, exp_lo),
    }


def test_forward_gate_rules() -> None:
    from aibridge.backtest.settings import GateSettings
    from aibridge.loop.shadow import forward_gate

    rule = GateSettings(metric="net_profit", min_trades=10, max_drawdown_pct=5.0)
    ok = forward_gate(_doc(), rule, min_decisions=500)
    assert ok.promote and ok.reason.startswith("forward test: challenger net_profit 150")
    assert not forward_gate(_doc(decisions=100), rule, 500).promote
    assert not forward_gate(_doc(ch_profit=90.0), rule, 500).promote
    assert "trades < 10" in forward_gate(_doc(ch_trades=3), rule, 500).reason
    # the backtest gate's absolute floor applies too: no edge on the live bars, no promotion
    assert "no edge" in forward_gate(_doc(exp_lo=-0.1), rule, 500).reason
    changed = {**_doc(), "challenger_versions": ["8", "9"]}
    assert "changed during the period" in forward_gate(changed, rule, 500).reason


@pytest.mark.slow
def test_forward_gate_moves_the_alias(tmp_path: Path) -> None:
    """Both modes against a real (SQLite) MLflow registry."""
    from mlflow import MlflowClient

    from aibridge.backtest.settings import GateSettings
    from aibridge.loop.shadow import apply_forward_gate, forward_gate

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(NAME)
    for _ in range(2):
        client.create_model_version(NAME, source=str(tmp_path))
    client.set_registered_model_alias(NAME, "champion", "1")
    win = forward_gate(_doc(), GateSettings(metric="net_profit", min_trades=10), 500)
    history = tmp_path / "promotions.jsonl"
    # both gates: v2's backtest gate said keep -> no move, but the forward tags are written
    client.set_model_version_tag(NAME, "2", "gate.decision", "keep_champion")
    line = apply_forward_gate(
        NAME, "2", win, "champion", history, require_backtest_gate=True, client=client
    )
    assert "champion kept; backtest gate says keep_champion" in line
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert client.get_model_version(NAME, "2").tags["forward_gate.decision"] == "promote"
    # forward gate alone: promoted, the reason recorded
    line = apply_forward_gate(NAME, "2", win, "champion", history, client=client)
    assert line.startswith(f"{NAME}: champion v1 → v2 (forward test:")
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
    assert json.loads(history.read_text().splitlines()[-1])["to_version"] == "2"
