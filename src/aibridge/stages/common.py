"""What every stage shares: its parameters, its paths, and how it fails.

``run_stage`` is the door: it reads ``params.yaml``, validates it into
:class:`aibridge.settings.PipelineSettings` (a bad key fails here, named, before any work), runs
the body and prints any :class:`aibridge.errors.AibridgeError` as one line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from aibridge.config import load_params
from aibridge.errors import AibridgeError, print_error
from aibridge.paths import workspace_root
from aibridge.settings import pipeline_settings

console = Console(stderr=True, soft_wrap=True)


class StageError(AibridgeError):
    """A problem the user can fix; printed as one line, never as a traceback."""


@dataclass(frozen=True)
class StagePaths:
    root: Path

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def candles(self, symbol: str, timeframe: str) -> Path:
        return self.artifacts / "candles" / f"{symbol}_{timeframe}.parquet"

    def load_candles(self, symbol: str, timeframe: str) -> pd.DataFrame:
        """The ingested candles of one instrument, or a :class:`StageError` listing what is."""
        path = self.candles(symbol, timeframe)
        if not path.is_file():
            available = sorted(p.stem for p in (self.artifacts / "candles").glob("*.parquet"))
            raise StageError(
                f"no candles for {symbol} {timeframe} (instrument={symbol}, "
                f"timeframe={timeframe}); ingested: {', '.join(available) or 'none'}"
            )
        return pd.read_parquet(path)

    @property
    def broker_clock(self) -> Path:
        """Broker clock of each ingested export, keyed ``SYMBOL_TIMEFRAME`` (``ingest``)."""
        return self.artifacts / "broker_clock.json"

    @property
    def features(self) -> Path:
        return self.artifacts / "features.parquet"

    @property
    def labels(self) -> Path:
        return self.artifacts / "labels.parquet"

    @property
    def model_dir(self) -> Path:
        return self.artifacts / "model"

    @property
    def predictions(self) -> Path:
        return self.artifacts / "predictions.parquet"

    @property
    def train_run(self) -> Path:
        return self.artifacts / "train_run.json"


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def run_stage(name: str, body: Callable[[Any, StagePaths], object], *, typed: bool = False) -> None:
    """Run a stage body with the current params; user errors exit 1 with one clear line.

    The params are validated first, for every stage. ``typed=True`` hands the body the
    :class:`PipelineSettings`; otherwise (stages not converted yet) the raw ``DictConfig``.
    """
    try:
        cfg = load_params()
        settings = pipeline_settings(cfg)
        body(settings if typed else cfg, StagePaths(workspace_root()))
    except AibridgeError as exc:
        print_error(exc, name, console)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print(f"[yellow]{name} interrupted[/]")
        sys.exit(130)
