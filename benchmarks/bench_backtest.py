"""Backtest throughput: aibridge's numba engine vs backtesting.py on the same signals.

Run: ``.venv/bin/python benchmarks/bench_backtest.py [--bars 2000000] [--bt-bars 100000]``

* "same signals" row: both engines trade identical seeded random signals with the same SL/TP
  distances on the same ``--bt-bars`` synthetic M1 bars (backtesting.py is too slow for
  millions of bars); the trade counts are printed so the runs are visibly comparable;
* "large" row: aibridge alone on ``--bars`` bars, the ≥ 5 M bar-steps/s goal.

Bar-steps/s = bars simulated / wall seconds of the simulation alone (numba compilation and
data generation excluded; best of ``--repeat`` runs). One core: numba code is single-threaded.
Writes ``benchmarks/results/backtest.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from aibridge.backtest import EngineSettings, run_backtest
from aibridge.instruments import load_instrument
from aibridge.risk import RiskSettings

RESULTS = Path(__file__).parent / "results" / "backtest.json"
SPEC = load_instrument("EURUSD")
# no time exits: the backtesting.py replay below only closes on an opposite signal or SL/TP
RISK = RiskSettings(
    max_spread_points=0, max_daily_drawdown_pct=0, max_total_lots=1e9, max_hold_bars=0
)
SETTINGS = EngineSettings(
    initial_equity=1_000_000.0, spread_points=0, fixed_lots=1.0, sl_tp_on_entry_bar=False
)


def synthetic(n: int, seed: int = 0) -> pd.DataFrame:
    """A random-walk M1 series with realistic EURUSD magnitudes (Bid candles)."""
    rng = np.random.default_rng(seed)
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 1.5e-4, n)))
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0, 1e-4, (2, n)))
    return pd.DataFrame(
        {
            "time": pd.date_range("2015-01-01", periods=n, freq="min"),
            "open": open_,
            "high": np.maximum(open_, close) + wick[0],
            "low": np.minimum(open_, close) - wick[1],
            "close": close,
            "volume": 1.0,
        }
    )


def signals(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sig = rng.choice([-1, 0, 1], size=n, p=[0.02, 0.96, 0.02]).astype(np.int64)
    sig[0] = 0
    return sig, rng.uniform(5e-4, 2e-3, n), rng.uniform(5e-4, 3e-3, n)


def time_ours(candles, sig, sl, tp, repeat: int) -> tuple[float, int]:
    run_backtest(candles.iloc[:100], sig[:100], sl[:100], tp[:100], SPEC, RISK, SETTINGS)  # JIT
    best, trades = np.inf, 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = run_backtest(candles, sig, sl, tp, SPEC, RISK, SETTINGS)
        best = min(best, time.perf_counter() - t0)
        trades = len(res.trades)
    return best, trades


def time_backtesting_py(candles, sig, sl, tp) -> tuple[float, int]:
    from backtesting import Backtest, Strategy

    units = int(SPEC.contract_size)

    class Replay(Strategy):
        def init(self) -> None:
            pass

        def next(self) -> None:
            i = len(self.data) - 1
            for trade in self.trades:
                if trade.entry_bar == i and trade.sl is None:
                    d = 1 if trade.is_long else -1
                    trade.sl = trade.entry_price - d * sl[i - 1]
                    trade.tp = trade.entry_price + d * tp[i - 1]
            s = int(sig[i])
            if s == 0 or i + 1 >= len(sig):
                return
            for trade in self.trades:
                if trade.is_long != (s > 0):
                    trade.close()
            if not any(t.is_long == (s > 0) for t in self.trades):
                (self.buy if s > 0 else self.sell)(size=units)

    data = candles.set_index("time").rename(columns=str.capitalize)
    bt = Backtest(data, Replay, cash=1_000_000, margin=0.01, finalize_trades=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        stats = bt.run()
        return time.perf_counter() - t0, len(stats._trades)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=2_000_000)
    ap.add_argument("--bt-bars", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    small = synthetic(args.bt_bars)
    s_sig, s_sl, s_tp = signals(args.bt_bars)
    ours_small_s, ours_small_trades = time_ours(small, s_sig, s_sl, s_tp, args.repeat)
    bt_s, bt_trades = time_backtesting_py(small, s_sig, s_sl, s_tp)
    large = synthetic(args.bars, seed=2)
    l_sig, l_sl, l_tp = signals(args.bars, seed=3)
    ours_large_s, ours_large_trades = time_ours(large, l_sig, l_sl, l_tp, args.repeat)

    rows = [
        {
            "run": f"same signals, {args.bt_bars:,} bars",
            "engine": "aibridge (numba)",
            "bars": args.bt_bars,
            "seconds": ours_small_s,
            "bar_steps_per_s": args.bt_bars / ours_small_s,
            "trades": ours_small_trades,
        },
        {
            "run": f"same signals, {args.bt_bars:,} bars",
            "engine": "backtesting.py",
            "bars": args.bt_bars,
            "seconds": bt_s,
            "bar_steps_per_s": args.bt_bars / bt_s,
            "trades": bt_trades,
        },
        {
            "run": f"large, {args.bars:,} bars",
            "engine": "aibridge (numba)",
            "bars": args.bars,
            "seconds": ours_large_s,
            "bar_steps_per_s": args.bars / ours_large_s,
            "trades": ours_large_trades,
        },
    ]
    speedup = rows[0]["bar_steps_per_s"] / rows[1]["bar_steps_per_s"]
    large_rate = rows[2]["bar_steps_per_s"]
    result = {
        "rows": rows,
        "speedup_vs_backtesting_py": speedup,
        "goal_bar_steps_per_s": GOAL_BAR_STEPS,
        "goal_speedup": GOAL_SPEEDUP,
        "goals": {
            "speedup_vs_backtesting_py": [
                round(speedup, 1),
                ">=",
                GOAL_SPEEDUP,
                speedup >= GOAL_SPEEDUP,
            ],
            "bar_steps_per_s": [
                round(large_rate),
                ">=",
                GOAL_BAR_STEPS,
                large_rate >= GOAL_BAR_STEPS,
            ],
        },
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "note": "wall time of the simulation incl. DataFrame → arrays and the trade table; "
        "compilation excluded; best of repeats for aibridge, one run of backtesting.py",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nwrote {RESULTS}")


GOAL_SPEEDUP = 150
GOAL_BAR_STEPS = 5_000_000


def markdown(result: dict) -> str:
    """The table and the goals, met or not (README ``bench:backtest``)."""
    lines = [
        "| run | engine | bars | seconds | bar-steps/s | trades |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['run']} | {r['engine']} | {r['bars']:,} | {r['seconds']:.4f} | "
            f"{r['bar_steps_per_s']:,.0f} | {r['trades']:,} |"
        )
    goals = result.get("goals") or {
        "speedup_vs_backtesting_py": [
            round(result["speedup_vs_backtesting_py"], 1),
            ">=",
            result["goal_speedup"],
            result["speedup_vs_backtesting_py"] >= result["goal_speedup"],
        ]
    }
    lines += ["", "| goal | measured | target | met |", "|---|---:|---:|:---:|"]
    for name, (value, op, target, met) in goals.items():
        lines.append(f"| {name} | {value:,} | {op} {target:,} | {'met' if met else 'NOT MET'} |")
    load = (result.get("machine") or {}).get("loadavg_1m_at_end")
    if load is not None:
        lines.append(
            f"\nLoad average (1 min) at the end: {load} on {result['machine']['cpus']} CPUs."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
