"""Validated settings of the backtest (``conf/backtest/default.yaml``).

Separate from :class:`aibridge.risk.RiskSettings` on purpose: the risk rules *and the exit
policy* (``close_on_opposite``, ``max_hold_bars``) are shared with the live EA and served in
the heartbeat, while these knobs (fill model, slippage, walk-forward windows, the gate) only
exist in simulation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class SlippageSettings(BaseModel):
    """Adverse slippage on market fills and stop fills (never on take-profits)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["none", "fixed", "random"] = "none"
    points: float = Field(default=0.0, ge=0, description="fixed amount, or random maximum")
    seed: int = 0


class EngineSettings(BaseModel):
    """How orders are filled; the defaults are MT4's behaviour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_equity: float = Field(default=10_000.0, gt=0)
    stop_first: bool = Field(default=True, description="SL and TP in one bar: stop first")
    sl_tp_on_entry_bar: bool = Field(
        default=True, description="MT4 attaches SL/TP to the order, so they act on the entry bar"
    )
    fixed_lots: float = Field(default=0.0, ge=0, description="> 0 replaces risk sizing")
    attach_stops: bool = Field(default=True, description="False: SL only sizes, never fills")
    spread_points: float | None = Field(
        default=None, ge=0, description="None: the data's spread column, else the instrument's"
    )
    commission_per_lot_per_side: float | None = Field(
        default=None, ge=0, description="None: the instrument's"
    )
    swap: bool = False
    quote_to_account: float | None = Field(
        default=None, gt=0, description="constant conversion rate for crosses without a series"
    )
    slippage: SlippageSettings = SlippageSettings()
    leverage: float = Field(default=100.0, gt=0, description="account leverage (margin)")
    stop_out_level_pct: float = Field(
        default=50.0,
        ge=0,
        description="margin stop-out: equity <= this % of used margin closes everything and "
        "ends trading (the account is ruined)",
    )


Auto = Literal["auto"]
PositiveInt = Annotated[int, Field(gt=0)]


class WalkForwardSettings(BaseModel):
    """Walk-forward windows: derived from the history's length (``auto``) or given in bars.

    The rule for ``auto`` (:func:`aibridge.backtest.walkforward.plan_folds`): the first
    training window is ``train_fraction`` of the usable history (never fewer than
    ``min_train_bars``, never more than ``max_train_bars``); the rest, after the embargo, is
    cut into ``folds`` equal test windows (``auto``: 10, fewer when a window would be shorter
    than ``min_test_bars``). So the fold count stays the same from 10 k to 10 M bars, each
    fold's training costs the same beyond ~330 k bars, and only the predicted test windows
    grow with the history.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["rolling", "anchored"] = "rolling"
    folds: PositiveInt | Auto = Field(
        default="auto", description="test windows; auto: 10, fewer on a short history"
    )
    train_bars: PositiveInt | Auto = Field(
        default="auto", description="bars per training window; auto: train_fraction of history"
    )
    test_bars: PositiveInt | Auto = Field(
        default="auto", description="bars per test window; auto: the rest split into folds"
    )
    train_fraction: float = Field(
        default=0.3, gt=0, lt=1, description="auto train window: share of the usable history"
    )
    min_train_bars: int = Field(default=500, gt=0, description="auto train window: at least")
    max_train_bars: int | None = Field(
        default=100_000,
        gt=0,
        description="auto train window: at most (None: no cap); keeps each fold's fit the same "
        "size however long the history (100,000 M1 bars: ~3 months)",
    )
    min_test_bars: int = Field(default=100, gt=0, description="auto test windows: at least")
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)
    embargo_bars: int | None = Field(
        default=None, ge=0, description="None: the label horizon (the minimum that is safe)"
    )
    max_folds: int = Field(default=0, ge=0, description="0 = no cap on the fold count")
    n_jobs: PositiveInt | Auto = Field(
        default="auto",
        description="fold models trained at once (processes); auto: min(cores, folds) on long "
        "windows, 1 on short ones (starting processes costs more than it saves)",
    )


class GateSettings(BaseModel):
    """Champion/challenger rule: what a challenger must show to replace the champion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Literal["sharpe", "sortino", "calmar", "net_profit", "profit_factor"] = "sharpe"
    min_improvement: float = Field(default=0.0, ge=0, description="challenger > champion + this")
    max_drawdown_pct: float = Field(default=20.0, gt=0, description="challenger's bound")
    min_trades: int = Field(default=30, ge=0)
    floor: bool = Field(
        default=True,
        description="absolute floor: positive net expectancy with CI low > 0, or DSR >= min_dsr",
    )
    min_dsr: float = Field(default=0.95, ge=0, le=1, description="Deflated Sharpe Ratio bound")


class BaselineSettings(BaseModel):
    """Baselines every report compares the model with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    random_runs: int = Field(default=20, ge=1)
    seed: int = 0
    buy_and_hold_leverage: float = Field(
        default=1.0,
        gt=0,
        description="buy-and-hold notional as a multiple of the initial equity (1 = unlevered)",
    )


class BootstrapSettings(BaseModel):
    """Bootstrap confidence intervals of Sharpe and expectancy (seeded, reproducible)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    samples: int = Field(default=2000, ge=0, description="0 disables the intervals")
    confidence: float = Field(default=0.95, gt=0, lt=1)
    seed: int = 0


class BacktestSettings(BaseModel):
    """The whole ``backtest`` config group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: EngineSettings = EngineSettings()
    walk_forward: WalkForwardSettings = WalkForwardSettings()
    baselines: BaselineSettings = BaselineSettings()
    bootstrap: BootstrapSettings = BootstrapSettings()
    gate: GateSettings = GateSettings()
    output_dir: str = "reports/backtest"


def backtest_settings_from_mapping(data: Mapping[str, Any] | None) -> BacktestSettings:
    """Validate a Hydra ``cfg.backtest`` node (or a plain dict)."""
    return BacktestSettings.model_validate(dict(data or {}))
