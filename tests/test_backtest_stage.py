"""The `backtest` stage on the real pipeline output (the session's `dvc repro` project copy).

A real champion/challenger situation: the copy's registry champion is version 1 (the sample
has no edge, so the gate registered it as challenger only; the session fixture promoted it by
hand). The copy then retrains a challenger with a fixed EV margin of 0.18 R (instead of the
margin the validation window chooses: none pays on the sample), so it trades
(``pipelines/params.py`` + ``pipelines/train.py``, as ``dvc repro`` would after that edit), runs
``pipelines/backtest.py`` exactly as DVC would, with fewer folds/random runs to stay quick,
then registers the challenger (version 2) so the replay test can serve a model that trades.
The gate keeps the champion: the challenger trades but has no edge (the floor).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import orjson
import pandas as pd
import pytest
import yaml

from aibridge.backtest import EngineSettings, run_backtest
from aibridge.backtest.gate import decide
from aibridge.backtest.settings import GateSettings
from aibridge.backtest.signals import signals_from_decisions
from aibridge.ea_sim import LazyPirateClient, build_predict, load_candles
from aibridge.ingest import read_mt4_csv
from aibridge.instruments import load_instrument
from aibridge.model_bundle import load_local_bundle as load_bundle
from aibridge.paths import sample_data_path
from aibridge.risk import RiskSettings
from tests.conftest import BIN, TrainedStore, mlflow_client, run
from tests.server_fixtures import real_models, running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backtested(trained_model_store: TrainedStore, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("backtest") / "aibridge"
    shutil.copytree(trained_model_store.root, root, symlinks=True)
    conf = root / "conf" / "backtest" / "default.yaml"
    cfg = yaml.safe_load(conf.read_text())
    cfg["walk_forward"] |= {"train_bars": 1500, "test_bars": 1000, "max_folds": 3}
    cfg["baselines"]["random_runs"] = 3
    conf.write_text(yaml.safe_dump(cfg))
    model = root / "conf" / "model" / "lightgbm.yaml"  # quick, and no thread contention
    m = yaml.safe_load(model.read_text()) | {"num_threads": 1, "num_boost_round": 60}
    m["decision"] = dict(m.get("decision") or {}) | {"ev_margin": 0.18}  # trades, no edge
    model.write_text(yaml.safe_dump(m))
    for stage in ("params", "train", "backtest", "register"):
        run([str(BIN / "python"), f"pipelines/{stage}.py"], root)
    return root


def test_stage_writes_every_output(backtested: Path) -> None:
    out = backtested / "reports" / "backtest"
    for name in (
        "equity.csv",
        "drawdown.csv",
        "trades.csv",
        "folds.csv",
        "metrics.json",
        "report.md",
        "equity.png",
        "drawdown.png",
        "challenger.json",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    trades = pd.read_csv(out / "trades.csv")
    assert metrics["model"]["trade_count"] == len(trades)
    assert metrics["model"]["net_profit"] == pytest.approx(trades["net_pnl"].sum(), abs=0.05)
    assert len(pd.read_csv(out / "folds.csv")) == metrics["folds"] == 3
    report = (out / "report.md").read_text()
    assert "vs **flat**" in report and "vs **buy-and-hold**" in report
    assert "vs **random (median)**" in report


def test_gate_compares_with_the_registry_champion(backtested: Path) -> None:
    """The register stage runs the champion on the challenger's test window and records the
    full decision (untracked reports/registration.json, the train run)."""
    reg = json.loads((backtested / "reports" / "registration.json").read_text())
    gate = reg["gate"]
    assert reg["champion_before"] == "1" and gate["champion"] is not None
    assert gate["challenger"]["trade_count"] > 0  # the 0.18 R challenger really trades
    measured = json.loads((backtested / "reports" / "backtest" / "challenger.json").read_text())
    assert measured["challenger"]["trade_count"] == gate["challenger"]["trade_count"]
    again = decide(gate["challenger"], gate["champion"], GateSettings(**gate["rule"]))
    assert (again.promote, again.reason) == (gate["promote"], gate["reason"])
    # the sample has no edge: the floor keeps the champion, and says so
    assert gate["promote"] is False and gate["reason"].startswith("no edge"), gate["reason"]
    assert gate["challenger"]["trials"] >= 2  # the MLflow runs so far: v1's and this one


def test_report_says_plainly_there_is_no_edge(backtested: Path) -> None:
    out = backtested / "reports" / "backtest"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["edge"].startswith("no edge")
    report = (out / "report.md").read_text()
    assert "**No edge.**" in report
    for key in ("sharpe_ci_low", "expectancy_r_ci_low", "ruined", "dsr", "folds_trading_pct"):
        assert key in metrics["model"], key


def test_local_bundle_and_registry_pyfunc_decide_identically(
    trained_model_store: TrainedStore,
) -> None:
    """The gate runs the challenger from artifacts/model and the champion from the registry;
    for one and the same model both paths must give the same decisions."""
    mlflow.set_tracking_uri(trained_model_store.tracking_uri)
    try:
        registry = mlflow.pyfunc.load_model(trained_model_store.model_uri)
        candles = trained_model_store.candles.tail(600).reset_index(drop=True)
        local = load_bundle(trained_model_store.root / "artifacts" / "model")
        pd.testing.assert_frame_equal(local.predict(None, candles), registry.predict(candles))
    finally:
        mlflow.set_tracking_uri(None)


def test_backtest_is_logged_to_the_train_run(backtested: Path) -> None:
    run_id = json.loads((backtested / "artifacts" / "train_run.json").read_text())["run_id"]
    client = mlflow_client(f"sqlite:///{backtested / 'mlflow.db'}")
    logged = client.get_run(run_id)
    assert "bt_sharpe" in logged.data.metrics
    names = {a.path for a in client.list_artifacts(run_id, "backtest")}
    assert {"backtest/report.md", "backtest/equity.png", "backtest/challenger.json"} <= names
    assert "gate/decision.json" in {a.path for a in client.list_artifacts(run_id, "gate")}


REPLAY_BARS = 300  # the last bars of the sample


def test_server_replay_equals_backtest_signals(backtested: Path, tmp_path: Path) -> None:
    """Replay parity: the EA emulator's request builder and Lazy Pirate transport replay the
    sample bar by bar against a real SignalServer serving the registered challenger; the
    replies, turned into engine inputs by the backtest's own function, equal the signals and
    SL/TP distances the backtest computed from the bundle in one pass, and so do the trades.
    """
    spec = load_instrument("EURUSD")
    candles = read_mt4_csv(sample_data_path()).candles.drop(columns=["line"])
    offline = load_bundle(backtested / "artifacts" / "model").predict(None, candles)
    want_sig, want_sl, want_tp = signals_from_decisions(offline, spec.point)
    window = slice(len(candles) - REPLAY_BARS, len(candles))
    assert np.count_nonzero(want_sig[window]) > 10  # a replay with trades to compare

    replay = load_candles(sample_data_path())
    uri = "models:/aibridge-EURUSD-H1@challenger"
    models = real_models(f"sqlite:///{backtested / 'mlflow.db'}", [uri], tmp_path / "cache")
    replies = []
    with running_server(tmp_path, models) as (_, endpoint):
        client = LazyPirateClient(endpoint, timeout_ms=5000, retries=1)
        try:
            raw, _, _ = client.request(b'{"protocol_version":1,"type":"heartbeat"}')
            assert raw is not None
            n = int(orjson.loads(raw)["min_bars"])
            for i in range(window.start, window.stop):
                payload = build_predict(replay, i, n, spec.digits, "EURUSD", "H1", str(i), None)
                raw, _, _ = client.request(payload)
                assert raw is not None, f"no reply for bar {i}"
                replies.append(orjson.loads(raw))
        finally:
            client.close()
    wire = pd.DataFrame(replies)
    assert (wire["status"] == "ok").all()
    assert (wire["model_version"].astype(str) == "2").all()
    got_sig, got_sl, got_tp = signals_from_decisions(wire, spec.point)
    np.testing.assert_array_equal(got_sig, want_sig[window])
    np.testing.assert_array_equal(got_sl, want_sl[window])
    np.testing.assert_array_equal(got_tp, want_tp[window])

    bars = candles.iloc[window].reset_index(drop=True)
    risk, engine = RiskSettings(), EngineSettings()
    live = run_backtest(bars, got_sig, got_sl, got_tp, spec, risk, engine)
    sim = run_backtest(bars, want_sig[window], want_sl[window], want_tp[window], spec, risk, engine)
    assert len(live.trades) > 0
    pd.testing.assert_frame_equal(live.trades, sim.trades)
