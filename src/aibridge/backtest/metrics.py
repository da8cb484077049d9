"""Performance metrics of one backtest, with definitions a trader can check by hand.

Ratios use *daily* returns of the close-marked equity (last value per calendar day, days
without bars skipped), each relative to the previous day's equity, annualised with 252: one
convention for every timeframe, so an M5 and an H4 model are comparable, and the same numbers
any spreadsheet would give. Returns never flip sign: once equity is <= 0 the account is ruined,
that day's return is -100 % and the series ends there (a negative equity divided by a negative
equity would otherwise read as a gain).

Max drawdown % is measured against the running peak at every point, (peak - equity) / peak,
and the largest over time is reported: 10k -> 25k -> 5k is 80 %, not the 20 % of the start.

Confidence intervals (``*_ci_low`` / ``*_ci_high``) are percentile bootstraps with a fixed
seed: Sharpe resamples the daily returns, expectancy the trades' R multiples (i.i.d.; serial
correlation would widen them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from aibridge.backtest.engine import BacktestResult
from aibridge.backtest.settings import BootstrapSettings

TRADING_DAYS = 252


def daily_returns(equity: pd.Series, initial_equity: float) -> pd.Series:
    """Simple returns of end-of-day equity relative to the previous day's, the first day
    measured from the initial equity; the series ends on the first day equity is <= 0, with a
    return of -100 % (ruin: nothing is left to earn a return on)."""
    eod = equity.groupby(equity.index.normalize()).last()
    if len(eod) == 0:
        return eod.astype(float)
    prev = eod.shift(1)
    prev.iloc[0] = initial_equity
    if initial_equity <= 0:
        return eod.iloc[:0].astype(float)
    r = eod / prev - 1.0
    broke = np.flatnonzero(eod.to_numpy() <= 0.0)
    if len(broke):
        k = int(broke[0])
        r = r.iloc[: k + 1].copy()
        r.iloc[k] = -1.0
    return r


def sharpe_ratio(r: np.ndarray) -> float:
    """Annualised Sharpe of daily returns (sample standard deviation); 0 when undefined."""
    r = np.asarray(r, dtype=np.float64)
    if len(r) < 2:
        return 0.0
    sd = float(r.std(ddof=1))
    return float(r.mean()) / sd * math.sqrt(TRADING_DAYS) if sd > 0 else 0.0


def bootstrap_ci(
    values: np.ndarray,
    stat: str,
    settings: BootstrapSettings,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` (``mean`` or ``sharpe``) over ``values``.

    ``settings.samples`` resamples of the same size with replacement from
    ``numpy.random.default_rng(settings.seed)``; (NaN, NaN) with fewer than 2 values.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 2 or settings.samples <= 0:
        return math.nan, math.nan
    rng = np.random.default_rng(settings.seed)
    idx = rng.integers(0, len(x), size=(settings.samples, len(x)))
    draws = x[idx]
    mean = draws.mean(axis=1)
    if stat == "mean":
        est = mean
    elif stat == "sharpe":
        sd = draws.std(axis=1, ddof=1)
        est = np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0), 0.0) * math.sqrt(TRADING_DAYS)
    else:
        raise ValueError(f"unknown statistic {stat!r}")
    tail = 100.0 * (1.0 - settings.confidence) / 2.0
    lo, hi = np.percentile(est, [tail, 100.0 - tail])
    return float(lo), float(hi)


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
    """Largest falls from the running peak (the initial equity counts as the first peak):
    (money, percent), each the maximum over time of ``peak - equity`` and of
    ``100 * (peak - equity) / peak`` -- the two maxima can sit at different points (10k → 8k
    is 2k and 20 %; 50k → 47k later is 3k but 6 %: (3k, 20 %))."""
    eq = equity.to_numpy(dtype=np.float64)
    if len(eq) == 0:
        return 0.0, 0.0
    peak = np.maximum.accumulate(np.maximum(eq, initial_equity))
    dd = peak - eq
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(peak > 0, 100.0 * dd / peak, 100.0)
    return float(dd.max()), float(pct.max())


def compute_metrics(
    result: BacktestResult, bootstrap: BootstrapSettings | None = None
) -> dict[str, float]:
    """All headline numbers of a run (money in account currency, percentages in percent).

    ``bootstrap`` (default: :class:`BootstrapSettings()`) sets the confidence intervals of
    Sharpe and expectancy.
    """
    boot = bootstrap or BootstrapSettings()
    eq = result.equity
    init = result.initial_equity
    trades = result.trades
    final = float(eq.iloc[-1]) if len(eq) else init
    net = final - init
    days = (eq.index[-1] - eq.index[0]).total_seconds() / 86400.0 if len(eq) > 1 else 0.0
    years = days / 365.25
    cagr = (final / init) ** (1.0 / years) - 1.0 if years > 0 and final > 0 else -1.0
    r = daily_returns(eq, init) if len(eq) else pd.Series(dtype=float)
    mean = float(r.mean()) if len(r) else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(r.to_numpy(), 0.0) ** 2))) if len(r) else 0.0
    dd_money, dd_pct = max_drawdown(eq, init)
    pnl = trades["net_pnl"].to_numpy() if len(trades) else np.zeros(0)
    wins, losses = pnl[pnl > 0], pnl[pnl <= 0]
    gross_win, gross_loss = float(wins.sum()), float(-losses.sum())
    r_mult = trades["r_multiple"].to_numpy() if len(trades) else np.zeros(0)
    r_mult = r_mult[np.isfinite(r_mult)]
    sharpe_lo, sharpe_hi = bootstrap_ci(r.to_numpy(), "sharpe", boot)
    exp_lo, exp_hi = bootstrap_ci(r_mult, "mean", boot)
    return {
        "net_profit": net,
        "return_pct": 100.0 * net / init,
        "cagr_pct": 100.0 * cagr,
        "sharpe": sharpe_ratio(r.to_numpy()),
        "sharpe_ci_low": sharpe_lo,
        "sharpe_ci_high": sharpe_hi,
        "days": float(len(r)),
        "sortino": _ratio(mean, downside) * math.sqrt(TRADING_DAYS) if downside > 0 else 0.0,
        "calmar": _ratio(100.0 * cagr, dd_pct) if dd_pct > 0 else 0.0,
        "max_drawdown_pct": dd_pct,
        "max_drawdown_money": dd_money,
        "profit_factor": _ratio(gross_win, gross_loss) if len(pnl) else 0.0,
        "win_rate_pct": 100.0 * len(wins) / len(pnl) if len(pnl) else 0.0,
        "expectancy_r": float(r_mult.mean()) if len(r_mult) else 0.0,
        "expectancy_r_ci_low": exp_lo,
        "expectancy_r_ci_high": exp_hi,
        "avg_trade": float(pnl.mean()) if len(pnl) else 0.0,
        "trade_count": float(len(pnl)),
        "exposure_pct": 100.0 * float((result.exposure_lots != 0).mean()) if len(eq) else 0.0,
        "commission": float(trades["commission"].sum()) if len(trades) else 0.0,
        "final_equity": final,
        "ruined": 1.0 if (result.ruined or final <= 0.0) else 0.0,
        "daily_return_skew": _moment(r.to_numpy(), 3),
        "daily_return_kurtosis": _moment(r.to_numpy(), 4),
    }


def _moment(r: np.ndarray, k: int) -> float:
    """Standardised ``k``-th moment (3: skewness, 4: kurtosis, normal = 3); NaN when undefined."""
    r = np.asarray(r, dtype=np.float64)
    if len(r) < 3:
        return math.nan
    sd = float(r.std())
    if sd == 0.0:
        return math.nan
    return float(np.mean(((r - r.mean()) / sd) ** k))


METRIC_LABELS = {
    "net_profit": "Net profit",
    "return_pct": "Return %",
    "cagr_pct": "CAGR %",
    "sharpe": "Sharpe (daily, ann.)",
    "sharpe_ci_low": "Sharpe 95% CI low",
    "sharpe_ci_high": "Sharpe 95% CI high",
    "sortino": "Sortino (daily, ann.)",
    "calmar": "Calmar",
    "max_drawdown_pct": "Max drawdown %",
    "max_drawdown_money": "Max drawdown (money)",
    "profit_factor": "Profit factor",
    "win_rate_pct": "Win rate %",
    "expectancy_r": "Expectancy (R per trade, net)",
    "expectancy_r_ci_low": "Expectancy 95% CI low",
    "expectancy_r_ci_high": "Expectancy 95% CI high",
    "avg_trade": "Average trade (money)",
    "trade_count": "Trades",
    "exposure_pct": "Exposure % of bars",
    "commission": "Commission paid",
    "final_equity": "Final equity",
    "ruined": "Ruined (margin stop-out)",
}
