"""Causal features from OHLCV candles: the one code path for training *and* serving.

This module is copied into every logged MLflow model and loaded from there by the pyfunc and
by the signal server, so a served model always computes features with the code it was trained
with. It therefore imports nothing but numpy and pandas.

Design rules
------------
* Causal: the row for bar ``t`` depends only on bars ``t - min_bars(params) + 1 .. t``.
* Window-exact: every rolling statistic is evaluated in a fixed association order that depends
  only on the window length (power-of-two block sums, never a running cumulative sum), so
  computing on a short window of recent candles gives *bit-identical* values to computing on
  the full history. This is what lets the server use a fast path and still match training.
* Scale-free: price features are normalised by the current close (as in qlib's Alpha158), so a
  model trained on EURUSD at 1.10 also sees sensible inputs at 1.20.
* No scaler: gradient-boosted trees split on thresholds and are invariant to monotonic
  rescaling of a feature, so standardisation would not change the model's decisions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

FEATURE_SET_VERSION = "1"

DEFAULT_PARAMS: dict[str, Any] = {
    "return_lags": [1, 2, 3, 5, 10, 20],
    "windows": [5, 10, 20, 40],
    "atr_window": 14,
    "rsi_window": 14,
    "volume_window": 20,
    "calendar": True,
}

_EPS = 1e-12


def _params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(DEFAULT_PARAMS)
    if params:
        merged.update({k: v for k, v in params.items() if k in DEFAULT_PARAMS})
    merged["return_lags"] = [int(x) for x in merged["return_lags"]]
    merged["windows"] = [int(x) for x in merged["windows"]]
    return merged


def min_bars(params: Mapping[str, Any] | None = None) -> int:
    """How many candles (oldest first, ending at the bar being decided) one feature row needs."""
    p = _params(params)
    needs = [
        max(p["return_lags"]) + 1,
        max(p["windows"]) + 1,  # ROC over w looks at close[t - w]; volatility needs w returns.
        p["atr_window"] + 1,  # true range uses the previous close.
        p["rsi_window"] + 1,
        p["volume_window"],
    ]
    return int(max(needs))


def feature_names(params: Mapping[str, Any] | None = None) -> list[str]:
    p = _params(params)
    names = ["kmid", "klen", "kmid2", "kup", "kup2", "klow", "klow2", "ksft", "ksft2"]
    names += [f"ret_{k}" for k in p["return_lags"]]
    for w in p["windows"]:
        names += [f"roc_{w}", f"ma_{w}", f"std_{w}", f"max_{w}", f"min_{w}", f"rsv_{w}"]
        names += [f"vol_{w}", f"vma_{w}"]
    names += ["atr", "rsi", "volume_z"]
    if p["calendar"]:
        names += ["hour_sin", "hour_cos", "dow_sin", "dow_cos"]
    return names


class _Windows:
    """Rolling reductions built from power-of-two blocks (sparse-table style).

    ``x`` is ``(n,)`` or ``(series, n)``; stacking series lets one numpy call serve them all,
    which matters on the serving path where a window is only ~40 bars long.
    ``block[j][..., t]`` reduces ``x[..., t - 2**j + 1 .. t]``. A window of ``w`` bars is
    reduced from the binary decomposition of ``w`` (largest block first), so each output
    depends only on the values in its own window and is evaluated in the same order wherever
    the window sits.
    """

    def __init__(self, x: np.ndarray, op: np.ufunc) -> None:
        self.op = op
        self.blocks: list[np.ndarray] = [x]

    def _block(self, j: int) -> np.ndarray:
        while len(self.blocks) <= j:
            prev = self.blocks[-1]
            half = 1 << (len(self.blocks) - 1)
            block = np.empty_like(prev)
            block[..., :half] = np.nan
            self.op(prev[..., half:], prev[..., :-half], out=block[..., half:])
            self.blocks.append(block)
        return self.blocks[j]

    def reduce(self, w: int, rows: slice | int = slice(None)) -> np.ndarray:
        """Reduce windows of ``w`` bars (optionally only some stacked ``rows``)."""
        out: np.ndarray | None = None
        offset = 0
        for j in range(w.bit_length() - 1, -1, -1):
            if not (w >> j) & 1:
                continue
            block = self._block(j)[rows]
            if out is None:
                out = block.copy()
            else:
                # out[t] = op(out[t], block[t - offset]); the first `offset` bars stay NaN.
                self.op(out[..., offset:], block[..., :-offset], out=out[..., offset:])
                out[..., :offset] = np.nan
            offset += 1 << j
        assert out is not None
        return out


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` delayed by ``k`` bars along its last axis, NaN-padded (never looks forward)."""
    if k == 0:
        return x
    out = np.empty_like(x)
    out[..., :k] = np.nan
    out[..., k:] = x[..., :-k]
    return out


def _as_seconds(time: Any) -> np.ndarray:
    arr = np.asarray(time)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[s]").astype(np.int64)
    return arr.astype(np.int64)


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    prev_close = _shift(close, 1)
    return np.maximum(high, prev_close) - np.minimum(low, prev_close)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """Average true range as a simple mean (window-exact, unlike Wilder's recursive average).

    Labels, serving SL/TP and the backtest all take ATR from here.
    """
    high, low, close = (np.asarray(a, dtype=np.float64) for a in (high, low, close))
    return _Windows(true_range(high, low, close), np.add).reduce(window) / window


def feature_matrix(
    time: Any,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    params: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Features as a float64 ``(n_bars, n_features)`` matrix, NaN where history is too short."""
    p = _params(params)
    o, h, lo, c, v = (
        np.ascontiguousarray(a, dtype=np.float64) for a in (open_, high, low, close, volume)
    )
    n = len(c)
    cols: list[np.ndarray] = []

    rng = h - lo
    top = np.maximum(o, c)
    bottom = np.minimum(o, c)
    cols += [
        (c - o) / o,
        rng / o,
        (c - o) / (rng + _EPS),
        (h - top) / o,
        (h - top) / (rng + _EPS),
        (bottom - lo) / o,
        (bottom - lo) / (rng + _EPS),
        (2 * c - h - lo) / o,
        (2 * c - h - lo) / (rng + _EPS),
    ]

    log_c = np.log(c)
    for k in p["return_lags"]:
        cols.append(log_c - _shift(log_c, k))

    ret1 = log_c - _shift(log_c, 1)
    delta = c - _shift(c, 1)
    nan_delta = np.isnan(delta)
    up = np.where(delta > 0, delta, np.where(nan_delta, np.nan, 0.0))
    down = np.where(delta < 0, -delta, np.where(nan_delta, np.nan, 0.0))
    tr = true_range(h, lo, c)
    # One stacked reduction for every rolling sum; rows: c, c², r, r², v, v², up, down, tr.
    sums = _Windows(np.stack([c, c * c, ret1, ret1 * ret1, v, v * v, up, down, tr]), np.add)
    extremes_hi = _Windows(h, np.maximum)
    extremes_lo = _Windows(lo, np.minimum)
    for w in p["windows"]:
        s_c, s_c2, s_r, s_r2, s_v = sums.reduce(w, slice(0, 5)) / w
        var_c = np.maximum(s_c2 - s_c * s_c, 0.0)
        var_r = np.maximum(s_r2 - s_r * s_r, 0.0)
        hi, lw = extremes_hi.reduce(w), extremes_lo.reduce(w)
        cols += [
            _shift(c, w) / c,
            s_c / c,
            np.sqrt(var_c) / c,
            hi / c,
            lw / c,
            (c - lw) / (hi - lw + _EPS),
            np.sqrt(var_r),
            s_v / (v + 1.0),
        ]

    cols.append(sums.reduce(p["atr_window"], 8) / p["atr_window"] / c)

    u, d = sums.reduce(p["rsi_window"], slice(6, 8))
    total = u + d
    cols.append(np.where(total > 0, u / np.where(total > 0, total, 1.0), 0.5))

    vw = p["volume_window"]
    mean_v, mean_v2 = sums.reduce(vw, slice(4, 6)) / vw
    std_v = np.sqrt(np.maximum(mean_v2 - mean_v * mean_v, 0.0))
    cols.append(np.where(std_v > 0, (v - mean_v) / np.where(std_v > 0, std_v, 1.0), 0.0))

    if p["calendar"]:
        secs = _as_seconds(time)
        hour = (secs // 3600) % 24
        dow = (secs // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0.
        cols += [
            np.sin(2 * np.pi * hour / 24),
            np.cos(2 * np.pi * hour / 24),
            np.sin(2 * np.pi * dow / 7),
            np.cos(2 * np.pi * dow / 7),
        ]

    # Column-major: each feature is written contiguously (a row-major stack of 50+ columns
    # costs more than computing them). Callers that need C order (LightGBM) copy the few
    # rows they use.
    stacked = np.empty((len(cols), n), dtype=np.float64)
    for j, col in enumerate(cols):
        stacked[j] = col
    out = stacked.T
    out[: min_bars(p) - 1] = np.nan
    return out


def compute_features(
    candles: pd.DataFrame, params: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Features for every bar of a candles frame (``time, open, high, low, close, volume``)."""
    matrix = feature_matrix(
        candles["time"].to_numpy(),
        candles["open"].to_numpy(),
        candles["high"].to_numpy(),
        candles["low"].to_numpy(),
        candles["close"].to_numpy(),
        candles["volume"].to_numpy(),
        params,
    )
    return pd.DataFrame(matrix, columns=feature_names(params), index=candles.index)


def last_row(
    time: Any,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    params: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """The feature row of the newest bar from just the last ``min_bars`` candles (serving path)."""
    m = min_bars(params)
    sl = slice(-m, None)
    matrix = feature_matrix(
        np.asarray(time)[sl], open_[sl], high[sl], low[sl], close[sl], volume[sl], params
    )
    return matrix[-1:]


__all__: Sequence[str] = (
    "DEFAULT_PARAMS",
    "FEATURE_SET_VERSION",
    "atr",
    "compute_features",
    "feature_matrix",
    "feature_names",
    "last_row",
    "min_bars",
)
