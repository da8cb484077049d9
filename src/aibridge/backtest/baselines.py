"""Baselines every model result is judged against, through the very same engine and rules.

* flat: never trade (net 0): a model that loses money is worse than doing nothing;
* buy-and-hold: one long on the first bar with a notional of ``buy_and_hold_leverage`` x the
  initial equity (1x by default: the account's money in the market, unlevered), without
  SL/TP or time exit, closed at the end: what plain market exposure earned. (Sizing it by the
  risk rule on a 1-ATR stop it never has would lever it ~8x and say little.)
* random: as many BUY/SELL signals as the model made *trades* (not signals: a model repeating
  its signal on consecutive bars holds one position, while as many random signals would
  open and pay the spread that many times) on random bars with random sides and the same
  SL/TP distances, over several seeds: what the model's trading frequency and risk settings
  earn without its skill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aibridge.backtest.engine import BacktestResult, run_backtest
from aibridge.backtest.metrics import compute_metrics
from aibridge.backtest.settings import BaselineSettings, BootstrapSettings, EngineSettings
from aibridge.instruments import InstrumentSpec
from aibridge.risk import RiskSettings


@dataclass
class BaselineResults:
    """Metrics per baseline (random: the median over seeds, plus every run's numbers)."""

    flat: dict[str, float]
    buy_and_hold: dict[str, float]
    random_median: dict[str, float]
    random_runs: list[dict[str, float]]
    buy_and_hold_result: BacktestResult


def _median(values: list[float]) -> float:
    """Median of the finite values; NaN when there are none (e.g. unbootstrapped CIs)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if len(x) else float("nan")


def random_signals(signal: np.ndarray, seed: int, count: int | None = None) -> np.ndarray:
    """``count`` (default: as many as ``signal`` has) non-zero signals on random bars with
    random sides."""
    rng = np.random.default_rng(seed)
    n = len(signal)
    k = int(np.count_nonzero(signal)) if count is None else int(count)
    out = np.zeros(n, dtype=np.int64)
    bars = rng.choice(n - 1, size=min(k, n - 1), replace=False)  # the last bar cannot act
    out[bars] = rng.choice(np.array([-1, 1]), size=len(bars))
    return out


def buy_and_hold_lots(
    price: float,
    spec: InstrumentSpec,
    equity: float,
    leverage: float,
    conv: float | None = None,
) -> float:
    """Lots whose notional (contract x price, in account currency) is ``leverage`` x
    ``equity``, floored to the lot step and kept within the instrument's lot limits."""
    tick_value = spec.tick_value_at(price, conv)
    notional_per_lot = price * tick_value / spec.tick
    raw = leverage * equity / notional_per_lot
    lots = math.floor(raw / spec.lot_step + 1e-7) * spec.lot_step
    return round(min(max(lots, spec.lot_min), spec.lot_max), 8)


def run_baselines(
    candles: pd.DataFrame,
    signal: np.ndarray,
    sl_dist: np.ndarray,
    tp_dist: np.ndarray,
    spec: InstrumentSpec,
    risk: RiskSettings,
    engine: EngineSettings,
    settings: BaselineSettings,
    conv: np.ndarray | float | None = None,
    bootstrap: BootstrapSettings | None = None,
    trades: int | None = None,
) -> BaselineResults:
    """Run the three baselines on the same window and rules as the model; ``trades`` (the
    model's trade count) sizes the random runs (default: its signal count)."""
    n = len(candles)
    boot = bootstrap or BootstrapSettings()
    flat = run_backtest(
        candles, np.zeros(n, dtype=np.int64), sl_dist, tp_dist, spec, risk, engine, conv
    )
    hold_sig = np.zeros(n, dtype=np.int64)
    hold_sig[0] = 1
    first_open = float(candles["open"].iloc[1]) if n > 1 else float(candles["open"].iloc[0])
    conv0 = None
    if conv is not None:
        conv0 = float(np.broadcast_to(np.asarray(conv, dtype=np.float64), (n,))[0])
    elif engine.quote_to_account is not None:
        conv0 = engine.quote_to_account
    hold_lots = buy_and_hold_lots(
        first_open + spec.default_spread_points * spec.point,
        spec,
        engine.initial_equity,
        settings.buy_and_hold_leverage,
        conv0,
    )
    hold_engine = engine.model_copy(update={"attach_stops": False, "fixed_lots": hold_lots})
    # held to the end: no time exit, and no risk caps that would refuse the one entry
    hold_risk = risk.model_copy(
        update={
            "max_hold_bars": 0,
            "max_spread_points": 0.0,
            "max_daily_drawdown_pct": 0.0,
            "trading_start_hour": 0,
            "trading_end_hour": 24,
            "max_total_lots": max(risk.max_total_lots, hold_lots),
        }
    )
    hold = run_backtest(candles, hold_sig, sl_dist, tp_dist, spec, hold_risk, hold_engine, conv)
    no_boot = BootstrapSettings(samples=0)
    runs = [
        compute_metrics(
            run_backtest(
                candles,
                random_signals(signal, settings.seed + k, trades),
                sl_dist,
                tp_dist,
                spec,
                risk,
                engine,
                conv,
            ),
            no_boot,
        )
        for k in range(settings.random_runs)
    ]
    median = {key: _median([r[key] for r in runs]) for key in runs[0]}
    return BaselineResults(
        flat=compute_metrics(flat, no_boot),
        buy_and_hold=compute_metrics(hold, boot),
        random_median=median,
        random_runs=runs,
        buy_and_hold_result=hold,
    )


def verdicts(model: dict[str, float], base: BaselineResults) -> list[dict[str, object]]:
    """Plain yes/no per baseline on net profit and Sharpe, with the numbers."""
    rows: list[dict[str, object]] = []
    for name, m in (
        ("flat", base.flat),
        ("buy-and-hold", base.buy_and_hold),
        ("random (median)", base.random_median),
    ):
        rows.append(
            {
                "baseline": name,
                "model_net_profit": model["net_profit"],
                "baseline_net_profit": m["net_profit"],
                "model_sharpe": model["sharpe"],
                "baseline_sharpe": m["sharpe"],
                "beats_on_net_profit": model["net_profit"] > m["net_profit"],
                "beats_on_sharpe": model["sharpe"] > m["sharpe"],
            }
        )
    share = float(np.mean([model["net_profit"] > r["net_profit"] for r in base.random_runs]))
    rows[-1]["share_of_random_runs_beaten"] = share
    return rows
