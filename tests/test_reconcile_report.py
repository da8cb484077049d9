"""``aibridge reconcile`` on a journal recorded from ``ea-sim`` against a real server, with a
known broker slippage injected where the EA reports its fills: +3 points on every entry,
+2 points on every exit (worse for the account), one trade whose events were lost, and one
fill the server's decisions never asked for."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aibridge.ea_sim import EaEmulator, SimConfig
from aibridge.loop.reconcile import load_journal, reconcile, render_markdown
from aibridge.server.models import ModelSet
from aibridge.serving_model import Decision, ModelInfo
from tests.server_fixtures import ReqClient, running_server

POINT = 1e-5
ENTRY_SLIP, EXIT_SLIP = 3, 2


@dataclass
class MomentumModel:
    """A deterministic stand-in for a registered model that trades often: BUY/SELL when the
    close moved more than 0.7 ATR over 5 bars, SL 1.5 ATR, TP 2 ATR (the server only needs
    ``decide`` and the bundle's attributes)."""

    info: ModelInfo
    min_bars: int = 30
    digits: int = 5
    point: float = POINT
    sl_atr_mult: float = 1.5
    tp_atr_mult: float = 2.0
    min_confidence: float = 0.0
    tick_size: float = POINT
    contract_size: float = 100_000.0
    broker_utc_offset_s: int | None = None
    threshold: float = 0.7  # ATRs the close must move over 5 bars for a signal

    def decide(self, t, o, h, lo, c, v, spread_points=None) -> Decision:
        atr = float(np.mean(h[-14:] - lo[-14:]))
        move = float(c[-1] - c[-6])
        k = self.threshold
        action = "BUY" if move > k * atr else "SELL" if move < -k * atr else "HOLD"
        probs = {"BUY": 0.2, "SELL": 0.2, "HOLD": 0.6}
        if action == "HOLD":
            return Decision("HOLD", 0.6, probs, None, None, None, None, "below_threshold")
        s = 1 if action == "BUY" else -1
        sl_pts, tp_pts = round(1.5 * atr / POINT), round(2.0 * atr / POINT)
        return Decision(
            action, 0.7, probs, c[-1] - s * sl_pts * POINT, c[-1] + s * tp_pts * POINT,
            float(sl_pts), float(tp_pts), "signal",
        )  # fmt: skip


def momentum_models() -> ModelSet:
    info = ModelInfo("aibridge-EURUSD-H1", "7", "champion", "run7", "", "", "EURUSD", "H1")
    model = MomentumModel(info)
    return ModelSet(
        ["models:/aibridge-EURUSD-H1@champion"],
        resolver=lambda uri: info,
        loader=lambda uri: model,
    )


class SlippingBroker(EaEmulator):
    """The emulator, with the fills its 'broker' reports made worse by a known amount, and
    the events of one ticket lost."""

    lost_ticket: int | None = None
    fills = 0

    def _trade_event(self, event: str, bar_time: int = 0, **fields: Any) -> None:
        side = fields.get("side")
        d = 1 if side == "BUY" else -1
        if event == "filled":
            SlippingBroker.fills += 1
            if SlippingBroker.fills == 3:
                SlippingBroker.lost_ticket = fields["ticket"]
            fields["price"] = round(fields["price"] + d * ENTRY_SLIP * POINT, 5)
        elif event == "closed":
            fields["price"] = round(fields["price"] - d * EXIT_SLIP * POINT, 5)
        if fields.get("ticket") is not None and fields["ticket"] == SlippingBroker.lost_ticket:
            return  # lost on the way: the server never hears of this trade
        super()._trade_event(event, bar_time, **fields)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EaEmulator]:
    tmp = tmp_path_factory.mktemp("reconcile")
    with running_server(tmp, momentum_models()) as (server, endpoint):
        sim = SlippingBroker(
            SimConfig(endpoint=endpoint, bars=400, quiet=True, account=4242, first_ticket=1000)
        )
        sim.run()
        # a fill nobody decided: the EA's magic, a bar where the model said HOLD
        server.journal.flush()
        conn = sqlite3.connect(tmp / "journal.sqlite")
        rows = conn.execute(
            "SELECT reply FROM requests WHERE type='predict' AND action='HOLD' ORDER BY id"
        ).fetchall()
        conn.close()
        hold_bars = [json.loads(r[0])["bar_time"] for r in rows]
        # the bar after two HOLDs in a row: no BUY/SELL decision for the bar before
        bar = next(b for a, b in itertools.pairwise(hold_bars) if b - a == 3600)
        with ReqClient(endpoint) as c:
            reply = c.call(
                {"protocol_version": 1, "type": "trade_event",
                 "request_id": "te-4242-999999-filled-1",
                 "event": "filled", "symbol": "EURUSD", "timeframe": "H1", "ticket": 999999,
                 "side": "BUY", "price": 1.1, "lots": 0.1, "time": bar, "account": 4242,
                 "magic": 20261125}
            )  # fmt: skip
            assert reply["status"] == "ok"
    return tmp / "journal.sqlite", sim


@pytest.mark.slow
def test_reconcile_finds_the_known_slippage(recorded: tuple[Path, EaEmulator]) -> None:
    journal, sim = recorded
    sim_trades = sim.trade_table()
    assert len(sim_trades) >= 8, "the stand-in model should trade"
    data = load_journal(journal, "EURUSD", "H1")
    assert len(data.bars) == 400 and data.served["risk"]["max_hold_bars"] == 24
    report = reconcile(data)
    c = report.counts()
    # every trade the emulator made is accounted for: matched, or missed (the lost one)
    assert c["matched"] + c["missed"] == len(sim_trades)
    assert c["missed"] == 1 and c["unmatched_live"] == 1
    t = report.trades
    missed = t[t.kind == "missed"].iloc[0]
    assert missed.note == "not traded live (no fill reported)"
    lost = sim_trades[sim_trades.ticket == SlippingBroker.lost_ticket].iloc[0]
    assert missed.bt_entry == pytest.approx(lost.entry_price)
    extra = t[t.kind == "unmatched_live"].iloc[0]
    assert extra.ticket == 999999
    assert extra.note == "no BUY/SELL decision in the journal for the bar before"
    m = t[t.kind == "matched"]
    assert (m.entry_slip_pts == ENTRY_SLIP).all(), m.entry_slip_pts.tolist()
    closed = m[m.live_exit.notna()]
    assert len(closed) >= len(m) - 1  # the last one may still be open at the end
    assert (closed.exit_slip_pts == EXIT_SLIP).all(), closed.exit_slip_pts.tolist()
    assert not closed.reason_differs.any()
    assert (m.bt_lots == m.live_lots).all()
    s = report.slippage()
    assert s["entry_mean_pts"] == ENTRY_SLIP and s["exit_max_pts"] == EXIT_SLIP
    md = render_markdown(report)
    assert "| missed |" in md and "| unmatched_live |" in md
    assert f"Entry slippage (points, + = worse live): mean {float(ENTRY_SLIP)}" in md


@pytest.mark.slow
def test_reconcile_cli_writes_markdown_and_json(
    recorded: tuple[Path, EaEmulator], tmp_path: Path
) -> None:
    journal, _ = recorded
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "aibridge.loop", "reconcile", "--symbol", "EURUSD",
         "--timeframe", "H1", "--journal", str(journal), "--markdown", str(md),
         "--json-out", str(js)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "missed 1, unmatched live 1" in proc.stdout
    assert md.read_text().startswith("# Live vs backtest: EURUSD H1, aibridge-EURUSD-H1 v7")
    doc = json.loads(js.read_text())
    assert doc["slippage"]["entry_mean_pts"] == ENTRY_SLIP and doc["counts"]["missed"] == 1


def test_reconcile_without_decisions_says_so(tmp_path: Path) -> None:
    with running_server(tmp_path, momentum_models()):
        pass
    proc = subprocess.run(
        [sys.executable, "-m", "aibridge.loop", "reconcile", "--symbol", "EURUSD",
         "--journal", str(tmp_path / "journal.sqlite")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "no predict decisions for EURUSD H1" in proc.stderr


@pytest.mark.slow
def test_reconcile_report_logged_to_the_served_run(
    recorded: tuple[Path, EaEmulator], tmp_path: Path
) -> None:
    """--mlflow's function: the report files land in the served version's run (reconcile/)."""
    from mlflow import MlflowClient

    from aibridge.loop.reconcile import log_to_mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("served", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(exp)
    journal, _ = recorded
    data = load_journal(journal, "EURUSD", "H1")
    data.served["model"]["run_id"] = run.info.run_id  # the stand-in's run is not in this store
    report = reconcile(data)
    md = tmp_path / "reconcile.md"
    md.write_text(render_markdown(report))
    assert log_to_mlflow(report, data, [md], uri) == run.info.run_id
    listed = [a.path for a in client.list_artifacts(run.info.run_id, "reconcile")]
    assert listed == ["reconcile/reconcile.md"]
