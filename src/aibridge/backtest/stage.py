"""Moved: the backtest stage body is :mod:`aibridge.stages.backtest`; the helpers shared with
``aibridge.mt4.parity`` are in :mod:`aibridge.backtest.signals`. This alias stays only until
the last callers (``mt4/parity.py``, ``benchmarks/bench_scale.py``, two tests) import from
there; it imports nothing itself, so the backtest package does not depend on ``stages``."""

from __future__ import annotations

from typing import Any

_MOVED = {
    "CANDLE_COLUMNS": "aibridge.backtest.signals",
    "DIRECTION": "aibridge.backtest.signals",
    "load_settings": "aibridge.backtest.signals",
    "signals_from_decisions": "aibridge.backtest.signals",
    "window_metrics": "aibridge.backtest.signals",
    "load_bundle": "aibridge.model_bundle:load_local_bundle",
    "backtest": "aibridge.stages.backtest",
    "main": "aibridge.stages.backtest",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name not in _MOVED:
        raise AttributeError(name)
    module, _, attr = _MOVED[name].partition(":")
    return getattr(importlib.import_module(module), attr or name)
