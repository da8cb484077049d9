"""Triple-barrier direction labels.

For bar ``t`` with close ``c`` and ATR ``a`` (from ``aibridge.features.atr``, the same ATR the
server uses for SL/TP), picture two hypothetical trades entered at ``c``:

* a long with take-profit ``c + tp_mult*a`` and stop-loss ``c - sl_mult*a``;
* a short with take-profit ``c - tp_mult*a`` and stop-loss ``c + sl_mult*a``.

Walking forward at most ``horizon`` bars, with each bar's high/low:

* **BUY** when the long reaches its take-profit before its stop,
* **SELL** when the short does,
* **HOLD** when neither does in time (the time barrier), i.e. no trade would have paid.

When one bar touches both a take-profit and the opposite stop, the stop is assumed first (as in
the backtest), so ambiguity resolves to the cautious answer. With ``tp_mult >= sl_mult`` BUY
and SELL cannot both be true; otherwise the earlier take-profit wins and a tie is HOLD.

The barrier multiples are the ones the server later suggests as SL/TP: a BUY label *means*
"this SL/TP pair would have hit TP".

The last ``horizon`` bars have no complete future and get ``NO_LABEL``.
"""

from __future__ import annotations

import numpy as np

from aibridge.decision import BUY, CLASSES, HOLD, SELL

NO_LABEL = -1
__all__ = ["BUY", "CLASSES", "HOLD", "NO_LABEL", "SELL", "triple_barrier_labels"]


def _first_hit(hit: np.ndarray) -> np.ndarray:
    """Index (1-based step) of the first True per row, or a large number when none."""
    never = hit.shape[1] + 1
    first = np.argmax(hit, axis=1) + 1
    return np.where(hit.any(axis=1), first, never)


def triple_barrier_labels(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    atr: np.ndarray,
    tp_mult: float,
    sl_mult: float,
    horizon: int,
) -> np.ndarray:
    """Class index per bar (``SELL``/``HOLD``/``BUY``), ``NO_LABEL`` where it cannot be known."""
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
    long_tp = fut_high >= (c + tp_mult * a)[:, None]
    long_sl = fut_low <= (c - sl_mult * a)[:, None]
    short_tp = fut_low <= (c - tp_mult * a)[:, None]
    short_sl = fut_high >= (c + sl_mult * a)[:, None]
    t_long_tp, t_long_sl = _first_hit(long_tp), _first_hit(long_sl)
    t_short_tp, t_short_sl = _first_hit(short_tp), _first_hit(short_sl)
    never = horizon + 1
    # Stop first when both land in the same bar: strictly earlier TP is required.
    long_wins = (t_long_tp < never) & (t_long_tp < t_long_sl)
    short_wins = (t_short_tp < never) & (t_short_tp < t_short_sl)
    out = np.full(usable, HOLD, dtype=np.int8)
    only_long = long_wins & ~short_wins
    only_short = short_wins & ~long_wins
    both = long_wins & short_wins
    out[only_long] = BUY
    out[only_short] = SELL
    out[both & (t_long_tp < t_short_tp)] = BUY
    out[both & (t_short_tp < t_long_tp)] = SELL
    out[~np.isfinite(a)] = NO_LABEL
    labels[:usable] = out
    return labels
