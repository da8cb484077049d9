"""The EA emulator against a real server: what the EA sends, lazy pirate, summary."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from aibridge.ea_sim import EaEmulator, LazyPirateClient, SimConfig, build_predict, load_candles
from aibridge.paths import sample_data_path
from aibridge.server import journal as j
from aibridge.server.commands import serve_app
from tests.conftest import TrainedStore
from tests.protocol_fixtures import load_fixtures, sample_candles
from tests.server_fixtures import free_port, real_models, running_server

FIXTURES = load_fixtures()


@pytest.fixture(scope="module")
def served(trained_model_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("easim")
    models = real_models(
        trained_model_store.tracking_uri, [trained_model_store.model_uri], tmp / "cache"
    )
    with running_server(tmp, models) as (server, ep):
        yield server, ep


def test_predict_text_matches_the_golden_fixture() -> None:
    fx = FIXTURES["predict"]["request"]
    n = len(fx["candles"])
    candles = load_candles(sample_data_path())
    raw = build_predict(
        candles,
        999,
        n,
        5,
        "EURUSD",
        "H1",
        fx["request_id"],
        fx["spread_points"],
        fx["utc_offset_s"],
    )
    doc = orjson.loads(raw)
    assert list(doc) == list(fx)
    assert doc == fx
    assert doc["candles"] == sample_candles(n)


def test_replay_counts_versions_and_trade_events(served) -> None:
    server, ep = served
    cfg = SimConfig(endpoint=ep, bars=150, start=1000, quiet=True, heartbeat_s=0.05)
    summary = EaEmulator(cfg).run()
    d = summary.to_dict()
    assert d["bars"] == 150 and d["skipped"] == 0 and d["errors"] == {}
    assert sum(d["actions"].values()) == 150
    assert d["heartbeat_versions"] == ["1"] and d["predict_versions"] == ["1"]
    assert d["mismatched_replies"] == 0 and d["retries"] == 0
    assert len(summary.latencies_ms) == 150 and set(d["latency_ms"]) == {"p50", "p90", "p99", "max"}
    assert summary.heartbeats_ok >= 2
    server.journal.flush()
    events = j.tail(server.journal.path, "trade_events", 10_000)
    by_kind: dict[str, int] = {}
    for e in events:
        by_kind[e["event"]] = by_kind.get(e["event"], 0) + 1
    assert by_kind == d["trade_events"]
    opened = d["actions"].get("BUY", 0) + d["actions"].get("SELL", 0)
    # every BUY/SELL is either filled or vetoed by the EA's risk rules, never dropped (the last
    # bar's would act on the bar after the replay)
    assert d["trade_events"].get("filled", 0) + sum(d["vetoes"].values()) == d["signals_acted"]
    assert opened - 1 <= d["signals_acted"] <= opened
    assert sum(d["reasons"].values()) == 150


def test_simulated_trade_is_reported_as_events(served) -> None:
    """Entry at the next open (Ask) with the reply's SL/TP points, exit by the kernel's rules,
    reported as order_sent, filled, closed with the exit reason."""
    server, ep = served
    sim = EaEmulator(SimConfig(endpoint=ep, quiet=True))
    assert sim.heartbeat() is not None
    sim._first, sim._last = 1499, len(sim.candles) - 1
    i = 1500
    doc = {"action": "BUY", "sl_points": 100.0, "tp_points": 200.0, "confidence": 0.9}
    sim._at_open(i + 1, (i, doc))
    assert sim.position is not None
    entry = float(sim.candles.open[i + 1]) + 5 * 1e-5  # Ask: no spread column, EURUSD default 5
    assert sim.position.entry == pytest.approx(entry, abs=1e-12)
    assert sim.position.sl == round(entry - 0.001, 5) and sim.position.tp == round(entry + 0.002, 5)
    k = i + 1
    while sim.position is not None and k < i + 500:
        sim._inside_bar(k)
        k += 1
        if sim.position is not None:
            sim._at_open(k, None)
    sim.client.close()
    assert sim.position is None
    trade = sim.trade_table().iloc[0]
    server.journal.flush()
    events = j.tail(server.journal.path, "trade_events", 3)
    assert [e["event"] for e in events] == ["order_sent", "filled", "closed"]
    closed = events[-1]
    assert closed["price"] == pytest.approx(trade.exit_price)
    assert closed["reason"] == trade.exit_reason.lower()
    if trade.exit_reason in ("SL", "TP"):
        assert closed["price"] == events[1][trade.exit_reason.lower()]
    assert closed["profit"] == round(trade.gross_pnl, 2)
    assert sim.summary.pnl == pytest.approx(trade.net_pnl)
    assert sim.summary.trade_events == {"order_sent": 1, "filled": 1, "closed": 1}


def test_exit_policy_is_the_served_one_else_conf_risk_with_a_warning(served, caplog) -> None:
    from aibridge.risk import load_risk_settings

    server, ep = served
    sim = EaEmulator(SimConfig(endpoint=ep, quiet=True))
    old = server.handler.risk
    try:
        server.handler.risk = {**old, "close_on_opposite": False, "max_hold_bars": 7}
        assert sim.heartbeat() is not None
        assert sim.exit_policy() == (False, 7)
        server.handler.risk = {
            k: v for k, v in old.items() if k not in ("close_on_opposite", "max_hold_bars")
        }
        assert sim.heartbeat() is not None
        conf = load_risk_settings()
        with caplog.at_level("WARNING", logger="aibridge.ea_sim"):
            assert sim.exit_policy() == (conf.close_on_opposite, conf.max_hold_bars)
        assert "no exit policy" in caplog.text
    finally:
        server.handler.risk = old
        sim.client.close()


def test_no_server_skips_bars_with_reasons_and_never_hangs(tmp_path: Path) -> None:
    ep = f"tcp://127.0.0.1:{free_port()}"
    cfg = SimConfig(endpoint=ep, bars=3, start=100, timeout_ms=100, retries=1, quiet=True)
    summary = EaEmulator(cfg).run()
    assert summary.heartbeats_ok == 0 and summary.heartbeats_failed == 4
    assert [r for _, r in summary.skipped] == ["no heartbeat yet"] * 3
    assert summary.reconnects == 8  # every timed-out attempt replaced its REQ socket
    assert summary.actions == {}


def test_lazy_pirate_recovers_when_server_appears(served, tmp_path: Path) -> None:
    """Timeouts replace the socket every time; a live endpoint answers on the first try."""
    _, ep = served
    port = free_port()
    dead = f"tcp://127.0.0.1:{port}"
    client = LazyPirateClient(dead, timeout_ms=300, retries=3)
    reply, attempts, _ = client.request(b'{"type":"heartbeat"}')
    assert reply is None and attempts == 4 and client.reconnects == 4
    client.close()
    client = LazyPirateClient(ep, timeout_ms=2000, retries=1)
    reply, attempts, _ = client.request(b'{"type":"heartbeat","request_id":"x"}')
    client.close()
    assert orjson.loads(reply)["request_id"] == "x" and attempts == 1


def test_cli_ea_sim_prints_summary_and_writes_json(served, tmp_path: Path) -> None:
    _, ep = served
    out = tmp_path / "sim.json"
    result = CliRunner().invoke(
        serve_app,
        [
            "ea-sim",
            "--endpoint",
            ep,
            "--bars",
            "20",
            "--start",
            "2000",
            "--quiet",
            "--json-out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ea-sim summary" in result.output and "HOLD" in result.output
    d = orjson.loads(out.read_bytes())
    assert d["bars"] == 20 and sum(d["actions"].values()) == 20


def test_cli_ea_sim_without_server_fails_cleanly() -> None:
    ep = f"tcp://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        serve_app,
        [
            "ea-sim",
            "--endpoint",
            ep,
            "--bars",
            "1",
            "--timeout-ms",
            "50",
            "--retries",
            "0",
            "--quiet",
        ],
    )
    assert result.exit_code == 1
    assert "no heartbeat ever succeeded: no reply from" in result.output
    assert "Traceback" not in result.output


def test_cli_ea_sim_names_what_the_server_serves_when_the_pair_is_not_served(served) -> None:
    _, ep = served
    result = CliRunner().invoke(
        serve_app,
        ["ea-sim", "--endpoint", ep, "--symbol", "GBPUSD", "--bars", "50", "--quiet"],
    )
    assert result.exit_code == 1
    text = " ".join(result.output.split())  # the message may wrap
    assert "answers but does not serve GBPUSD H1; it serves EURUSD H1" in text, text
    assert "is `aibridge serve` running" not in text and "Traceback" not in text


# The sample carries no edge: the served model says HOLD (no_edge) on every bar. To compare
# trades, both the server's copy and the pyfunc get a decision rule that does trade.
EV_MARGIN = 0.18  # R; ~10 % of the sample's bars clear it
MIN_CONFIDENCE = 0.35  # older confidence-rule bundles


def _make_serving_model_trade(model) -> None:
    import dataclasses

    if getattr(model, "_ev_path", False):
        model.ev_margin = EV_MARGIN
        model._decision_settings = dataclasses.replace(
            model._decision_settings, ev_margin=EV_MARGIN
        )
    else:
        model.min_confidence = MIN_CONFIDENCE
        model._decision_settings = dataclasses.replace(
            model._decision_settings, min_confidence=MIN_CONFIDENCE
        )


def _make_pyfunc_trade(python_model) -> None:
    if hasattr(python_model.decision, "decide_rows"):
        python_model.settings["ev_margin"] = EV_MARGIN
    else:
        python_model.settings["min_confidence"] = MIN_CONFIDENCE


@pytest.mark.slow
def test_ea_sim_on_the_served_policy_makes_the_backtests_trades(
    trained_model_store: TrainedStore, tmp_path: Path
) -> None:
    """The sample, the served model (made to trade, see above), the served exit policy
    (max_hold_bars 12, not conf/risk's 24, so the heartbeat's value is what acts): ea-sim's
    trade list equals run_backtest's on the same bars and the pyfunc's decisions."""
    import mlflow

    from aibridge.backtest.engine import run_backtest
    from aibridge.backtest.settings import EngineSettings
    from aibridge.backtest.signals import CANDLE_COLUMNS, signals_from_decisions
    from aibridge.instruments import load_instrument
    from aibridge.mt4.parity import compare_trades
    from aibridge.risk import RiskSettings
    from tests.server_fixtures import RISK

    start, bars = 1000, 1500
    policy = {"close_on_opposite": True, "max_hold_bars": 12}
    store = trained_model_store
    models = real_models(store.tracking_uri, [store.model_uri], tmp_path / "cache")
    with running_server(tmp_path, models) as (server, ep):
        server.handler.risk = {**RISK, **policy}
        _make_serving_model_trade(next(iter(server.models.slots.values())).current.model)
        sim = EaEmulator(SimConfig(endpoint=ep, start=start, bars=bars, quiet=True))
        summary = sim.run()
        server.journal.flush()
        events = j.tail(server.journal.path, "trade_events", 100_000)
    assert summary.errors == {} and summary.skipped == []
    ea = sim.trade_table()

    mlflow.set_tracking_uri(store.tracking_uri)
    mlflow.set_registry_uri(store.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(store.model_uri)
    _make_pyfunc_trade(pyfunc.unwrap_python_model())
    candles = store.candles
    decisions = pyfunc.predict(candles[CANDLE_COLUMNS])
    spec = load_instrument("EURUSD")
    sig, sl, tp = signals_from_decisions(decisions, spec.point)
    w = slice(start, start + bars)
    risk = RiskSettings(**{**RISK, **policy})
    bt = run_backtest(
        candles.iloc[w].reset_index(drop=True), sig[w], sl[w], tp[w], spec, risk, EngineSettings()
    )
    result = compare_trades(bt.trades, ea, spec.point)
    print(result.table())
    assert len(bt.trades) >= 20, "the lowered margin should make the model trade"
    assert set(bt.trades["exit_reason"]) & {"signal", "time"}, "exits by the policy are exercised"
    assert result.ok, result.table()
    # the closes the EA reported carry the trade list's reasons
    closed = {e["ticket"]: e["reason"] for e in events if e["event"] == "closed"}
    want = {int(t.ticket): t.exit_reason.lower() for t in ea.itertuples() if t.exit_reason != "end"}
    assert closed == want
