"""The unmodified MQL4 EA, compiled with g++ against the MT4 stand-in, run bar by bar.

Most cases talk to a *scripted* protocol-v1 server (golden-fixture replies, decisions chosen
per bar) so a fault is injected at a known order; one slow case runs the sample against the
real ``SignalServer`` with a trained, registered model. Every fault the stand-in can inject
(``aibridge.mt4.replay.FAULT_KEYS``) is asserted here through the EA's own behaviour: its
journal, the orders the terminal holds and the trade events the server received.
"""

from __future__ import annotations

import csv
import json
import shutil
import socket
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from aibridge.instruments import load_instrument
from aibridge.paths import sample_data_path

# Every test here runs the whole EA compiled with g++ (cached by content in ~/.cache/aibridge/mt4;
# a cold build is ~10-20 s): `slow`, outside the fast tier.
pytestmark = [
    pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed"),
    pytest.mark.slow,
]

FIXTURES = Path(__file__).parent / "fixtures" / "protocol"
N_BARS = 160
MIN_BARS = 5


@pytest.fixture(scope="module")
def built() -> Any:
    from aibridge.mt4.build import build_ea

    return build_ea()


@pytest.fixture(scope="module")
def short_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first N_BARS bars of the sample, under a name that says EURUSD H1."""
    path = tmp_path_factory.mktemp("csv") / "EURUSD60.csv"
    lines = sample_data_path().read_text(encoding="utf-8").splitlines()[:N_BARS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def times(short_csv: Path) -> list[int]:
    from aibridge.mt4.replay import load_bars

    return [int(t) for t in load_bars(short_csv, load_instrument("EURUSD"))["time"]]


def _free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class ScriptedServer:
    """Protocol v1 REP server: fixture replies; decisions[bar_time] = (action, sl_pts, tp_pts)."""

    def __init__(
        self,
        endpoint: str,
        decisions: dict[int, tuple[str, float, float]],
        risk: dict[str, Any] | None = None,
        heartbeat: dict[str, Any] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.decisions = decisions
        self.requests: list[dict[str, Any]] = []
        self._hb = json.loads((FIXTURES / "heartbeat.json").read_text())["reply"]
        self._hb.update(min_bars=MIN_BARS, utc_offset_s=None, clock_check="unknown")
        self._hb["risk"] = {**self._hb["risk"], **(risk or {})}
        self._hb.update(heartbeat or {})
        self._pr = json.loads((FIXTURES / "predict.json").read_text())["reply"]
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.event_id = 0

    def start(self) -> ScriptedServer:
        import zmq

        self._stop.clear()
        ctx = zmq.Context.instance()
        sock = ctx.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(self.endpoint)
        self._thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self, sock: Any) -> None:
        import zmq

        try:
            while not self._stop.is_set():
                if not sock.poll(20, zmq.POLLIN):
                    continue
                req = json.loads(sock.recv())
                self.requests.append(req)
                sock.send(json.dumps(self.reply(req)).encode())
        finally:
            sock.close(0)

    def reply(self, req: dict[str, Any]) -> dict[str, Any]:
        kind = req["type"]
        if kind == "heartbeat":
            return dict(self._hb, request_id=req["request_id"])
        if kind == "predict":
            bar_time = int(req["candles"][-1][0])
            action, sl_pts, tp_pts = self.decisions.get(bar_time, ("HOLD", 0.0, 0.0))
            rep = dict(self._pr, request_id=req["request_id"], bar_time=bar_time, action=action)
            rep.update(confidence=0.9, p_buy=0.9 if action == "BUY" else 0.05)
            rep.update(p_sell=0.9 if action == "SELL" else 0.05, model_version="3")
            if action == "HOLD":
                rep.update(sl=None, tp=None, sl_points=None, tp_points=None, reason="hold")
            else:
                rep.update(sl_points=sl_pts, tp_points=tp_pts, reason="signal")
            return rep
        self.event_id += 1
        return {
            "protocol_version": 1,
            "request_id": req["request_id"],
            "status": "ok",
            "type": "trade_event",
            "event": req.get("event"),
            "event_id": self.event_id,
        }

    def events(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["type"] == "trade_event"]


def _replay(built: Any, csv_path: Path, work: Path, endpoint: str, **kw: Any) -> Any:
    from aibridge.mt4.replay import run_replay

    inputs = {"InpDryRun": False, "InpRequestTimeoutMs": 300, "InpRetries": 0}
    inputs.update(kw.pop("inputs", {}))
    symbol = csv_path.stem[:6]
    return run_replay(
        csv_path,
        endpoint,
        work,
        inputs=inputs,
        instrument=load_instrument(symbol),
        built=built,
        timeout_s=120,
        **kw,
    )


def _journal(res: Any) -> list[dict[str, str]]:
    assert res.journal_path is not None
    with res.journal_path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _events(rows: list[dict[str, str]], name: str) -> list[dict[str, str]]:
    return [r for r in rows if r["event"] == name]


# --------------------------------------------------------------------------- the runtime

PROBE = Path(__file__).parent / "fixtures" / "mt4" / "RuntimeProbe.mq4"
PROBE_EXPECTED = [
    "input 1 probe",
    "time 2017.04.19 09:00|2017.04.19 09:00:00",
    "clock 7200 3 9",  # TimeCurrent()-TimeGMT() = broker offset; Wednesday; hour
    "market 5 0.00001 5 100000 10 4 1.00 EURUSD",
    "prices 1.07160 1.07165 1.07160 1.07160 1",  # open tick: O=H=L=C, Ask = Bid + spread
    "gv 42.5 no 0.0 4058",
    "txt a\t1\t2.5\ttrue|é→|end",
    "csv x|y|3.0",
    "bin 6 6 héllo",
    "files moved - new deleted gone",
    "strings probe=7/1.00 3 1.23456 5",  # StringLen counts UTF-8 bytes (documented)
    "struct 2017-4-19 3 123 12345678 USD",
    "send_errors -1 131 -1 138 -1 130",  # lot step, requote beyond slippage, SL inside stop level
    "modify 1 0 1 0 130 1",  # unchanged -> ERR_NO_RESULT; SL inside the stop level -> 130
    "partial 1 1 1 | 2 0.06 from #1 1.06960 | 1 0.04 to #2 -0.28 closed",
    "margin short 134 64.30 100",
    "select none -1 0",
    "deinit 1 9999.52 9999.13",
]


@pytest.fixture(scope="module")
def probe() -> Any:
    from aibridge.mt4.build import build_ea

    return build_ea(PROBE)


def test_runtime_semantics_through_an_mql_probe(
    probe: Any, short_csv: Path, tmp_path: Path
) -> None:
    """Files (UTF-16 text, ANSI CSV, binary), global variables, MarketInfo, order rules and
    partial closes as MT4 does them, asserted from MQL4 code compiled like the EA."""
    from aibridge.mt4.replay import run_replay

    res = run_replay(
        short_csv,
        "tcp://127.0.0.1:1",
        tmp_path,
        instrument=load_instrument("EURUSD"),
        built=probe,
        stop_bar=10,
        broker_utc_offset_s=7200,
        faults={"stop_level": 10, "freeze_level": 4},
    )
    lines = res.log_path.read_text(encoding="utf-8").splitlines()
    checks = [line.split("\tCHECK ", 1)[1] for line in lines if "\tCHECK " in line]
    assert checks == PROBE_EXPECTED
    raw = (res.files_dir / "probe" / "t.txt").read_bytes()
    assert raw.startswith(b"\xff\xfe") and raw[2:].decode("utf-16-le").startswith("a\t1\t2.5")
    assert list(res.trades.close_reason) == ["close", "end"]
    assert res.summary["global_variables"] == {"probe_gv": 42.5}


def test_a_critical_runtime_error_stops_the_ea(probe: Any, short_csv: Path, tmp_path: Path) -> None:
    from aibridge.mt4.replay import run_replay

    res = run_replay(
        short_csv,
        "tcp://127.0.0.1:1",
        tmp_path,
        inputs={"InpProbe": 2},
        instrument=load_instrument("EURUSD"),
        built=probe,
        stop_bar=20,
    )
    assert res.returncode == 3
    assert res.summary["fatal"] == "StringSubstr with length 0" and res.summary["last_bar"] == 5
    assert "critical error: StringSubstr with length 0 (bar 5)" in res.log_path.read_text()


def test_expert_remove_ends_the_run_with_ondeinit(
    probe: Any, short_csv: Path, tmp_path: Path
) -> None:
    from aibridge.mt4.replay import run_replay

    res = run_replay(
        short_csv,
        "tcp://127.0.0.1:1",
        tmp_path,
        inputs={"InpProbe": 3},
        instrument=load_instrument("EURUSD"),
        built=probe,
    )
    assert (res.returncode, res.summary["last_bar"], res.summary["deinit_reason"]) == (0, 3, 0)
    assert "CHECK deinit 0 10000.00 10000.00" in res.log_path.read_text()


# --------------------------------------------------------------------------- the loop


def test_scripted_trade_opens_at_the_next_open_and_exits_by_time(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    """BUY decided on bar 20's close -> filled at bar 21's open Ask; time exit after 24 bars."""
    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {times[20]: ("BUY", 5000.0, 5000.0)}).start()
    try:
        res = _replay(built, short_csv, tmp_path, endpoint)
    finally:
        server.stop()
    assert res.summary["init_result"] == 0 and not res.summary["fatal"]
    assert len(res.trades) == 1, res.trades
    t = res.trades.iloc[0]
    assert (t.side, t.open_bar, t.close_bar, t.close_reason) == ("BUY", 21, 45, "close")
    bars = __import__("aibridge.mt4.replay", fromlist=["load_bars"]).load_bars(
        short_csv, load_instrument("EURUSD")
    )
    assert t.open_price == pytest.approx(bars.open[21] + 5 * 1e-5, abs=1e-9)  # Ask = Bid + 5 pts
    assert t.close_price == pytest.approx(bars.open[45], abs=1e-9)  # long closes at Bid
    assert t.commission == pytest.approx(-2 * 3.5 * t.lots)
    assert res.summary["balance"] == pytest.approx(10_000 + t.profit + t.commission)
    kinds = Counter((e["event"], e.get("ticket")) for e in server.events())
    assert kinds == Counter({("filled", int(t.ticket)): 1, ("closed", int(t.ticket)): 1})
    closed = next(e for e in server.events() if e["event"] == "closed")
    assert closed.get("reason") == "time"


def test_opposite_signal_closes_then_reverses_like_the_backtest(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    """BUY on bar 20, SELL on bar 24: at bar 25's open the long closes at Bid (reason signal),
    then the short opens at Bid - the kernel's order (exits, then entries)."""
    endpoint = _free_endpoint()
    decisions = {times[20]: ("BUY", 5000.0, 5000.0), times[24]: ("SELL", 5000.0, 5000.0)}
    server = ScriptedServer(endpoint, decisions).start()
    try:
        res = _replay(built, short_csv, tmp_path, endpoint)
    finally:
        server.stop()
    bars = __import__("aibridge.mt4.replay", fromlist=["load_bars"]).load_bars(
        short_csv, load_instrument("EURUSD")
    )
    trades = res.trades.sort_values("open_bar").reset_index(drop=True)
    assert list(trades.side) == ["BUY", "SELL"], trades
    long, short = trades.iloc[0], trades.iloc[1]
    assert (long.open_bar, long.close_bar, long.close_reason) == (21, 25, "close")
    assert long.close_price == pytest.approx(bars.open[25], abs=1e-9)
    assert short.open_bar == 25 and short.open_price == pytest.approx(bars.open[25], abs=1e-9)
    closed = [e for e in server.events() if e["event"] == "closed"]
    assert (closed[0]["ticket"], closed[0].get("reason")) == (int(long.ticket), "signal")


def test_instrument_mismatch_refuses_entries(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    """A model trained on a 3-digit quote (another broker's specs): the EA refuses to trade,
    says why in the journal; the same run with the check off trades."""
    endpoint = _free_endpoint()
    other = {"instrument": {"digits": 3, "point": 0.001, "tick_size": 0.001, "contract_size": 1e5}}
    decisions = {times[20]: ("BUY", 5000.0, 5000.0)}
    server = ScriptedServer(endpoint, decisions, heartbeat=other).start()
    try:
        res = _replay(built, short_csv, tmp_path / "on", endpoint)
        rows = _journal(res)
        off = _replay(
            built, short_csv, tmp_path / "off", endpoint, inputs={"InpCheckInstrument": False}
        )
    finally:
        server.stop()
    assert len(res.trades) == 0 and res.summary["counts"].get("orders_opened", 0) == 0
    mismatch = _events(rows, "instrument_mismatch")
    assert mismatch and "digits 5 vs model 3" in mismatch[0]["detail"]
    blocks = [
        r for r in _events(rows, "risk_block") if r["detail"].startswith("instrument_mismatch")
    ]
    assert len(blocks) == 1
    assert len(off.trades) == 1


def test_spread_limit_compares_the_models_points(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    """A 4-digit model (point 0.0001) with max_spread_points 2 on a 5-digit broker whose spread
    is 5 broker points = 0.5 model points: the spread is within the limit (comparing the raw
    5 with 2 would block every entry)."""
    endpoint = _free_endpoint()
    hb = {"point": 0.0001, "digits": 4}
    decisions = {times[20]: ("BUY", 50.0, 50.0)}  # model points: 50 x 0.0001 = 0.0050
    server = ScriptedServer(endpoint, decisions, risk={"max_spread_points": 2.0}, heartbeat=hb)
    server.start()
    try:
        res = _replay(built, short_csv, tmp_path, endpoint, inputs={"InpCheckInstrument": False})
    finally:
        server.stop()
    rows = _journal(res)
    assert not [r for r in _events(rows, "risk_block") if "spread_too_wide" in r["detail"]]
    assert len(res.trades) == 1
    t = res.trades.iloc[0]
    assert t.open_price - t.sl == pytest.approx(0.0050, abs=1e-9)


def _expected_exit(bars: Any, i0: int, side: str, sl: float, tp: float) -> tuple[int, float, str]:
    """core.py step 3 for one position (gap at the open only after the entry bar, stop first)."""
    sp = 5 * 1e-5
    for i in range(i0, len(bars)):
        o, h, lo = bars.open[i], bars.high[i], bars.low[i]
        entry = i == i0
        if side == "BUY":
            if not entry and o <= sl:
                return i, o, "sl"
            if not entry and o >= tp:
                return i, o, "tp"
            if lo <= sl:
                return i, sl, "sl"
            if h >= tp:
                return i, tp, "tp"
        else:
            oa = o + sp
            if not entry and oa >= sl:
                return i, oa, "sl"
            if not entry and oa <= tp:
                return i, oa, "tp"
            if h + sp >= sl:
                return i, sl, "sl"
            if lo + sp <= tp:
                return i, tp, "tp"
    raise AssertionError("no exit")


@pytest.mark.parametrize(
    ("side", "sl_pts", "tp_pts"), [("SELL", 3000.0, 40.0), ("BUY", 45.0, 3000.0)]
)
def test_stops_fill_intrabar_like_the_backtest(
    built: Any,
    short_csv: Path,
    times: list[int],
    tmp_path: Path,
    side: str,
    sl_pts: float,
    tp_pts: float,
) -> None:
    """SL/TP inside the bar on the closing side, exactly as the kernel; " [tp]"/" [sl]" comment."""
    from aibridge.mt4.replay import load_bars

    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {times[30]: (side, sl_pts, tp_pts)}).start()
    try:
        res = _replay(built, short_csv, tmp_path, endpoint, stop_bar=80)
    finally:
        server.stop()
    t = res.trades.iloc[0]
    bars = load_bars(short_csv, load_instrument("EURUSD"))
    bar, price, reason = _expected_exit(bars, 31, side, t.sl, t.tp)
    assert (t.side, t.open_bar, t.close_bar, t.close_reason) == (side, 31, bar, reason)
    assert t.close_price == pytest.approx(price, abs=1e-9)
    assert t.comment.endswith(f" [{reason}]")
    closed = next(e for e in server.events() if e["event"] == "closed")
    assert closed.get("reason") == reason


def test_money_of_a_pair_whose_base_is_the_account_currency(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    """USDJPY on a USD account: tick value = contract x tick / price, at the exit price."""
    spec = load_instrument("USDJPY")
    jpy = tmp_path / "USDJPY60.csv"
    rows = []
    for line in short_csv.read_text().splitlines():
        d, t, *prices, v = line.split(",")
        rows.append(",".join([d, t, *(f"{float(x) * 140:.3f}" for x in prices), v]))
    jpy.write_text("\n".join(rows) + "\n")
    endpoint = _free_endpoint()
    hb = {"digits": 3, "point": 0.001, "instrument": None}
    server = ScriptedServer(endpoint, {times[20]: ("SELL", 500.0, 500.0)}, heartbeat=hb).start()
    try:
        res = _replay(built, jpy, tmp_path / "run", endpoint, stop_bar=60)
    finally:
        server.stop()
    t = res.trades.iloc[0]
    assert (t.side, t.open_bar) == ("SELL", 21)
    tv = spec.tick_value_at(t.close_price)
    expected = -(t.close_price - t.open_price) / spec.tick * tv * t.lots
    assert t.profit == pytest.approx(expected, rel=1e-12)
    assert t.commission == pytest.approx(-2 * spec.commission_per_lot_per_side * t.lots)
    assert res.summary["balance"] == pytest.approx(10_000 + t.profit + t.commission)


def test_swap_is_charged_per_night_like_the_kernel(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    from aibridge.backtest.core import _nights_weight

    spec = load_instrument("EURUSD")
    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {times[20]: ("BUY", 5000.0, 5000.0)}).start()
    try:
        res = _replay(built, short_csv, tmp_path, endpoint, stop_bar=60, swap=True)
    finally:
        server.stop()
    t = res.trades.iloc[0]
    nights = _nights_weight.py_func(
        times[21] // 86400, times[45] // 86400, spec.triple_swap_weekday
    )
    assert nights >= 1
    assert t.swap == pytest.approx(nights * spec.swap_long_points * spec.point / spec.tick * t.lots)
    assert res.summary["balance"] == pytest.approx(10_000 + t.profit + t.commission + t.swap)


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("codes", [(138, 136), (135, 129)])
def test_requote_and_off_quotes_then_success(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path, codes: tuple[int, int]
) -> None:
    """Requote / off quotes / price changed / invalid price: retried with a fresh quote."""
    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {times[20]: ("BUY", 5000.0, 5000.0)}).start()
    try:
        res = _replay(
            built,
            short_csv,
            tmp_path,
            endpoint,
            stop_bar=30,
            faults={"order_send": {1: codes[0], 2: codes[1]}},
        )
    finally:
        server.stop()
    counts = res.summary["counts"]
    assert counts["order_send_calls"] == 3 and counts["orders_opened"] == 1
    assert res.summary["order_send_errors"] == {str(codes[0]): 1, str(codes[1]): 1}
    rows = _journal(res)
    assert [int(r["error_code"]) for r in _events(rows, "order_error")][:2] == list(codes)
    assert len(_events(rows, "order_result")) == 1
    assert [e["event"] for e in server.events()] == ["filled"]


def test_trade_context_busy_is_waited_out(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {times[20]: ("SELL", 5000.0, 5000.0)}).start()
    try:
        res = _replay(
            built,
            short_csv,
            tmp_path,
            endpoint,
            stop_bar=30,
            faults={"context_busy": {"calls": 2, "from_bar": 21}},
        )
    finally:
        server.stop()
    assert res.summary["counts"]["context_busy_injected"] == 2
    assert res.summary["counts"]["orders_opened"] == 1
    rows = _journal(res)
    assert any(int(r["error_code"]) == 146 for r in rows), "the busy context is journaled"
    assert [e["event"] for e in server.events()] == ["filled"]


def test_trade_timeout_but_the_order_opened_is_found_not_doubled(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {times[20]: ("BUY", 5000.0, 5000.0)}).start()
    try:
        res = _replay(
            built,
            short_csv,
            tmp_path,
            endpoint,
            stop_bar=30,
            faults={"order_send_timeout_opened": [1]},
        )
    finally:
        server.stop()
    counts = res.summary["counts"]
    assert counts["orders_opened"] == 1 and counts["order_send_calls"] == 1, counts
    assert res.summary["order_send_errors"] == {"128": 1}
    rows = _journal(res)
    assert _events(rows, "order_found"), "the EA looked for the order by its comment"
    events = server.events()
    assert [e["event"] for e in events] == ["filled"]
    assert events[0]["ticket"] == int(res.trades.ticket.iloc[0])


def test_ecn_stops_that_cannot_be_set_close_the_position(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {times[20]: ("BUY", 300.0, 600.0)}).start()
    try:
        res = _replay(
            built,
            short_csv,
            tmp_path,
            endpoint,
            stop_bar=30,
            inputs={"InpStopsAfterFill": True},
            faults={"order_modify": {1: 130, 2: 145, 3: 130, 4: 130, 5: 130}},
        )
    finally:
        server.stop()
    assert res.summary["counts"]["order_modify_calls"] >= 1
    t = res.trades.iloc[0]
    assert t.sl == 0 and t.close_bar == t.open_bar == 21, "closed unprotected on the fill bar"
    closed = [e for e in server.events() if e["event"] == "closed"]
    assert closed and closed[0].get("reason") == "unprotected"


def test_ecn_stops_set_after_a_retry(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {times[20]: ("BUY", 300.0, 600.0)}).start()
    try:
        res = _replay(
            built,
            short_csv,
            tmp_path,
            endpoint,
            stop_bar=22,
            inputs={"InpStopsAfterFill": True},
            faults={"order_modify": {1: 130, 2: 145}},
        )
    finally:
        server.stop()
    assert res.summary["counts"]["orders_modified"] == 1
    t = res.trades.iloc[0]
    assert t.sl > 0 and t.tp > 0 and t.close_reason == "end"
    modified = [e for e in server.events() if e["event"] == "modified"]
    assert modified and modified[-1].get("sl") == pytest.approx(t.sl)


def test_stop_and_freeze_levels_widen_the_stops(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {times[20]: ("BUY", 20.0, 20.0)}).start()
    try:
        res = _replay(
            built,
            short_csv,
            tmp_path,
            endpoint,
            stop_bar=22,
            faults={"stop_level": 40, "freeze_level": 10},
        )
    finally:
        server.stop()
    assert res.summary["order_send_errors"] == {}, "no 130: SL/TP widened to the stop level"
    t = res.trades.iloc[0]
    bid = t.open_price - 5e-5
    assert bid - t.sl >= 40e-5 - 1e-9 and t.tp - bid >= 40e-5 - 1e-9


def test_autotrading_off_and_dlls_not_allowed(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {times[20]: ("BUY", 5000.0, 5000.0)}).start()
    try:
        off = _replay(
            built, short_csv, tmp_path / "a", endpoint, stop_bar=25, faults={"trade_allowed": False}
        )
        no_dll = _replay(
            built, short_csv, tmp_path / "b", endpoint, stop_bar=25, faults={"dlls_allowed": False}
        )
    finally:
        server.stop()
    assert off.trades.empty and off.summary["counts"].get("order_send_calls", 0) == 0
    assert [r for r in _events(_journal(off), "risk_block") if "trade_not_allowed" in r["detail"]]
    assert (no_dll.summary["init_result"], no_dll.summary["deinit_reason"]) == (1, 8)
    assert no_dll.summary["counts"].get("ontick_calls", 0) == 0


def test_server_down_at_start_then_up(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {times[15]: ("BUY", 5000.0, 5000.0)})
    try:
        res = _replay(
            built,
            short_csv,
            tmp_path,
            endpoint,
            stop_bar=25,
            inputs={"InpRequestTimeoutMs": 100},
            faults={"pause": {10: "start_server"}},
            on_pause=lambda tag, bar: server.start(),
        )
    finally:
        server.stop()
    assert res.summary["init_result"] == 0, "OnInit succeeds without a server"
    rows = _journal(res)
    assert _events(rows, "heartbeat_failed"), "the missing server is journaled"
    assert len(res.trades) == 1 and res.trades.open_bar.iloc[0] == 16


def test_server_killed_and_restarted_mid_run_loses_no_event(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    """The time exit happens while the server is down: the closed event is sent later."""
    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {times[20]: ("BUY", 5000.0, 5000.0)}).start()

    def hook(tag: str, bar: int) -> None:
        (server.stop if tag == "kill" else server.start)()

    try:
        res = _replay(
            built,
            short_csv,
            tmp_path,
            endpoint,
            stop_bar=70,
            inputs={"InpRequestTimeoutMs": 100},
            faults={"pause": {40: "kill", 50: "restart"}},
            on_pause=hook,
        )
    finally:
        server.stop()
    t = res.trades.iloc[0]
    assert t.close_bar == 45
    events = server.events()
    assert Counter(e["event"] for e in events) == Counter({"filled": 1, "closed": 1})
    assert len({e["request_id"] for e in events}) == len(events)


def test_ea_restart_mid_run_keeps_positions_and_events(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    """Stop after bar 30 with a position open; a fresh EA continues at bar 31 and closes it."""
    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {times[20]: ("BUY", 5000.0, 5000.0)}).start()
    state = tmp_path / "terminal.state"
    try:
        first = _replay(built, short_csv, tmp_path, endpoint, stop_bar=30, state_out=state)
        assert first.summary["state_saved"] and first.summary["open_orders"] == 1
        second = _replay(built, short_csv, tmp_path, endpoint, stop_bar=70, state_in=state)
    finally:
        server.stop()
    assert second.summary["first_bar"] == 31
    assert len(second.trades) == 1
    t = second.trades.iloc[0]
    assert (t.open_bar, t.close_bar) == (21, 45)
    # the server stores a request id once: what counts is one id per (ticket, event)
    unique = {e["request_id"]: e for e in server.events()}
    assert Counter((e["event"], e.get("ticket")) for e in unique.values()) == Counter(
        {("filled", int(t.ticket)): 1, ("closed", int(t.ticket)): 1}
    )
    # the restarted EA reports the position it found in its heartbeats (reconciliation)
    beats = [r for r in server.requests if r["type"] == "heartbeat"]
    restarted = [b for b in beats if b["positions"]]
    assert restarted and restarted[-1]["positions"][0]["ticket"] == int(t.ticket)


def test_event_unsent_at_an_ea_restart_is_sent_after_it(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    """Server down when the position closes; the EA restarts before the server is back: the
    closed event survives the restart (kept in the EA's files) and reaches the server once."""
    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {times[20]: ("BUY", 5000.0, 5000.0)}).start()
    state = tmp_path / "terminal.state"
    fast = {"InpRequestTimeoutMs": 100}
    try:
        _replay(
            built,
            short_csv,
            tmp_path,
            endpoint,
            inputs=fast,
            stop_bar=48,
            state_out=state,
            faults={"pause": {40: "kill"}},
            on_pause=lambda tag, bar: server.stop(),
        )
        assert [e["event"] for e in server.events()] == ["filled"]
        second = _replay(
            built,
            short_csv,
            tmp_path,
            endpoint,
            inputs=fast,
            stop_bar=60,
            state_in=state,
            faults={"pause": {52: "restart"}},
            on_pause=lambda tag, bar: server.start(),
        )
    finally:
        server.stop()
    assert second.trades.close_bar.iloc[0] == 45
    unique = {e["request_id"]: e for e in server.events()}
    assert Counter(e["event"] for e in unique.values()) == Counter({"filled": 1, "closed": 1})


def test_daily_drawdown_halt_until_the_next_broker_day(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    """A stopped-out trade breaches a 0.5% daily limit: the same day's next signal is vetoed,
    the first signal after the broker-day change trades again."""
    from aibridge.mt4.replay import load_bars

    bars = load_bars(short_csv, load_instrument("EURUSD"))
    day = [t // 86400 for t in times]
    for e1 in range(10, N_BARS - 40):
        ask = bars.open[e1] + 5e-5
        bar, _, reason = _expected_exit(bars, e1, "BUY", round(ask - 20e-5, 5), ask + 0.03)
        if reason == "sl" and bar <= e1 + 1 and day[e1 + 3] == day[e1]:
            break
    d0 = next(i for i in range(e1, N_BARS) if day[i] != day[e1])
    decisions = {
        times[e1 - 1]: ("BUY", 20.0, 3000.0),
        times[e1 + 2]: ("BUY", 3000.0, 3000.0),  # same broker day: vetoed
        times[d0]: ("SELL", 3000.0, 3000.0),  # next day: trades
    }
    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, decisions, risk={"max_daily_drawdown_pct": 0.5}).start()
    try:
        res = _replay(built, short_csv, tmp_path, endpoint, stop_bar=d0 + 3)
    finally:
        server.stop()
    assert list(zip(res.trades.open_bar, res.trades.close_reason, strict=True))[:2] == [
        (e1, "sl"),
        (d0 + 1, "end"),
    ]
    rows = _journal(res)
    blocks = [r for r in _events(rows, "risk_block") if "daily_drawdown" in r["detail"]]
    assert blocks and all(
        r["time_server"].startswith(blocks[0]["time_server"][:10]) for r in blocks
    )
    assert _events(rows, "daily_drawdown_halt")


# --------------------------------------------------------------------------- real server


def test_sample_against_the_real_server(
    built: Any, trained_model_store: Any, tmp_path: Path
) -> None:
    from aibridge.mt4.replay import run_replay
    from tests.server_fixtures import real_models, running_server

    models = real_models(
        trained_model_store.tracking_uri, [trained_model_store.model_uri], tmp_path / "cache"
    )
    with running_server(tmp_path, models) as (_server, endpoint):
        res = run_replay(
            sample_data_path(),
            endpoint,
            tmp_path / "run",
            inputs={"InpDryRun": False},
            instrument=load_instrument("EURUSD"),
            built=built,
            stop_bar=1500,
        )
    assert res.summary["init_result"] == 0 and not res.summary["fatal"]
    rows = _journal(res)
    decisions = _events(rows, "decision")
    assert len(decisions) > 1400, "one decision per closed bar once min_bars are there"
    assert not _events(rows, "predict_failed") and not _events(rows, "heartbeat_failed")
    assert res.summary["counts"]["ticks"] == 2 * 1501 + 1


# --------------------------------------------------------------------------- CLI


def test_ea_replay_command_writes_the_outputs(
    built: Any, short_csv: Path, times: list[int], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from aibridge.cli import app

    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {times[20]: ("SELL", 5000.0, 5000.0)}).start()
    out = tmp_path / "report"
    try:
        res = CliRunner().invoke(
            app,
            [
                "ea-replay",
                "--csv",
                str(short_csv),
                "--endpoint",
                endpoint,
                "--out",
                str(out),
                "--stop-bar",
                "40",
                "--input",
                "InpRetries=0",
            ],
        )
    finally:
        server.stop()
    assert res.exit_code == 0, res.output
    assert "1 trade(s)" in res.output
    assert {"trades.csv", "summary.json", "ea.log", "aibridge_EURUSD_H1_20261125.csv"} <= {
        p.name for p in out.iterdir()
    }
    assert json.loads((out / "summary.json").read_text())["last_bar"] == 40


def test_ea_replay_command_fails_in_one_line(
    short_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from aibridge.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["ea-replay", "--csv", str(tmp_path / "none.csv")])
    assert res.exit_code == 1 and "none.csv not found" in " ".join(res.output.split())
    assert "Traceback" not in res.output
    dead = _free_endpoint()
    res = runner.invoke(
        app,
        ["ea-replay", "--csv", str(short_csv), "--endpoint", dead, "--connect-timeout-ms", "300"],
    )
    assert res.exit_code == 1 and "no signal server answers" in res.output
    endpoint = _free_endpoint()
    server = ScriptedServer(endpoint, {}).start()
    monkeypatch.setattr("aibridge.mt4.build.shutil.which", lambda *_: None)
    try:
        res = runner.invoke(
            app,
            ["ea-replay", "--csv", str(short_csv), "--endpoint", endpoint, "--out", str(tmp_path)],
        )
    finally:
        server.stop()
    assert res.exit_code == 1 and "g++ not found" in res.output, res.output
