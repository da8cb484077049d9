"""Triple-barrier direction labels that trade like the backtest engine and the EA.

For the signal bar ``t`` (decided on its close) with ATR ``a`` (from ``aibridge.features.atr``,
the ATR the server uses for SL/TP), picture the two trades the engine would open at the
**next bar's open** (``aibridge.backtest.core``), on the right side of the spread:

* a long bought at the Ask ``o[t+1] + spread``, with stop ``entry - SL`` and target
  ``entry + TP``, closed on the Bid;
* a short sold at the Bid ``o[t+1]``, with stop ``entry + SL`` and target ``entry - TP``,
  closed on the Ask (Bid + spread).

``SL``/``TP`` are the served distances: ``round(mult * a / point)`` points. Walking the bars
``t+1 .. t+horizon`` (the entry bar included: MT4 attaches the levels to the order), as the
engine does: from the second bar a gap through a level fills at the open; inside a bar the
stop is hit first when one bar touches both levels. A trade still open after ``horizon`` bars
ends at the time barrier, marked at the close of bar ``t+horizon`` (on its closing side).

* **BUY** when the long reaches its take-profit before its stop,
* **SELL** when the short does,
* **HOLD** otherwise (no trade would have paid in time).

With ``tp >= sl`` BUY and SELL cannot both be true; otherwise the earlier take-profit wins and
a tie is HOLD. Beside the class, :func:`barrier_outcomes` gives each side's realised result in
R (multiples of the stop distance, before commission and slippage; the spread is paid by the
entry price): what choosing the decision margin on the validation window measures.

The last ``horizon`` bars have no complete future and get ``NO_LABEL``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from aibridge.decision import BUY, CLASSES, HOLD, SELL

NO_LABEL = -1
OUT_NONE, OUT_TP, OUT_SL, OUT_TIME = 0, 1, 2, 3
__all__ = [
    "BUY",
    "CLASSES",
    "HOLD",
    "NO_LABEL",
    "SELL",
    "BarrierOutcomes",
    "barrier_outcomes",
    "triple_barrier_labels",
]


@dataclass(frozen=True)
class BarrierOutcomes:
    """Per signal bar: the class label and each side's trade (NaN / OUT_NONE unlabelled)."""

    label: np.ndarray  # int8 SELL/HOLD/BUY or NO_LABEL
    r_long: np.ndarray  # realised R of the long (TP: +TP/SL, SL: about -1, time: marked)
    r_short: np.ndarray
    exit_long: np.ndarray  # OUT_TP / OUT_SL / OUT_TIME
    exit_short: np.ndarray
    bars_long: np.ndarray  # bars from entry to exit (1 = the entry bar)
    bars_short: np.ndarray
    sl_points: np.ndarray  # the stop distance in points (NaN without ATR)
    tp_points: np.ndarray


@numba.njit(cache=True)
def _walk(o, h, lo, c, sp, sl_d, tp_d, horizon, digits, out_r, out_exit, out_bars):  # noqa: C901
    """One pass per signal bar and side; price distances in ``sl_d``/``tp_d``; ``sp`` in price."""
    n = len(c)
    for t in range(n - horizon):
        if not (np.isfinite(sl_d[t]) and np.isfinite(tp_d[t])) or sl_d[t] <= 0.0:
            continue
        e = t + 1
        for side in range(2):
            d = 1 if side == 0 else -1
            entry = o[e] + sp[e] if d > 0 else o[e]
            # normalised to the symbol's digits like the engine's (and the EA's) order levels
            sl = round(entry - d * sl_d[t], digits)
            tp = round(entry + d * tp_d[t], digits)
            px = 0.0
            code = OUT_NONE
            k = 0
            for j in range(e, e + horizon):
                k = j - e + 1
                if d > 0:
                    if j > e and o[j] <= sl:
                        px, code = o[j], OUT_SL
                    elif j > e and o[j] >= tp:
                        px, code = o[j], OUT_TP
                    elif lo[j] <= sl:
                        px, code = sl, OUT_SL
                    elif h[j] >= tp:
                        px, code = tp, OUT_TP
                else:
                    oa = o[j] + sp[j]
                    if j > e and oa >= sl:
                        px, code = oa, OUT_SL
                    elif j > e and oa <= tp:
                        px, code = oa, OUT_TP
                    elif h[j] + sp[j] >= sl:
                        px, code = sl, OUT_SL
                    elif lo[j] + sp[j] <= tp:
                        px, code = tp, OUT_TP
                if code != OUT_NONE:
                    break
            if code == OUT_NONE:
                last = e + horizon - 1
                px = c[last] if d > 0 else c[last] + sp[last]
                code = OUT_TIME
            out_r[t, side] = d * (px - entry) / sl_d[t]
            out_exit[t, side] = code
            out_bars[t, side] = k


def barrier_outcomes(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    atr: np.ndarray,
    tp_mult: float,
    sl_mult: float,
    horizon: int,
    *,
    point: float,
    digits: int,
    spread_points: np.ndarray | float = 0.0,
) -> BarrierOutcomes:
    """Labels and both sides' trades, entered at the next open as the engine enters.

    ATR 1 point, stop 1 ATR, target 2 ATR, two bars to get there, no spread: bar 0's long
    (bought at 10) reaches 12 on bar 2, bar 2's long (bought at 13) is stopped out at 12 on
    bar 3 and its short never reaches 11; the last two bars have no complete future.

    >>> o, h = np.array([10, 10, 11, 13, 13.0]), np.array([10, 11, 13, 13, 13.0])
    >>> lo, c = np.array([10, 10, 11, 12, 12.0]), np.array([10, 11, 13, 13, 13.0])
    >>> out = barrier_outcomes(o, h, lo, c, np.ones(5), 2.0, 1.0, 2, point=1.0, digits=0)
    >>> [CLASSES[k] if k != NO_LABEL else None for k in out.label]
    ['BUY', 'BUY', 'HOLD', None, None]
    >>> out.r_long[:3].tolist(), out.exit_long[:3].tolist() == [OUT_TP, OUT_TP, OUT_SL]
    ([2.0, 2.0, -1.0], True)
    """
    o, h, lo, c, a = (
        np.ascontiguousarray(x, dtype=np.float64) for x in (open_, high, low, close, atr)
    )
    n = len(c)
    sp = np.ascontiguousarray(
        np.broadcast_to(np.asarray(spread_points, dtype=np.float64), (n,)) * point
    )
    sl_pts = np.round(sl_mult * a / point)
    tp_pts = np.round(tp_mult * a / point)
    r = np.full((n, 2), np.nan)
    exit_ = np.zeros((n, 2), dtype=np.int8)
    bars = np.zeros((n, 2), dtype=np.int16)
    _walk(
        o, h, lo, c, sp, sl_pts * point, tp_pts * point, int(horizon), int(digits), r, exit_, bars
    )
    known = exit_[:, 0] != OUT_NONE
    long_tp = exit_[:, 0] == OUT_TP
    short_tp = exit_[:, 1] == OUT_TP
    label = np.full(n, NO_LABEL, dtype=np.int8)
    label[known] = HOLD
    label[known & long_tp & ~short_tp] = BUY
    label[known & short_tp & ~long_tp] = SELL
    both = known & long_tp & short_tp
    label[both & (bars[:, 0] < bars[:, 1])] = BUY
    label[both & (bars[:, 1] < bars[:, 0])] = SELL
    return BarrierOutcomes(
        label=label,
        r_long=r[:, 0],
        r_short=r[:, 1],
        exit_long=exit_[:, 0],
        exit_short=exit_[:, 1],
        bars_long=bars[:, 0],
        bars_short=bars[:, 1],
        sl_points=np.where(np.isfinite(a), sl_pts, np.nan),
        tp_points=np.where(np.isfinite(a), tp_pts, np.nan),
    )


def triple_barrier_labels(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    atr: np.ndarray,
    tp_mult: float,
    sl_mult: float,
    horizon: int,
    *,
    open_: np.ndarray | None = None,
    point: float | None = None,
    digits: int | None = None,
    spread_points: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Class index per bar (``SELL``/``HOLD``/``BUY``), ``NO_LABEL`` where it cannot be known.

    With ``open_``, ``point`` and ``digits`` these are :func:`barrier_outcomes`' labels (entry
    at the next open, spread, whole-point distances). Without them (the walk-forward's call
    until it passes them), the entry is the signal bar's close, no spread, exact distances:
    the labels of feature set 1.
    """
    if open_ is not None and point is not None and digits is not None:
        return barrier_outcomes(
            open_,
            high,
            low,
            close,
            atr,
            tp_mult,
            sl_mult,
            horizon,
            point=point,
            digits=digits,
            spread_points=spread_points,
        ).label
    return _close_entry_labels(high, low, close, atr, tp_mult, sl_mult, horizon)


def _first_hit(hit: np.ndarray) -> np.ndarray:
    never = hit.shape[1] + 1
    first = np.argmax(hit, axis=1) + 1
    return np.where(hit.any(axis=1), first, never)


def _close_entry_labels(high, low, close, atr, tp_mult, sl_mult, horizon) -> np.ndarray:
    """The former labels: entry at the signal bar's close, Bid only."""
    high, low, close, atr = (np.asarray(a, dtype=np.float64) for a in (high, low, close, atr))
    n = len(close)
    labels = np.full(n, NO_LABEL, dtype=np.int8)
    usable = n - horizon
    if usable <= 0:
        return labels
    c, a = close[:usable], atr[:usable]
    steps = np.arange(1, horizon + 1)
    idx = np.arange(usable)[:, None] + steps[None, :]
    fut_high, fut_low = high[idx], low[idx]
    t_long_tp = _first_hit(fut_high >= (c + tp_mult * a)[:, None])
    t_long_sl = _first_hit(fut_low <= (c - sl_mult * a)[:, None])
    t_short_tp = _first_hit(fut_low <= (c - tp_mult * a)[:, None])
    t_short_sl = _first_hit(fut_high >= (c + sl_mult * a)[:, None])
    never = horizon + 1
    long_wins = (t_long_tp < never) & (t_long_tp < t_long_sl)
    short_wins = (t_short_tp < never) & (t_short_tp < t_short_sl)
    out = np.full(usable, HOLD, dtype=np.int8)
    out[long_wins & ~short_wins] = BUY
    out[short_wins & ~long_wins] = SELL
    both = long_wins & short_wins
    out[both & (t_long_tp < t_short_tp)] = BUY
    out[both & (t_short_tp < t_long_tp)] = SELL
    out[~np.isfinite(a)] = NO_LABEL
    labels[:usable] = out
    return labels
