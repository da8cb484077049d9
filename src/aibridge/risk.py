"""Lot sizing and pre-trade risk rules: the one source of truth.

The backtest, the EA emulator and the MQL4 EA (``mt4_ea/Include/AIBridge/Risk.mqh``, mirrored
line for line) must size and veto trades identically, otherwise a backtest proves nothing
about the live account. So every rule is a small function on plain floats/ints:

* the numba backtest core compiles these very functions (``numba.njit(risk.lots_for_risk_raw)``)
  instead of re-implementing them, and
* the MQL4 port can be checked against them statement by statement.

Conventions (MT4's): distances in *price* units unless the name says ``points``; money in the
account currency; ``risk_pct`` and ``max_dd_pct`` in percent (1.0 = 1 %); tick value per 1.0 lot
(see :mod:`aibridge.instruments`). Reason codes are integers so they cross into numba and
MQL4 unchanged; :data:`LOT_REASONS` names them for logs and reports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from aibridge.instruments import InstrumentSpec
from aibridge.paths import conf_dir

# Lot sizing outcome codes (MQL4: #define AIB_LOT_OK 0, ...).
LOT_OK = 0
LOT_CLAMPED_MAX = 1  # risk asked for more than MODE_MAXLOT; sized at the maximum
LOT_BELOW_MIN = 2  # risk allows less than MODE_MINLOT; no trade (lots = 0)
LOT_RAISED_TO_MIN = 3  # below the minimum but the policy trades the minimum anyway
LOT_INVALID_INPUT = 4  # non-positive equity, risk, SL distance, tick size or tick value
LOT_REASONS = {
    LOT_OK: "ok",
    LOT_CLAMPED_MAX: "clamped_to_max_lot",
    LOT_BELOW_MIN: "below_min_lot",
    LOT_RAISED_TO_MIN: "raised_to_min_lot",
    LOT_INVALID_INPUT: "invalid_input",
}

# Pre-trade veto codes, in the order the checks run (MQL4: #define AIB_ENTRY_OK 0, ...).
ENTRY_OK = 0
ENTRY_SPREAD = 1  # spread above max_spread_points
ENTRY_DRAWDOWN = 2  # daily drawdown halt latched for today
ENTRY_HOURS = 3  # outside the allowed trading hours
ENTRY_LOTS = 4  # lot sizing gave 0 (below the minimum lot, or invalid SL/inputs)
ENTRY_EXPOSURE = 5  # max open positions or max total lots would be exceeded
ENTRY_REASONS = {
    ENTRY_OK: "ok",
    ENTRY_SPREAD: "spread_too_wide",
    ENTRY_DRAWDOWN: "daily_drawdown_halt",
    ENTRY_HOURS: "outside_trading_hours",
    ENTRY_LOTS: "lot_size_zero",
    ENTRY_EXPOSURE: "exposure_limit",
}

# Market exit codes at a bar's open (MQL4: #define AIB_EXIT_NONE 0, ...); the values are the
# backtest's exit reasons (aibridge.backtest.core.EXIT_SIGNAL / EXIT_TIME).
EXIT_NONE = 0
EXIT_SIGNAL = 3  # an opposite BUY/SELL closes the position
EXIT_TIME = 4  # max_hold_bars reached

# Floating-point guard when flooring to the lot step: 0.3 / 0.01 is 29.999999999999996.
_STEP_EPS = 1e-7
_LOT_DECIMALS = 8


class RiskSettings(BaseModel):
    """``conf/risk/default.yaml``: sent in heartbeats, enforced by the EA, used by the backtest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    risk_per_trade_pct: float = Field(default=1.0, gt=0, le=100)
    max_spread_points: float = Field(default=30, description="<= 0 disables the spread check")
    max_daily_drawdown_pct: float = Field(default=3.0, description="<= 0 disables the halt")
    max_open_positions: int = Field(default=1, ge=0)
    max_total_lots: float = Field(default=5.0, ge=0)
    min_confidence: float = Field(default=0.45, ge=0, le=1)
    trading_start_hour: int = Field(default=0, ge=0, le=24, description="server time, inclusive")
    trading_end_hour: int = Field(default=24, ge=0, le=24, description="exclusive; wraps")
    min_lot_policy: Literal["skip", "use_min"] = Field(
        default="skip", description="below MODE_MINLOT: skip the trade, or trade the minimum"
    )
    exposure_policy: Literal["shrink", "skip"] = Field(
        default="shrink",
        description="a trade beyond max_total_lots: size it down to fit (shrink) or skip it",
    )
    # Exit policy: part of the one trade model (backtest, ea-sim and the EA apply it).
    close_on_opposite: bool = Field(
        default=True, description="an opposite signal closes the position at the next open"
    )
    max_hold_bars: int = Field(
        default=24, ge=0, description="time exit at the open this many bars after entry; 0 = none"
    )


def load_risk_settings(path: Path | None = None) -> RiskSettings:
    """Read the risk YAML (default: the workspace's ``conf/risk/default.yaml``)."""
    with (path or conf_dir() / "risk" / "default.yaml").open(encoding="utf-8") as fh:
        return RiskSettings.model_validate(yaml.safe_load(fh))


def risk_settings_from_mapping(data: Mapping[str, Any]) -> RiskSettings:
    """Validate a Hydra ``cfg.risk`` node or a heartbeat's risk dict."""
    return RiskSettings.model_validate(dict(data))


# --------------------------------------------------------------------------------------------
# Core rules on plain numbers (numba-compilable; mirrored by the MQL4 EA).
# --------------------------------------------------------------------------------------------


def lots_for_risk_raw(
    equity: float,
    risk_pct: float,
    sl_distance: float,
    tick_size: float,
    tick_value: float,
    lot_min: float,
    lot_max: float,
    lot_step: float,
    use_min_lot: bool,
) -> tuple[float, int]:
    """Lots that lose ``risk_pct`` % of ``equity`` if the stop ``sl_distance`` away is hit.

    lots = risk money / (SL distance in ticks x tick value per lot), floored to the lot step
    (never round up: rounding up would risk more than allowed), then clamped to
    [lot_min, lot_max]. Returns ``(lots, reason_code)``; lots is 0.0 when no trade is allowed.
    MQL4 mirror: ``AIB_LotsForRisk``.

    1 % of 10,000 is 100; a 200-tick stop at 1.0 per tick per lot loses 200 per lot: 0.5 lots.
    On a 100 account the 0.005 lots are below the 0.01 minimum: no trade, unless the policy
    trades the minimum:

    >>> lots_for_risk_raw(10_000, 1.0, 0.0020, 1e-5, 1.0, 0.01, 100, 0.01, False)
    (0.5, 0)
    >>> [lots_for_risk_raw(100, 1.0, 0.0020, 1e-5, 1.0, 0.01, 100, 0.01, m) for m in (0, 1)]
    [(0.0, 2), (0.01, 3)]
    """
    if (
        equity <= 0.0
        or risk_pct <= 0.0
        or sl_distance <= 0.0
        or tick_size <= 0.0
        or tick_value <= 0.0
        or lot_step <= 0.0
    ):
        return 0.0, LOT_INVALID_INPUT
    risk_money = equity * risk_pct / 100.0
    loss_per_lot = (sl_distance / tick_size) * tick_value
    raw_lots = risk_money / loss_per_lot
    steps = math.floor(raw_lots / lot_step + _STEP_EPS)
    lots = round(steps * lot_step, _LOT_DECIMALS)
    if lots > lot_max:
        # The maximum itself is floored to the step too (MODE_MAXLOT is a multiple in practice).
        return round(math.floor(lot_max / lot_step + _STEP_EPS) * lot_step, _LOT_DECIMALS), (
            LOT_CLAMPED_MAX
        )
    if lots < lot_min - _STEP_EPS * lot_step:
        if use_min_lot:
            return lot_min, LOT_RAISED_TO_MIN
        return 0.0, LOT_BELOW_MIN
    return lots, LOT_OK


def spread_ok(spread_points: float, max_spread_points: float) -> bool:
    """True when the current spread allows a new trade; ``max_spread_points <= 0`` disables.

    MQL4 mirror: ``AIB_SpreadOk``.
    """
    if max_spread_points <= 0.0:
        return True
    return spread_points <= max_spread_points


def daily_drawdown_breached(day_start_equity: float, equity: float, max_dd_pct: float) -> bool:
    """True when today's loss from the day's starting equity reached ``max_dd_pct`` percent.

    Once true the caller latches it for the rest of the day (no new trades that day, even if
    equity recovers). ``max_dd_pct <= 0`` disables; a non-positive day start always halts.
    MQL4 mirror: ``AIB_DailyDrawdownBreached``.

    >>> daily_drawdown_breached(10_000, 9_700, 3.0), daily_drawdown_breached(10_000, 9_701, 3.0)
    (True, False)
    """
    if max_dd_pct <= 0.0:
        return False
    if day_start_equity <= 0.0:
        return True
    return (day_start_equity - equity) >= day_start_equity * max_dd_pct / 100.0


def exposure_ok(
    open_positions: int,
    total_lots: float,
    new_lots: float,
    max_open_positions: int,
    max_total_lots: float,
) -> bool:
    """True when one more position of ``new_lots`` stays within both exposure limits.

    MQL4 mirror: ``AIB_ExposureOk`` (counts only this EA's magic number on this symbol).

    >>> exposure_ok(1, 0.5, 0.5, 3, 1.0), exposure_ok(1, 0.5, 0.6, 3, 1.0)
    (True, False)
    """
    if open_positions + 1 > max_open_positions:
        return False
    return total_lots + new_lots <= max_total_lots + 1e-9


def shrink_to_exposure(
    lots: float,
    total_lots: float,
    max_total_lots: float,
    lot_min: float,
    lot_step: float,
    shrink: bool,
) -> float:
    """Lots of a new order after the exposure policy: with ``shrink`` an order that would take
    the open lots past ``max_total_lots`` is cut to the room left, floored to the lot step;
    otherwise (or when the room is below ``lot_min``) ``lots`` is returned unchanged and
    :func:`exposure_ok` vetoes it (``ENTRY_EXPOSURE``). Runs between the lot sizing and
    :func:`entry_veto`. MQL4 mirror: ``AIB_ShrinkToExposure``.

    >>> shrink_to_exposure(0.8, 0.5, 1.0, 0.01, 0.01, True)  # 0.5 of 1.0 lots left
    0.5
    >>> shrink_to_exposure(0.8, 0.5, 1.0, 0.01, 0.01, False)  # left for exposure_ok to veto
    0.8
    """
    if not shrink or lots <= 0.0 or lot_step <= 0.0:
        return lots
    if total_lots + lots <= max_total_lots + 1e-9:
        return lots
    room = max_total_lots - total_lots
    shrunk = round(math.floor(room / lot_step + _STEP_EPS) * lot_step, _LOT_DECIMALS)
    if shrunk < lot_min - _STEP_EPS * lot_step or shrunk <= 0.0:
        return lots
    return shrunk


def trading_hour_ok(hour: int, start_hour: int, end_hour: int) -> bool:
    """True when ``hour`` (server time, 0-23) is inside [start, end), wrapping past midnight.

    ``start == end`` means no restriction (the common EA convention); 0-24 is the whole day;
    22-6 allows 22:00-05:59. MQL4 mirror: ``AIB_TradingHourOk``.

    >>> [trading_hour_ok(h, 22, 6) for h in (21, 22, 5, 6)], trading_hour_ok(3, 5, 5)
    ([False, True, True, False], True)
    """
    if start_hour == end_hour:
        return True
    if start_hour < end_hour:
        return start_hour <= hour < end_hour
    return hour >= start_hour or hour < end_hour


def entry_veto(
    spread_points: float,
    max_spread_points: float,
    dd_halted: bool,
    hour: int,
    start_hour: int,
    end_hour: int,
    lots: float,
    open_positions: int,
    total_lots: float,
    max_open_positions: int,
    max_total_lots: float,
) -> int:
    """All pre-trade checks in one fixed order; returns the first failing ``ENTRY_*`` code.

    The order is part of the contract (it decides which reason the journal shows): spread,
    daily drawdown halt, trading hours, lot size, exposure. ``dd_halted`` is the day's latched
    :func:`daily_drawdown_breached` flag; ``lots`` comes from :func:`lots_for_risk_raw`.
    MQL4 mirror: ``AIB_EntryVeto``.

    A 12-point spread over a 10-point maximum outside the trading hours: the spread is named.

    >>> ENTRY_REASONS[entry_veto(12, 10, False, 23, 8, 20, 0.1, 0, 0.0, 3, 1.0)]
    'spread_too_wide'
    >>> ENTRY_REASONS[entry_veto(8, 10, False, 23, 8, 20, 0.1, 0, 0.0, 3, 1.0)]
    'outside_trading_hours'
    """
    if not spread_ok(spread_points, max_spread_points):
        return ENTRY_SPREAD
    if dd_halted:
        return ENTRY_DRAWDOWN
    if not trading_hour_ok(hour, start_hour, end_hour):
        return ENTRY_HOURS
    if lots <= 0.0:
        return ENTRY_LOTS
    if not exposure_ok(open_positions, total_lots, lots, max_open_positions, max_total_lots):
        return ENTRY_EXPOSURE
    return ENTRY_OK


def exit_reason(
    direction: int, signal: int, bars_held: int, close_on_opposite: bool, max_hold_bars: int
) -> int:
    """Should a position of ``direction`` (+1 long, -1 short) close at this bar's open?

    ``signal`` is the served decision of the bar that just closed (+1 BUY, -1 SELL, 0 HOLD or
    none); ``bars_held`` counts bars since the entry bar (0 on the entry bar). An opposite
    signal wins over the time exit (it decides the reason, not the price). Returns an
    ``EXIT_*`` code. MQL4 mirror: ``AIB_ExitReason``.

    >>> codes = [exit_reason(+1, signal, 3, True, 24) for signal in (-1, 0, +1)]
    >>> codes == [EXIT_SIGNAL, EXIT_NONE, EXIT_NONE]
    True
    >>> exit_reason(+1, 0, 24, True, 24) == EXIT_TIME  # held 24 bars
    True
    """
    if close_on_opposite and signal == -direction:
        return EXIT_SIGNAL
    if max_hold_bars > 0 and bars_held >= max_hold_bars:
        return EXIT_TIME
    return EXIT_NONE


def widen_to_stop_level(
    sl_distance: float, tp_distance: float, spread_price: float, stop_level_price: float
) -> tuple[float, float]:
    """Widen SL/TP distances (from the open price) so MT4 accepts them (MODE_STOPLEVEL).

    MT4 measures stop levels from the *closing* side: for a buy the SL must be at least
    ``stop_level`` below Bid, but we place it ``sl_distance`` below Ask, so the SL needs
    ``sl >= stop_level + spread`` while the TP only needs ``tp >= stop_level - spread``;
    a sell is the mirror image with the same result. A distance <= 0 (no TP) is kept.
    MQL4 mirror: ``AIB_WidenToStopLevel``.

    Stop level 10, spread 2 (in points): the SL needs 12, the TP 8.

    >>> widen_to_stop_level(5.0, 10.0, 2.0, 10.0), widen_to_stop_level(5.0, 0.0, 2.0, 10.0)
    ((12.0, 10.0), (12.0, 0.0))
    """
    sl = sl_distance
    tp = tp_distance
    if sl > 0.0 and sl < stop_level_price + spread_price:
        sl = stop_level_price + spread_price
    if tp > 0.0 and tp < stop_level_price - spread_price:
        tp = stop_level_price - spread_price
    return sl, tp


def normalize_price(price: float, digits: int) -> float:
    """Round a price to the symbol's digits, as MT4's ``NormalizeDouble(price, Digits)``."""
    return round(price, digits)


# --------------------------------------------------------------------------------------------
# Friendly wrappers over the core, for Python callers (emulator, server, reports).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LotDecision:
    """A lot size with the reason, so a skipped trade is always explained in the journal."""

    lots: float
    code: int
    tick_value: float

    @property
    def reason(self) -> str:
        """Human-readable reason code (``ok``, ``below_min_lot``, ...)."""
        return LOT_REASONS[self.code]

    @property
    def tradable(self) -> bool:
        """True when an order should be sent."""
        return self.lots > 0.0


def lots_for_risk(
    equity: float,
    risk_pct: float,
    sl_distance_price: float,
    spec: InstrumentSpec,
    price: float,
    quote_to_account: float | None = None,
    min_lot_policy: str = "skip",
) -> LotDecision:
    """Size a trade for ``spec`` at ``price`` (see :func:`lots_for_risk_raw` for the rule).

    ``quote_to_account`` is only needed for crosses (GBPJPY on a USD account: ``1/USDJPY``).

    >>> eurusd = InstrumentSpec(symbol="EURUSD", digits=5, point=1e-5)
    >>> decision = lots_for_risk(10_000, 1.0, 0.0020, eurusd, price=1.1)
    >>> decision.lots, decision.reason, decision.tradable
    (0.5, 'ok', True)
    """
    tick_value = spec.tick_value_at(price, quote_to_account)
    lots, code = lots_for_risk_raw(
        equity,
        risk_pct,
        sl_distance_price,
        spec.tick,
        tick_value,
        spec.lot_min,
        spec.lot_max,
        spec.lot_step,
        min_lot_policy == "use_min",
    )
    return LotDecision(lots=lots, code=code, tick_value=tick_value)


def money_per_price_move(
    price_move: float,
    lots: float,
    spec: InstrumentSpec,
    price: float,
    quote_to_account: float | None = None,
) -> float:
    """Account-currency value of a ``price_move`` on ``lots`` (P&L, risk money, swap).

    >>> eurusd = InstrumentSpec(symbol="EURUSD", digits=5, point=1e-5)
    >>> money_per_price_move(0.0020, 0.5, eurusd, price=1.1)  # 20 pips on half a lot
    100.0
    """
    return price_move / spec.tick * spec.tick_value_at(price, quote_to_account) * lots
