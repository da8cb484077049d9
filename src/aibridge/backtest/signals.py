"""A model's decisions as backtest-engine inputs, and one model's numbers on a window.

Shared by the ``backtest`` and ``register`` stages (``aibridge.stages``) and the EA parity
check (``aibridge.mt4.parity``): services and stages both import from here, never from a stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from aibridge.backtest.engine import run_backtest
from aibridge.backtest.metrics import compute_metrics
from aibridge.backtest.settings import BacktestSettings, backtest_settings_from_mapping
from aibridge.instruments import InstrumentSpec
from aibridge.risk import RiskSettings

CANDLE_COLUMNS = ["time", "open", "high", "low", "close", "volume"]
DIRECTION = {"BUY": 1, "SELL": -1, "HOLD": 0}


def load_settings(cfg: Any = None) -> BacktestSettings:
    """The ``backtest`` group of ``cfg`` (typed settings, a mapping or a ``DictConfig``);
    when ``cfg`` has none, the project's ``conf/`` (``conf/backtest/default.yaml``)."""
    section = cfg.get("backtest") if isinstance(cfg, Mapping) else getattr(cfg, "backtest", None)
    if section is None:
        from aibridge.settings import config_group

        section = config_group("backtest")
    elif not isinstance(section, dict):
        from aibridge.config import to_container

        section = to_container(section)
    return backtest_settings_from_mapping(section)


def signals_from_decisions(decisions: pd.DataFrame, point: float) -> tuple[np.ndarray, ...]:
    """The pyfunc's output (``action``, ``sl_points``, ``tp_points``) as engine inputs:
    direction (+1/-1/0), stop and target distances in price units.

    >>> d = pd.DataFrame({"action": ["BUY", "HOLD"], "sl_points": [150.0, None],
    ...                   "tp_points": [300.0, None]})
    >>> [a.tolist() for a in signals_from_decisions(d, 0.00001)]
    [[1, 0], [0.0015, 0.0], [0.003, 0.0]]
    """
    sig = decisions["action"].map(DIRECTION).fillna(0).to_numpy(dtype=np.int64)
    sl = decisions["sl_points"].to_numpy(dtype=np.float64) * point
    tp = decisions["tp_points"].to_numpy(dtype=np.float64) * point
    return sig, np.nan_to_num(sl), np.nan_to_num(tp)


def window_metrics(
    decisions: pd.DataFrame,
    candles: pd.DataFrame,
    mask: np.ndarray,
    spec: InstrumentSpec,
    risk: RiskSettings,
    settings: BacktestSettings,
) -> dict[str, float]:
    """Backtest one model's decisions on the bars selected by ``mask``."""
    sig, sl, tp = signals_from_decisions(decisions, spec.point)
    window = candles.loc[mask].reset_index(drop=True)
    res = run_backtest(window, sig[mask], sl[mask], tp[mask], spec, risk, settings.engine)
    return compute_metrics(res, settings.bootstrap)
