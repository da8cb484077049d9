"""Triple-barrier labels on hand-made paths, the engine-like labels (next open, spread, stop
first) against the backtest kernel, and no leakage across the split boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from aibridge.labels import (
    BUY,
    HOLD,
    NO_LABEL,
    OUT_SL,
    OUT_TIME,
    OUT_TP,
    SELL,
    barrier_outcomes,
    triple_barrier_labels,
)
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


# --------------------------------------------------------------------------- engine-like labels
# Prices in points of 1e-5 (5 digits); ATR 100 points → SL 100, TP 200 points.
PT = 1e-5


def outcomes(bars, spread=10.0, horizon=3, atr=100 * PT):
    """Signal bar 0 (its candle is irrelevant), then ``bars`` = [(o, h, l, c) in points]."""
    rows = [(0, 0, 0, 0), *bars]
    o, h, lo, c = (np.array([1.0 + r[k] * PT for r in rows]) for k in range(4))
    return barrier_outcomes(
        o,
        h,
        lo,
        c,
        np.full(len(rows), atr),
        2.0,
        1.0,
        horizon,
        point=PT,
        digits=5,
        spread_points=spread,
    )


def test_long_enters_at_the_next_open_ask_and_exits_on_the_bid() -> None:
    # Entry Ask = open + 10 = 10; TP = 210 needs a Bid high of 210: 205 is not enough.
    out = outcomes([(0, 205, -50, 100), (100, 209, 50, 150), (150, 210, 120, 200)])
    assert out.exit_long[0] == OUT_TP and out.label[0] == BUY
    assert out.r_long[0] == pytest.approx(2.0)
    assert out.bars_long[0] == 3
    # The Bid-close entry of feature set 1 would have called TP on the first bar.
    assert label_path([1.00205, 1.00209, 1.0021], [0.9995, 1.0005, 1.0012], atr=0.001) == BUY


def test_short_stop_is_hit_by_the_ask() -> None:
    # Short at Bid 0: SL = 100 on the Ask; a Bid high of 91 + spread 10 = 101 reaches it.
    out = outcomes([(0, 91, -150, -100), (-100, -100, -300, -290), (-290, -280, -300, -290)])
    assert out.exit_short[0] == OUT_SL and out.r_short[0] == pytest.approx(-1.0)
    assert out.label[0] != SELL


def test_one_bar_touching_both_levels_is_the_stop_for_either_side() -> None:
    # Entry bar spans -250..+250: long SL (-90) and TP (210) both touched → SL;
    # short SL (100 Ask) and TP (-200 Ask) both touched → SL.
    out = outcomes([(0, 250, -250, 0), (0, 0, 0, 0), (0, 0, 0, 0)])
    assert out.exit_long[0] == OUT_SL and out.exit_short[0] == OUT_SL
    assert out.label[0] == HOLD


def test_gap_through_the_stop_fills_at_the_open() -> None:
    out = outcomes([(0, 20, -20, 0), (-300, -280, -320, -300), (-300, -300, -300, -300)])
    # long: entry 10, gap open -300 → R = -310/100
    assert out.exit_long[0] == OUT_SL and out.r_long[0] == pytest.approx(-3.1)
    # short: entry 0, TP = -200 on the Ask; the gap open Ask -290 is through it → fills there
    assert out.exit_short[0] == OUT_TP and out.r_short[0] == pytest.approx(2.9)
    assert out.label[0] == SELL


def test_time_barrier_marks_at_the_last_close_on_the_closing_side() -> None:
    out = outcomes([(0, 50, -50, 20), (20, 60, -40, 30), (30, 70, -30, 40)])
    assert out.exit_long[0] == OUT_TIME and out.exit_short[0] == OUT_TIME
    assert out.r_long[0] == pytest.approx((40 - 10) / 100)  # Bid close - Ask entry
    assert out.r_short[0] == pytest.approx(-(40 + 10 - 0) / 100)  # short closes at the Ask
    assert out.label[0] == HOLD


def test_engine_like_labels_leave_the_tail_unlabelled() -> None:
    n, h = 60, 5
    rng = np.random.default_rng(3)
    c = 1 + np.cumsum(rng.normal(0, 0.001, n))
    o = np.r_[c[0], c[:-1]]
    out = barrier_outcomes(
        o,
        np.maximum(o, c) + 0.0005,
        np.minimum(o, c) - 0.0005,
        c,
        np.full(n, 0.001),
        2,
        1,
        h,
        point=PT,
        digits=5,
        spread_points=8.0,
    )
    assert (out.label[-h:] == NO_LABEL).all() and (out.label[:-h] != NO_LABEL).all()
    assert np.isfinite(out.r_long[:-h]).all() and np.isnan(out.r_long[-h:]).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_labels_trade_exactly_like_the_backtest_kernel(seed: int) -> None:
    """Every side's exit price, reason and bar equal the kernel's on a random series with a
    varying spread and gaps, for signals far enough apart to be independent trades. The time
    exit is the kernel's at the next open, which equals the last close here (open = close)."""
    import pandas as pd

    from aibridge.backtest.engine import run_backtest
    from aibridge.backtest.settings import EngineSettings
    from aibridge.features import atr as atr_of
    from aibridge.instruments import load_instrument
    from aibridge.risk import RiskSettings

    rng = np.random.default_rng(seed)
    n, horizon = 3000, 12
    c = np.round(1.1 + np.cumsum(rng.normal(0, 0.0012, n)), 5)
    o = np.r_[c[0], c[:-1]]
    gaps = rng.random(n) < 0.03
    o[gaps] = np.round(o[gaps] + rng.normal(0, 0.004, gaps.sum()), 5)
    wick = np.round(np.abs(rng.normal(0, 0.0008, (2, n))), 5)
    high, low = np.maximum(o, c) + wick[0], np.minimum(o, c) - wick[1]
    spread = rng.integers(0, 25, n).astype(float)
    time = pd.date_range("2022-01-03", periods=n, freq="h")
    candles = pd.DataFrame(
        {
            "time": time,
            "open": o,
            "high": high,
            "low": low,
            "close": c,
            "volume": 100,
            "spread": spread,
        }
    )
    a = atr_of(high, low, c, 14)
    out = barrier_outcomes(
        o, high, low, c, a, 2.0, 1.0, horizon, point=PT, digits=5, spread_points=spread
    )
    spec = load_instrument("EURUSD")
    risk = RiskSettings(
        max_hold_bars=horizon,
        close_on_opposite=False,
        max_spread_points=0,
        max_daily_drawdown_pct=0,
        max_open_positions=1,
        max_total_lots=1000,
    )
    checked = 0
    for side in (1, -1):
        signal = np.zeros(n, dtype=np.int64)
        bars = np.arange(20, n - horizon - 2, horizon + 3)
        signal[bars] = side
        result = run_backtest(
            candles,
            signal,
            out.sl_points * PT,
            out.tp_points * PT,
            spec,
            risk,
            EngineSettings(fixed_lots=1.0, initial_equity=1e9),  # no stop-out: a deep account
        )
        trades = result.trades
        assert len(trades) == len(bars)
        r = out.r_long if side > 0 else out.r_short
        code = out.exit_long if side > 0 else out.exit_short
        held = out.bars_long if side > 0 else out.bars_short
        for t, tr in zip(bars, trades.itertuples(), strict=True):
            assert tr.entry_bar == t + 1
            reason = {OUT_TP: "TP", OUT_SL: "SL", OUT_TIME: "time"}[int(code[t])]
            assert tr.exit_reason == reason, (t, tr)
            expect_r = side * (tr.exit_price - tr.entry_price) / (out.sl_points[t] * PT)
            x = tr.exit_bar
            if reason == "time" and (o[x] != c[x - 1] or spread[x] != spread[x - 1]):
                continue  # the kernel exits at the next open, the label marks the last close
            assert r[t] == pytest.approx(expect_r, abs=1e-9), (t, tr)
            if reason != "time":
                assert tr.exit_bar == t + held[t]
            checked += 1
    assert checked > 300
