"""Stage ``features``: candles → causal feature matrix (``artifacts/features.parquet``)."""

from __future__ import annotations

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from aibridge import features
from aibridge.stages.common import StageError, StagePaths, console, run_stage


def load_candles(cfg: DictConfig, paths: StagePaths) -> pd.DataFrame:
    symbol, timeframe = cfg.instrument.symbol, cfg.timeframe
    path = paths.candles(symbol, timeframe)
    if not path.is_file():
        available = sorted(p.stem for p in (paths.artifacts / "candles").glob("*.parquet"))
        raise StageError(
            f"no candles for {symbol} {timeframe} (instrument={symbol}, timeframe={timeframe}); "
            f"ingested: {', '.join(available) or 'none'}"
        )
    return pd.read_parquet(path)


def build_features(cfg: DictConfig, paths: StagePaths) -> None:
    candles = load_candles(cfg, paths)
    params = OmegaConf.to_container(cfg.features, resolve=True)
    need = features.min_bars(params)
    if len(candles) <= need:
        raise StageError(f"{len(candles)} candles are fewer than the {need} the features need")
    frame = features.compute_features(candles, params)
    frame.insert(0, "time", candles["time"].to_numpy())
    frame.to_parquet(paths.features, index=False)
    console.print(f"features: {frame.shape[1] - 1} features × {len(frame)} bars (min_bars={need})")


def main() -> None:
    run_stage("features", build_features)
