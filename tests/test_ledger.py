"""Ledger reconciliation, the broker-clock check and the heartbeat's new blocks, end to end.

A real server on a loopback port, a real SQLite journal, the real metrics/status HTTP server and
the real CLI. The served model is a small stand-in with the attributes the server reads (the
ledger and the clock check never call the model); decisions with the trained model are tested
in ``test_server.py``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from aibridge.protocol import MAX_POSITIONS, HeartbeatReply, parse_reply
from aibridge.server.app import SignalServer
from aibridge.server.commands import serve_app
from aibridge.server.models import ModelSet
from aibridge.serving_model import Decision, ModelInfo
from tests.protocol_fixtures import ACCOUNT, MAGIC, load_fixtures, sample_candles
from tests.server_fixtures import ReqClient, running_server

FIXTURES = load_fixtures()
MIN_BARS = 41


class StandInModel:
    """The attributes :class:`aibridge.bundle.ServingModel` offers the server; HOLDs always."""

    def __init__(self, utc_offset_s: int | None, instrument: bool = True) -> None:
        self.info = ModelInfo("aibridge-EURUSD-H1", "3", None, "run", "t", "md5:x", "EURUSD", "H1")
        self.min_bars, self.digits, self.point = MIN_BARS, 5, 1e-5
        self.min_confidence, self.sl_atr_mult, self.tp_atr_mult = 0.45, 1.5, 2.0
        self.broker_utc_offset_s = utc_offset_s
        if instrument:
            self.tick_size, self.contract_size = 1e-5, 100_000.0

    def decide(self, *columns: np.ndarray, spread_points: float | None = None) -> Decision:
        probs = {"BUY": 0.2, "SELL": 0.2, "HOLD": 0.6}
        return Decision("HOLD", 0.6, probs, None, None, None, None, "model_hold")


def stand_in_models(utc_offset_s: int | None = 7200, instrument: bool = True) -> ModelSet:
    model = StandInModel(utc_offset_s, instrument)
    return ModelSet(
        ["models:/aibridge-EURUSD-H1@champion"],
        resolver=lambda uri: model.info,
        loader=lambda uri: model,
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[SignalServer, str]]:
    with running_server(tmp_path, stand_in_models()) as (server, ep):
        yield server, ep


def position(ticket: int, sl: float | None = 1.069, **extra: Any) -> dict[str, Any]:
    return {
        "ticket": ticket,
        "side": "BUY",
        "lots": 0.1,
        "open_price": 1.072,
        "sl": sl,
        "tp": 1.077,
        "open_time": 1_497_574_800,
    } | extra


def heartbeat(positions: list[dict[str, Any]] | None, **extra: Any) -> dict[str, Any]:
    msg = {"type": "heartbeat", "symbol": "EURUSD", "timeframe": "H1", "account": ACCOUNT}
    msg |= {"magic": MAGIC, "utc_offset_s": 7200}
    if positions is not None:
        msg["positions"] = positions
    return msg | extra


def event(kind: str, ticket: int, seq: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "type": "trade_event",
        "request_id": f"te-{ACCOUNT}-{ticket}-{kind}-{seq}",
        "event": kind,
        "symbol": "EURUSD",
        "ticket": ticket,
        "magic": MAGIC,
        "account": ACCOUNT,
        "seq": seq,
    } | extra


def reconcile(c: ReqClient, positions: list[dict[str, Any]], **extra: Any) -> dict[str, int]:
    reply = c.call(heartbeat(positions, **extra))
    assert reply["status"] == "ok", reply
    HeartbeatReply.model_validate(reply)
    return reply["reconcile"]


def counts(orphans: int = 0, unprotected: int = 0, missing_closes: int = 0) -> dict[str, int]:
    return {"orphans": orphans, "unprotected": unprotected, "missing_closes": missing_closes}


def _get(server: SignalServer, path: str) -> bytes:
    assert server.http is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http.port}{path}", timeout=5) as r:
        return bytes(r.read())


def _gauge(metrics: str, name: str, magic: int = MAGIC) -> float:
    prefix = f'{name}{{account="{ACCOUNT}",magic="{magic}",symbol="EURUSD"}} '
    [line] = [x for x in metrics.splitlines() if x.startswith(prefix)]
    return float(line.split()[-1])


def test_orphan_unprotected_missing_close_and_partial_close(served, tmp_path: Path) -> None:
    server, ep = served
    with ReqClient(ep) as c:
        assert c.call(heartbeat(None))["reconcile"] is None  # no positions sent: no verdict
        assert reconcile(c, []) == counts()
        assert reconcile(c, [position(1)]) == counts(orphans=1)  # filled event never arrived
        assert c.call(event("filled", 1))["status"] == "ok"
        assert reconcile(c, [position(1)]) == counts()
        c.call(event("filled", 2))
        assert reconcile(c, [position(1), position(2, sl=None)]) == counts(unprotected=1)
        assert reconcile(c, [position(1), position(2, sl=0.0)]) == counts(unprotected=1)
        metrics = _get(server, "/metrics").decode()
        assert _gauge(metrics, "aibridge_ledger_unprotected_positions") == 1
        # ticket 2 closed by the broker (stop hit) but its closed event is lost: one absence
        # is normal (the event may be on its way), the second one is a missing close
        assert reconcile(c, [position(1)]) == counts()
        assert reconcile(c, [position(1)]) == counts(missing_closes=1)
        metrics = _get(server, "/metrics").decode()
        assert _gauge(metrics, "aibridge_ledger_missing_closes") == 1
        assert _gauge(metrics, "aibridge_ledger_unprotected_positions") == 0
        status = json.loads(_get(server, "/status.json"))
        [row] = status["ledger"]
        assert (row["account"], row["magic"], row["symbol"]) == (ACCOUNT, MAGIC, "EURUSD")
        assert row["detail"]["missing_closes"] == [2] and row["ledger_open"] == 2
        page = _get(server, "/status").decode()
        assert 'id="ledger-status" class="unhealthy">1 finding(s)' in page
        c.call(event("closed", 2, reason="sl", price=1.069, profit=-3.1))
        assert reconcile(c, [position(1)]) == counts()
        # partial close: ticket 1 is closed, MT4 gives the remaining lots ticket 3
        c.call(event("closed", 1, reason="signal", lots=0.05, remainder_ticket=3))
        assert reconcile(c, [position(3, lots=0.05)]) == counts()
        # closed on the ledger but still held by the EA: not the ledger's position
        assert reconcile(c, [position(3, lots=0.05), position(1)]) == counts(orphans=1)
        assert reconcile(c, [position(3, lots=0.05)]) == counts()
    server.journal.flush()
    with sqlite3.connect(tmp_path / "journal.sqlite") as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM reconcile ORDER BY id")]
        closed = dict(conn.execute("SELECT * FROM trade_events WHERE ticket = 1 AND "
                                   "event = 'closed'").fetchone())  # fmt: skip
    # one row per change of findings, not one per heartbeat
    assert [(r["orphans"], r["unprotected"], r["missing_closes"]) for r in rows] == [
        (0, 0, 0),
        (1, 0, 0),
        (0, 0, 0),
        (0, 1, 0),
        (0, 0, 0),
        (0, 0, 1),
        (0, 0, 0),
        (1, 0, 0),
        (0, 0, 0),
    ]
    assert json.loads(rows[5]["detail"])["missing_closes"] == [2]
    assert (closed["account"], closed["reason"], closed["seq"], closed["remainder_ticket"]) == (
        ACCOUNT,
        "signal",
        1,
        3,
    )
    res = CliRunner().invoke(
        serve_app,
        ["journal", "tail", "--path", str(tmp_path / "journal.sqlite"), "--table", "reconcile",
         "-n", "4", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert '"missing_closes": 1' in res.output or '"missing_closes":1' in res.output


def test_ledger_is_kept_per_account_magic_and_symbol(served) -> None:
    _, ep = served
    with ReqClient(ep) as c:
        c.call(event("filled", 7))
        assert reconcile(c, [position(7)]) == counts()
        assert reconcile(c, [position(7)], magic=MAGIC + 1) == counts(orphans=1)
        assert reconcile(c, [position(7)], account=ACCOUNT + 1) == counts(orphans=1)
        # the other EAs' absences do not count against this one
        assert reconcile(c, [position(7)]) == counts()


def test_ledger_survives_a_restart(tmp_path: Path) -> None:
    with running_server(tmp_path, stand_in_models()) as (_, ep), ReqClient(ep) as c:
        c.call(event("filled", 11))
        c.call(event("filled", 12))
        c.call(event("closed", 12, reason="time"))
    with running_server(tmp_path, stand_in_models()) as (_, ep), ReqClient(ep) as c:
        assert reconcile(c, [position(11)]) == counts()
        assert reconcile(c, [position(11), position(12)]) == counts(orphans=1)


def test_positions_are_validated(served) -> None:
    _, ep = served
    with ReqClient(ep) as c:
        too_many = c.call(heartbeat([position(i) for i in range(MAX_POSITIONS + 1)]))
        assert too_many["code"] == "schema" and "positions" in too_many["message"]
        for bad in (position(1, side="LONG"), position(1, lots=0), position(1, extra=1),
                    position(1) | {"ticket": 1.5}):  # fmt: skip
            assert c.call(heartbeat([bad]))["code"] == "schema", bad
        no_symbol = c.call({"type": "heartbeat", "positions": [position(1)]})
        assert no_symbol["code"] == "schema" and "symbol" in no_symbol["message"]
        assert c.call(heartbeat([position(i) for i in range(MAX_POSITIONS)]))["status"] == "ok"


def test_heartbeat_carries_exit_policy_instrument_and_clock(served) -> None:
    _, ep = served
    with ReqClient(ep) as c:
        hb = c.call(heartbeat(None))
        summer = c.call(heartbeat(None, utc_offset_s=10800))
        lagging = c.call(heartbeat(None, utc_offset_s=7200 - 95))  # last quote 95 s old
        weekend = c.call(heartbeat(None, utc_offset_s=7200 + 2 * 86400))  # Friday's quote
        silent = c.call({"type": "heartbeat", "symbol": "EURUSD", "timeframe": "H1"})
    reply = HeartbeatReply.model_validate(hb)
    assert reply.risk is not None and reply.risk.close_on_opposite is True
    assert reply.risk.max_hold_bars == 24
    assert reply.instrument is not None
    assert reply.instrument.model_dump() == {
        "digits": 5,
        "point": 1e-5,
        "tick_size": 1e-5,
        "contract_size": 100_000.0,
    }
    assert (hb["utc_offset_s"], hb["clock_check"]) == (7200, "ok")
    assert summer["clock_check"] == "mismatch"
    assert lagging["clock_check"] == "ok"
    assert weekend["clock_check"] == "unknown" and silent["clock_check"] == "unknown"
    assert [k for k in hb] == [k for k in FIXTURES["heartbeat"]["reply"]]


def test_model_without_clock_or_instrument_is_unknown_and_null(tmp_path: Path) -> None:
    models = stand_in_models(utc_offset_s=None, instrument=False)
    with running_server(tmp_path, models, clock_mismatch="refuse") as (_, ep), ReqClient(ep) as c:
        hb = c.call(heartbeat(None, utc_offset_s=-18000))
        p = c.call(_predict(utc_offset_s=-18000))
    assert (hb["utc_offset_s"], hb["clock_check"]) == (None, "unknown")
    assert hb["instrument"] == {
        "digits": 5,
        "point": 1e-5,
        "tick_size": None,
        "contract_size": None,
    }
    assert p["status"] == "ok" and p["action"] == "HOLD"


def _predict(**extra: Any) -> dict[str, Any]:
    msg = {"type": "predict", "request_id": "p-1", "symbol": "EURUSD", "timeframe": "H1"}
    return msg | {"candles": sample_candles(MIN_BARS)} | extra


def test_clock_mismatch_warns_and_answers_by_default(served, caplog) -> None:
    server, ep = served
    caplog.set_level(logging.WARNING, logger="aibridge.server.handler")
    with ReqClient(ep) as c:
        # TimeCurrent() lags by a different number of seconds each time: still one warning
        replies = [c.call(_predict(utc_offset_s=10800 - lag)) for lag in (0, 7, 61)]
        ok = c.call(_predict(utc_offset_s=7200))
        none = c.call(_predict())
    assert [r["action"] for r in replies] == ["HOLD"] * 3
    assert ok["status"] == none["status"] == "ok"
    warnings = [r for r in caplog.records if "trained on UTC+7200 s" in r.getMessage()]
    assert len(warnings) == 1  # logged once per offset pair, counted every time
    metrics = _get(server, "/metrics").decode()
    line = 'aibridge_clock_mismatches_total{symbol="EURUSD",timeframe="H1",type="predict"} 3.0'
    assert line in metrics


def test_clock_mismatch_refused_when_configured(tmp_path: Path) -> None:
    fx = FIXTURES["error_clock_mismatch"]
    models = stand_in_models()
    with running_server(tmp_path, models, clock_mismatch="refuse") as (_, ep), ReqClient(ep) as c:
        err = c.call(fx["request"])
        hb = c.call(heartbeat(None, utc_offset_s=10800))
        ok = c.call(_predict(utc_offset_s=7200))
    parse_reply(json.dumps(err).encode())
    assert list(err) == list(fx["reply"])
    for key in fx["compare"]:
        assert err[key] == fx["reply"][key], key
    assert "action" not in err
    assert hb["status"] == "ok" and hb["clock_check"] == "mismatch"  # heartbeats still answer
    assert ok["status"] == "ok"


def test_serve_cli_validates_clock_mismatch(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        serve_app, ["serve", "--clock-mismatch", "sometimes", "--no-metrics",
                    "--journal", str(tmp_path / "j.sqlite")],
    )  # fmt: skip
    assert res.exit_code == 1
    assert "clock_mismatch" in res.output


def test_served_risk_block_carries_the_exit_policy_from_conf() -> None:
    from aibridge.risk import load_risk_settings
    from aibridge.server.run import risk_block
    from aibridge.server.settings import load_serve_settings

    risk, conf = risk_block(), load_risk_settings()
    assert (risk["close_on_opposite"], risk["max_hold_bars"]) == (
        conf.close_on_opposite,
        conf.max_hold_bars,
    )
    assert load_serve_settings().clock_mismatch == "warn"
    assert load_serve_settings({"clock_mismatch": "refuse"}).clock_mismatch == "refuse"
