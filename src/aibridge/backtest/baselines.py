"""Baselines every model result is judged against, through the very same engine and rules.

* flat: never trade (net 0): a model that loses money is worse than doing nothing;
* buy-and-hold: one long on the first bar, sized by the risk rule on that bar's SL distance,
  without SL/TP, closed at the end: what plain market exposure earned;
* random: the model's number of BUY/SELL signals placed on random bars with random sides and
  the same SL/TP distances, over several seeds: what the model's trading *frequency* and risk
  settings earn without its skill.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from aibridge.backtest.engine import BacktestResult, run_backtest
from aibridge.backtest.metrics import compute_metrics
from aibridge.backtest.settings import BaselineSettings, EngineSettings
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


def random_signals(signal: np.ndarray, seed: int) -> np.ndarray:
    """As many non-zero signals as ``signal`` has, on random bars with random sides."""
    rng = np.random.default_rng(seed)
    n, k = len(signal), int(np.count_nonzero(signal))
    out = np.zeros(n, dtype=np.int64)
    bars = rng.choice(n - 1, size=min(k, n - 1), replace=False)  # the last bar cannot act
    out[bars] = rng.choice(np.array([-1, 1]), size=len(bars))
    return out


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
) -> BaselineResults:
    """Run the three baselines on the same window and rules as the model."""
    n = len(candles)
    flat = run_backtest(
        candles, np.zeros(n, dtype=np.int64), sl_dist, tp_dist, spec, risk, engine, conv
    )
    hold_sig = np.zeros(n, dtype=np.int64)
    hold_sig[0] = 1
    hold_engine = engine.model_copy(update={"attach_stops": False})
    hold_risk = risk.model_copy(update={"max_hold_bars": 0})  # held to the end, no time exit
    hold = run_backtest(candles, hold_sig, sl_dist, tp_dist, spec, hold_risk, hold_engine, conv)
    runs = [
        compute_metrics(
            run_backtest(
                candles,
                random_signals(signal, settings.seed + k),
                sl_dist,
                tp_dist,
                spec,
                risk,
                engine,
                conv,
            )
        )
        for k in range(settings.random_runs)
    ]
    median = {key: float(np.median([r[key] for r in runs])) for key in runs[0]}
    return BaselineResults(
        flat=compute_metrics(flat),
        buy_and_hold=compute_metrics(hold),
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
