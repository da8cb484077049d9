"""Lot sizing and risk rules on real contract specs for a USD account.

Every expected lot size below is worked out by hand in the comment next to it (risk money /
(SL ticks x tick value per lot), floored to the step), so a change in rounding, the tick value
rule or the clamping shows up as a failing row rather than a silently different backtest.
"""

from __future__ import annotations

import numba
import pytest
import yaml

from aibridge import risk
from aibridge.instruments import (
    TICK_VALUE_BASE_IS_ACCOUNT,
    TICK_VALUE_CROSS,
    TICK_VALUE_FIXED,
    instrument_conf_dir,
    load_instrument,
)
from aibridge.risk import (
    LOT_BELOW_MIN,
    LOT_CLAMPED_MAX,
    LOT_INVALID_INPUT,
    LOT_OK,
    LOT_RAISED_TO_MIN,
    daily_drawdown_breached,
    exposure_ok,
    load_risk_settings,
    lots_for_risk,
    money_per_price_move,
    spread_ok,
    trading_hour_ok,
    widen_to_stop_level,
)

EURUSD = load_instrument("EURUSD")
USDJPY = load_instrument("USDJPY")
GBPJPY = load_instrument("GBPJPY")
XAUUSD = load_instrument("XAUUSD")

# (id, spec, equity, risk %, SL distance (price), price, quote->USD, expected lots, code)
LOT_TABLE = [
    # 1 % of 10,000 = 100 USD; 200 ticks x 1.0 USD = 200 USD/lot -> 0.5
    ("eurusd_20pips", EURUSD, 10_000, 1.0, 0.00200, 1.10000, None, 0.50, LOT_OK),
    # 100 / (150 x 1.0) = 0.6667 -> floored 0.66 (never rounded up)
    ("eurusd_15pips_floor", EURUSD, 10_000, 1.0, 0.00150, 1.10000, None, 0.66, LOT_OK),
    # USDJPY at 150: tick value 100,000 x 0.001 / 150 = 0.6667; 300 ticks -> 200 USD/lot -> 0.5
    ("usdjpy_at_150", USDJPY, 10_000, 1.0, 0.300, 150.000, None, 0.50, LOT_OK),
    # same SL at 100.000: tick value 1.0; 300 USD/lot -> 0.3333 -> 0.33
    ("usdjpy_at_100", USDJPY, 10_000, 1.0, 0.300, 100.000, None, 0.33, LOT_OK),
    # GBPJPY, JPY->USD = 1/150: tick value 0.6667; 500 ticks -> 333.33 USD/lot -> 0.30
    ("gbpjpy_usdjpy150", GBPJPY, 10_000, 1.0, 0.500, 190.000, 1 / 150, 0.30, LOT_OK),
    # GBPJPY, JPY->USD = 1/110: tick value 0.90909; 454.545 USD/lot -> exactly 0.22
    ("gbpjpy_usdjpy110", GBPJPY, 10_000, 1.0, 0.500, 190.000, 1 / 110, 0.22, LOT_OK),
    # gold: 100 oz x 0.01 = 1.0 USD/tick; SL 15.00 = 1500 ticks -> 1500 USD/lot -> 0.0667 -> 0.06
    ("xauusd_15usd", XAUUSD, 10_000, 1.0, 15.00, 2000.00, None, 0.06, LOT_OK),
    # 2 % of 100,000 = 2,000 USD; SL 2.00 = 200 ticks -> 200 USD/lot -> 10.0
    ("xauusd_10lots", XAUUSD, 100_000, 2.0, 2.00, 2000.00, None, 10.00, LOT_OK),
    # edge: exactly the minimum: 2 USD / 200 USD/lot = 0.01
    ("eurusd_exact_min", EURUSD, 200, 1.0, 0.00200, 1.10000, None, 0.01, LOT_OK),
    # edge: 1 USD / 200 USD/lot = 0.005 < 0.01 -> no trade
    ("eurusd_below_min", EURUSD, 100, 1.0, 0.00200, 1.10000, None, 0.0, LOT_BELOW_MIN),
    # edge: 5 % of 10 M = 500,000 USD; 100 USD/lot -> 5,000 lots -> clamped to 100
    ("eurusd_above_max", EURUSD, 10_000_000, 5.0, 0.00100, 1.1, None, 100.0, LOT_CLAMPED_MAX),
    # edge: gold max is 50 lots: 100,000 USD / 100 USD/lot = 1,000 -> 50
    ("xauusd_above_max", XAUUSD, 1_000_000, 10.0, 1.00, 2000.0, None, 50.0, LOT_CLAMPED_MAX),
    # edge: no stop distance -> refuse
    ("eurusd_zero_sl", EURUSD, 10_000, 1.0, 0.0, 1.10000, None, 0.0, LOT_INVALID_INPUT),
]


@pytest.mark.parametrize(
    ("spec", "equity", "risk_pct", "sl", "price", "conv", "expected", "code"),
    [row[1:] for row in LOT_TABLE],
    ids=[row[0] for row in LOT_TABLE],
)
def test_lots_for_risk_table(spec, equity, risk_pct, sl, price, conv, expected, code) -> None:
    decision = lots_for_risk(equity, risk_pct, sl, spec, price, conv)
    assert decision.lots == expected
    assert decision.code == code


def test_numba_compiled_rule_equals_python_rule() -> None:
    """The backtest runs the compiled function; it must agree with the Python one bit-for-bit."""
    compiled = numba.njit(risk.lots_for_risk_raw)
    for _, spec, equity, risk_pct, sl, price, conv, expected, code in LOT_TABLE:
        tv = spec.tick_value_at(price, conv)
        args = (float(equity), risk_pct, sl, spec.tick, tv, spec.lot_min, spec.lot_max)
        assert compiled(*args, spec.lot_step, False) == (expected, code)


def test_below_min_can_trade_the_minimum_by_policy() -> None:
    decision = lots_for_risk(100, 1.0, 0.002, EURUSD, 1.1, min_lot_policy="use_min")
    assert (decision.lots, decision.code, decision.reason) == (
        0.01,
        LOT_RAISED_TO_MIN,
        "raised_to_min_lot",
    )


def test_coarse_lot_step_broker() -> None:
    """A broker with 0.1 lot steps: 0.6667 lots floors to 0.6, and 0.05 is below its 0.1 min."""
    coarse = EURUSD.model_copy(update={"lot_step": 0.1, "lot_min": 0.1})
    assert lots_for_risk(10_000, 1.0, 0.0015, coarse, 1.1).lots == 0.6
    small = lots_for_risk(1_000, 1.0, 0.0020, coarse, 1.1)
    assert (small.lots, small.reason) == (0.0, "below_min_lot")


def test_tick_value_rules_match_mt4() -> None:
    assert EURUSD.tick_value_mode == TICK_VALUE_FIXED
    assert EURUSD.tick_value_at(1.2) == pytest.approx(1.0, abs=1e-12)
    assert USDJPY.tick_value_mode == TICK_VALUE_BASE_IS_ACCOUNT
    assert USDJPY.tick_value_at(150.0) == pytest.approx(0.666667, abs=1e-6)
    assert GBPJPY.tick_value_mode == TICK_VALUE_CROSS
    assert GBPJPY.tick_value_at(190.0, GBPJPY.quote_to_account_from(150.0)) == pytest.approx(
        0.666667, abs=1e-6
    )
    assert XAUUSD.tick_value_at(2000.0) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="quote_to_account"):
        GBPJPY.tick_value_at(190.0)


def test_money_per_price_move() -> None:
    # 0.5 lots EURUSD, +20 pips = 200 ticks x 1 USD x 0.5 = 100 USD
    assert money_per_price_move(0.002, 0.5, EURUSD, 1.1) == pytest.approx(100.0)
    # 1 lot USDJPY +1.000 at 125.000: 1,000 ticks x 0.8 USD = 800 USD
    assert money_per_price_move(1.0, 1.0, USDJPY, 125.0) == pytest.approx(800.0)


def test_spread_ok() -> None:
    assert spread_ok(30, 30)
    assert not spread_ok(31, 30)
    assert spread_ok(500, 0)  # disabled


def test_daily_drawdown_breached() -> None:
    assert not daily_drawdown_breached(10_000, 9_701, 3.0)  # -2.99 %
    assert daily_drawdown_breached(10_000, 9_700, 3.0)  # exactly -3 %
    assert not daily_drawdown_breached(10_000, 5_000, 0.0)  # disabled
    assert daily_drawdown_breached(0.0, 0.0, 3.0)  # blown account never trades


def test_exposure_ok() -> None:
    assert exposure_ok(0, 0.0, 1.0, 1, 5.0)
    assert not exposure_ok(1, 1.0, 1.0, 1, 5.0)  # position limit
    assert exposure_ok(1, 4.0, 1.0, 3, 5.0)  # lots exactly at the limit
    assert not exposure_ok(1, 4.0, 1.01, 3, 5.0)  # lots over the limit


def test_trading_hour_ok() -> None:
    assert all(trading_hour_ok(h, 0, 24) for h in range(24))
    assert all(trading_hour_ok(h, 5, 5) for h in range(24))
    assert [h for h in range(24) if trading_hour_ok(h, 8, 17)] == list(range(8, 17))
    assert [h for h in range(24) if trading_hour_ok(h, 22, 6)] == [0, 1, 2, 3, 4, 5, 22, 23]


def test_widen_to_stop_level() -> None:
    # stop level 10 points, spread 2 points (EURUSD): SL needs >= 12 points, TP >= 8 points
    sl, tp = widen_to_stop_level(0.00005, 0.00005, 0.00002, 0.00010)
    assert (round(sl, 8), round(tp, 8)) == (0.00012, 0.00008)
    assert widen_to_stop_level(0.002, 0.003, 0.00002, 0.0001) == (0.002, 0.003)
    assert widen_to_stop_level(0.002, 0.0, 0.00002, 0.0001) == (0.002, 0.0)  # no TP stays none


def test_config_files_validate() -> None:
    settings = load_risk_settings()
    # keys the server and the EA read must keep their names
    raw = yaml.safe_load((instrument_conf_dir().parent / "risk" / "default.yaml").read_text())
    for key in (
        "risk_per_trade_pct",
        "max_spread_points",
        "max_daily_drawdown_pct",
        "max_open_positions",
        "max_total_lots",
        "min_confidence",
    ):
        assert key in raw
    assert settings.risk_per_trade_pct == raw["risk_per_trade_pct"]
    symbols = sorted(p.stem for p in instrument_conf_dir().glob("*.yaml"))
    assert symbols == ["EURUSD", "GBPJPY", "USDJPY", "XAUUSD"]
    for symbol in symbols:
        spec = load_instrument(symbol)
        assert spec.symbol == symbol
        assert spec.point == pytest.approx(10.0**-spec.digits)


def test_entry_veto_order_is_fixed() -> None:
    """Each check vetoes on its own, and the first failing one in the documented order wins."""
    ok = dict(
        spread_points=10.0,
        max_spread_points=30.0,
        dd_halted=False,
        hour=10,
        start_hour=8,
        end_hour=17,
        lots=0.5,
        open_positions=0,
        total_lots=0.0,
        max_open_positions=1,
        max_total_lots=5.0,
    )
    assert risk.entry_veto(**ok) == risk.ENTRY_OK
    assert risk.entry_veto(**{**ok, "spread_points": 31.0}) == risk.ENTRY_SPREAD
    assert risk.entry_veto(**{**ok, "dd_halted": True}) == risk.ENTRY_DRAWDOWN
    assert risk.entry_veto(**{**ok, "hour": 18}) == risk.ENTRY_HOURS
    assert risk.entry_veto(**{**ok, "lots": 0.0}) == risk.ENTRY_LOTS
    assert risk.entry_veto(**{**ok, "open_positions": 1}) == risk.ENTRY_EXPOSURE
    everything_wrong = {**ok, "spread_points": 99.0, "dd_halted": True, "hour": 3, "lots": 0.0}
    assert risk.entry_veto(**everything_wrong) == risk.ENTRY_SPREAD


@pytest.mark.parametrize(
    ("lots", "open_lots", "max_lots", "shrink", "expected"),
    [
        (0.5, 0.0, 5.0, True, 0.5),  # fits: unchanged
        (3.0, 4.5, 5.0, True, 0.5),  # 0.5 lot of room left
        (3.0, 4.7, 5.0, True, 0.3),  # 0.3 / 0.01 = 29.999..: still 30 steps
        (3.0, 4.7, 5.0, False, 3.0),  # skip policy: unchanged, the veto refuses it
        (3.0, 4.995, 5.0, True, 3.0),  # room below the minimum lot: unchanged, vetoed
        (3.0, 5.0, 5.0, True, 3.0),  # no room at all
    ],
)
def test_shrink_to_exposure(lots, open_lots, max_lots, shrink, expected) -> None:
    from aibridge.risk import ENTRY_EXPOSURE, ENTRY_OK, entry_veto, shrink_to_exposure

    got = shrink_to_exposure(lots, open_lots, max_lots, 0.01, 0.01, shrink)
    assert got == pytest.approx(expected)
    veto = entry_veto(10.0, 30.0, False, 12, 0, 24, got, 1, open_lots, 2, max_lots)
    assert veto == (ENTRY_OK if open_lots + got <= max_lots + 1e-9 else ENTRY_EXPOSURE)


def test_exposure_policy_defaults_to_shrink() -> None:
    assert risk.RiskSettings().exposure_policy == "shrink"
    assert risk.load_risk_settings().exposure_policy == "shrink"
    with pytest.raises(ValueError):
        risk.RiskSettings(exposure_policy="halve")
