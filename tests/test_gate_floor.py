"""Metrics with hand-computed expectations and the gate's absolute floor (expectancy with its
bootstrap interval, Deflated Sharpe Ratio), plus registration as challenger only."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from aibridge.backtest.gate import (
    Trials,
    decide,
    deflated_sharpe,
    expected_max_sharpe,
    floor_check,
)
from aibridge.backtest.metrics import (
    bootstrap_ci,
    daily_returns,
    max_drawdown,
    sharpe_ratio,
)
from aibridge.backtest.settings import BootstrapSettings, GateSettings

RULE = GateSettings(metric="sharpe", min_improvement=0.0, max_drawdown_pct=20.0, min_trades=30)


def days(values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2024-01-01 23:00", periods=len(values), freq="D"))


# --------------------------------------------------------------------------- metrics


def test_drawdown_is_measured_against_the_running_peak() -> None:
    # 10k → 25k → 5k: 20k below the 25k peak = 80 %, not 20k of the 10k start
    assert max_drawdown(days([10_000.0, 25_000.0, 5_000.0]), 10_000.0) == pytest.approx(
        (20_000.0, 80.0)
    )
    # the two maxima can sit at different points: 10k → 8k is 2k (20 %); 50k → 47k is a
    # larger 3k but only 6 %
    assert max_drawdown(pd.Series([8_000.0, 50_000.0, 47_000.0]), 10_000.0) == pytest.approx(
        (3_000.0, 20.0)
    )
    # below the initial equity from the start: the initial equity is the first peak
    assert max_drawdown(pd.Series([9_000.0, 9_500.0]), 10_000.0) == pytest.approx((1_000.0, 10.0))


def test_daily_returns_never_flip_sign_and_end_at_ruin() -> None:
    # 10,000 → 5,000 (-50 %) → -2,000: ruined, -100 %, and nothing after it counts
    r = daily_returns(days([5_000.0, -2_000.0, -3_000.0, -1_000.0]), 10_000.0)
    assert r.tolist() == pytest.approx([-0.5, -1.0])
    assert sharpe_ratio(r.to_numpy()) < 0
    # the old definition (-3,000 / -2,000 - 1 = +50 %) read a deeper loss as a gain
    r = daily_returns(days([10_500.0, 11_025.0]), 10_000.0)
    assert r.tolist() == pytest.approx([0.05, 0.05])


def test_sharpe_by_hand() -> None:
    r = np.array([0.01, -0.005, 0.02, 0.0])
    mean, sd = 0.00625, math.sqrt(((0.00375**2) + (0.01125**2) + (0.01375**2) + (0.00625**2)) / 3)
    assert sharpe_ratio(r) == pytest.approx(mean / sd * math.sqrt(252))


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate() -> None:
    settings = BootstrapSettings(samples=2000, confidence=0.95, seed=3)
    rng = np.random.default_rng(0)
    r = rng.normal(0.2, 1.0, 400)
    lo, hi = bootstrap_ci(r, "mean", settings)
    assert (lo, hi) == bootstrap_ci(r, "mean", settings)  # same seed, same interval
    assert lo < r.mean() < hi
    # the standard error of a mean of 400 draws with sd 1 is 0.05: the 95 % interval is
    # about ±1.96 x 0.05 wide
    assert hi - lo == pytest.approx(2 * 1.96 * r.std(ddof=1) / 20, rel=0.1)
    assert bootstrap_ci(np.full(10, 0.5), "mean", settings) == pytest.approx((0.5, 0.5))
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([1.0]), "mean", settings))


# --------------------------------------------------------------------------- DSR


def test_deflated_sharpe_worked_example() -> None:
    """Annualised Sharpe 2.0 over 252 daily returns, normal (skew 0, kurtosis 3).

    Daily SR = 2 / sqrt(252) = 0.12599. One variant: SR0 = 0, z = 0.12599 x sqrt(251) /
    sqrt(1 + (3 - 1)/4 x 0.12599²) = 1.9882 → PSR = Φ(1.9882) = 0.9766 (clears 0.95).
    Ten variants whose annualised Sharpe ratios have variance 1.0 (daily 1/252): SR0 daily =
    sqrt(1/252) x (0.42278 x Φ⁻¹(0.9) + 0.57722 x Φ⁻¹(1 - 1/(10e))) = 0.062994 x (0.42278 x
    1.28155 + 0.57722 x 1.78924) = 0.099190 (1.5746 annualised); z = (0.12599 - 0.09919) x
    sqrt(251) / 1.00396 = 0.42288 → DSR = 0.6638: the same Sharpe is no longer enough.
    """
    dsr, sr0 = deflated_sharpe(2.0, 252, 0.0, 3.0, 1, None)
    assert sr0 == 0.0 and dsr == pytest.approx(0.97660, abs=1e-4)
    dsr, sr0 = deflated_sharpe(2.0, 252, 0.0, 3.0, 10, 1.0)
    assert sr0 == pytest.approx(1.5746, abs=1e-3)
    assert dsr == pytest.approx(0.66381, abs=1e-4)
    assert expected_max_sharpe(10, 1.0 / 252) == pytest.approx(0.099190, abs=1e-5)
    # more variants, a higher bar: 100 → SR0 2.53 annualised, DSR 0.30
    dsr, sr0 = deflated_sharpe(2.0, 252, 0.0, 3.0, 100, 1.0)
    assert (sr0, dsr) == pytest.approx((2.5306, 0.29894), abs=1e-3)
    # fat tails and negative skew lower it further
    assert deflated_sharpe(2.0, 252, -1.0, 8.0, 1, None)[0] < 0.9766


# --------------------------------------------------------------------------- the floor


def challenger(**kw: float) -> dict[str, float]:
    base = {
        "sharpe": 1.0,
        "max_drawdown_pct": 5.0,
        "trade_count": 60.0,
        "net_profit": 500.0,
        "expectancy_r": 0.25,
        "expectancy_r_ci_low": 0.02,
        "days": 100.0,
        "daily_return_skew": 0.0,
        "daily_return_kurtosis": 3.0,
        "ruined": 0.0,
    }
    return base | kw


def test_floor_expectancy_with_its_lower_bound() -> None:
    assert decide(challenger(), None, RULE).promote
    d = decide(challenger(expectancy_r_ci_low=-0.01), None, RULE)
    assert not d.promote and d.reason.startswith("no edge")
    d = decide(challenger(expectancy_r=-0.1, expectancy_r_ci_low=-0.3), None, RULE)
    assert not d.promote and "no edge" in d.reason


def test_floor_by_deflated_sharpe_alone() -> None:
    # expectancy CI straddles 0, but Sharpe 3 over 500 days: PSR ≈ 1 with one variant
    c = challenger(sharpe=3.0, days=500.0, expectancy_r_ci_low=-0.01)
    assert decide(c, None, RULE).promote
    # the same numbers after 10,000 variants with Sharpe variance 4: SR0 ≈ 7.7 → no edge
    d = decide(c, None, RULE, Trials(10_000, 4.0))
    assert not d.promote and "10000 variants" in d.reason
    assert d.challenger["dsr"] < 0.05


def test_losing_less_than_the_champion_is_not_enough() -> None:
    loser = challenger(sharpe=-0.2, net_profit=-100.0, expectancy_r=-0.05, expectancy_r_ci_low=-0.2)
    worse_champion = challenger(sharpe=-1.0, net_profit=-900.0)
    d = decide(loser, worse_champion, RULE)
    assert not d.promote and d.reason.startswith("no edge")
    ok, _ = floor_check(decide(challenger(), None, RULE).challenger, RULE)
    assert ok


def test_ruined_and_floor_off() -> None:
    assert "stopped out" in decide(challenger(ruined=1.0), None, RULE).reason
    off = RULE.model_copy(update={"floor": False})
    assert decide(challenger(expectancy_r=-0.1, expectancy_r_ci_low=-0.3), None, off).promote
