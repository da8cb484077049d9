"""The newest bar's feature row in plain Python: the bundled kernel's arithmetic, no numba.

``aibridge.features`` (bundled into every model) computes rows in a numba kernel; importing
numba and LLVM costs ~65 MB of resident memory and pandas comes with the module. The server
needs one row of ~60 numbers from 41 candles, so this module repeats the kernel's ``_row``
operation by operation -- the same IEEE double additions, products, divisions and square roots
in the same order (no fast-math in the kernel, none here), ``log`` and the calendar tables from
numpy as there -- and gets the same bits. ``aibridge.serving.fetch`` checks that on windows of
the model's own training-style data before the runtime may serve a bundle, and
``tests/test_serving_runtime.py`` on every sample bar.

Supported: the parameterised feature set of ``FEATURE_SET_VERSION`` "1" and "2" (the layout is
driven by ``feature_params``); other versions are refused with a message.

>>> row, atr = feature_row(t, o, h, lo, c, v, params)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

SUPPORTED_VERSIONS = frozenset({"1", "2"})

_DEFAULTS: dict[str, Any] = {
    "return_lags": [1, 2, 3, 5, 10, 20],
    "windows": [5, 10, 20, 40],
    "atr_window": 14,
    "rsi_window": 14,
    "volume_window": 20,
    "atr_return_lags": [1, 5, 20],
    "calendar": True,
}
_EPS = 1e-12
# Exactly the bundled module's tables (same numpy calls).
_HOUR_SIN = np.sin(2 * np.pi * np.arange(24) / 24).tolist()
_HOUR_COS = np.cos(2 * np.pi * np.arange(24) / 24).tolist()
_DOW_SIN = np.sin(2 * np.pi * np.arange(7) / 7).tolist()
_DOW_COS = np.cos(2 * np.pi * np.arange(7) / 7).tolist()


class FeatureParams:
    """``feature_params`` of a bundle, merged with the defaults and frozen for the hot path."""

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        p = dict(_DEFAULTS)
        if params:
            p.update({k: v for k, v in params.items() if k in _DEFAULTS})
        self.lags = tuple(int(x) for x in p["return_lags"])
        self.atr_lags = tuple(int(x) for x in p["atr_return_lags"])
        self.windows = tuple(sorted(int(x) for x in p["windows"]))
        self.atr_w = int(p["atr_window"])
        self.rsi_w = int(p["rsi_window"])
        self.vol_w = int(p["volume_window"])
        self.calendar = bool(p["calendar"])
        self.min_bars = max(
            max(self.lags) + 1,
            max(self.windows) + 1,
            self.atr_w + 1,
            self.rsi_w + 1,
            self.vol_w,
            max(self.atr_lags, default=0) + 1,
        )
        self.names = feature_names(self)


def feature_names(p: FeatureParams) -> list[str]:
    names = ["kmid", "klen", "kmid2", "kup", "kup2", "klow", "klow2", "ksft", "ksft2"]
    names += [f"ret_{k}" for k in p.lags]
    for w in p.windows:
        names += [f"roc_{w}", f"ma_{w}", f"std_{w}", f"max_{w}", f"min_{w}", f"rsv_{w}"]
        names += [f"vol_{w}", f"vma_{w}"]
    names += ["atr", "rsi", "volume_z"]
    if p.atr_lags:
        names += ["body_atr", "range_atr", "upper_atr", "lower_atr"]
        names += [f"ret_atr_{k}" for k in p.atr_lags]
    if p.calendar:
        names += ["hour_sin", "hour_cos", "dow_sin", "dow_cos"]
    return names


def atr_at(h: list, lo: list, c: list, window: int, t: int) -> float:
    """Mean true range of the ``window`` bars ending at ``t``, newest first (``_atr_at``)."""
    s = 0.0
    for back in range(window):
        i = t - back
        prev = c[i - 1]
        hi = h[i]
        li = lo[i]
        top = hi if hi > prev else prev
        bottom = li if li < prev else prev
        s += top - bottom
    return s / window


def row_at(
    t: int, o: list, h: list, lo: list, c: list, v: list, log_c: list, p: FeatureParams
) -> tuple[list[float], float]:
    """The feature row of bar ``t`` (lists of floats, oldest first) and that bar's ATR."""
    eps = _EPS
    out: list[float] = []
    put = out.append
    ct, ot, ht, lt, vt = c[t], o[t], h[t], lo[t], v[t]
    rng = ht - lt
    top = ot if ot > ct else ct
    bottom = ot if ot < ct else ct
    put((ct - ot) / ot)
    put(rng / ot)
    put((ct - ot) / (rng + eps))
    put((ht - top) / ot)
    put((ht - top) / (rng + eps))
    put((bottom - lt) / ot)
    put((bottom - lt) / (rng + eps))
    put((2.0 * ct - ht - lt) / ot)
    put((2.0 * ct - ht - lt) / (rng + eps))
    lc = log_c[t]
    for k in p.lags:
        put(lc - log_c[t - k])

    windows = p.windows
    w_max = windows[-1]
    s_c = s_c2 = s_r = s_r2 = s_v = 0.0
    hi = ht
    lw = lt
    wi = 0
    parts = []
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
            parts.append((s_c, s_c2, s_r, s_r2, s_v, hi, lw))
            wi += 1
    sqrt = math.sqrt
    for w, (a_c, a_c2, a_r, a_r2, a_v, whi, wlw) in zip(windows, parts, strict=True):
        mean_c = a_c / w
        var_c = a_c2 / w - mean_c * mean_c
        mean_r = a_r / w
        var_r = a_r2 / w - mean_r * mean_r
        put(c[t - w] / ct)
        put(mean_c / ct)
        put(sqrt(0.0 if var_c < 0.0 else var_c) / ct)
        put(whi / ct)
        put(wlw / ct)
        put((ct - wlw) / (whi - wlw + eps))
        put(sqrt(0.0 if var_r < 0.0 else var_r))
        put((a_v / w) / (vt + 1.0))

    a = atr_at(h, lo, c, p.atr_w, t)
    put(a / ct)

    up = 0.0
    down = 0.0
    for back in range(p.rsi_w):
        d = c[t - back] - c[t - back - 1]
        if d > 0.0:
            up += d
        elif d < 0.0:
            down -= d
    total = up + down
    put(up / total if total > 0.0 else 0.5)

    s1 = 0.0
    s2 = 0.0
    vol_w = p.vol_w
    for back in range(vol_w):
        vi = v[t - back]
        s1 += vi
        s2 += vi * vi
    mean_v = s1 / vol_w
    var_v = s2 / vol_w - mean_v * mean_v
    std_v = sqrt(0.0 if var_v < 0.0 else var_v)
    put((vt - mean_v) / std_v if std_v > 0.0 else 0.0)

    if p.atr_lags:
        a_eps = a + eps
        put((ct - ot) / a_eps)
        put(rng / a_eps)
        put((ht - top) / a_eps)
        put((bottom - lt) / a_eps)
        for k in p.atr_lags:
            put((ct - c[t - k]) / a_eps)
    return out, a


def _seconds(time: Any) -> int:
    if isinstance(time, np.datetime64):
        return int(time.astype("datetime64[s]").astype(np.int64))
    return int(time)


def calendar(secs: int) -> list[float]:
    hour = (secs // 3600) % 24
    dow = (secs // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0.
    return [_HOUR_SIN[hour], _HOUR_COS[hour], _DOW_SIN[dow], _DOW_COS[dow]]


def feature_row(
    time: Any,
    open_: Any,
    high: Any,
    low: Any,
    close: Any,
    volume: Any,
    p: FeatureParams,
) -> tuple[list[float], float]:
    """The newest bar's row from the last ``p.min_bars`` candles (oldest first), and its ATR.

    Division by a zero price raises ``ZeroDivisionError`` as the compiled kernel does;
    overflowing inputs give non-finite values the caller rejects.
    """
    m = p.min_bars
    c_arr = np.ascontiguousarray(close[-m:], dtype=np.float64)
    log_c = np.log(c_arr).tolist()
    o = np.asarray(open_[-m:], dtype=np.float64).tolist()
    h = np.asarray(high[-m:], dtype=np.float64).tolist()
    lo = np.asarray(low[-m:], dtype=np.float64).tolist()
    v = np.asarray(volume[-m:], dtype=np.float64).tolist()
    row, a = row_at(m - 1, o, h, lo, c_arr.tolist(), v, log_c, p)
    if p.calendar:
        t_last = time[-1]
        if isinstance(t_last, np.generic | int | float):
            secs = _seconds(t_last)
        else:
            secs = _seconds(np.asarray(time)[-1])
        row.extend(calendar(secs))
    return row, a


class LeanFeatures:
    """``feature_names`` / ``feature_matrix`` / ``atr`` of the bundled ``features`` module,
    row by row in plain Python, for callers (drift) that ask the served model for its
    features. Slower per row than the compiled kernel on long histories; meant for the
    windows the server sees."""

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        self._p = FeatureParams(params)

    def feature_names(self, params: Mapping[str, Any] | None = None) -> list[str]:
        return list(FeatureParams(params).names if params is not None else self._p.names)

    def min_bars(self, params: Mapping[str, Any] | None = None) -> int:
        return (FeatureParams(params) if params is not None else self._p).min_bars

    def feature_matrix(
        self,
        time: Any,
        open_: Any,
        high: Any,
        low: Any,
        close: Any,
        volume: Any,
        params: Mapping[str, Any] | None = None,
        first_row: int = 0,
    ) -> np.ndarray:
        p = FeatureParams(params) if params is not None else self._p
        c_arr = np.ascontiguousarray(close, dtype=np.float64)
        n = len(c_arr)
        out = np.full((n, len(p.names)), np.nan)
        first = max(int(first_row), p.min_bars - 1)
        if first >= n:
            return out
        log_c = np.log(c_arr).tolist()
        o, h, lo, v = (np.asarray(a, dtype=np.float64).tolist() for a in (open_, high, low, volume))
        c = c_arr.tolist()
        t_arr = np.asarray(time)
        if np.issubdtype(t_arr.dtype, np.datetime64):
            secs = t_arr.astype("datetime64[s]").astype(np.int64)
        else:
            secs = t_arr.astype(np.int64)
        for t in range(first, n):
            row, _ = row_at(t, o, h, lo, c, v, log_c, p)
            if p.calendar:
                row.extend(calendar(int(secs[t])))
            out[t] = row
        return out
