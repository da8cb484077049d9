"""Hand-checked backtest scenarios: every fill price and P&L below is worked out in comments.

Common setup unless a test says otherwise: EURUSD (1 point = 0.00001, 1 lot = 100,000 EUR,
tick value 1 USD), equity 10,000, risk 1 % → 100 USD at risk, SL distance 0.0020 (200 ticks
x 1 USD = 200 USD per lot) → 0.50 lots, TP distance 0.0030, spread 10 points (0.0001),
commission 3.5 USD per lot per side → 1.75 USD per side for 0.5 lots. Candles are Bid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aibridge import risk as risk_rules
from aibridge.backtest import EngineSettings, run_backtest
from aibridge.backtest.settings import SlippageSettings
from aibridge.instruments import load_instrument
from aibridge.risk import RiskSettings

EURUSD = load_instrument("EURUSD")
USDJPY = load_instrument("USDJPY")
# No time exit unless a test says so (the exit policy lives in the risk settings).
RISK = RiskSettings(
    risk_per_trade_pct=1.0, max_spread_points=30, max_daily_drawdown_pct=3.0, max_hold_bars=0
)
SETTINGS = EngineSettings(spread_points=10, commission_per_lot_per_side=3.5)
SL, TP = 0.0020, 0.0030
FLAT = (1.1000, 1.1000, 1.1000, 1.1000)


def candles(rows: list[tuple[float, float, float, float]], start: str = "2024-01-02 00:00"):
    """H1 Bid candles from (open, high, low, close) tuples; 2024-01-02 is a Tuesday."""
    arr = np.array(rows, dtype=np.float64)
    return pd.DataFrame(
        {
            "time": pd.date_range(start, periods=len(rows), freq="h"),
            "open": arr[:, 0],
            "high": arr[:, 1],
            "low": arr[:, 2],
            "close": arr[:, 3],
            "volume": 100.0,
        }
    )


def signals(n: int, at: dict[int, int]) -> np.ndarray:
    sig = np.zeros(n, dtype=np.int64)
    for i, s in at.items():
        sig[i] = s
    return sig


def only_trade(result) -> pd.Series:
    assert len(result.trades) == 1
    return result.trades.iloc[0]


def test_long_take_profit() -> None:
    bars = [
        FLAT,  # 0: BUY signal on this close
        (
            1.1000,
            1.1010,
            1.0990,
            1.1005,
        ),  # 1: buy at Ask 1.1000+0.0001 = 1.1001; SL 1.0981, TP 1.1031
        (1.1005, 1.1035, 1.1000, 1.1030),  # 2: high 1.1035 >= TP 1.1031 → TP
        (1.1030, 1.1032, 1.1028, 1.1030),
    ]
    res = run_backtest(candles(bars), signals(4, {0: 1}), SL, TP, EURUSD, RISK, SETTINGS)
    t = only_trade(res)
    assert (t.side, t.lots, t.exit_reason, t.entry_bar, t.exit_bar) == ("BUY", 0.5, "TP", 1, 2)
    assert t.entry_price == pytest.approx(1.1001, abs=1e-12)
    assert (t.sl, t.tp) == pytest.approx((1.0981, 1.1031), abs=1e-12)
    assert t.exit_price == pytest.approx(1.1031, abs=1e-12)
    # 0.0030 x 100,000 x 0.5 = 150 gross; commission 2 x 1.75 = 3.5
    assert (t.gross_pnl, t.commission, t.net_pnl) == pytest.approx((150.0, 3.5, 146.5))
    # bar 1 close: 10,000 - 1.75 + (1.1005 - 1.1001) x 50,000 = 10,018.25
    assert res.equity.iloc[1] == pytest.approx(10_018.25)
    assert res.equity.iloc[-1] == pytest.approx(10_146.5)


def test_short_stop_loss_on_the_ask() -> None:
    bars = [
        FLAT,  # 0: SELL signal
        (1.1000, 1.1008, 1.0990, 1.1000),  # 1: sell at Bid 1.1000; SL 1.1020; Ask high 1.1018 < SL
        (1.1010, 1.1015, 1.1005, 1.1010),  # 2: Ask high = 1.1015 + 0.0001 = 1.1016 < SL: still open
        (1.1010, 1.1019, 1.1005, 1.1010),  # 3: Bid high 1.1019 < SL but Ask 1.1020 hits it
        FLAT,
    ]
    res = run_backtest(candles(bars), signals(5, {0: -1}), SL, TP, EURUSD, RISK, SETTINGS)
    t = only_trade(res)
    assert (t.side, t.exit_reason, t.exit_bar) == ("SELL", "SL", 3)
    assert (t.entry_price, t.sl, t.exit_price) == pytest.approx((1.1000, 1.1020, 1.1020), abs=1e-12)
    # -0.0020 x 50,000 = -100 gross, exactly the risk budget; net -103.5 = -1.035 R
    assert (t.gross_pnl, t.net_pnl, t.r_multiple) == pytest.approx((-100.0, -103.5, -1.035))


BOTH_BARS = [
    FLAT,  # 0: BUY signal
    (1.1000, 1.1005, 1.0995, 1.1000),  # 1: buy at 1.1001, SL 1.0981, TP 1.1031
    (1.1000, 1.1040, 1.0970, 1.1000),  # 2: low <= SL and high >= TP in the same bar
    FLAT,
]


def test_both_levels_in_one_bar_stop_first() -> None:
    res = run_backtest(candles(BOTH_BARS), signals(4, {0: 1}), SL, TP, EURUSD, RISK, SETTINGS)
    t = only_trade(res)
    assert (t.exit_reason, t.exit_price) == ("SL", pytest.approx(1.0981, abs=1e-12))
    assert t.gross_pnl == pytest.approx(-100.0)


def test_both_levels_in_one_bar_take_profit_first_when_configured() -> None:
    settings = SETTINGS.model_copy(update={"stop_first": False})
    res = run_backtest(candles(BOTH_BARS), signals(4, {0: 1}), SL, TP, EURUSD, RISK, settings)
    t = only_trade(res)
    assert (t.exit_reason, t.exit_price) == ("TP", pytest.approx(1.1031, abs=1e-12))
    assert t.gross_pnl == pytest.approx(150.0)


def test_gap_through_stop_fills_at_the_open() -> None:
    bars = [
        FLAT,  # 0: BUY signal
        (1.1000, 1.1005, 1.0995, 1.1000),  # 1: buy at 1.1001, SL 1.0981
        (1.0970, 1.0975, 1.0960, 1.0965),  # 2: opens 1.0970, below the SL: filled at the open
        FLAT,
    ]
    res = run_backtest(candles(bars), signals(4, {0: 1}), SL, TP, EURUSD, RISK, SETTINGS)
    t = only_trade(res)
    assert (t.exit_reason, t.exit_bar) == ("SL", 2)
    assert t.exit_price == pytest.approx(1.0970, abs=1e-12)  # not the stop price 1.0981
    # (1.0970 - 1.1001) x 50,000 = -155: the gap costs more than the planned 100
    assert t.gross_pnl == pytest.approx(-155.0)


def test_short_gap_through_stop_fills_at_the_ask_open() -> None:
    bars = [
        FLAT,  # 0: SELL signal
        (1.1000, 1.1005, 1.0995, 1.1000),  # 1: sell at 1.1000, SL 1.1020
        (1.1030, 1.1035, 1.1025, 1.1030),  # 2: Ask opens 1.1031 above the SL → filled at 1.1031
        FLAT,
    ]
    res = run_backtest(candles(bars), signals(4, {0: -1}), SL, TP, EURUSD, RISK, SETTINGS)
    t = only_trade(res)
    assert t.exit_price == pytest.approx(1.1031, abs=1e-12)
    assert t.gross_pnl == pytest.approx(-155.0)


def test_spread_blocks_entry() -> None:
    bars = [FLAT] * 5
    frame = candles(bars).assign(spread=[10.0, 31.0, 30.0, 10.0, 10.0])
    settings = SETTINGS.model_copy(update={"spread_points": None})  # use the data's column
    # signals on bars 0 and 1 act on bars 1 (spread 31 > 30: blocked) and 2 (30: allowed)
    res = run_backtest(frame, signals(5, {0: 1, 1: 1}), SL, TP, EURUSD, RISK, settings)
    assert res.entry_code[1] == risk_rules.ENTRY_SPREAD
    assert res.entry_code[2] == risk_rules.ENTRY_OK
    t = only_trade(res)
    assert t.entry_bar == 2
    assert t.entry_price == pytest.approx(1.1000 + 30 * 0.00001, abs=1e-12)


def test_daily_drawdown_halts_trading_until_the_next_day() -> None:
    """Risk 2 %, no spread/commission: two stops lose 200 + 196 = 3.96 % ≥ 3 % → halt."""
    risk = RISK.model_copy(update={"risk_per_trade_pct": 2.0})
    settings = EngineSettings(spread_points=0, commission_per_lot_per_side=0.0)
    losing = (1.1000, 1.1002, 1.0975, 1.0990)  # low 1.0975 < SL 1.0980 on the entry bar
    bars = [FLAT, losing, losing] + [FLAT] * 23  # bars 0..25; bar 24 is 2024-01-03 00:00
    sig = signals(26, {0: 1, 1: 1, 2: 1, 23: 1})
    res = run_backtest(candles(bars), sig, SL, TP, EURUSD, risk, settings)
    # 200 / 200 = 1.00 lot; then 2 % of 9,800 = 196 → 0.98 lot; day 2: 2 % of 9,604 → 0.96
    assert res.trades["lots"].tolist() == [1.0, 0.98, 0.96]
    assert res.trades["gross_pnl"].tolist()[:2] == pytest.approx([-200.0, -196.0])
    assert res.entry_code[3] == risk_rules.ENTRY_DRAWDOWN  # same day: halted
    assert res.entry_code[24] == risk_rules.ENTRY_OK  # next day: trading again
    assert res.trades["entry_bar"].tolist() == [1, 2, 24]
    assert res.equity.iloc[-1] == pytest.approx(9_604.0)


def test_lot_clamped_to_max() -> None:
    # 5 % of 1,000,000 = 50,000 USD / 200 USD per lot = 250 lots → clamped to 100
    risk = RISK.model_copy(update={"risk_per_trade_pct": 5.0, "max_total_lots": 1000.0})
    settings = SETTINGS.model_copy(update={"initial_equity": 1_000_000.0})
    bars = [FLAT, FLAT, FLAT]
    res = run_backtest(candles(bars), signals(3, {0: 1}), SL, TP, EURUSD, risk, settings)
    assert only_trade(res).lots == 100.0


def test_lot_below_min_skips_or_uses_min_by_policy() -> None:
    # 1 % of 100 = 1 USD / 200 USD per lot = 0.005 lots < 0.01
    settings = SETTINGS.model_copy(update={"initial_equity": 100.0})
    bars = [FLAT, FLAT, FLAT]
    res = run_backtest(candles(bars), signals(3, {0: 1}), SL, TP, EURUSD, RISK, settings)
    assert res.entry_code[1] == risk_rules.ENTRY_LOTS
    assert res.trades.empty
    use_min = RISK.model_copy(update={"min_lot_policy": "use_min"})
    res = run_backtest(candles(bars), signals(3, {0: 1}), SL, TP, EURUSD, use_min, settings)
    assert only_trade(res).lots == 0.01


def test_max_open_positions_and_opposite_signal() -> None:
    bars = [FLAT] * 6
    # BUY, BUY (ignored: one position max), SELL (closes the long and opens a short)
    res = run_backtest(
        candles(bars), signals(6, {0: 1, 1: 1, 2: -1}), SL, TP, EURUSD, RISK, SETTINGS
    )
    assert res.entry_code[2] == risk_rules.ENTRY_EXPOSURE
    assert res.trades["side"].tolist() == ["BUY", "SELL"]
    assert res.trades["exit_reason"].tolist() == ["signal", "end"]
    # long 0.5 lot: 1.1001 → 1.1000 (Bid) = -5 gross, -8.5 net → equity 9,991.50 at bar 3's
    # open; short: 1 % of 9,991.50 / 200 = 0.4996 → 0.49 lot, 1.1000 → 1.1001 (Ask) = -4.90
    assert res.trades["lots"].tolist() == [0.5, 0.49]
    assert res.trades["gross_pnl"].tolist() == pytest.approx([-5.0, -4.9])
    assert res.trades["exit_bar"].tolist() == [3, 5]


def test_fixed_slippage_on_entry_and_stop_not_on_take_profit() -> None:
    settings = SETTINGS.model_copy(update={"slippage": SlippageSettings(mode="fixed", points=3)})
    res = run_backtest(candles(BOTH_BARS), signals(4, {0: 1}), SL, TP, EURUSD, RISK, settings)
    t = only_trade(res)
    # entry 1.1001 + 0.00003; SL stays where it was placed (1.0981), filled 3 points worse
    assert t.entry_price == pytest.approx(1.10013, abs=1e-12)
    assert t.exit_price == pytest.approx(1.09807, abs=1e-12)
    tp_bars = [FLAT, FLAT, (1.1000, 1.1040, 1.0995, 1.1000), FLAT]
    res = run_backtest(candles(tp_bars), signals(4, {0: 1}), SL, TP, EURUSD, RISK, settings)
    assert only_trade(res).exit_price == pytest.approx(1.1031, abs=1e-12)


def test_random_slippage_is_seeded() -> None:
    settings = SETTINGS.model_copy(
        update={"slippage": SlippageSettings(mode="random", points=5, seed=7)}
    )
    bars = [FLAT] * 40
    sig = np.tile([1, -1], 20)
    a = run_backtest(candles(bars), sig, SL, TP, EURUSD, RISK, settings)
    b = run_backtest(candles(bars), sig, SL, TP, EURUSD, RISK, settings)
    assert a.trades.equals(b.trades)
    slips = (a.trades["entry_price"] - np.where(a.trades["direction"] > 0, 1.1001, 1.1000)).abs()
    assert slips.max() <= 5e-5 + 1e-12
    assert slips.nunique() > 1


def test_time_exit() -> None:
    risk = RISK.model_copy(update={"max_hold_bars": 2})
    res = run_backtest(candles([FLAT] * 5), signals(5, {0: 1}), SL, TP, EURUSD, risk, SETTINGS)
    t = only_trade(res)
    assert (t.exit_reason, t.entry_bar, t.exit_bar) == ("time", 1, 3)


def test_opposite_signal_only_closes_when_the_policy_says_so() -> None:
    keep = RISK.model_copy(update={"close_on_opposite": False})
    sig = signals(6, {0: 1, 2: -1})
    res = run_backtest(candles([FLAT] * 6), sig, SL, TP, EURUSD, keep, SETTINGS)
    # the long stays; the SELL is vetoed by max_open_positions = 1
    assert res.entry_code[3] == risk_rules.ENTRY_EXPOSURE
    assert only_trade(res).exit_reason == "end"


def test_drawdown_is_checked_at_the_open_without_a_signal() -> None:
    """A gap breaches the day's limit at bar 2's open; the bar recovers by its close.

    Fixed 1 lot, SL far away. Bar 1: long at Ask 1.1001, commission 3.5. Bar 2 opens at 1.0960:
    equity 10,000 - 3.5 + (1.0960 - 1.1001) x 100,000 = 9,586.5, 4.1 % below the day's start
    (limit 3 %) -> latched at the open although no signal acts on bar 2; bar 2 closes at 1.1000
    (equity 9,986.5, within the limit). Bar 3's SELL closes the long (opposite signal) and is
    vetoed: the day is halted. Checking only when a signal arrives (or at closes) misses it.
    """
    settings = SETTINGS.model_copy(update={"fixed_lots": 1.0})
    bars = [FLAT, FLAT, (1.0960, 1.1000, 1.0960, 1.1000), FLAT, FLAT]
    res = run_backtest(candles(bars), signals(5, {0: 1, 2: -1}), 0.05, 0.05, EURUSD, RISK, settings)
    assert res.equity.iloc[2] == pytest.approx(9_986.5)
    assert res.entry_code[3] == risk_rules.ENTRY_DRAWDOWN
    t = only_trade(res)
    assert (t.side, t.exit_reason, t.exit_bar) == ("BUY", "signal", 3)


def test_swap_with_triple_wednesday() -> None:
    # Long 0.5 lot from Tue 22:00 to Thu 01:00: Tue night (1) + Wed night (3) = 4 swap units;
    # 4 x -7 points x 1 USD per point per lot x 0.5 lot = -14 USD.
    settings = SETTINGS.model_copy(update={"swap": True})
    bars = [FLAT] * 28  # Tue 21:00 .. Thu 00:00
    res = run_backtest(
        candles(bars, start="2024-01-02 21:00"), signals(28, {0: 1}), SL, TP, EURUSD, RISK, settings
    )
    t = only_trade(res)
    assert t.swap == pytest.approx(-14.0)
    assert t.net_pnl == pytest.approx(-5.0 - 3.5 - 14.0)


def test_usdjpy_profit_converted_at_the_exit_price() -> None:
    # 1 lot long from 150.000 to TP 151.000 (no spread/commission): 100,000 JPY / 151 = 662.25 USD
    risk = RiskSettings(risk_per_trade_pct=1.0, max_total_lots=10.0)
    settings = EngineSettings(spread_points=0, commission_per_lot_per_side=0.0, fixed_lots=1.0)
    rows = [(150.0,) * 4, (150.0,) * 4, (150.0, 151.2, 149.9, 151.0), (151.0,) * 4]
    res = run_backtest(candles(rows), signals(4, {0: 1}), 0.5, 1.0, USDJPY, risk, settings)
    t = only_trade(res)
    assert t.exit_reason == "TP"
    assert t.gross_pnl == pytest.approx(100_000 / 151.0)


def test_cross_requires_a_conversion_rate() -> None:
    gbpjpy = load_instrument("GBPJPY")
    with pytest.raises(ValueError, match="cross"):
        run_backtest(candles([(190.0,) * 4] * 3), signals(3, {0: 1}), 0.5, 1.0, gbpjpy, RISK)
    res = run_backtest(
        candles([(190.0,) * 4] * 3), signals(3, {0: 1}), 0.5, 1.0, gbpjpy, RISK, conv=1 / 150
    )
    # 1 % of 10,000 / (500 ticks x 100,000 x 0.001 / 150) = 0.30 lots, as in test_risk
    assert only_trade(res).lots == 0.3


SHORT_BOTH_BARS = [
    FLAT,  # 0: SELL signal
    (1.1000, 1.1005, 1.0995, 1.1000),  # 1: sell at Bid 1.1000, SL 1.1020, TP 1.0970
    (1.1000, 1.1030, 1.0960, 1.1000),  # 2: Ask high 1.1031 >= SL and Ask low 1.0961 <= TP
    FLAT,
]


def test_short_both_levels_in_one_bar_stop_first() -> None:
    res = run_backtest(
        candles(SHORT_BOTH_BARS), signals(4, {0: -1}), SL, TP, EURUSD, RISK, SETTINGS
    )
    t = only_trade(res)
    assert (t.side, t.exit_reason, t.exit_bar) == ("SELL", "SL", 2)
    # bought back at the stop 1.1020: (1.1000 - 1.1020) x 50,000 = -100
    assert t.exit_price == pytest.approx(1.1020, abs=1e-12)
    assert t.gross_pnl == pytest.approx(-100.0)


def test_short_both_levels_in_one_bar_take_profit_first_when_configured() -> None:
    settings = SETTINGS.model_copy(update={"stop_first": False})
    res = run_backtest(
        candles(SHORT_BOTH_BARS), signals(4, {0: -1}), SL, TP, EURUSD, RISK, settings
    )
    t = only_trade(res)
    # bought back at the take-profit 1.0970: (1.1000 - 1.0970) x 50,000 = +150
    assert (t.exit_reason, t.exit_price) == ("TP", pytest.approx(1.0970, abs=1e-12))
    assert t.gross_pnl == pytest.approx(150.0)


def test_daily_drawdown_halt_persists_after_equity_recovers() -> None:
    """Risk 4 %, SL 0.0050 → 400 / 500 ticks = 0.80 lot, no spread/commission, two positions
    allowed. Bar 1 closes at 1.0960: floating (1.0960 - 1.1000) x 80,000 = -320 ≥ 3 % of
    10,000 → the halt latches. Bar 2 opens back at 1.1000 (equity 10,000, nothing lost any
    more): its BUY is still refused, because the halt holds until the day changes; the first
    BUY of the next day (bar 24, 2024-01-03 00:00) is taken."""
    risk = RISK.model_copy(update={"risk_per_trade_pct": 4.0, "max_open_positions": 2})
    settings = EngineSettings(spread_points=0, commission_per_lot_per_side=0.0)
    dip = (1.1000, 1.1002, 1.0958, 1.0960)  # low 1.0958 stays above the SL 1.0950
    bars = [FLAT, dip] + [FLAT] * 24
    sig = signals(26, {0: 1, 1: 1, 23: 1})
    res = run_backtest(candles(bars), sig, 0.0050, 0.0, EURUSD, risk, settings)
    assert res.equity.iloc[1] == pytest.approx(9_680.0)
    assert res.equity.iloc[2] == pytest.approx(10_000.0)
    assert res.entry_code[2] == risk_rules.ENTRY_DRAWDOWN  # recovered, still halted today
    assert res.entry_code[24] == risk_rules.ENTRY_OK
    assert res.trades["entry_bar"].tolist() == [1, 24]


def test_margin_stop_out_closes_everything_and_ends_trading() -> None:
    """5 fixed lots, no stops, leverage 100, stop-out at 50 % of margin. Bought at Ask 1.1001;
    bar 2's low 1.0850: equity 10,000 - (1.1001 - 1.0850) x 500,000 = 2,450; margin
    5 x 100,000 x 1.0850 / 100 = 5,425, 50 % of it 2,712.50 ≥ 2,450 → stopped out at 1.0850.
    Balance 10,000 - 7,550 - 2 x 17.50 commission = 2,415; the BUY of bar 3 is never acted on."""
    settings = SETTINGS.model_copy(
        update={"fixed_lots": 5.0, "attach_stops": False, "leverage": 100.0}
    )
    bars = [FLAT, FLAT, (1.1000, 1.1005, 1.0850, 1.0900), FLAT, FLAT, FLAT]
    res = run_backtest(candles(bars), signals(6, {0: 1, 3: 1}), SL, TP, EURUSD, RISK, settings)
    t = only_trade(res)
    assert (t.exit_reason, t.exit_bar) == ("stop_out", 2)
    assert t.exit_price == pytest.approx(1.0850, abs=1e-12)
    assert t.gross_pnl == pytest.approx(-7_550.0)
    assert res.ruined and res.stopout_bar == 2
    assert res.entry_code[4] == -1  # ruined: nothing acted on any more
    assert res.equity.iloc[-1] == pytest.approx(2_415.0)
    # a 10 % stop-out level lets the same account survive the bar (2,450 > 542.50)
    survive = settings.model_copy(update={"stop_out_level_pct": 10.0})
    res = run_backtest(candles(bars), signals(6, {0: 1}), SL, TP, EURUSD, RISK, survive)
    assert not res.ruined and only_trade(res).exit_reason == "end"


def test_exposure_cap_shrinks_or_skips_by_policy() -> None:
    """Two positions allowed, max 0.8 lots: the first BUY takes 0.50 lot, the second would
    take 0.50 more (1.00 > 0.80) → shrunk to the 0.30 left (shrink) or refused (skip)."""
    risk = RISK.model_copy(update={"max_open_positions": 2, "max_total_lots": 0.8})
    bars = [FLAT] * 5
    res = run_backtest(candles(bars), signals(5, {0: 1, 1: 1}), SL, TP, EURUSD, risk, SETTINGS)
    assert res.trades["lots"].tolist() == [0.5, 0.3]
    skip = risk.model_copy(update={"exposure_policy": "skip"})
    res = run_backtest(candles(bars), signals(5, {0: 1, 1: 1}), SL, TP, EURUSD, skip, SETTINGS)
    assert res.trades["lots"].tolist() == [0.5]
    assert res.entry_code[2] == risk_rules.ENTRY_EXPOSURE


def test_buy_and_hold_is_sized_at_the_stated_leverage() -> None:
    """1x: a notional of the 10,000 equity at the Ask 1.1001 is 10,000 / 110,010 per lot =
    0.0909 → 0.09 lot; 5x → 0.4545 → 0.45 lot. No stop, held to the end."""
    from aibridge.backtest.baselines import buy_and_hold_lots, run_baselines
    from aibridge.backtest.settings import BaselineSettings

    assert buy_and_hold_lots(1.1001, EURUSD, 10_000.0, 1.0) == pytest.approx(0.09)
    assert buy_and_hold_lots(1.1001, EURUSD, 10_000.0, 5.0) == pytest.approx(0.45)
    bars = [FLAT, FLAT, (1.1000, 1.1005, 1.0000, 1.0500), (1.0500, 1.0600, 1.0400, 1.0600)]
    sig = np.zeros(4, dtype=np.int64)
    base = run_baselines(
        candles(bars), sig, SL, TP, EURUSD, RISK, SETTINGS, BaselineSettings(random_runs=1)
    )
    t = only_trade(base.buy_and_hold_result)
    assert (t.lots, t.exit_reason, t.exit_bar) == (0.09, "end", 3)  # the 1.0 low: no stop
    # (1.0600 - 1.1001) x 9,000 = -360.9, commission 2 x 0.315
    assert t.net_pnl == pytest.approx(-360.9 - 0.63)
