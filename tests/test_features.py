"""Features are causal, window-exact and fast enough to compute per request."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aibridge import features
from aibridge.ingest import read_mt4_csv
from aibridge.paths import sample_data_path


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return read_mt4_csv(sample_data_path()).candles.drop(columns=["line"])


def test_shape_names_and_warmup(candles: pd.DataFrame) -> None:
    frame = features.compute_features(candles)
    m = features.min_bars()
    assert list(frame.columns) == features.feature_names()
    assert frame.iloc[: m - 1].isna().all(axis=None)
    assert np.isfinite(frame.iloc[m - 1 :].to_numpy()).all()


@pytest.mark.parametrize("t", [60, 1000, 4321])
def test_causal_changing_the_future_changes_nothing_up_to_t(candles: pd.DataFrame, t: int) -> None:
    before = features.compute_features(candles).to_numpy()
    altered = candles.copy()
    rng = np.random.default_rng(t)
    future = slice(t + 1, None)
    scale = rng.uniform(0.8, 1.25, len(altered) - t - 1)
    for col in ("open", "high", "low", "close"):
        altered.loc[altered.index[future], col] = altered[col].to_numpy()[future] * scale
    altered.loc[altered.index[future], "volume"] = rng.integers(1, 10_000, len(altered) - t - 1)
    after = features.compute_features(altered).to_numpy()
    np.testing.assert_array_equal(after[: t + 1], before[: t + 1])
    assert not np.array_equal(after[t + 1 :], before[t + 1 :])


def test_only_the_last_min_bars_matter(candles: pd.DataFrame) -> None:
    """Bars older than the window never influence a row (what lets the server send min_bars)."""
    full = features.compute_features(candles).to_numpy()
    m = features.min_bars()
    cols = [candles[c].to_numpy() for c in ("time", "open", "high", "low", "close", "volume")]
    for t in (m - 1, 500, 2500, len(candles) - 1):
        window = [c[t - m + 1 : t + 1] for c in cols]
        np.testing.assert_array_equal(features.last_row(*window)[0], full[t])


def test_min_bars_follows_params() -> None:
    assert features.min_bars({"windows": [5, 60]}) == 61
    assert features.min_bars({"return_lags": [1, 100]}) == 101
    assert len(features.feature_names({"calendar": False})) == len(features.feature_names()) - 4


def test_atr_is_the_simple_mean_true_range() -> None:
    high = np.array([1.0, 1.2, 1.3, 1.25])
    low = np.array([0.9, 1.0, 1.1, 1.0])
    close = np.array([0.95, 1.1, 1.2, 1.05])
    # true ranges from bar 1: max(1.2,0.95)-min(1.0,0.95)=0.25, 1.3-1.1=0.2, 1.25-1.0=0.25
    out = features.atr(high, low, close, 2)
    assert np.isnan(out[:2]).all()
    np.testing.assert_allclose(out[2:], [0.225, 0.225])


def test_overflowing_prices_give_non_finite_features_not_silent_zeros(
    candles: pd.DataFrame,
) -> None:
    huge = candles.tail(features.min_bars()).copy()
    for col in ("open", "high", "low", "close"):
        huge[col] = huge[col] * 1e300
    cols = [huge[c].to_numpy() for c in ("time", "open", "high", "low", "close", "volume")]
    assert not np.isfinite(features.last_row(*cols)).all()


def test_volatility_unit_features_are_the_candle_and_returns_over_atr(
    candles: pd.DataFrame,
) -> None:
    frame = features.compute_features(candles)
    o, h, lo, c = (candles[k].to_numpy() for k in ("open", "high", "low", "close"))
    atr = features.atr(h, lo, c, features.DEFAULT_PARAMS["atr_window"])
    t = np.arange(features.min_bars() - 1, len(c))
    a = atr[t] + 1e-12
    np.testing.assert_allclose(frame["body_atr"].to_numpy()[t], (c[t] - o[t]) / a, rtol=1e-12)
    np.testing.assert_allclose(frame["range_atr"].to_numpy()[t], (h[t] - lo[t]) / a, rtol=1e-12)
    top, bottom = np.maximum(o, c)[t], np.minimum(o, c)[t]
    np.testing.assert_allclose(frame["upper_atr"].to_numpy()[t], (h[t] - top) / a, rtol=1e-12)
    np.testing.assert_allclose(frame["lower_atr"].to_numpy()[t], (bottom - lo[t]) / a, rtol=1e-12)
    for k in (1, 5, 20):
        np.testing.assert_allclose(
            frame[f"ret_atr_{k}"].to_numpy()[t], (c[t] - c[t - k]) / a, rtol=1e-9, atol=1e-12
        )
    # the same candle in a market twice as volatile reads the same in ATR units
    doubled = candles.copy()
    mid = doubled["close"].mean()
    for col in ("open", "high", "low", "close"):
        doubled[col] = mid + 2 * (doubled[col] - mid)
    twice = features.compute_features(doubled)
    np.testing.assert_allclose(
        twice["body_atr"].to_numpy()[t], frame["body_atr"].to_numpy()[t], rtol=1e-6, atol=1e-9
    )
    # off: feature set 1's columns
    assert "body_atr" not in features.feature_names({"atr_return_lags": []})
