"""Performance metrics of one backtest, with definitions a trader can check by hand.

Ratios use *daily* returns of the close-marked equity (last value per calendar day, days
without bars skipped), annualised with 252: one convention for every timeframe, so an M5 and
an H4 model are comparable, and the same numbers any spreadsheet would give.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from aibridge.backtest.engine import BacktestResult

TRADING_DAYS = 252


def daily_returns(equity: pd.Series, initial_equity: float) -> pd.Series:
    """Simple returns of end-of-day equity, the first day measured from the initial equity."""
    eod = equity.groupby(equity.index.normalize()).last()
    prev = eod.shift(1)
    prev.iloc[0] = initial_equity
    return eod / prev - 1.0


def json_safe(tree: Any) -> Any:
    """inf/NaN → None: JSON has neither, and DVC metrics and MLflow reject them."""
    if isinstance(tree, Mapping):
        return {str(k): json_safe(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [json_safe(v) for v in tree]
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


def _ratio(num: float, den: float) -> float:
    """num/den with inf/NaN made explicit instead of a ZeroDivisionError in a report."""
    if den == 0.0 or not math.isfinite(den):
        return math.inf if num > 0 else (0.0 if num == 0 else -math.inf)
    return num / den


def max_drawdown(equity: pd.Series, initial_equity: float) -> tuple[float, float]:
    """Largest peak-to-trough fall: (money, percent of the peak), both >= 0."""
    peak = np.maximum.accumulate(np.maximum(equity.to_numpy(), initial_equity))
    dd = peak - equity.to_numpy()
    if len(dd) == 0:
        return 0.0, 0.0
    k = int(np.argmax(dd))
    return float(dd[k]), float(100.0 * dd[k] / peak[k]) if peak[k] > 0 else 100.0


def compute_metrics(result: BacktestResult) -> dict[str, float]:
    """All headline numbers of a run (money in account currency, percentages in percent)."""
    eq = result.equity
    init = result.initial_equity
    trades = result.trades
    final = float(eq.iloc[-1]) if len(eq) else init
    net = final - init
    days = (eq.index[-1] - eq.index[0]).total_seconds() / 86400.0 if len(eq) > 1 else 0.0
    years = days / 365.25
    cagr = (final / init) ** (1.0 / years) - 1.0 if years > 0 and final > 0 else -1.0
    r = daily_returns(eq, init) if len(eq) else pd.Series(dtype=float)
    mean, std = float(r.mean()) if len(r) else 0.0, float(r.std(ddof=1)) if len(r) > 1 else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(r.to_numpy(), 0.0) ** 2))) if len(r) else 0.0
    dd_money, dd_pct = max_drawdown(eq, init)
    pnl = trades["net_pnl"].to_numpy() if len(trades) else np.zeros(0)
    wins, losses = pnl[pnl > 0], pnl[pnl <= 0]
    gross_win, gross_loss = float(wins.sum()), float(-losses.sum())
    r_mult = trades["r_multiple"].to_numpy() if len(trades) else np.zeros(0)
    r_mult = r_mult[np.isfinite(r_mult)]
    return {
        "net_profit": net,
        "return_pct": 100.0 * net / init,
        "cagr_pct": 100.0 * cagr,
        "sharpe": _ratio(mean, std) * math.sqrt(TRADING_DAYS) if std > 0 else 0.0,
        "sortino": _ratio(mean, downside) * math.sqrt(TRADING_DAYS) if downside > 0 else 0.0,
        "calmar": _ratio(100.0 * cagr, dd_pct) if dd_pct > 0 else 0.0,
        "max_drawdown_pct": dd_pct,
        "max_drawdown_money": dd_money,
        "profit_factor": _ratio(gross_win, gross_loss) if len(pnl) else 0.0,
        "win_rate_pct": 100.0 * len(wins) / len(pnl) if len(pnl) else 0.0,
        "expectancy_r": float(r_mult.mean()) if len(r_mult) else 0.0,
        "avg_trade": float(pnl.mean()) if len(pnl) else 0.0,
        "trade_count": float(len(pnl)),
        "exposure_pct": 100.0 * float((result.exposure_lots != 0).mean()) if len(eq) else 0.0,
        "commission": float(trades["commission"].sum()) if len(trades) else 0.0,
        "final_equity": final,
    }


METRIC_LABELS = {
    "net_profit": "Net profit",
    "return_pct": "Return %",
    "cagr_pct": "CAGR %",
    "sharpe": "Sharpe (daily, ann.)",
    "sortino": "Sortino (daily, ann.)",
    "calmar": "Calmar",
    "max_drawdown_pct": "Max drawdown %",
    "max_drawdown_money": "Max drawdown (money)",
    "profit_factor": "Profit factor",
    "win_rate_pct": "Win rate %",
    "expectancy_r": "Expectancy (R per trade)",
    "avg_trade": "Average trade (money)",
    "trade_count": "Trades",
    "exposure_pct": "Exposure % of bars",
    "commission": "Commission paid",
    "final_equity": "Final equity",
}
