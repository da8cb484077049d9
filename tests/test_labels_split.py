"""Triple-barrier labels on hand-made paths, and no leakage across the split boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from aibridge.labels import BUY, HOLD, NO_LABEL, SELL, triple_barrier_labels
from aibridge.training import time_split


def label_path(highs, lows, close0=1.0, atr=0.01, tp=2.0, sl=1.0, horizon=3):
    high = np.array([close0, *highs])
    low = np.array([close0, *lows])
    close = np.full(len(high), close0)
    return triple_barrier_labels(high, low, close, np.full(len(high), atr), tp, sl, horizon)[0]


def test_long_take_profit_first_is_buy() -> None:
    assert label_path([1.005, 1.021, 1.0], [0.995, 1.0, 0.98]) == BUY


def test_short_take_profit_first_is_sell() -> None:
    assert label_path([1.005, 1.0, 1.0], [0.995, 0.979, 0.97]) == SELL


def test_neither_in_time_is_hold() -> None:
    assert label_path([1.015, 1.015, 1.015], [0.995, 0.995, 0.995]) == HOLD


def test_same_bar_touching_tp_and_stop_assumes_stop() -> None:
    # Bar 1 spans +2.5 ATR and -1.5 ATR: long TP and long SL both touched → stop first.
    # The short's TP (-2 ATR) is not reached, its stop (+1 ATR) is: no label but HOLD.
    assert label_path([1.025, 1.0, 1.0], [0.985, 1.0, 1.0]) == HOLD


def test_tail_without_future_is_unlabelled() -> None:
    n, h = 50, 5
    labels = triple_barrier_labels(
        np.ones(n) * 1.01, np.ones(n) * 0.99, np.ones(n), np.ones(n) * 0.01, 2, 1, h
    )
    assert (labels[-h:] == NO_LABEL).all() and (labels[:-h] != NO_LABEL).all()


def test_label_uses_only_horizon_bars() -> None:
    rng = np.random.default_rng(1)
    n, h = 300, 10
    close = 1 + np.cumsum(rng.normal(0, 0.001, n))
    high, low = close + 0.0005, close - 0.0005
    atr = np.full(n, 0.001)
    base = triple_barrier_labels(high, low, close, atr, 2, 1, h)
    t = 100
    high2, low2 = high.copy(), low.copy()
    high2[t + h + 1 :] += 1.0  # far future beyond the horizon of bar t
    low2[t + h + 1 :] -= 1.0
    assert triple_barrier_labels(high2, low2, close, atr, 2, 1, h)[t] == base[t]


@pytest.mark.parametrize("n", [1000, 4905])
def test_split_is_ordered_disjoint_and_embargoed(n: int) -> None:
    horizon = 24
    split = time_split(n, 0.15, 0.15, embargo=horizon)
    assert split.train.max() + horizon < split.validation.min()
    assert split.validation.max() + horizon < split.test.min()
    # No training label window (t .. t+horizon) reaches a validation bar.
    assert (split.train + horizon < split.validation.min()).all()
    assert split.test.max() == n - 1
    assert len(set(split.train) | set(split.validation) | set(split.test)) == n - 2 * horizon


def test_split_too_small_is_explained() -> None:
    with pytest.raises(ValueError, match="too few for this split"):
        time_split(40, 0.3, 0.3, embargo=24)
