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
    raw = build_predict(candles, 999, n, 5, "EURUSD", "H1", fx["request_id"], fx["spread_points"])
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
    # every BUY/SELL is either filled or vetoed by the EA's risk rules, never dropped
    assert d["trade_events"].get("filled", 0) + sum(d["vetoes"].values()) == opened
    assert sum(d["reasons"].values()) == 150


def test_simulated_trade_is_reported_as_events(served) -> None:
    """Entry at the next open with the reply's SL/TP points, exit on the bar that touches SL/TP."""
    server, ep = served
    sim = EaEmulator(SimConfig(endpoint=ep, quiet=True))
    assert sim.heartbeat() is not None
    i = 1500
    doc = {"action": "BUY", "sl_points": 100.0, "tp_points": 200.0, "confidence": 0.9}
    sim._maybe_open(i, doc)
    assert sim.position is not None
    entry = float(sim.candles.open[i + 1])
    assert sim.position.entry == entry
    assert sim.position.sl == round(entry - 0.001, 5) and sim.position.tp == round(entry + 0.002, 5)
    k = i + 1
    while sim.position is not None and k < i + 500:
        sim._manage_position(k)
        k += 1
    sim.client.close()
    assert sim.position is None
    server.journal.flush()
    events = j.tail(server.journal.path, "trade_events", 3)
    assert [e["event"] for e in events] == ["order_sent", "filled", "closed"]
    closed = events[-1]
    assert closed["price"] in (events[1]["sl"], events[1]["tp"])
    won = closed["price"] == events[1]["tp"]
    assert (closed["profit"] > 0) == won and closed["profit"] == round(sim.summary.pnl, 2)
    assert sim.summary.trade_events == {"order_sent": 1, "filled": 1, "closed": 1}


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
    assert "no heartbeat ever succeeded" in result.output
    assert "Traceback" not in result.output
