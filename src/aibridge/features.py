"""Causal features from OHLCV candles: the one code path for training *and* serving.

This module is copied into every logged MLflow model and loaded from there by the pyfunc and
by the signal server, so a served model always computes features with the code it was trained
with. It therefore imports nothing but numpy, pandas and numba.

Design rules
------------
* Causal: the row for bar ``t`` depends only on bars ``t - min_bars(params) + 1 .. t``.
* Window-exact: each row's rolling statistics are summed from its own window, newest bar
  first, in one compiled kernel (never a running cumulative sum), so computing on a short
  window of recent candles gives *bit-identical* values to computing on the full history.
  This is what lets the server compute one row per request and still match training. The
  kernel uses only IEEE-exact arithmetic (+ - * / sqrt, no fast-math); ``log``, ``sin`` and
  ``cos`` come from numpy, outside the kernel, so they are the same calls on both paths.
* Scale-free: price features are normalised by the current close (as in qlib's Alpha158), so a
  model trained on EURUSD at 1.10 also sees sensible inputs at 1.20. Beside them the candle
  (body, range, wicks) and the returns over ``atr_return_lags`` are divided by the ATR, so a
  pattern reads the same in every volatility regime.
* No scaler: gradient-boosted trees split on thresholds and are invariant to monotonic
  rescaling of a feature, so standardisation would not change the model's decisions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numba
import numpy as np
import pandas as pd

FEATURE_SET_VERSION = "2"

DEFAULT_PARAMS: dict[str, Any] = {
    "return_lags": [1, 2, 3, 5, 10, 20],
    "windows": [5, 10, 20, 40],
    "atr_window": 14,
    "rsi_window": 14,
    "volume_window": 20,
    # Returns over these lags divided by the ATR (volatility units, beside the candle shape
    # over ATR); [] turns the volatility-unit block off (feature set 1).
    "atr_return_lags": [1, 5, 20],
    "calendar": True,
}

_EPS = 1e-12
_PARALLEL_MIN_ROWS = 50_000
# Calendar encodings as lookup tables: every path reads the very same numbers.
_HOUR_SIN = np.sin(2 * np.pi * np.arange(24) / 24)
_HOUR_COS = np.cos(2 * np.pi * np.arange(24) / 24)
_DOW_SIN = np.sin(2 * np.pi * np.arange(7) / 7)
_DOW_COS = np.cos(2 * np.pi * np.arange(7) / 7)


def _params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(DEFAULT_PARAMS)
    if params:
        merged.update({k: v for k, v in params.items() if k in DEFAULT_PARAMS})
    merged["return_lags"] = [int(x) for x in merged["return_lags"]]
    merged["atr_return_lags"] = [int(x) for x in merged["atr_return_lags"]]
    merged["windows"] = sorted(int(x) for x in merged["windows"])
    return merged


def min_bars(params: Mapping[str, Any] | None = None) -> int:
    """How many candles (oldest first, ending at the bar being decided) one feature row needs.

    >>> min_bars(), min_bars({"windows": [5, 80]})
    (41, 81)
    """
    p = _params(params)
    needs = [
        max(p["return_lags"]) + 1,
        max(p["windows"]) + 1,  # ROC over w looks at close[t - w]; volatility needs w returns.
        p["atr_window"] + 1,  # true range uses the previous close.
        p["rsi_window"] + 1,
        p["volume_window"],
        max(p["atr_return_lags"], default=0) + 1,
    ]
    return int(max(needs))


def feature_names(params: Mapping[str, Any] | None = None) -> list[str]:
    """The matrix's column names, in order, for these parameters (defaults for missing keys).

    >>> small = {"return_lags": [1], "windows": [3], "atr_return_lags": [], "calendar": False}
    >>> feature_names(small)[9:14]
    ['ret_1', 'roc_3', 'ma_3', 'std_3', 'max_3']
    >>> feature_names(small)[-3:]
    ['atr', 'rsi', 'volume_z']
    >>> len(feature_names())
    61
    """
    p = _params(params)
    names = ["kmid", "klen", "kmid2", "kup", "kup2", "klow", "klow2", "ksft", "ksft2"]
    names += [f"ret_{k}" for k in p["return_lags"]]
    for w in p["windows"]:
        names += [f"roc_{w}", f"ma_{w}", f"std_{w}", f"max_{w}", f"min_{w}", f"rsv_{w}"]
        names += [f"vol_{w}", f"vma_{w}"]
    names += ["atr", "rsi", "volume_z"]
    if p["atr_return_lags"]:
        # Candle shape and returns in volatility units: the same pattern reads the same in a
        # calm and in a wild market (the k* features above divide by price or by the range).
        names += ["body_atr", "range_atr", "upper_atr", "lower_atr"]
        names += [f"ret_atr_{k}" for k in p["atr_return_lags"]]
    if p["calendar"]:
        names += ["hour_sin", "hour_cos", "dow_sin", "dow_cos"]
    return names


@numba.njit(cache=True, nogil=True)
def _row(
    t: int,
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
    log_c: np.ndarray,
    lags: np.ndarray,
    windows: np.ndarray,
    atr_w: int,
    rsi_w: int,
    vol_w: int,
    atr_lags: np.ndarray,
    out: np.ndarray,
    sums: np.ndarray,
    ext: np.ndarray,
) -> None:
    """Fill ``out[t, :n_price_features]``; windows sorted ascending; scratch in sums/ext.

    Negative variances (rounding) clip to 0, but NaN propagates (``0.0 if v < 0.0 else v``),
    so overflowing inputs give non-finite features the server rejects, not silent zeros.
    """
    eps = 1e-12
    n_win = len(windows)
    w_max = windows[n_win - 1]
    if True:
        ct, ot, ht, lt, vt = c[t], o[t], h[t], lo[t], v[t]
        rng = ht - lt
        top = ot if ot > ct else ct
        bottom = ot if ot < ct else ct
        j = 0
        out[t, j] = (ct - ot) / ot
        out[t, j + 1] = rng / ot
        out[t, j + 2] = (ct - ot) / (rng + eps)
        out[t, j + 3] = (ht - top) / ot
        out[t, j + 4] = (ht - top) / (rng + eps)
        out[t, j + 5] = (bottom - lt) / ot
        out[t, j + 6] = (bottom - lt) / (rng + eps)
        out[t, j + 7] = (2.0 * ct - ht - lt) / ot
        out[t, j + 8] = (2.0 * ct - ht - lt) / (rng + eps)
        j = 9
        for k in lags:
            out[t, j] = log_c[t] - log_c[t - k]
            j += 1

        # One pass from the newest bar back, recording each window's partial result.
        s_c = 0.0
        s_c2 = 0.0
        s_r = 0.0
        s_r2 = 0.0
        s_v = 0.0
        hi = ht
        lw = lt
        wi = 0
        for back in range(w_max):
            i = t - back
            ci = c[i]
            r = log_c[i] - log_c[i - 1]
            s_c += ci
            s_c2 += ci * ci
            s_r += r
            s_r2 += r * r
            s_v += v[i]
            if h[i] > hi:
                hi = h[i]
            if lo[i] < lw:
                lw = lo[i]
            if back + 1 == windows[wi]:
                sums[0, wi] = s_c
                sums[1, wi] = s_c2
                sums[2, wi] = s_r
                sums[3, wi] = s_r2
                sums[4, wi] = s_v
                ext[0, wi] = hi
                ext[1, wi] = lw
                wi += 1
        for wi in range(n_win):
            w = windows[wi]
            mean_c = sums[0, wi] / w
            var_c = sums[1, wi] / w - mean_c * mean_c
            mean_r = sums[2, wi] / w
            var_r = sums[3, wi] / w - mean_r * mean_r
            hi = ext[0, wi]
            lw = ext[1, wi]
            out[t, j] = c[t - w] / ct
            out[t, j + 1] = mean_c / ct
            out[t, j + 2] = np.sqrt(0.0 if var_c < 0.0 else var_c) / ct
            out[t, j + 3] = hi / ct
            out[t, j + 4] = lw / ct
            out[t, j + 5] = (ct - lw) / (hi - lw + eps)
            out[t, j + 6] = np.sqrt(0.0 if var_r < 0.0 else var_r)
            out[t, j + 7] = (sums[4, wi] / w) / (vt + 1.0)
            j += 8

        a = _atr_at(h, lo, c, atr_w, t)
        out[t, j] = a / ct
        j += 1

        up = 0.0
        down = 0.0
        for back in range(rsi_w):
            d = c[t - back] - c[t - back - 1]
            if d > 0.0:
                up += d
            elif d < 0.0:
                down -= d
        total = up + down
        out[t, j] = up / total if total > 0.0 else 0.5
        j += 1

        s1 = 0.0
        s2 = 0.0
        for back in range(vol_w):
            vi = v[t - back]
            s1 += vi
            s2 += vi * vi
        mean_v = s1 / vol_w
        var_v = s2 / vol_w - mean_v * mean_v
        std_v = np.sqrt(0.0 if var_v < 0.0 else var_v)
        out[t, j] = (vt - mean_v) / std_v if std_v > 0.0 else 0.0
        j += 1

        if len(atr_lags) > 0:
            a_eps = a + eps
            out[t, j] = (ct - ot) / a_eps
            out[t, j + 1] = rng / a_eps
            out[t, j + 2] = (ht - top) / a_eps
            out[t, j + 3] = (bottom - lt) / a_eps
            j += 4
            for k in atr_lags:
                out[t, j] = (ct - c[t - k]) / a_eps
                j += 1


@numba.njit(cache=True, nogil=True)
def _rows_serial(o, h, lo, c, v, log_c, lags, windows, atr_w, rsi_w, vol_w, atr_lags, first, out):
    sums = np.empty((5, len(windows)))  # c, c*c, r, r*r, v per window
    ext = np.empty((2, len(windows)))  # max high, min low per window
    for t in range(first, len(c)):
        _row(
            t,
            o,
            h,
            lo,
            c,
            v,
            log_c,
            lags,
            windows,
            atr_w,
            rsi_w,
            vol_w,
            atr_lags,
            out,
            sums,
            ext,
        )


@numba.njit(cache=True, nogil=True, parallel=True)
def _rows_parallel(o, h, lo, c, v, log_c, lags, windows, atr_w, rsi_w, vol_w, atr_lags, first, out):
    """Rows are independent: the same ``_row`` on every core, identical results."""
    n = len(c)
    chunk = 4096
    n_chunks = (n - first + chunk - 1) // chunk
    for k in numba.prange(n_chunks):
        sums = np.empty((5, len(windows)))
        ext = np.empty((2, len(windows)))
        start = first + k * chunk
        for t in range(start, min(start + chunk, n)):
            _row(
                t,
                o,
                h,
                lo,
                c,
                v,
                log_c,
                lags,
                windows,
                atr_w,
                rsi_w,
                vol_w,
                atr_lags,
                out,
                sums,
                ext,
            )


@numba.njit(cache=True, nogil=True)
def _atr_at(h: np.ndarray, lo: np.ndarray, c: np.ndarray, window: int, t: int) -> float:
    """Mean true range of the ``window`` bars ending at ``t``, newest first."""
    s = 0.0
    for back in range(window):
        i = t - back
        prev = c[i - 1]
        top = h[i] if h[i] > prev else prev
        bottom = lo[i] if lo[i] < prev else prev
        s += top - bottom
    return s / window


@numba.njit(cache=True, nogil=True)
def _atr_kernel(
    h: np.ndarray, lo: np.ndarray, c: np.ndarray, window: int, first: int
) -> np.ndarray:
    out = np.full(len(c), np.nan)
    for t in range(max(first, window), len(c)):
        out[t] = _atr_at(h, lo, c, window, t)
    return out


def _as_seconds(time: Any) -> np.ndarray:
    arr = np.asarray(time)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[s]").astype(np.int64)
    return arr.astype(np.int64)


def _f64(a: Any) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def atr(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int, first_row: int = 0
) -> np.ndarray:
    """Average true range as a simple mean (window-exact, unlike Wilder's recursive average).

    Labels, serving SL/TP and the backtest all take ATR from here; NaN for the first
    ``window`` bars (the true range needs the previous close).

    True ranges 2, 2, 5 (bar 3 gaps up from a close of 10 to a high of 15):

    >>> high, low = np.array([10, 12, 11, 15.0]), np.array([9, 10, 9, 11.0])
    >>> atr(high, low, np.array([10, 11, 10, 14.0]), 2)
    array([nan, nan, 2. , 3.5])
    """
    return _atr_kernel(_f64(high), _f64(low), _f64(close), int(window), int(first_row))


def feature_matrix(
    time: Any,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    params: Mapping[str, Any] | None = None,
    first_row: int = 0,
) -> np.ndarray:
    """Features as a float64 ``(n_bars, n_features)`` matrix, NaN where history is too short.

    Rows before ``first_row`` are left NaN (the server asks only for the newest row).
    """
    p = _params(params)
    o, h, lo, c, v = (_f64(a) for a in (open_, high, low, close, volume))
    n = len(c)
    names = feature_names(p)
    out = np.full((n, len(names)), np.nan)
    first = max(int(first_row), min_bars(p) - 1)
    if first >= n:
        return out
    log_c = np.log(c)
    windows = np.array(p["windows"], dtype=np.int64)
    # Threads only pay off on long histories; the serving path computes one row.
    kernel = _rows_parallel if n - first > _PARALLEL_MIN_ROWS else _rows_serial
    kernel(
        o,
        h,
        lo,
        c,
        v,
        log_c,
        np.array(p["return_lags"], dtype=np.int64),
        windows,
        int(p["atr_window"]),
        int(p["rsi_window"]),
        int(p["volume_window"]),
        np.array(p["atr_return_lags"], dtype=np.int64),
        first,
        out,
    )
    if p["calendar"]:
        secs = _as_seconds(time)[first:]
        hour = (secs // 3600) % 24
        dow = (secs // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0.
        k = len(names) - 4
        out[first:, k] = _HOUR_SIN[hour]
        out[first:, k + 1] = _HOUR_COS[hour]
        out[first:, k + 2] = _DOW_SIN[dow]
        out[first:, k + 3] = _DOW_COS[dow]
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
        np.asarray(time)[sl],
        open_[sl],
        high[sl],
        low[sl],
        close[sl],
        volume[sl],
        params,
        first_row=m - 1,
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
