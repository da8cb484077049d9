"""Walk-forward backtest with MT4 fill semantics, metrics, baselines, reports and the gate.

Modules, one job each: ``core`` (compiled bar loop), ``engine`` (arrays ↔ tables),
``settings`` (config), ``metrics``, ``baselines``, ``walkforward``, ``report``, ``gate``.
"""

from aibridge.backtest.engine import BacktestResult, run_backtest
from aibridge.backtest.settings import BacktestSettings, EngineSettings

__all__ = ["BacktestResult", "BacktestSettings", "EngineSettings", "run_backtest"]
