"""EA emulator: drives the signal server exactly as the MT4 Expert Advisor does.

* heartbeat on start and then on a wall-clock timer (the EA's ``OnTimer``); a version change
  is logged as ``model v3 → v4``; no predict is sent before a heartbeat succeeded (the EA
  needs ``min_bars`` from it and refuses to trade without one);
* per replayed bar: the last ``min_bars`` closed candles, built by string concatenation with
  ``Digits`` decimals like the EA's ``DoubleToString``;
* zguide Lazy Pirate: poll for the reply for ``timeout_ms``; on timeout close the REQ socket
  (linger 0), open a new one and resend, ``retries`` times; then skip the bar with a reason;
* simulated orders through :mod:`aibridge.risk` (the EA's rules), reported as ``trade_event``,
  on the one trade model of the backtest kernel (:mod:`aibridge.backtest.core`): per bar, at
  the open the day change and the drawdown check, then the served exit policy for the decision
  of the bar that just closed (``risk.close_on_opposite``, ``risk.max_hold_bars`` from the
  heartbeat; conf/risk when an older server does not send them), then the entry; inside the
  bar SL/TP (stop first, gaps at the open, on the entry bar too); at the close the drawdown
  check and the predict for the next bar. ``EaEmulator.trade_table()`` is the trade list
  :func:`aibridge.backtest.engine.run_backtest` makes on the same bars and decisions.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import zmq
from rich.console import Console

from aibridge import risk
from aibridge.instruments import InstrumentSpec, load_instrument

log = logging.getLogger("aibridge.ea_sim")
MAGIC = 20261125  # the EA's default InpMagic


# --------------------------------------------------------------------------- transport


class LazyPirateClient:
    """REQ client that never blocks longer than ``timeout_ms × (retries + 1)``."""

    def __init__(
        self,
        endpoint: str,
        timeout_ms: int = 1500,
        retries: int = 2,
        server_public_key: bytes | None = None,
        ctx: zmq.Context | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.server_public_key = server_public_key
        self.ctx = ctx or zmq.Context.instance()
        self.reconnects = 0
        self.timeouts = 0
        self.sock = self._open()

    def _open(self) -> zmq.Socket:
        sock = self.ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        if self.server_public_key is not None:
            public, secret = zmq.curve_keypair()
            sock.curve_serverkey = self.server_public_key
            sock.curve_publickey = public
            sock.curve_secretkey = secret
        sock.connect(self.endpoint)
        return sock

    def _reopen(self) -> None:
        self.sock.close(linger=0)
        self.sock = self._open()
        self.reconnects += 1

    def request(self, payload: bytes) -> tuple[bytes | None, int, float]:
        """Send and wait; returns (reply or None, attempts used, seconds of the last attempt)."""
        for attempt in range(1, self.retries + 2):
            t0 = time.perf_counter()
            try:
                self.sock.send(payload, zmq.NOBLOCK)
            except zmq.ZMQError:
                self._reopen()  # not connected yet / EFSM: fresh socket, count as an attempt
                continue
            if self.sock.poll(self.timeout_ms, zmq.POLLIN):
                reply = self.sock.recv()
                return reply, attempt, time.perf_counter() - t0
            self.timeouts += 1
            self._reopen()  # a REQ that timed out is stuck in "expect reply": replace it
        return None, self.retries + 1, 0.0

    def close(self) -> None:
        self.sock.close(linger=0)


# --------------------------------------------------------------------------- data


@dataclass
class Candles:
    """Replayed bars as numpy columns (time in unix seconds)."""

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    spread: np.ndarray | None = None  # points per bar, when the export has the column

    def __len__(self) -> int:
        return len(self.time)


def load_candles(path: Path) -> Candles:
    """Read an MT4 CSV (either form) with the pipeline's own reader."""
    from aibridge.ingest.mt4_csv import read_mt4_csv

    frame = read_mt4_csv(path).candles
    t = frame["time"]
    seconds = (
        t.to_numpy().astype("datetime64[s]").astype(np.int64)
        if np.issubdtype(t.dtype, np.datetime64)
        else t.to_numpy(dtype=np.int64)
    )
    return Candles(
        time=seconds,
        open=frame["open"].to_numpy(np.float64),
        high=frame["high"].to_numpy(np.float64),
        low=frame["low"].to_numpy(np.float64),
        close=frame["close"].to_numpy(np.float64),
        volume=frame["volume"].to_numpy(np.float64),
        spread=frame["spread"].to_numpy(np.float64) if "spread" in frame.columns else None,
    )


def build_predict(
    c: Candles,
    end: int,
    n: int,
    digits: int,
    symbol: str,
    timeframe: str,
    request_id: str,
    spread_points: float | None,
    utc_offset_s: int | None = None,
) -> bytes:
    """The EA's predict text: candles ``end-n+1 .. end`` oldest first, Digits decimals;
    ``utc_offset_s`` is the EA's ``TimeCurrent() - TimeGMT()`` (omitted when None)."""
    parts = []
    for i in range(end - n + 1, end + 1):
        parts.append(
            f"[{int(c.time[i])},{c.open[i]:.{digits}f},{c.high[i]:.{digits}f},"
            f"{c.low[i]:.{digits}f},{c.close[i]:.{digits}f},{int(c.volume[i])}]"
        )
    spread = "" if spread_points is None else f',"spread_points":{int(spread_points)}'
    if utc_offset_s is not None:
        spread += f',"utc_offset_s":{int(utc_offset_s)}'
    return (
        f'{{"protocol_version":1,"type":"predict","request_id":"{request_id}",'
        f'"symbol":"{symbol}","timeframe":"{timeframe}"{spread},'
        f'"candles":[{",".join(parts)}]}}'
    ).encode()


# --------------------------------------------------------------------------- results


@dataclass
class SimConfig:
    """Emulator inputs; names follow the EA's inputs where they exist."""

    endpoint: str = "tcp://127.0.0.1:5555"
    csv: Path | None = None
    symbol: str | None = None
    timeframe: str | None = None
    bars: int | None = 300
    start: int | None = None
    timeout_ms: int = 1500
    retries: int = 2
    heartbeat_s: float = 5.0
    server_key: bytes | None = None
    pace_s: float = 0.0
    equity: float = 10_000.0
    spread_points: float | None = None
    # The "broker's" TimeCurrent()-TimeGMT() sent with predicts; None: the served model's
    # training offset from the heartbeat (a replay of its own data), else not sent.
    utc_offset_s: int | None = None
    account: int = 0  # AccountNumber() of the simulated account
    first_ticket: int | None = None  # None: from the clock (unique across runs)
    trade: bool = True
    quiet: bool = False


@dataclass
class SimSummary:
    """What ``make demo`` prints at the end, and what tests assert on."""

    bars: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    heartbeat_versions: list[str] = field(default_factory=list)
    predict_versions: list[str] = field(default_factory=list)
    version_changes: list[tuple[str, str]] = field(default_factory=list)
    heartbeats_ok: int = 0
    heartbeats_failed: int = 0
    trade_events: Counter[str] = field(default_factory=Counter)
    trade_events_failed: int = 0
    retries: int = 0
    reconnects: int = 0
    mismatched: int = 0
    vetoes: Counter[str] = field(default_factory=Counter)
    signals_acted: int = 0  # BUY/SELL replies acted on at the next open (all but the last bar's)
    pnl: float = 0.0
    timeline: list[tuple[float, int, str]] = field(
        default_factory=list
    )  # (monotonic, bar, outcome)

    def percentiles(self) -> dict[str, float]:
        if not self.latencies_ms:
            return {}
        a = np.asarray(self.latencies_ms)
        return {
            "p50": float(np.percentile(a, 50)),
            "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)),
            "max": float(a.max()),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "bars": self.bars,
            "actions": dict(self.actions),
            "reasons": dict(self.reasons),
            "errors": dict(self.errors),
            "skipped": len(self.skipped),
            "skip_reasons": dict(Counter(r for _, r in self.skipped)),
            "latency_ms": self.percentiles(),
            "heartbeat_versions": sorted(set(self.heartbeat_versions), key=_vkey),
            "predict_versions": sorted(set(self.predict_versions), key=_vkey),
            "version_changes": self.version_changes,
            "heartbeats_ok": self.heartbeats_ok,
            "heartbeats_failed": self.heartbeats_failed,
            "trade_events": dict(self.trade_events),
            "trade_events_failed": self.trade_events_failed,
            "retries": self.retries,
            "reconnects": self.reconnects,
            "mismatched_replies": self.mismatched,
            "vetoes": dict(self.vetoes),
            "signals_acted": self.signals_acted,
            "pnl": round(self.pnl, 2),
        }


def _num(x: float) -> float | None:
    return None if np.isnan(x) else x


def _vkey(v: str) -> tuple[int, str]:
    return (int(v), v) if v.isdigit() else (10**9, v)


@dataclass
class _Position:
    side: str
    ticket: int
    entry: float
    sl: float  # NaN: none
    tp: float
    lots: float
    entry_bar: int = 0
    entry_time: int = 0
    commission: float = 0.0

    @property
    def direction(self) -> int:
        return 1 if self.side == "BUY" else -1


# Exit reasons: the backtest's names (trade table) and the protocol's (closed trade events).
_EXIT_NAMES = {risk.EXIT_SIGNAL: "signal", risk.EXIT_TIME: "time"}
_EVENT_REASON = {"SL": "sl", "TP": "tp", "signal": "signal", "time": "time", "end": "end"}


# --------------------------------------------------------------------------- emulator


class EaEmulator:
    """Replays a CSV bar by bar against a live server, as the EA would."""

    def __init__(self, cfg: SimConfig, console: Console | None = None) -> None:
        from aibridge.ingest.naming import parse_symbol_timeframe
        from aibridge.paths import sample_data_path

        self.cfg = cfg
        self.console = console or Console(stderr=True)
        path = cfg.csv or sample_data_path()
        guessed = parse_symbol_timeframe(path) or ("EURUSD", "H1")
        self.symbol = (cfg.symbol or guessed[0]).upper()
        self.timeframe = (cfg.timeframe or guessed[1]).upper()
        self.candles = load_candles(path)
        self.client = LazyPirateClient(
            cfg.endpoint, cfg.timeout_ms, cfg.retries, server_public_key=cfg.server_key
        )
        self.summary = SimSummary()
        self.hb: dict[str, Any] | None = None
        # The last failed heartbeat's reply (None: no reply at all), for the final message.
        self.last_heartbeat_error: dict[str, Any] | None = None
        self.version: str | None = None
        self._last_hb = 0.0
        self._seq = 0
        self._first = self._last = -1
        # MT4 tickets are unique on the account; runs against one journal must not reuse them
        # (the server stores a trade event once per request id, and ids carry the ticket)
        self._ticket = cfg.first_ticket or int(time.time() * 1000) % 1_000_000_000
        self._event_seq: Counter[str] = Counter()
        self.positions: list[_Position] = []
        self.balance = cfg.equity
        self.spec = self._instrument()
        self._stop = False
        self.trades: list[dict[str, Any]] = []  # closed trades, the backtest's columns
        self._pending: tuple[int, dict[str, Any]] | None = None  # (bar, BUY/SELL reply)
        self._day: int | None = None
        self._day_start_equity = cfg.equity
        self._dd_halted = False
        self._policy_warned = False
        self._spreads = self._spread_series()

    def _instrument(self) -> InstrumentSpec | None:
        try:
            return load_instrument(self.symbol)
        except (FileNotFoundError, ValueError):
            return None

    def stop(self) -> None:
        self._stop = True

    # ------------------------------------------------------------------ messages
    def _rid(self, kind: str) -> str:
        self._seq += 1
        return f"{self.symbol}-{self.timeframe}-{kind}-{self._seq}"

    def _call(self, payload: bytes, rid: str) -> tuple[dict[str, Any] | None, float]:
        reply, attempts, rtt = self.client.request(payload)
        self.summary.retries += attempts - 1
        self.summary.reconnects = self.client.reconnects
        if reply is None:
            return None, 0.0
        doc = orjson.loads(reply)
        if doc.get("request_id") not in (rid, None):
            self.summary.mismatched += 1
        return doc, rtt

    def heartbeat(self) -> dict[str, Any] | None:
        """The EA's OnTimer: refresh min_bars/risk/version; log a version change."""
        rid = self._rid("hb")
        payload = orjson.dumps(
            {
                "protocol_version": 1,
                "type": "heartbeat",
                "request_id": rid,
                "symbol": self.symbol,
                "timeframe": self.timeframe,
                "client": "aibridge ea-sim",
                "account": self.cfg.account,
                "magic": MAGIC,
                **({"utc_offset_s": offset} if (offset := self._utc_offset()) is not None else {}),
                "positions": [
                    {
                        "ticket": int(p.ticket),
                        "side": p.side,
                        "lots": float(p.lots),
                        "open_price": float(p.entry),
                        "sl": _num(float(p.sl)),
                        "tp": _num(float(p.tp)),
                        "open_time": int(p.entry_time),
                    }
                    for p in self.positions
                ],
            }
        )
        self._last_hb = time.monotonic()
        doc, _ = self._call(payload, rid)
        if doc is None or doc.get("status") != "ok" or not doc.get("model"):
            self.summary.heartbeats_failed += 1
            self.last_heartbeat_error = doc
            why = "timeout" if doc is None else doc.get("code", "no model")
            self._line(f"[yellow]heartbeat failed ({why})[/]")
            if doc is not None and doc.get("code") == "unknown_model" and self.hb is None:
                # The server answered and serves other pairs; its slots are fixed at start,
                # so no later heartbeat can succeed: stop instead of skipping every bar.
                self._line(f"[red]{doc.get('message')}[/]")
                self._stop = True
            return None
        self.summary.heartbeats_ok += 1
        version = str(doc["model"]["version"])
        if self.version is not None and version != self.version:
            self.summary.version_changes.append((self.version, version))
            self._line(f"[bold magenta]model v{self.version} → v{version}[/]")
            log.info(f"model v{self.version} → v{version}")
        self.version = version
        self.summary.heartbeat_versions.append(version)
        self.hb = doc
        return doc

    def _utc_offset(self) -> int | None:
        """The configured broker offset, else the served model's (a replay of its own data)."""
        if self.cfg.utc_offset_s is not None:
            return self.cfg.utc_offset_s
        if self.hb and self.hb.get("utc_offset_s") is not None:
            return int(self.hb["utc_offset_s"])
        return None

    def _trade_event(self, event: str, bar_time: int = 0, **fields: Any) -> None:
        """Report a trade event with the EA's request id: ``te-<account>-<ticket>-<event>-<seq>``
        (without a ticket ``te-<account>-<magic>-<bar_time>-<event>-<seq>``), unique across
        runs because tickets are, and stable for a re-send."""
        acct = self.cfg.account
        ticket = fields.get("ticket")
        if ticket is not None:
            key = f"{ticket}-{event}"
            rid = f"te-{acct}-{key}"
        else:
            key = f"{fields.get('magic', MAGIC)}-{bar_time}-{event}"
            rid = f"te-{acct}-{key}"
        self._event_seq[key] += 1
        rid = f"{rid}-{self._event_seq[key]}"
        fields = {"account": acct, "seq": self._event_seq[key], **fields}
        doc = {
            "protocol_version": 1,
            "type": "trade_event",
            "request_id": rid,
            "event": event,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            **{
                k: v.item() if isinstance(v, np.generic) else v
                for k, v in fields.items()
                if v is not None
            },
        }
        reply, _ = self._call(orjson.dumps(doc), rid)
        if reply is None or reply.get("status") != "ok":
            self.summary.trade_events_failed += 1
        else:
            self.summary.trade_events[event] += 1

    # ------------------------------------------------------------------ loop
    def run(self) -> SimSummary:
        c = self.candles
        self.heartbeat()
        min_bars = int(self.hb["min_bars"]) if self.hb else 64
        first = self.cfg.start if self.cfg.start is not None else min_bars - 1
        first = max(first, 0)
        last = len(c) - 1 if self.cfg.bars is None else min(len(c) - 1, first + self.cfg.bars - 1)
        self._first, self._last = first, last
        try:
            for i in range(first, last + 1):
                if self._stop:
                    break
                self._bar(i)
                if self.cfg.pace_s:
                    time.sleep(self.cfg.pace_s)
        finally:
            self.client.close()
        return self.summary

    def _bar(self, i: int) -> None:
        s = self.summary
        s.bars += 1
        if self.hb is None or time.monotonic() - self._last_hb >= self.cfg.heartbeat_s:
            self.heartbeat()
        self._pending, pending = None, self._pending
        if self.cfg.trade and self.spec is not None:
            self._at_open(i, pending)
            self._inside_bar(i)
            self._at_close(i, last=i == self._last)
        if self.hb is None:
            s.timeline.append((time.monotonic(), i, "no_heartbeat"))
            s.skipped.append((i, "no heartbeat yet"))
            self._line(f"bar {i} skipped: no successful heartbeat yet")
            return
        n = int(self.hb["min_bars"])
        if i + 1 < n:
            s.skipped.append((i, "not enough history"))
            return
        digits = int(self.hb.get("digits") or 5)
        rid = f"{self.symbol}-{self.timeframe}-{int(self.candles.time[i])}"
        spread = self._spread(i)
        offset = self._utc_offset()
        payload = build_predict(
            self.candles, i, n, digits, self.symbol, self.timeframe, rid, spread, offset
        )
        doc, rtt = self._call(payload, rid)
        if doc is None:
            why = f"no reply after {self.cfg.retries + 1} attempts of {self.cfg.timeout_ms} ms"
            s.timeline.append((time.monotonic(), i, "timeout"))
            s.skipped.append((i, why))
            self._line(f"[red]bar {i} skipped: {why}[/]")
            return
        if doc.get("status") != "ok":
            code = str(doc.get("code"))
            s.timeline.append((time.monotonic(), i, f"error:{code}"))
            s.errors[code] += 1
            s.skipped.append((i, f"error {code}"))
            self._line(f"[red]bar {i} error {code}: {doc.get('message')}[/]")
            if code == "too_few_bars":
                self.heartbeat()  # the model (and its min_bars) may have changed
            return
        ms = rtt * 1000
        s.timeline.append((time.monotonic(), i, "ok"))
        s.latencies_ms.append(ms)
        s.actions[doc["action"]] += 1
        s.reasons[doc["reason"]] += 1
        s.predict_versions.append(str(doc["model_version"]))
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(self.candles.time[i])))
        color = {"BUY": "green", "SELL": "red"}.get(doc["action"], "dim")
        stops = f" sl {doc['sl']} tp {doc['tp']}" if doc.get("sl") is not None else ""
        self._line(
            f"{when} [{color}]{doc['action']:<4}[/] {doc['confidence']:.2f} "
            f"{doc['reason']:<20}{stops}  v{doc['model_version']}  {ms:.2f} ms"
        )
        if self.cfg.trade and doc["action"] in ("BUY", "SELL") and i < self._last:
            self._pending = (i, doc)  # acted on at the next bar's open

    def _spread_series(self) -> np.ndarray:
        """Spread per bar in points, chosen as the backtest chooses it: the configured constant,
        else the export's column, else the instrument's default."""
        n = len(self.candles)
        if self.cfg.spread_points is not None:
            return np.full(n, float(self.cfg.spread_points))
        if self.candles.spread is not None:
            return self.candles.spread
        return np.full(n, float(self.spec.default_spread_points if self.spec else 0.0))

    def _spread(self, i: int) -> float | None:
        if self.cfg.spread_points is None and self.candles.spread is None and self.spec is None:
            return None
        return float(self._spreads[i])

    # ------------------------------------------------------------------ simulated trading
    def exit_policy(self) -> tuple[bool, int]:
        """(close_on_opposite, max_hold_bars) as served; conf/risk when the server is older."""
        r = (self.hb or {}).get("risk") or {}
        if "close_on_opposite" in r and "max_hold_bars" in r:
            return bool(r["close_on_opposite"]), int(r["max_hold_bars"])
        fallback = risk.load_risk_settings()
        if not self._policy_warned:
            self._policy_warned = True
            msg = (
                "heartbeat has no exit policy (risk.close_on_opposite / risk.max_hold_bars): "
                f"using conf/risk ({fallback.close_on_opposite}, {fallback.max_hold_bars})"
            )
            log.warning(msg)
            self._line(f"[yellow]{msg}[/]")
        return fallback.close_on_opposite, fallback.max_hold_bars

    def _marks(self, i: int, price: float) -> float:
        """Floating P&L of the open positions with the Bid at ``price`` (shorts at the Ask)."""
        assert self.spec is not None
        sp = self._spreads[i] * self.spec.point
        total = 0.0
        for p in self.positions:
            mark = price if p.direction > 0 else price + sp
            total += risk.money_per_price_move(
                p.direction * (mark - p.entry), p.lots, self.spec, price
            )
        return total

    @property
    def equity(self) -> float:
        """Balance at the last mark (floating P&L is marked per bar in the kernel's steps)."""
        return self.balance

    @property
    def position(self) -> _Position | None:
        """The first open position (the EA's usual one-position case)."""
        return self.positions[0] if self.positions else None

    def _check_drawdown(self, equity: float) -> None:
        r = self.hb["risk"] if self.hb else {}
        if risk.daily_drawdown_breached(
            self._day_start_equity, equity, float(r.get("max_daily_drawdown_pct", 0.0))
        ):
            self._dd_halted = True

    def _at_open(self, i: int, pending: tuple[int, dict[str, Any]] | None) -> None:
        """Open tick of bar ``i``: day change, drawdown, exit policy, then the entry."""
        o = float(self.candles.open[i])
        day = int(self.candles.time[i]) // 86_400
        if self._day is not None and day != self._day:
            self._day_start_equity = self.balance + self._marks(i, o)
            self._dd_halted = False
        self._day = day
        if i == self._first:
            return
        self._check_drawdown(self.balance + self._marks(i, o))
        s = 0
        if pending is not None and pending[0] == i - 1:
            s = 1 if pending[1]["action"] == "BUY" else -1
        close_on_opposite, max_hold = self.exit_policy()
        for p in list(self.positions):
            code = risk.exit_reason(p.direction, s, i - p.entry_bar, close_on_opposite, max_hold)
            if code != risk.EXIT_NONE:
                sp = self._spreads[i] * self.spec.point  # type: ignore[union-attr]
                self._close(p, i, o if p.direction > 0 else o + sp, _EXIT_NAMES[code])
        if s != 0 and pending is not None:
            self.summary.signals_acted += 1
            self._enter(i, s, pending[1])

    def _enter(self, i: int, s: int, doc: dict[str, Any]) -> None:
        """Market order at bar ``i``'s open: the EA's veto order and lot sizing."""
        spec = self.spec
        assert spec is not None and self.hb is not None
        r = self.hb["risk"]
        point = float(self.hb.get("point") or spec.point)
        o = float(self.candles.open[i])
        spread_pts = float(self._spreads[i])
        sp = spread_pts * spec.point
        floating = self._marks(i, o)
        eq_now = self.balance + floating
        self._check_drawdown(eq_now)
        sl_d = float(doc.get("sl_points") or 0.0) * point
        tp_d = float(doc.get("tp_points") or 0.0) * point
        # As the EA: widen to the broker's stop level first, then size on the wider stop.
        sl_d, tp_d = risk.widen_to_stop_level(sl_d, tp_d, sp, spec.stop_level_points * spec.point)
        quote = o + sp if s > 0 else o
        lot = risk.lots_for_risk(
            eq_now,
            float(r["risk_per_trade_pct"]),
            sl_d,
            spec,
            quote,
            min_lot_policy=str(r.get("min_lot_policy", "skip")),
        )
        hour = (int(self.candles.time[i]) // 3_600) % 24
        open_lots = sum(p.lots for p in self.positions)
        # As the EA: the exposure policy (served; shrink when the server does not say) cuts an
        # order past max_total_lots to the room left before the veto sees it.
        lots = risk.shrink_to_exposure(
            lot.lots,
            open_lots,
            float(r["max_total_lots"]),
            spec.lot_min,
            spec.lot_step,
            str(r.get("exposure_policy", "shrink")) == "shrink",
        )
        if lots != lot.lots:
            lot = dataclasses.replace(lot, lots=lots)
        veto = risk.entry_veto(
            spread_pts,
            float(r["max_spread_points"]),
            self._dd_halted,
            hour,
            int(r.get("trading_start_hour", 0)),
            int(r.get("trading_end_hour", 24)),
            lot.lots,
            len(self.positions),
            open_lots,
            int(r["max_open_positions"]),
            float(r["max_total_lots"]),
        )
        if veto != risk.ENTRY_OK:
            self.summary.vetoes[risk.ENTRY_REASONS[veto]] += 1
            return
        side = "BUY" if s > 0 else "SELL"
        digits = int(self.hb.get("digits") or spec.digits)
        sl = round(quote - s * sl_d, digits) if sl_d > 0 else float("nan")
        tp = round(quote + s * tp_d, digits) if tp_d > 0 else float("nan")
        fee = spec.commission_per_lot_per_side * lot.lots
        self.balance -= fee
        self._ticket += 1
        common: dict[str, Any] = {
            "side": side,
            "lots": lot.lots,
            "magic": MAGIC,
            "model_version": self.version,
        }
        levels: dict[str, Any] = {"sl": _num(sl), "tp": _num(tp)}
        bar_time = int(self.candles.time[i])
        self._trade_event("order_sent", bar_time, price=quote, **levels, **common)
        self._trade_event(
            "filled",
            ticket=self._ticket,
            price=quote,
            time=int(self.candles.time[i]),
            **levels,
            **common,
        )
        self.positions.append(
            _Position(
                side, self._ticket, quote, sl, tp, lot.lots, i, int(self.candles.time[i]), fee
            )
        )

    def _inside_bar(self, i: int) -> None:
        """SL/TP on bar ``i``'s high/low, on the closing side (backtest core step 3)."""
        spec = self.spec
        assert spec is not None
        o, h, lo = (float(a[i]) for a in (self.candles.open, self.candles.high, self.candles.low))
        sp = self._spreads[i] * spec.point
        for p in list(self.positions):
            entry_bar = p.entry_bar == i
            has_sl, has_tp = not np.isnan(p.sl), not np.isnan(p.tp)
            hit: tuple[float, str] | None = None
            if p.direction > 0:
                if not entry_bar and has_sl and o <= p.sl:
                    hit = (o, "SL")
                elif not entry_bar and has_tp and o >= p.tp:
                    hit = (o, "TP")
                elif has_sl and lo <= p.sl:
                    hit = (p.sl, "SL")  # stop first when both are inside the bar
                elif has_tp and h >= p.tp:
                    hit = (p.tp, "TP")
            else:
                oa = o + sp
                if not entry_bar and has_sl and oa >= p.sl:
                    hit = (oa, "SL")
                elif not entry_bar and has_tp and oa <= p.tp:
                    hit = (oa, "TP")
                elif has_sl and h + sp >= p.sl:
                    hit = (p.sl, "SL")
                elif has_tp and lo + sp <= p.tp:
                    hit = (p.tp, "TP")
            if hit is not None:
                self._close(p, i, hit[0], hit[1])

    def _at_close(self, i: int, last: bool) -> None:
        """Close tick: drawdown on the marked equity; at the end of data close what is open."""
        c = float(self.candles.close[i])
        if last:
            sp = self._spreads[i] * self.spec.point  # type: ignore[union-attr]
            for p in list(self.positions):
                self._close(p, i, c if p.direction > 0 else c + sp, "end", report=False)
        self._check_drawdown(self.balance + self._marks(i, c))

    def _close(self, p: _Position, i: int, price: float, reason: str, report: bool = True) -> None:
        """Book a close; report it as a ``closed`` trade event with its reason (the end of
        the replay is not a close the EA makes, so it is not reported)."""
        assert self.spec is not None
        gross = risk.money_per_price_move(p.direction * (price - p.entry), p.lots, self.spec, price)
        fee = self.spec.commission_per_lot_per_side * p.lots
        self.balance += gross - fee
        self.summary.pnl += gross - fee - p.commission
        self.positions.remove(p)
        self.trades.append(
            {
                "ticket": p.ticket,
                "entry_time": p.entry_time,
                "exit_time": int(self.candles.time[i]),
                "entry_bar": p.entry_bar,
                "exit_bar": i,
                "side": p.side,
                "lots": p.lots,
                "entry_price": p.entry,
                "exit_price": price,
                "sl": p.sl,
                "tp": p.tp,
                "exit_reason": reason,
                "gross_pnl": gross,
                "commission": p.commission + fee,
                "net_pnl": gross - p.commission - fee,
            }
        )
        if report:
            self._trade_event(
                "closed",
                ticket=p.ticket,
                side=p.side,
                price=price,
                lots=p.lots,
                profit=round(gross, 2),
                time=int(self.candles.time[i]),
                reason=_EVENT_REASON[reason],
                model_version=self.version,
            )

    def trade_table(self) -> pd.DataFrame:
        """Closed trades in entry order, with the backtest's column names (times as UTC)."""
        frame = pd.DataFrame(
            self.trades,
            columns=[
                "ticket", "entry_time", "exit_time", "entry_bar", "exit_bar", "side", "lots",
                "entry_price", "exit_price", "sl", "tp", "exit_reason", "gross_pnl",
                "commission", "net_pnl",
            ],
        )  # fmt: skip
        frame = frame.sort_values("ticket", kind="stable").reset_index(drop=True)
        for col in ("entry_time", "exit_time"):
            frame[col] = pd.to_datetime(frame[col].astype("int64"), unit="s")
        return frame

    def _line(self, text: str) -> None:
        if not self.cfg.quiet:
            self.console.print(text, highlight=False)


def render_summary(summary: SimSummary, console: Console) -> None:
    """Final table: BUY/SELL/HOLD counts, latencies, versions seen, errors, skips."""
    from rich.table import Table

    d = summary.to_dict()
    t = Table(title="ea-sim summary", show_header=False)
    t.add_row("bars", str(d["bars"]))
    for action in ("BUY", "SELL", "HOLD"):
        t.add_row(action, str(d["actions"].get(action, 0)))
    lat = d["latency_ms"]
    if lat:
        t.add_row(
            "latency ms",
            "  ".join(f"{k} {v:.2f}" for k, v in lat.items()),
        )
    t.add_row("reasons", ", ".join(f"{k}: {v}" for k, v in d["reasons"].items()) or "-")
    t.add_row("model versions (heartbeat)", ", ".join(d["heartbeat_versions"]) or "-")
    t.add_row("model versions (predict)", ", ".join(d["predict_versions"]) or "-")
    if d["version_changes"]:
        t.add_row("version changes", ", ".join(f"v{a} → v{b}" for a, b in d["version_changes"]))
    t.add_row("errors", ", ".join(f"{k}: {v}" for k, v in d["errors"].items()) or "0")
    t.add_row("skipped bars", str(d["skipped"]))
    for reason, n in d["skip_reasons"].items():
        t.add_row(f"  {reason}", str(n))
    t.add_row("retries / reconnects", f"{d['retries']} / {d['reconnects']}")
    t.add_row("trade events", ", ".join(f"{k}: {v}" for k, v in d["trade_events"].items()) or "0")
    if d["vetoes"]:
        t.add_row("vetoed entries", ", ".join(f"{k}: {v}" for k, v in d["vetoes"].items()))
    t.add_row("simulated P&L", f"{d['pnl']:.2f}")
    console.print(t)
