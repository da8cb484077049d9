"""Stage ``labels``: candles → triple-barrier SELL/HOLD/BUY labels (see ``aibridge.labels``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from aibridge import features
from aibridge.decision import CLASSES
from aibridge.labels import NO_LABEL, triple_barrier_labels
from aibridge.stages.common import StagePaths, console, run_stage, write_json
from aibridge.stages.features import load_candles


def build_labels(cfg: DictConfig, paths: StagePaths) -> None:
    candles = load_candles(cfg, paths)
    high, low, close = (candles[c].to_numpy() for c in ("high", "low", "close"))
    atr = features.atr(high, low, close, int(cfg.features.atr_window))
    labels = triple_barrier_labels(
        high,
        low,
        close,
        atr,
        float(cfg.labels.tp_atr_mult),
        float(cfg.labels.sl_atr_mult),
        int(cfg.labels.horizon),
    )
    pd.DataFrame({"time": candles["time"].to_numpy(), "label": labels, "atr": atr}).to_parquet(
        paths.labels, index=False
    )
    known = labels[labels != NO_LABEL]
    counts = np.bincount(known, minlength=len(CLASSES))
    balance = {
        name.lower(): float(counts[i] / max(len(known), 1)) for i, name in enumerate(CLASSES)
    }
    write_json(paths.reports / "labels.json", {"labelled": len(known), "share": balance})
    console.print("labels: " + ", ".join(f"{k} {v:.1%}" for k, v in balance.items()))


def main() -> None:
    run_stage("labels", build_labels)
