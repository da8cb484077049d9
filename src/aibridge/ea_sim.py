"""EA emulator: drives the signal server exactly as the MT4 Expert Advisor does.

* heartbeat on start and then on a wall-clock timer (the EA's ``OnTimer``); a version change
  is logged as ``model v3 → v4``; no predict is sent before a heartbeat succeeded (the EA
  needs ``min_bars`` from it and refuses to trade without one);
* per replayed bar: the last ``min_bars`` closed candles, built by string concatenation with
  ``Digits`` decimals like the EA's ``DoubleToString``;
* zguide Lazy Pirate: poll for the reply for ``timeout_ms``; on timeout close the REQ socket
  (linger 0), open a new one and resend, ``retries`` times; then skip the bar with a reason;
* simulated orders through :mod:`aibridge.risk` (the EA's rules), reported as ``trade_event``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import zmq
from rich.console import Console

from aibridge import risk
from aibridge.instruments import InstrumentSpec, load_instrument

log = logging.getLogger("aibridge.ea_sim")


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
) -> bytes:
    """The EA's predict text: candles ``end-n+1 .. end`` oldest first, Digits decimals."""
    parts = []
    for i in range(end - n + 1, end + 1):
        parts.append(
            f"[{int(c.time[i])},{c.open[i]:.{digits}f},{c.high[i]:.{digits}f},"
            f"{c.low[i]:.{digits}f},{c.close[i]:.{digits}f},{int(c.volume[i])}]"
        )
    spread = "" if spread_points is None else f',"spread_points":{int(spread_points)}'
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
            "pnl": round(self.pnl, 2),
        }


def _vkey(v: str) -> tuple[int, str]:
    return (int(v), v) if v.isdigit() else (10**9, v)


@dataclass
class _Position:
    side: str
    ticket: int
    entry: float
    sl: float
    tp: float
    lots: float


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
        self.version: str | None = None
        self._last_hb = 0.0
        self._seq = 0
        self._ticket = 1000
        self.position: _Position | None = None
        self.equity = cfg.equity
        self.spec = self._instrument()
        self._stop = False

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
            }
        )
        self._last_hb = time.monotonic()
        doc, _ = self._call(payload, rid)
        if doc is None or doc.get("status") != "ok" or not doc.get("model"):
            self.summary.heartbeats_failed += 1
            why = "timeout" if doc is None else doc.get("code", "no model")
            self._line(f"[yellow]heartbeat failed ({why})[/]")
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

    def _trade_event(self, event: str, **fields: Any) -> None:
        rid = self._rid("te")
        doc = {
            "protocol_version": 1,
            "type": "trade_event",
            "request_id": rid,
            "event": event,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            **{k: v for k, v in fields.items() if v is not None},
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
        if self.hb is None:
            s.timeline.append((time.monotonic(), i, "no_heartbeat"))
            s.skipped.append((i, "no heartbeat yet"))
            self._line(f"bar {i} skipped: no successful heartbeat yet")
            return
        self._manage_position(i)
        n = int(self.hb["min_bars"])
        if i + 1 < n:
            s.skipped.append((i, "not enough history"))
            return
        digits = int(self.hb.get("digits") or 5)
        rid = f"{self.symbol}-{self.timeframe}-{int(self.candles.time[i])}"
        spread = self._spread()
        payload = build_predict(
            self.candles, i, n, digits, self.symbol, self.timeframe, rid, spread
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
        if self.cfg.trade and doc["action"] in ("BUY", "SELL"):
            self._maybe_open(i, doc)

    def _spread(self) -> float | None:
        if self.cfg.spread_points is not None:
            return self.cfg.spread_points
        return self.spec.default_spread_points if self.spec else None

    # ------------------------------------------------------------------ simulated trading
    def _maybe_open(self, i: int, doc: dict[str, Any]) -> None:
        """Next bar's open is the fill; same veto order and lot sizing as the EA."""
        if i + 1 >= len(self.candles) or self.spec is None or not self.hb:
            return
        r = self.hb["risk"]
        point = float(self.hb["point"])
        entry = float(self.candles.open[i + 1])
        sl_dist = float(doc["sl_points"]) * point
        tp_dist = float(doc["tp_points"]) * point
        # As the EA: widen to the broker's stop level first, then size on the wider stop.
        sl_dist, tp_dist = risk.widen_to_stop_level(
            sl_dist,
            tp_dist,
            (self._spread() or 0.0) * point,
            float(self.spec.stop_level_points) * point,
        )
        lot = risk.lots_for_risk(
            self.equity,
            float(r["risk_per_trade_pct"]),
            sl_dist,
            self.spec,
            entry,
            min_lot_policy=str(r.get("min_lot_policy", "skip")),
        )
        hour = time.gmtime(int(self.candles.time[i + 1])).tm_hour
        open_n = 1 if self.position else 0
        veto = risk.entry_veto(
            self._spread() or 0.0,
            float(r["max_spread_points"]),
            False,
            hour,
            int(r.get("trading_start_hour", 0)),
            int(r.get("trading_end_hour", 24)),
            lot.lots,
            open_n,
            self.position.lots if self.position else 0.0,
            int(r["max_open_positions"]),
            float(r["max_total_lots"]),
        )
        if veto != risk.ENTRY_OK:
            self.summary.vetoes[risk.ENTRY_REASONS[veto]] += 1
            return
        side = doc["action"]
        sign = 1 if side == "BUY" else -1
        digits = int(self.hb["digits"])
        sl = round(entry - sign * sl_dist, digits)
        tp = round(entry + sign * tp_dist, digits)
        self._ticket += 1
        common = {"side": side, "lots": lot.lots, "magic": 20261125, "model_version": self.version}
        self._trade_event("order_sent", price=entry, sl=sl, tp=tp, **common)
        self._trade_event(
            "filled",
            ticket=self._ticket,
            price=entry,
            sl=sl,
            tp=tp,
            time=int(self.candles.time[i + 1]),
            **common,
        )
        self.position = _Position(side, self._ticket, entry, sl, tp, lot.lots)

    def _manage_position(self, i: int) -> None:
        """Close on SL/TP touched by bar ``i`` (SL first when both: the pessimistic fill)."""
        p = self.position
        if p is None or self.spec is None:
            return
        lo, hi = self.candles.low[i], self.candles.high[i]
        exit_price = None
        if p.side == "BUY":
            exit_price = p.sl if lo <= p.sl else (p.tp if hi >= p.tp else None)
        else:
            exit_price = p.sl if hi >= p.sl else (p.tp if lo <= p.tp else None)
        if exit_price is None:
            return
        move = (exit_price - p.entry) * (1 if p.side == "BUY" else -1)
        profit = risk.money_per_price_move(move, p.lots, self.spec, exit_price)
        self.equity += profit
        self.summary.pnl += profit
        self._trade_event(
            "closed",
            ticket=p.ticket,
            side=p.side,
            price=exit_price,
            lots=p.lots,
            profit=round(profit, 2),
            time=int(self.candles.time[i]),
            model_version=self.version,
        )
        self.position = None

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
