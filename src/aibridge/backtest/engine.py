"""Python face of the compiled kernel: candles + signals + specs in, a tidy result out.

Why separate from :mod:`.core`: everything that needs pandas, pydantic or a random generator
(time → day/hour, spread source, slippage draws, trade table) stays out of the compiled loop,
so the kernel remains a pure function of arrays that tests and benchmarks can call directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from aibridge.backtest import core
from aibridge.backtest.settings import EngineSettings, SlippageSettings
from aibridge.instruments import TICK_VALUE_CROSS, InstrumentSpec
from aibridge.risk import ENTRY_REASONS, RiskSettings


@dataclass(frozen=True)
class BacktestResult:
    """Per-bar account curves, per-bar entry outcomes and the trade list of one run."""

    equity: pd.Series
    balance: pd.Series
    exposure_lots: pd.Series  # signed open lots at each bar's close
    entry_code: np.ndarray  # -1 nothing to act on, else a risk.ENTRY_* code
    trades: pd.DataFrame
    initial_equity: float
    stopout_bar: int = -1  # bar of the margin stop-out (the account is ruined); -1 none

    @property
    def ruined(self) -> bool:
        """True when the margin stop-out closed the account (no trading after it)."""
        return self.stopout_bar >= 0

    @property
    def drawdown(self) -> pd.Series:
        """Drawdown in money from the running equity peak (<= 0)."""
        return self.equity - self.equity.cummax().clip(lower=self.initial_equity)

    def entry_outcomes(self) -> dict[str, int]:
        """How many signals were acted on, and why the others were vetoed."""
        codes, counts = np.unique(self.entry_code[self.entry_code >= 0], return_counts=True)
        return {ENTRY_REASONS[int(c)]: int(k) for c, k in zip(codes, counts, strict=True)}


def slippage_points(settings: SlippageSettings, n: int) -> np.ndarray:
    """Adverse slippage per bar in points: fixed, or uniform integers 0..max from a seed."""
    if settings.mode == "fixed":
        return np.full(n, settings.points)
    if settings.mode == "random":
        rng = np.random.default_rng(settings.seed)
        return rng.integers(0, int(settings.points) + 1, size=n).astype(np.float64)
    return np.zeros(n)


def spread_points(
    candles: pd.DataFrame, spec: InstrumentSpec, settings: EngineSettings
) -> np.ndarray:
    """Spread per bar in points: the configured constant, else the export's column, else the
    instrument's default (MT4 exports carry a spread column only in some formats)."""
    n = len(candles)
    if settings.spread_points is not None:
        return np.full(n, float(settings.spread_points))
    if "spread" in candles.columns:
        return candles["spread"].to_numpy(dtype=np.float64)
    return np.full(n, float(spec.default_spread_points))


def _conversion(
    spec: InstrumentSpec, settings: EngineSettings, n: int, conv: np.ndarray | float | None
) -> np.ndarray:
    if conv is not None:
        return np.broadcast_to(np.asarray(conv, dtype=np.float64), (n,)).copy()
    if settings.quote_to_account is not None:
        return np.full(n, settings.quote_to_account)
    if spec.tick_value_mode == TICK_VALUE_CROSS:
        raise ValueError(
            f"{spec.symbol} is a cross: pass a {spec.conversion_symbol} series as `conv` "
            "or set backtest.engine.quote_to_account"
        )
    return np.ones(n)


def kernel_params(spec: InstrumentSpec, risk: RiskSettings, settings: EngineSettings) -> np.ndarray:
    """The kernel's scalar parameter vector (layout: ``core.P_*``)."""
    p = np.zeros(core.N_PARAMS)
    commission = settings.commission_per_lot_per_side
    p[core.P_EQUITY] = settings.initial_equity
    p[core.P_RISK_PCT] = risk.risk_per_trade_pct
    p[core.P_MAX_SPREAD_PTS] = risk.max_spread_points
    p[core.P_MAX_DD_PCT] = risk.max_daily_drawdown_pct
    p[core.P_MAX_OPEN] = risk.max_open_positions
    p[core.P_MAX_LOTS] = risk.max_total_lots
    p[core.P_START_HOUR] = risk.trading_start_hour
    p[core.P_END_HOUR] = risk.trading_end_hour
    p[core.P_USE_MIN_LOT] = risk.min_lot_policy == "use_min"
    p[core.P_POINT] = spec.point
    p[core.P_TICK] = spec.tick
    p[core.P_FIXED_TV] = spec.fixed_tick_value
    p[core.P_TV_MODE] = spec.tick_value_mode
    p[core.P_LOT_MIN] = spec.lot_min
    p[core.P_LOT_MAX] = spec.lot_max
    p[core.P_LOT_STEP] = spec.lot_step
    p[core.P_STOP_LEVEL_PTS] = spec.stop_level_points
    p[core.P_COMMISSION] = spec.commission_per_lot_per_side if commission is None else commission
    p[core.P_SWAP_ON] = settings.swap
    p[core.P_SWAP_LONG_PTS] = spec.swap_long_points
    p[core.P_SWAP_SHORT_PTS] = spec.swap_short_points
    p[core.P_TRIPLE_DAY] = spec.triple_swap_weekday
    p[core.P_STOP_FIRST] = settings.stop_first
    p[core.P_ON_ENTRY_BAR] = settings.sl_tp_on_entry_bar
    # The exit policy is part of the served trade model (conf/risk), not a simulation knob.
    p[core.P_CLOSE_OPPOSITE] = risk.close_on_opposite
    p[core.P_MAX_HOLD] = risk.max_hold_bars
    p[core.P_FIXED_LOTS] = settings.fixed_lots
    p[core.P_ATTACH_STOPS] = settings.attach_stops
    p[core.P_DIGITS] = spec.digits
    p[core.P_EXPOSURE_SHRINK] = risk.exposure_policy == "shrink"
    p[core.P_LEVERAGE] = settings.leverage
    p[core.P_STOP_OUT_PCT] = settings.stop_out_level_pct
    return p


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _unix_seconds(time: pd.DatetimeIndex) -> np.ndarray:
    """Whole seconds since 1970 without a datetime conversion pass (a view + one division)."""
    t64 = time.to_numpy()
    unit = np.datetime_data(t64.dtype)[0]
    return t64.view(np.int64) // _PER_SECOND[unit]


def _as_float(x: np.ndarray | pd.Series | float, n: int) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)))


def run_backtest(
    candles: pd.DataFrame,
    signal: np.ndarray | pd.Series,
    sl_dist: np.ndarray | pd.Series | float,
    tp_dist: np.ndarray | pd.Series | float,
    spec: InstrumentSpec,
    risk: RiskSettings,
    settings: EngineSettings | None = None,
    conv: np.ndarray | float | None = None,
) -> BacktestResult:
    """Simulate trading ``signal`` (+1 BUY / -1 SELL / 0 HOLD per bar, acted on next open).

    ``sl_dist``/``tp_dist`` are price distances decided with the signal (e.g. ATR multiples at
    the signal bar); 0 or NaN means none. ``conv`` is the quote→account rate per bar for
    crosses (``1 / USDJPY`` for GBPJPY on a USD account).
    """
    settings = settings or EngineSettings()
    n = len(candles)
    time = pd.DatetimeIndex(pd.to_datetime(candles["time"]))
    sig = np.ascontiguousarray(np.asarray(signal), dtype=np.int64)
    if sig.shape != (n,):
        raise ValueError(f"signal has shape {sig.shape}, candles have {n} rows")
    if np.any(np.abs(sig) > 1):
        raise ValueError("signal must contain only -1, 0, +1")
    slip = slippage_points(settings.slippage, n) * spec.point
    seconds = _unix_seconds(time)
    equity, balance, exposure, entry_code, tf, ti, _, stopout_bar = core.run_kernel(
        candles["open"].to_numpy(dtype=np.float64),
        candles["high"].to_numpy(dtype=np.float64),
        candles["low"].to_numpy(dtype=np.float64),
        candles["close"].to_numpy(dtype=np.float64),
        np.ascontiguousarray(spread_points(candles, spec, settings)),
        sig,
        _as_float(sl_dist, n),
        _as_float(tp_dist, n),
        seconds // 86_400,  # day number (floor division: also right before 1970)
        (seconds // 3_600) % 24,  # hour of day; integer maths, far cheaper than .hour
        _conversion(spec, settings, n, conv),
        slip,
        kernel_params(spec, risk, settings),
        int(np.count_nonzero(sig)) + 1,
    )
    return BacktestResult(
        equity=pd.Series(equity, index=time, name="equity"),
        balance=pd.Series(balance, index=time, name="balance"),
        exposure_lots=pd.Series(exposure, index=time, name="exposure_lots"),
        entry_code=entry_code,
        trades=trade_table(tf, ti, time),
        initial_equity=settings.initial_equity,
        stopout_bar=int(stopout_bar),
    )


_REASON_NAMES = [core.EXIT_REASONS[k] for k in sorted(core.EXIT_REASONS)]  # codes 1..5


def trade_table(tf: np.ndarray, ti: np.ndarray, time: pd.DatetimeIndex) -> pd.DataFrame:
    """The kernel's trade records as a readable table (one row per closed trade)."""
    direction = ti[:, core.TI_DIR]
    net = tf[:, core.TF_GROSS] - tf[:, core.TF_COMM] + tf[:, core.TF_SWAP]
    risk_money = tf[:, core.TF_RISK]
    with np.errstate(divide="ignore", invalid="ignore"):
        r_multiple = np.where(risk_money > 0, net / risk_money, np.nan)
    return pd.DataFrame(
        {
            "entry_time": time[ti[:, core.TI_ENTRY_BAR]],
            "exit_time": time[ti[:, core.TI_EXIT_BAR]],
            "entry_bar": ti[:, core.TI_ENTRY_BAR],
            "exit_bar": ti[:, core.TI_EXIT_BAR],
            # categoricals: built from integer codes, no per-row string conversion
            "side": pd.Categorical.from_codes((direction > 0).astype(np.int8), ["SELL", "BUY"]),
            "direction": direction,
            "lots": tf[:, core.TF_LOTS],
            "entry_price": tf[:, core.TF_ENTRY],
            "exit_price": tf[:, core.TF_EXIT],
            "sl": tf[:, core.TF_SL],
            "tp": tf[:, core.TF_TP],
            "exit_reason": pd.Categorical.from_codes(ti[:, core.TI_REASON] - 1, _REASON_NAMES),
            "gross_pnl": tf[:, core.TF_GROSS],
            "commission": tf[:, core.TF_COMM],
            "swap": tf[:, core.TF_SWAP],
            "net_pnl": net,
            "risk_money": risk_money,
            "r_multiple": r_multiple,
            "bars_held": ti[:, core.TI_EXIT_BAR] - ti[:, core.TI_ENTRY_BAR],
        }
    )
