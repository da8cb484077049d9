"""Live vs backtest, trade by trade: what the account did against what the engine says the
served decisions should have done on the same bars.

Inputs: the server's SQLite journal (predict rows: decision + the bar the EA sent; heartbeat
replies: the served risk settings and instrument; trade events: fills, closes, rejections),
optionally the MT4 CSV export of the period (bars for journals that predate the ``bar`` field,
or to fill bars the EA never sent). The journaled decisions are replayed through
:func:`aibridge.backtest.engine.run_backtest` with the served risk settings, and the two trade
lists are matched by entry bar and side:

* **matched**: entry and exit price differences in points (positive = the live fill was worse
  than modelled: slippage), exit reason and lots compared;
* **missed**: the backtest traded, the account did not (rejected by the broker, or the EA did
  not act on the signal);
* **unmatched live**: the account traded where the backtest did not (a risk veto in the model,
  no decision in the journal for the bar before, or unexplained);
* per signal: the backtest's entry outcome (acted / veto reason) next to the live one.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aibridge.ingest.naming import timeframe_minutes

ACTION_SIGN = {"BUY": 1, "SELL": -1, "HOLD": 0}


class ReconcileError(RuntimeError):
    """Nothing to reconcile (no journal, no decisions, no bars); the message says why."""


@dataclass
class JournalData:
    symbol: str
    timeframe: str
    bars: pd.DataFrame  # time (UTC datetime), open, high, low, close, volume, spread
    decisions: pd.DataFrame  # bar_time (int s), action, sl_points, tp_points, model_version
    live: pd.DataFrame  # one row per filled ticket (+ its close)
    rejected: pd.DataFrame  # ts, time, error_code, side
    served: dict[str, Any]  # the last heartbeat reply with a model: risk, point, model...


def _rows(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[sqlite3.Row]:
    return conn.execute(sql, args).fetchall()


def load_journal(
    path: Path,
    symbol: str,
    timeframe: str,
    *,
    since: float | None = None,
    until: float | None = None,
    account: int | None = None,
) -> JournalData:
    """Read one symbol × timeframe of a journal (``since``/``until``: request time, Unix s)."""
    if not Path(path).is_file():
        raise ReconcileError(f"no journal at {path}")
    symbol, timeframe = symbol.upper(), timeframe.upper()
    lo, hi = since if since is not None else -1e18, until if until is not None else 1e18
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        preds = _rows(
            conn,
            "SELECT ts, summary, reply FROM requests WHERE type = 'predict' AND status = 'ok'"
            " AND symbol = ? AND timeframe = ? AND ts >= ? AND ts <= ? ORDER BY id",
            (symbol, timeframe, lo, hi),
        )
        hbs = _rows(
            conn,
            "SELECT reply FROM requests WHERE type = 'heartbeat' AND status = 'ok'"
            " AND symbol = ? AND timeframe = ? AND ts <= ? ORDER BY id DESC LIMIT 50",
            (symbol, timeframe, hi),
        )
        events = _rows(
            conn,
            "SELECT * FROM trade_events WHERE symbol = ? AND ts >= ? AND ts <= ?"
            + (" AND account = ?" if account is not None else "")
            + " ORDER BY id",
            (symbol, lo, hi, *(() if account is None else (account,))),
        )
    finally:
        conn.close()
    served: dict[str, Any] = {}
    for r in hbs:
        doc = json.loads(r["reply"])
        if doc.get("risk"):
            served = doc
            break
    bars: dict[int, list[float]] = {}
    decisions: dict[int, dict[str, Any]] = {}
    for r in preds:
        summary = json.loads(r["summary"] or "{}")
        reply = json.loads(r["reply"])
        t = int(reply["bar_time"])
        if summary.get("bar") is not None:
            b = [float(x) for x in summary["bar"]]
            spread = summary.get("spread_points")
            bars[t] = [*b[1:6], np.nan if spread is None else float(spread)]
        decisions[t] = {  # a re-sent predict for the same bar: the last answer counts
            "bar_time": t,
            "action": reply["action"],
            "sl_points": reply.get("sl_points"),
            "tp_points": reply.get("tp_points"),
            "reason": reply.get("reason"),
            "model_version": reply.get("model_version"),
        }
    bar_frame = pd.DataFrame(
        [[t, *v] for t, v in sorted(bars.items())],
        columns=["time", "open", "high", "low", "close", "volume", "spread"],
    )
    bar_frame["time"] = pd.to_datetime(bar_frame["time"].astype("int64"), unit="s")
    dec = pd.DataFrame(
        sorted(decisions.values(), key=lambda d: d["bar_time"]),
        columns=["bar_time", "action", "sl_points", "tp_points", "reason", "model_version"],
    )
    return JournalData(
        symbol, timeframe, bar_frame, dec, _live_trades(events), _rejections(events), served
    )


def _live_trades(events: list[sqlite3.Row]) -> pd.DataFrame:
    fills: dict[tuple[Any, int], dict[str, Any]] = {}
    for e in events:
        key = (e["account"], e["ticket"])
        if e["event"] == "filled" and e["ticket"] is not None:
            fills[key] = {
                "account": e["account"],
                "ticket": int(e["ticket"]),
                "side": e["side"],
                "lots": e["lots"],
                "entry_price": e["price"],
                "entry_time": e["time"],
                "sl": e["sl"],
                "tp": e["tp"],
                "exit_price": None,
                "exit_time": None,
                "exit_reason": None,
                "profit": None,
                "model_version": e["model_version"],
            }
        elif e["event"] == "closed" and key in fills:
            fills[key].update(
                exit_price=e["price"], exit_time=e["time"], exit_reason=e["reason"],
                profit=e["profit"],
            )  # fmt: skip
    columns = ["account", "ticket", "side", "lots", "entry_price", "entry_time", "sl", "tp",
               "exit_price", "exit_time", "exit_reason", "profit", "model_version"]  # fmt: skip
    return pd.DataFrame(list(fills.values()), columns=columns)


def _rejections(events: list[sqlite3.Row]) -> pd.DataFrame:
    rows = [
        {"ts": e["ts"], "time": e["time"], "side": e["side"], "error_code": e["error_code"]}
        for e in events
        if e["event"] == "rejected"
    ]
    return pd.DataFrame(rows, columns=["ts", "time", "side", "error_code"])


def bars_from_csv(path: Path, start: int, end: int) -> pd.DataFrame:
    """The export's bars from ``start`` to ``end`` (Unix s, inclusive), the journal's columns."""
    from aibridge.ingest.mt4_csv import read_mt4_csv

    frame = read_mt4_csv(path).candles
    t = pd.to_datetime(frame["time"])
    secs = t.to_numpy().astype("datetime64[s]").astype(np.int64)
    keep = (secs >= start) & (secs <= end)
    out = pd.DataFrame(
        {
            "time": t[keep].to_numpy(),
            **{c: frame.loc[keep, c].to_numpy(np.float64) for c in
               ("open", "high", "low", "close", "volume")},
            "spread": frame.loc[keep, "spread"].to_numpy(np.float64)
            if "spread" in frame.columns else np.nan,
        }
    )  # fmt: skip
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- the report


@dataclass
class Report:
    symbol: str
    timeframe: str
    model: str
    bars: int
    bar_gaps: int
    first_bar: str
    last_bar: str
    signals: int
    trades: pd.DataFrame  # one row per matched / missed / unmatched trade
    signal_outcomes: pd.DataFrame  # per BUY/SELL decision: backtest vs live
    backtest_pnl: float
    live_pnl: float
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        kinds = self.trades["kind"].value_counts().to_dict() if len(self.trades) else {}
        return {k: int(kinds.get(k, 0)) for k in ("matched", "missed", "unmatched_live")}

    def slippage(self) -> dict[str, float | None]:
        m = self.trades[self.trades["kind"] == "matched"]

        def stat(col: str, fn: Any) -> float | None:
            x = pd.to_numeric(m[col], errors="coerce").dropna()
            return None if x.empty else round(float(fn(x)), 2)

        return {
            "entry_mean_pts": stat("entry_slip_pts", np.mean),
            "entry_max_pts": stat("entry_slip_pts", np.max),
            "exit_mean_pts": stat("exit_slip_pts", np.mean),
            "exit_max_pts": stat("exit_slip_pts", np.max),
            "exit_reason_differs": int((m["reason_differs"] == True).sum()),  # noqa: E712
        }

    def as_json(self) -> dict[str, Any]:
        def clean(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return json.loads(frame.to_json(orient="records", date_format="iso"))

        return {
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "model": self.model,
            "bars": self.bars,
            "bar_gaps": self.bar_gaps,
            "first_bar": self.first_bar,
            "last_bar": self.last_bar,
            "signals": self.signals,
            "counts": self.counts(),
            "slippage": self.slippage(),
            "backtest_pnl": round(self.backtest_pnl, 2),
            "live_pnl": round(self.live_pnl, 2),
            "notes": self.notes,
            "trades": clean(self.trades),
            "signal_outcomes": clean(self.signal_outcomes),
        }


def _period_bars(data: JournalData, csv: Path | None, step: int, notes: list[str]) -> pd.DataFrame:
    """The bars of the journaled decisions' period: from the MT4 export when given, else the
    ones the predicts carried."""
    first, last = int(data.decisions["bar_time"].iloc[0]), int(data.decisions["bar_time"].iloc[-1])
    if csv is not None:
        bars = bars_from_csv(csv, first, last + step)
        notes.append(f"bars from {csv.name}")
    else:
        bars = data.bars
        if bars.empty:
            raise ReconcileError(
                "the journal's predicts carry no bars (journal older than the `bar` summary "
                "field): pass the MT4 export with --csv"
            )
    if bars.empty:
        raise ReconcileError("no bars in the reconciled period")
    return bars


def _served_risk(data: JournalData, notes: list[str]) -> Any:
    """The risk settings the server announced in its heartbeats, else conf/risk (noted)."""
    from aibridge.risk import RiskSettings, load_risk_settings

    served_risk = data.served.get("risk")
    if served_risk:
        fields = set(RiskSettings.model_fields)
        return RiskSettings.model_validate({k: v for k, v in served_risk.items() if k in fields})
    notes.append("no heartbeat with risk settings in the journal: conf/risk used")
    return load_risk_settings()


def _unmatched_live_note(bar: int, codes: np.ndarray, signal: np.ndarray) -> str:
    """Why a live trade entered on ``bar`` has no backtest trade beside it."""
    from aibridge.risk import ENTRY_REASONS

    n = len(signal)
    if 0 <= bar < n and codes[bar] > 0:
        return f"backtest vetoed the entry ({ENTRY_REASONS[int(codes[bar])]})"
    if 0 < bar < n and signal[bar - 1] == 0:
        return "no BUY/SELL decision in the journal for the bar before"
    if bar < 0 or bar >= n:
        return "entry outside the reconciled bars"
    return "unexplained"


def reconcile(
    data: JournalData,
    *,
    csv: Path | None = None,
    spec: Any = None,
    risk: Any = None,
    settings: Any = None,
) -> Report:
    """Replay the journaled decisions through the backtest engine and diff the trades."""
    from aibridge.backtest.engine import run_backtest
    from aibridge.backtest.settings import EngineSettings
    from aibridge.instruments import load_instrument
    from aibridge.risk import ENTRY_REASONS

    if data.decisions.empty:
        raise ReconcileError(f"no predict decisions for {data.symbol} {data.timeframe} in journal")
    notes: list[str] = []
    step = timeframe_minutes(data.timeframe) * 60
    bars = _period_bars(data, csv, step, notes)
    spec = spec or load_instrument(data.symbol)
    risk = risk if risk is not None else _served_risk(data, notes)
    settings = settings or EngineSettings()
    point = float(data.served.get("point") or spec.point)
    if bars["spread"].isna().any():
        bars = bars.assign(spread=bars["spread"].fillna(float(spec.default_spread_points)))
    secs = bars["time"].to_numpy().astype("datetime64[s]").astype(np.int64)
    gaps = int(np.count_nonzero(np.diff(secs) > step)) if len(secs) > 1 else 0
    # weekends are gaps too; say only how many, the engine handles them like MT4 does
    index = {int(t): i for i, t in enumerate(secs)}
    n = len(bars)
    signal = np.zeros(n, dtype=np.int64)
    sl_dist = np.zeros(n)
    tp_dist = np.zeros(n)
    for d in data.decisions.itertuples(index=False):
        at = index.get(int(d.bar_time))
        if at is None:
            continue
        signal[at] = ACTION_SIGN.get(str(d.action), 0)
        sl_dist[at] = float(d.sl_points or 0.0) * point
        tp_dist[at] = float(d.tp_points or 0.0) * point
    res = run_backtest(bars, signal, sl_dist, tp_dist, spec, risk, settings)
    bt = res.trades
    live = data.live.copy()
    live["bar"] = [
        int(np.searchsorted(secs, int(t), side="right")) - 1 if pd.notna(t) else -1
        for t in live["entry_time"]
    ]
    open_live = {(int(r.bar), str(r.side)): r for r in live.itertuples(index=False)}
    rej_bars = {
        int(np.searchsorted(secs, int(t), side="right")) - 1: r
        for t, r in zip(data.rejected["time"], data.rejected.itertuples(index=False), strict=True)
        if pd.notna(t)
    }
    rows: list[dict[str, Any]] = []
    for t in bt.itertuples(index=False):
        key = (int(t.entry_bar), str(t.side))
        bt_part = {
            "entry_time": str(t.entry_time),
            "side": str(t.side),
            "bt_lots": float(t.lots),
            "bt_entry": float(t.entry_price),
            "bt_exit": float(t.exit_price),
            "bt_exit_reason": str(t.exit_reason).lower(),
            "bt_pnl": round(float(t.gross_pnl), 2),
        }
        lt = open_live.pop(key, None)
        if lt is None:
            rej = rej_bars.get(int(t.entry_bar))
            why = (
                f"rejected by the broker (error {rej.error_code})"
                if rej is not None
                else "not traded live (no fill reported)"
            )
            rows.append({"kind": "missed", **bt_part, "note": why})
            continue
        d = 1 if str(t.side) == "BUY" else -1
        closed = lt.exit_price is not None and pd.notna(lt.exit_price)
        live_reason = str(lt.exit_reason).lower() if closed else None
        bt_reason = bt_part["bt_exit_reason"]
        rows.append(
            {
                "kind": "matched",
                **bt_part,
                "ticket": int(lt.ticket),
                "live_lots": float(lt.lots),
                "live_entry": float(lt.entry_price),
                "live_exit": float(lt.exit_price) if closed else None,
                "live_exit_reason": live_reason,
                "live_pnl": None if lt.profit is None or pd.isna(lt.profit) else float(lt.profit),
                "entry_slip_pts": round((float(lt.entry_price) - t.entry_price) * d / point, 1),
                "exit_slip_pts": round((t.exit_price - float(lt.exit_price)) * d / point, 1)
                if closed
                else None,
                "reason_differs": bool(closed and live_reason != bt_reason and bt_reason != "end"),
                "note": "" if closed else "still open live at the end of the journal",
            }
        )
    codes = res.entry_code
    for (bar, side), lt in sorted(open_live.items()):
        why = _unmatched_live_note(bar, codes, signal)
        rows.append(
            {
                "kind": "unmatched_live",
                "entry_time": str(pd.to_datetime(int(lt.entry_time), unit="s"))
                if pd.notna(lt.entry_time) else None,
                "side": side,
                "ticket": int(lt.ticket),
                "live_lots": float(lt.lots),
                "live_entry": float(lt.entry_price),
                "live_exit": None if lt.exit_price is None or pd.isna(lt.exit_price)
                else float(lt.exit_price),
                "live_exit_reason": lt.exit_reason,
                "live_pnl": None if lt.profit is None or pd.isna(lt.profit) else float(lt.profit),
                "note": why,
            }
        )  # fmt: skip
    trades = pd.DataFrame(rows)
    if not trades.empty:
        trades = trades.sort_values("entry_time", kind="stable").reset_index(drop=True)
    else:
        trades = pd.DataFrame(columns=["kind", "entry_time", "side", "note"])
    # signals: decision at bar i is acted on (or vetoed) at the open of bar i + 1
    live_bars = {(int(b), str(s)) for b, s in zip(live["bar"], live["side"], strict=True)}
    outcomes = []
    for i in (int(k) for k in np.flatnonzero(signal)):
        side = "BUY" if signal[i] > 0 else "SELL"
        j = i + 1
        if j >= n:
            bt_out = "after the last bar"
        else:
            c = int(codes[j])
            bt_out = "acted" if c == 0 else ("none" if c < 0 else ENTRY_REASONS[c])
        live_out = "filled" if (j, side) in live_bars else (
            f"rejected ({rej_bars[j].error_code})" if j in rej_bars else "no fill"
        )  # fmt: skip
        outcomes.append(
            {"bar_time": str(bars["time"].iloc[i]), "side": side, "backtest": bt_out,
             "live": live_out}
        )  # fmt: skip
    live_pnl = float(pd.to_numeric(live["profit"], errors="coerce").fillna(0).sum())
    served_model = data.served.get("model") or {}
    versions = sorted({str(v) for v in data.decisions["model_version"].dropna()})
    model = f"{served_model.get('name', '?')} v{', v'.join(versions) or '?'}"
    if len(versions) > 1:
        notes.append(f"decisions from {len(versions)} model versions (a swap in the period)")
    return Report(
        symbol=data.symbol,
        timeframe=data.timeframe,
        model=model,
        bars=n,
        bar_gaps=gaps,
        first_bar=str(bars["time"].iloc[0]),
        last_bar=str(bars["time"].iloc[-1]),
        signals=int(np.count_nonzero(signal)),
        trades=trades,
        signal_outcomes=pd.DataFrame(outcomes, columns=["bar_time", "side", "backtest", "live"]),
        backtest_pnl=float(bt["gross_pnl"].sum()) if len(bt) else 0.0,
        live_pnl=live_pnl,
        notes=notes,
    )


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    return str(v)


def render_markdown(report: Report) -> str:
    """The report as Markdown (what ``--markdown`` writes and MLflow keeps)."""
    c, s = report.counts(), report.slippage()
    lines = [
        f"# Live vs backtest: {report.symbol} {report.timeframe}, {report.model}",
        "",
        f"Bars {report.first_bar} → {report.last_bar} ({report.bars}, {report.bar_gaps} gaps), "
        f"{report.signals} BUY/SELL decisions.",
        "",
        "| | count |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in c.items()),
        "",
        f"Entry slippage (points, + = worse live): mean {_cell(s['entry_mean_pts'])}, "
        f"max {_cell(s['entry_max_pts'])}. Exit: mean {_cell(s['exit_mean_pts'])}, "
        f"max {_cell(s['exit_max_pts'])}. Exit reason differs: {s['exit_reason_differs']}.",
        f"Gross P&L: backtest {report.backtest_pnl:.2f}, live {report.live_pnl:.2f}.",
        "",
    ]
    lines += [f"* {n}" for n in report.notes] + ([""] if report.notes else [])
    cols = ["kind", "entry_time", "side", "ticket", "bt_entry", "live_entry", "entry_slip_pts",
            "bt_exit", "live_exit", "exit_slip_pts", "bt_exit_reason", "live_exit_reason",
            "bt_lots", "live_lots", "bt_pnl", "live_pnl", "note"]  # fmt: skip
    cols = [col for col in cols if col in report.trades.columns]
    lines += ["## Trades", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in report.trades.to_dict("records"):
        lines.append("| " + " | ".join(_cell(r.get(col)) for col in cols) + " |")
    so = report.signal_outcomes
    differ = so[(so["backtest"] != "acted") | (so["live"] != "filled")] if len(so) else so
    lines += ["", "## Signals where backtest and live differ", ""]
    if differ.empty:
        lines.append("None: every signal was acted on by both.")
    else:
        lines += ["| bar_time | side | backtest | live |", "|---|---|---|---|"]
        lines += [f"| {r.bar_time} | {r.side} | {r.backtest} | {r.live} |"
                  for r in differ.itertuples(index=False)]  # fmt: skip
    return "\n".join(lines) + "\n"


def log_to_mlflow(report: Report, data: JournalData, paths: list[Path], tracking_uri: str) -> str:
    """Attach the report files to the served model version's MLflow run; returns the run id."""
    from mlflow import MlflowClient

    run_id = (data.served.get("model") or {}).get("run_id")
    if not run_id:
        raise ReconcileError("no heartbeat with the served model's run id in the journal")
    client = MlflowClient(tracking_uri=tracking_uri)
    for p in paths:
        client.log_artifact(run_id, str(p), artifact_path="reconcile")
    return str(run_id)
