"""Stage ``labels``: candles → triple-barrier SELL/HOLD/BUY labels (see ``aibridge.labels``),
entered like the engine enters (next open, right side of the spread), with each side's
realised R for choosing the decision margin."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aibridge import features
from aibridge.decision import CLASSES
from aibridge.labels import NO_LABEL, barrier_outcomes
from aibridge.settings import PipelineSettings, pipeline_settings
from aibridge.stages.common import StagePaths, console, run_stage, write_json


def candle_spread_points(candles: pd.DataFrame, default_points: float) -> np.ndarray:
    """Each bar's spread in points: the export's ``spread`` column where known, else the
    instrument's default (what the backtest engine uses too)."""
    if "spread" in candles.columns:
        spread = candles["spread"].to_numpy(dtype=np.float64)
        return np.where(np.isfinite(spread), spread, float(default_points))
    return np.full(len(candles), float(default_points))


def build_labels(settings: PipelineSettings, paths: StagePaths) -> None:
    settings = pipeline_settings(settings)
    instrument, lab = settings.instrument, settings.labels
    candles = paths.load_candles(instrument.symbol, settings.timeframe)
    open_, high, low, close = (candles[c].to_numpy() for c in ("open", "high", "low", "close"))
    atr = features.atr(high, low, close, settings.features.atr_window)
    spread = candle_spread_points(candles, instrument.default_spread_points)
    out = barrier_outcomes(
        open_,
        high,
        low,
        close,
        atr,
        tp_mult=lab.tp_atr_mult,
        sl_mult=lab.sl_atr_mult,
        horizon=lab.horizon,
        point=instrument.point,
        digits=instrument.digits,
        spread_points=spread,
    )
    labels = out.label
    pd.DataFrame(
        {
            "time": candles["time"].to_numpy(),
            "label": labels,
            "atr": atr,
            "close": close,
            "spread": spread,
            "r_long": out.r_long,
            "r_short": out.r_short,
        }
    ).to_parquet(paths.labels, index=False)
    known = labels[labels != NO_LABEL]
    counts = np.bincount(known, minlength=len(CLASSES))
    balance = {
        name.lower(): float(counts[i] / max(len(known), 1)) for i, name in enumerate(CLASSES)
    }
    known_mask = labels != NO_LABEL
    mean_r = {
        "long": float(np.nanmean(out.r_long[known_mask])) if known_mask.any() else 0.0,
        "short": float(np.nanmean(out.r_short[known_mask])) if known_mask.any() else 0.0,
    }
    write_json(
        paths.reports / "labels.json",
        {"labelled": len(known), "share": balance, "mean_r_before_costs": mean_r},
    )
    console.print(
        "labels: "
        + ", ".join(f"{k} {v:.1%}" for k, v in balance.items())
        + f"; mean R before commission: long {mean_r['long']:+.3f}, short {mean_r['short']:+.3f}"
    )


def main() -> None:
    run_stage("labels", build_labels, typed=True)
