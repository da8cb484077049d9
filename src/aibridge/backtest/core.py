"""The compiled bar loop: MT4 fill semantics on Bid candles, one pass, no Python per bar.

Why a hand-written loop and not vectorised numpy: position state (open trades, the day's
drawdown latch, equity used for sizing) depends on every previous fill, so the simulation is
inherently sequential; numba compiles it to ~tens of millions of bar-steps per second.

The lot-sizing and veto rules are *not* re-implemented here: the functions of
:mod:`aibridge.risk` and :mod:`aibridge.instruments` are compiled with ``numba.njit`` and
called, so the backtest, the EA emulator and the MQL4 EA share one definition.

Per bar ``i`` (signal ``s = signal[i-1]`` decided on the close of bar ``i-1``):

1. day change: charge swap for the nights crossed, reset the day's starting equity and the
   drawdown latch (equity marked at this bar's open); then the drawdown check at the open
   (the EA checks on every tick: the open tick and the close tick of the stand-in);
2. at the open: close positions opposite to ``s`` and positions past ``max_hold_bars``
   (market exits, slippage against us), then try to open ``s`` (spread, drawdown, hours,
   lot size, exposure checks; ``entry_code[i]`` records the outcome);
3. inside the bar: SL/TP against high/low on the closing side (long: Bid, short: Ask =
   Bid + spread); a gap through a level fills at the open; both levels in one bar → the
   stop first unless ``stop_first`` is off;
4. at the close: mark equity, latch the drawdown halt if breached.

Margin stop-out (ruin): margin per position is ``lots * price * tick_value / (tick * leverage)``
(the contract's notional in account currency over the leverage). When equity falls to
``stop_out_level_pct`` % of the used margin -- checked at the open tick (marked at the open)
and inside the bar at its worst price for the open positions (longs at the low, shorts at
the high's Ask) -- every position is closed there (exit reason ``stop_out``; at the bar's
worst price, somewhat later than a broker would) and the account stops trading for good.
An account whose balance is <= 0 is ruined too.

Open positions at the last bar are closed at its close (exit reason ``END``).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from aibridge import instruments, risk


def _compile(fn: Callable[..., Any], **callees: Any) -> Any:
    """``numba.njit`` a rule from :mod:`aibridge.risk` with its helper calls bound to the
    compiled helpers, so the rule's one Python body is what the kernel runs.

    No ``cache=True`` anywhere in this module: numba's cache is keyed on *this* file only, so
    an edited rule in ``risk.py`` would silently keep running its stale compiled version.
    """
    if callees:
        scope = dict(fn.__globals__)
        scope.update(callees)
        fn = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__)
    return numba.njit(fn)


_lots_for_risk = _compile(risk.lots_for_risk_raw)
_dd_breached = _compile(risk.daily_drawdown_breached)
_widen = _compile(risk.widen_to_stop_level)
_exit_reason = _compile(risk.exit_reason)
_shrink = _compile(risk.shrink_to_exposure)
_tick_value = _compile(instruments.tick_value_from)
_entry_veto = _compile(
    risk.entry_veto,
    spread_ok=_compile(risk.spread_ok),
    trading_hour_ok=_compile(risk.trading_hour_ok),
    exposure_ok=_compile(risk.exposure_ok),
)


# Exit reasons (trades.exit_reason).
EXIT_SL = 1
EXIT_TP = 2
EXIT_SIGNAL = 3  # opposite signal
EXIT_TIME = 4  # max_hold_bars reached
EXIT_END = 5  # end of data
EXIT_STOPOUT = 6  # margin stop-out: the account is ruined
EXIT_REASONS = {
    EXIT_SL: "SL",
    EXIT_TP: "TP",
    EXIT_SIGNAL: "signal",
    EXIT_TIME: "time",
    EXIT_END: "end",
    EXIT_STOPOUT: "stop_out",
}

# entry_code per bar: -1 no signal to act on, otherwise a risk.ENTRY_* code.
NO_SIGNAL = -1

# Column order of the float trade record and the int trade record.
TF_LOTS, TF_ENTRY, TF_EXIT, TF_SL, TF_TP, TF_GROSS, TF_COMM, TF_SWAP, TF_RISK = range(9)
TI_ENTRY_BAR, TI_EXIT_BAR, TI_DIR, TI_REASON = range(4)

# Scalar parameter vector layout (one float64 array keeps the kernel signature stable).
(
    P_EQUITY,
    P_RISK_PCT,
    P_MAX_SPREAD_PTS,
    P_MAX_DD_PCT,
    P_MAX_OPEN,
    P_MAX_LOTS,
    P_START_HOUR,
    P_END_HOUR,
    P_USE_MIN_LOT,
    P_POINT,
    P_TICK,
    P_FIXED_TV,
    P_TV_MODE,
    P_LOT_MIN,
    P_LOT_MAX,
    P_LOT_STEP,
    P_STOP_LEVEL_PTS,
    P_COMMISSION,
    P_SWAP_ON,
    P_SWAP_LONG_PTS,
    P_SWAP_SHORT_PTS,
    P_TRIPLE_DAY,
    P_STOP_FIRST,
    P_ON_ENTRY_BAR,
    P_CLOSE_OPPOSITE,
    P_MAX_HOLD,
    P_FIXED_LOTS,
    P_ATTACH_STOPS,
    P_DIGITS,
    P_EXPOSURE_SHRINK,
    P_LEVERAGE,
    P_STOP_OUT_PCT,
) = range(32)
N_PARAMS = 32


@numba.njit
def _pnl(direction: int, entry: float, exit_: float, lots: float, tick: float, tv: float) -> float:
    return direction * (exit_ - entry) / tick * tv * lots


@numba.njit
def _margin(lots: float, price: float, tick: float, tv: float, leverage: float) -> float:
    """Margin of ``lots`` at ``price`` in account currency: notional / leverage
    (``price * tv / tick`` is one lot's notional: contract x price x quote->account)."""
    if leverage <= 0.0:
        return 0.0
    return lots * price * tv / (tick * leverage)


@numba.njit
def _close_position(
    tf: np.ndarray,
    ti: np.ndarray,
    pos: np.ndarray,
    k: int,
    i: int,
    px: float,
    tv: float,
    tick: float,
    commission: float,
    reason: int,
) -> float:
    """Close the position in slot ``k`` at ``px`` on bar ``i`` (tick value ``tv``): record the
    exit, gross P&L, closing commission and ``reason`` in the trade record, free the slot, and
    return what the balance gains (gross - commission)."""
    t = pos[k]
    gross = _pnl(ti[t, TI_DIR], tf[t, TF_ENTRY], px, tf[t, TF_LOTS], tick, tv)
    fee = commission * tf[t, TF_LOTS]
    tf[t, TF_EXIT] = px
    tf[t, TF_GROSS] = gross
    tf[t, TF_COMM] += fee
    ti[t, TI_EXIT_BAR] = i
    ti[t, TI_REASON] = reason
    pos[k] = -1
    return gross - fee


@numba.njit
def _nights_weight(prev_day: int, day: int, triple_day: int) -> int:
    """Swap units charged between two trading days: 1 per weekday night, 3 on the triple day.

    Day numbers count from 1970-01-01 (a Thursday, weekday 3 with Monday = 0); Saturday and
    Sunday nights are not charged because the triple day already pays for the weekend.
    """
    total = 0
    for d in range(prev_day, day):
        wd = (d + 3) % 7
        if wd >= 5:
            continue
        total += 3 if wd == triple_day else 1
    return total


@numba.njit
def run_kernel(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    spread_pts: np.ndarray,
    signal: np.ndarray,
    sl_dist: np.ndarray,
    tp_dist: np.ndarray,
    day: np.ndarray,
    hour: np.ndarray,
    conv: np.ndarray,
    slip: np.ndarray,
    p: np.ndarray,
    capacity: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Simulate the account; returns per-bar (equity, balance, open lots (signed),
    entry_code), trade records (float, int) with the trade count, and the bar of the margin
    stop-out (ruin; -1 when none).

    ``capacity`` bounds the number of trades (at most one entry per non-zero signal), so the
    trade records are sized by signals, not by bars.
    """
    n = open_.shape[0]
    equity = np.empty(n)
    balance_arr = np.empty(n)
    exposure = np.zeros(n)
    entry_code = np.full(n, NO_SIGNAL, dtype=np.int8)
    tf = np.zeros((capacity, 9))
    ti = np.zeros((capacity, 4), dtype=np.int64)

    max_open = int(p[P_MAX_OPEN])
    slots = max(max_open, 1)
    # open positions: index into the trade record, or -1
    pos = np.full(slots, -1, dtype=np.int64)
    point = p[P_POINT]
    tick = p[P_TICK]
    fixed_tv = p[P_FIXED_TV]
    tv_mode = int(p[P_TV_MODE])
    commission = p[P_COMMISSION]
    stop_first = p[P_STOP_FIRST] != 0.0
    on_entry_bar = p[P_ON_ENTRY_BAR] != 0.0
    close_opposite = p[P_CLOSE_OPPOSITE] != 0.0
    max_hold = int(p[P_MAX_HOLD])
    fixed_lots = p[P_FIXED_LOTS]
    attach_stops = p[P_ATTACH_STOPS] != 0.0
    stop_level = p[P_STOP_LEVEL_PTS] * point
    digits = int(p[P_DIGITS])
    shrink = p[P_EXPOSURE_SHRINK] != 0.0
    leverage = p[P_LEVERAGE]
    stop_out_pct = p[P_STOP_OUT_PCT]
    ruined = False
    stopout_bar = -1

    balance = p[P_EQUITY]
    day_start_equity = balance
    dd_halted = False
    n_trades = 0

    for i in range(n):
        o = open_[i]
        sp = spread_pts[i] * point
        tv_open = _tick_value(fixed_tv, tv_mode, o, conv[i])

        # 1. day change: swap, day's starting equity, drawdown latch
        if i > 0 and day[i] != day[i - 1]:
            if p[P_SWAP_ON] != 0.0:
                units = _nights_weight(day[i - 1], day[i], int(p[P_TRIPLE_DAY]))
                for k in range(slots):
                    t = pos[k]
                    if t >= 0:
                        pts = p[P_SWAP_LONG_PTS] if ti[t, TI_DIR] > 0 else p[P_SWAP_SHORT_PTS]
                        money = units * pts * point / tick * tv_open * tf[t, TF_LOTS]
                        tf[t, TF_SWAP] += money
                        balance += money
            floating = 0.0
            for k in range(slots):
                t = pos[k]
                if t >= 0:
                    d = ti[t, TI_DIR]
                    mark = o if d > 0 else o + sp
                    floating += _pnl(d, tf[t, TF_ENTRY], mark, tf[t, TF_LOTS], tick, tv_open)
            day_start_equity = balance + floating
            dd_halted = False

        # drawdown at the open tick: the EA checks on every tick, so a gap that breaches the
        # day's limit latches the halt even when no signal arrives on this bar and the bar
        # recovers before its close
        if i > 0:
            floating = 0.0
            for k in range(slots):
                t = pos[k]
                if t >= 0:
                    d = ti[t, TI_DIR]
                    mark = o if d > 0 else o + sp
                    floating += _pnl(d, tf[t, TF_ENTRY], mark, tf[t, TF_LOTS], tick, tv_open)
            if _dd_breached(day_start_equity, balance + floating, p[P_MAX_DD_PCT]):
                dd_halted = True
            # margin stop-out at the open tick: everything closes at the open's prices
            if not ruined:
                margin = 0.0
                for k in range(slots):
                    t = pos[k]
                    if t >= 0:
                        margin += _margin(tf[t, TF_LOTS], o, tick, tv_open, leverage)
                if margin > 0.0 and balance + floating <= margin * stop_out_pct / 100.0:
                    ruined = True
                    stopout_bar = i
                    for k in range(slots):
                        t = pos[k]
                        if t < 0:
                            continue
                        px = o - slip[i] if ti[t, TI_DIR] > 0 else o + sp + slip[i]
                        balance += _close_position(
                            tf, ti, pos, k, i, px, tv_open, tick, commission, EXIT_STOPOUT
                        )
        if not ruined and balance <= 0.0:
            ruined = True
            stopout_bar = i

        # 2. market actions at the open for the signal of the previous bar
        s = signal[i - 1] if i > 0 else 0
        if i > 0:
            for k in range(slots):
                t = pos[k]
                if t < 0:
                    continue
                d = ti[t, TI_DIR]
                reason = _exit_reason(d, s, i - ti[t, TI_ENTRY_BAR], close_opposite, max_hold)
                if reason:
                    px = o - slip[i] if d > 0 else o + sp + slip[i]
                    balance += _close_position(
                        tf, ti, pos, k, i, px, tv_open, tick, commission, reason
                    )

        if s != 0 and i > 0 and not ruined:
            floating = 0.0
            n_open = 0
            total_lots = 0.0
            for k in range(slots):
                t = pos[k]
                if t >= 0:
                    d = ti[t, TI_DIR]
                    mark = o if d > 0 else o + sp
                    floating += _pnl(d, tf[t, TF_ENTRY], mark, tf[t, TF_LOTS], tick, tv_open)
                    n_open += 1
                    total_lots += tf[t, TF_LOTS]
            eq_now = balance + floating
            if _dd_breached(day_start_equity, eq_now, p[P_MAX_DD_PCT]):
                dd_halted = True
            sl_d = sl_dist[i - 1]
            tp_d = tp_dist[i - 1]
            if not np.isfinite(sl_d):
                sl_d = 0.0
            if not np.isfinite(tp_d):
                tp_d = 0.0
            sl_d, tp_d = _widen(sl_d, tp_d, sp, stop_level)
            quote = o + sp if s > 0 else o  # the price the order is requested at
            if fixed_lots > 0.0:
                lots = fixed_lots
            else:
                lots, _ = _lots_for_risk(
                    eq_now,
                    p[P_RISK_PCT],
                    sl_d,
                    tick,
                    _tick_value(fixed_tv, tv_mode, quote, conv[i]),
                    p[P_LOT_MIN],
                    p[P_LOT_MAX],
                    p[P_LOT_STEP],
                    p[P_USE_MIN_LOT] != 0.0,
                )
            lots = _shrink(lots, total_lots, p[P_MAX_LOTS], p[P_LOT_MIN], p[P_LOT_STEP], shrink)
            code = _entry_veto(
                spread_pts[i],
                p[P_MAX_SPREAD_PTS],
                dd_halted,
                hour[i],
                int(p[P_START_HOUR]),
                int(p[P_END_HOUR]),
                lots,
                n_open,
                total_lots,
                max_open,
                p[P_MAX_LOTS],
            )
            entry_code[i] = code
            if code == risk.ENTRY_OK:
                t = n_trades
                n_trades += 1
                fill = quote + slip[i] if s > 0 else quote - slip[i]
                tf[t, TF_LOTS] = lots
                tf[t, TF_ENTRY] = fill
                # the order's levels are normalised to the symbol's digits, as the EA sends them
                # (NormalizeDouble): a bar touching the level exactly then hits it in both
                tf[t, TF_SL] = (
                    round(quote - s * sl_d, digits) if (attach_stops and sl_d > 0.0) else np.nan
                )
                tf[t, TF_TP] = (
                    round(quote + s * tp_d, digits) if (attach_stops and tp_d > 0.0) else np.nan
                )
                tf[t, TF_COMM] = commission * lots
                tf[t, TF_RISK] = sl_d / tick * _tick_value(fixed_tv, tv_mode, quote, conv[i]) * lots
                ti[t, TI_ENTRY_BAR] = i
                ti[t, TI_DIR] = s
                balance -= commission * lots
                for k in range(slots):
                    if pos[k] < 0:
                        pos[k] = t
                        break

        # 3. SL/TP inside the bar, on the closing side of the spread
        h = high[i]
        lo = low[i]
        for k in range(slots):
            t = pos[k]
            if t < 0:
                continue
            entry_bar = ti[t, TI_ENTRY_BAR] == i
            if entry_bar and not on_entry_bar:
                continue
            d = ti[t, TI_DIR]
            sl = tf[t, TF_SL]
            tp = tf[t, TF_TP]
            has_sl = not np.isnan(sl)
            has_tp = not np.isnan(tp)
            if not (has_sl or has_tp):
                continue
            px = 0.0
            reason = 0
            if d > 0:
                if not entry_bar and has_sl and o <= sl:
                    px, reason = o - slip[i], EXIT_SL
                elif not entry_bar and has_tp and o >= tp:
                    px, reason = o, EXIT_TP
                else:
                    sl_hit = has_sl and lo <= sl
                    tp_hit = has_tp and h >= tp
                    if sl_hit and (stop_first or not tp_hit):
                        px, reason = sl - slip[i], EXIT_SL
                    elif tp_hit:
                        px, reason = tp, EXIT_TP
            else:
                oa = o + sp
                if not entry_bar and has_sl and oa >= sl:
                    px, reason = oa + slip[i], EXIT_SL
                elif not entry_bar and has_tp and oa <= tp:
                    px, reason = oa, EXIT_TP
                else:
                    sl_hit = has_sl and h + sp >= sl
                    tp_hit = has_tp and lo + sp <= tp
                    if sl_hit and (stop_first or not tp_hit):
                        px, reason = sl + slip[i], EXIT_SL
                    elif tp_hit:
                        px, reason = tp, EXIT_TP
            if reason:
                tv_px = _tick_value(fixed_tv, tv_mode, px, conv[i])
                balance += _close_position(tf, ti, pos, k, i, px, tv_px, tick, commission, reason)

        # margin stop-out inside the bar, at its worst price for what is still open
        if not ruined:
            worst = 0.0
            margin = 0.0
            for k in range(slots):
                t = pos[k]
                if t >= 0:
                    d = ti[t, TI_DIR]
                    mark = lo if d > 0 else h + sp
                    tv_m = _tick_value(fixed_tv, tv_mode, mark, conv[i])
                    worst += _pnl(d, tf[t, TF_ENTRY], mark, tf[t, TF_LOTS], tick, tv_m)
                    margin += _margin(tf[t, TF_LOTS], mark, tick, tv_m, leverage)
            if margin > 0.0 and balance + worst <= margin * stop_out_pct / 100.0:
                ruined = True
                stopout_bar = i
                for k in range(slots):
                    t = pos[k]
                    if t < 0:
                        continue
                    px = lo if ti[t, TI_DIR] > 0 else h + sp
                    tv_m = _tick_value(fixed_tv, tv_mode, px, conv[i])
                    balance += _close_position(
                        tf, ti, pos, k, i, px, tv_m, tick, commission, EXIT_STOPOUT
                    )

        # 4. mark to market at the close (and close everything on the last bar)
        c = close[i]
        tv_close = _tick_value(fixed_tv, tv_mode, c, conv[i])
        floating = 0.0
        lots_signed = 0.0
        for k in range(slots):
            t = pos[k]
            if t < 0:
                continue
            d = ti[t, TI_DIR]
            mark = c if d > 0 else c + sp
            if i == n - 1:
                balance += _close_position(
                    tf, ti, pos, k, i, mark, tv_close, tick, commission, EXIT_END
                )
            else:
                floating += _pnl(d, tf[t, TF_ENTRY], mark, tf[t, TF_LOTS], tick, tv_close)
                lots_signed += d * tf[t, TF_LOTS]
        equity[i] = balance + floating
        balance_arr[i] = balance
        exposure[i] = lots_signed
        if _dd_breached(day_start_equity, equity[i], p[P_MAX_DD_PCT]):
            dd_halted = True

    return (
        equity,
        balance_arr,
        exposure,
        entry_code,
        tf[:n_trades],
        ti[:n_trades],
        n_trades,
        stopout_bar,
    )
