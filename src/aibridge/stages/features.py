"""Stage ``features``: candles → causal feature matrix (``artifacts/features.parquet``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from aibridge import features
from aibridge.settings import PipelineSettings, pipeline_settings
from aibridge.stages.common import StageError, StagePaths, console, run_stage


def load_candles(cfg: PipelineSettings | Any, paths: StagePaths) -> pd.DataFrame:
    """The candles of the configured instrument (kept for callers that pass a ``cfg``;
    new code calls ``paths.load_candles(symbol, timeframe)``)."""
    settings = pipeline_settings(cfg)
    return paths.load_candles(settings.instrument.symbol, settings.timeframe)


def build_features(settings: PipelineSettings, paths: StagePaths) -> None:
    settings = pipeline_settings(settings)
    candles = paths.load_candles(settings.instrument.symbol, settings.timeframe)
    params = settings.features.params()
    need = features.min_bars(params)
    if len(candles) <= need:
        raise StageError(f"{len(candles)} candles are fewer than the {need} the features need")
    frame = features.compute_features(candles, params)
    frame.insert(0, "time", candles["time"].to_numpy())
    frame.to_parquet(paths.features, index=False)
    console.print(f"features: {frame.shape[1] - 1} features × {len(frame)} bars (min_bars={need})")


def main() -> None:
    run_stage("features", build_features, typed=True)
