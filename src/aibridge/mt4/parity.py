"""EA vs backtest parity: the compiled EA's trades must be the backtest's, trade by trade.

The EA (compiled against the MT4 stand-in, :mod:`aibridge.mt4.replay`) trades a CSV bar by
bar against a real ``aibridge serve``; the backtest (:func:`aibridge.backtest.engine.run_backtest`)
trades the same bars with the same model's decisions (the pyfunc over the same candles), the
served risk rules and exit policy (``conf/risk``), the instrument (``conf/instrument``) and the
engine settings (``conf/backtest``). Both trade lists are compared on entry time, side, lots,
entry price, exit time, exit price (within one point) and exit reason; any difference is
printed trade by trade, and the command exits non-zero.

``python -m aibridge.mt4.parity`` runs the bundled sample (the champion of the project's
``mlflow.db`` after ``dvc repro``) and a synthetic planted-edge series on which a freshly
registered model trades (:mod:`aibridge.mt4.synthetic`), and writes
``reports/ea_parity/summary.json``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# Exit reasons in one vocabulary: the backtest's (SL, TP, signal, time, end), the protocol's
# closed-event reasons (sl, tp, signal, time) and the stand-in's (sl, tp, close, end).
REASONS = {"sl": "sl", "tp": "tp", "signal": "signal", "time": "time", "end": "end"}
COMPARED = ("side", "lots", "entry_price", "exit_time", "exit_price", "exit_reason")


def normalise_reason(value: Any) -> str:
    """``SL``/``[sl]``/``sl`` → ``sl``; unknown reasons pass through lowercased."""
    text = str(value).strip().lower().strip("[]")
    return REASONS.get(text, text)


def trade_frame(trades: pd.DataFrame) -> pd.DataFrame:
    """A trade list (backtest, ea-sim or stand-in columns) in the compared form.

    Accepts ``entry_time``/``open_time``, ``exit_time``/``close_time``, ``entry_price``/
    ``open_price``, ``exit_price``/``close_price``, ``exit_reason``/``close_reason``; times
    as datetimes or unix seconds.
    """
    rename = {
        "open_time": "entry_time",
        "close_time": "exit_time",
        "open_price": "entry_price",
        "close_price": "exit_price",
        "close_reason": "exit_reason",
    }
    t = trades.rename(
        columns={k: v for k, v in rename.items() if k not in trades or v not in trades}
    )
    out = pd.DataFrame(
        {
            "entry_time": _times(t["entry_time"]),
            "side": t["side"].astype(str).str.upper().to_numpy(),
            "lots": t["lots"].to_numpy(dtype=np.float64),
            "entry_price": t["entry_price"].to_numpy(dtype=np.float64),
            "exit_time": _times(t["exit_time"]),
            "exit_price": t["exit_price"].to_numpy(dtype=np.float64),
            "exit_reason": [normalise_reason(r) for r in t["exit_reason"]],
        }
    )
    return out.sort_values(["entry_time", "side"], kind="stable").reset_index(drop=True)


def _times(col: pd.Series) -> np.ndarray:
    if np.issubdtype(col.dtype, np.datetime64):
        return pd.to_datetime(col).to_numpy(dtype="datetime64[s]")
    return pd.to_datetime(col.astype("int64"), unit="s").to_numpy(dtype="datetime64[s]")


@dataclass
class Comparison:
    """Result of comparing two trade lists (``expected`` = the backtest)."""

    expected: int
    actual: int
    differences: pd.DataFrame  # trade, entry_time, field, backtest, ea
    matched: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.differences.empty

    @property
    def differing_trades(self) -> int:
        if self.differences.empty:
            return 0
        return int(self.differences["entry_time"].nunique())

    def table(self, limit: int = 50) -> str:
        """The differences as a plain text table, one line per differing field."""
        if self.ok:
            return f"0 differing trades ({self.matched} matched)"
        d = self.differences.head(limit)
        lines = [
            f"{self.differing_trades} differing trades "
            f"(backtest {self.expected}, EA {self.actual}, matched {self.matched}):",
            f"{'#':>4}  {'entry time':<19}  {'field':<12}  {'backtest':>20}  {'EA':>20}",
        ]
        for row in d.itertuples(index=False):
            lines.append(
                f"{row.trade:>4}  {row.entry_time!s:<19}  {row.field:<12}  "
                f"{_fmt(row.backtest):>20}  {_fmt(row.ea):>20}"
            )
        if len(self.differences) > limit:
            lines.append(f"... {len(self.differences) - limit} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backtest_trades": self.expected,
            "ea_trades": self.actual,
            "matched": self.matched,
            "differing_trades": self.differing_trades,
            "differences": [
                {k: _json(v) for k, v in row.items()}
                for row in self.differences.head(200).to_dict(orient="records")
            ],
            "notes": self.notes,
        }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if np.isnan(v) else f"{v:.6f}".rstrip("0").rstrip(".")
    return "-" if v is None else str(v)


def _json(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return str(pd.Timestamp(v))
    return v


def compare_trades(
    backtest: pd.DataFrame,
    ea: pd.DataFrame,
    point: float,
    *,
    price_tolerance_points: float = 1.0,
    lot_tolerance: float = 1e-9,
) -> Comparison:
    """Trade by trade, matched on entry time (and side): a trade only one side has is one
    difference (``field`` = ``missing in EA`` / ``extra in EA``), so one skipped entry does
    not shift every later comparison."""
    a = trade_frame(backtest)
    b = trade_frame(ea)
    a["nth"] = a.groupby(["entry_time", "side"]).cumcount()
    b["nth"] = b.groupby(["entry_time", "side"]).cumcount()
    merged = a.merge(
        b, on=["entry_time", "side", "nth"], how="outer", suffixes=("_bt", "_ea"), indicator="where"
    ).sort_values(["entry_time", "side"], kind="stable")
    tol = price_tolerance_points * point + 1e-9 * point
    rows: list[dict[str, Any]] = []
    matched = 0
    for n, r in enumerate(merged.itertuples(index=False), start=1):
        base = {"trade": n, "entry_time": pd.Timestamp(r.entry_time)}
        if r.where != "both":
            where = "missing in EA" if r.where == "left_only" else "extra in EA"
            src = "_bt" if r.where == "left_only" else "_ea"
            desc = (
                f"{r.side} {getattr(r, 'lots' + src):g} @ {getattr(r, 'entry_price' + src):.6g} "
                f"→ {getattr(r, 'exit_reason' + src)}"
            )
            rows.append(
                base
                | {
                    "field": where,
                    "backtest": desc if src == "_bt" else None,
                    "ea": desc if src == "_ea" else None,
                }
            )
            continue
        diffs = []
        if abs(r.lots_bt - r.lots_ea) > lot_tolerance:
            diffs.append(("lots", r.lots_bt, r.lots_ea))
        for col in ("entry_price", "exit_price"):
            x, y = getattr(r, col + "_bt"), getattr(r, col + "_ea")
            if not abs(x - y) <= tol:
                diffs.append((col, x, y))
        if r.exit_time_bt != r.exit_time_ea:
            diffs.append(("exit_time", pd.Timestamp(r.exit_time_bt), pd.Timestamp(r.exit_time_ea)))
        if r.exit_reason_bt != r.exit_reason_ea:
            diffs.append(("exit_reason", r.exit_reason_bt, r.exit_reason_ea))
        if diffs:
            rows.extend(base | {"field": f, "backtest": x, "ea": y} for f, x, y in diffs)
        else:
            matched += 1
    differences = pd.DataFrame(rows, columns=["trade", "entry_time", "field", "backtest", "ea"])
    return Comparison(expected=len(a), actual=len(b), differences=differences, matched=matched)


def reasons_from_journal(events: Iterable[dict[str, Any]]) -> dict[int, str]:
    """ticket → exit reason from the server journal's ``closed`` trade events."""
    out: dict[int, str] = {}
    for e in events:
        if e.get("event") == "closed" and e.get("ticket") is not None and e.get("reason"):
            out[int(e["ticket"])] = normalise_reason(e["reason"])
    return out
