"""The training rows: ``artifacts/features.parquet`` joined with ``artifacts/labels.parquet``.

One definition of "the rows a model trains on" for the ``train`` stage and ``aibridge sweep``
(which must score trials on exactly the pipeline's rows): bars where every feature is known and
the label is decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aibridge.errors import AibridgeError
from aibridge.labels import NO_LABEL


class DatasetError(AibridgeError):
    """The feature and label files are missing, stale or out of step."""


@dataclass(frozen=True)
class TrainingRows:
    """Usable rows, oldest first: features (with ``time``), labels, feature names, and the
    label frame's trade columns (``atr, close, spread, r_long, r_short``) for the same rows."""

    frame: pd.DataFrame
    y: np.ndarray
    names: list[str]
    trades: pd.DataFrame

    @property
    def X(self) -> np.ndarray:
        return self.frame[self.names].to_numpy(dtype=np.float64)


def load_training_rows(features_path: Path, labels_path: Path) -> TrainingRows:
    """Read and align the two tables; :class:`DatasetError` says which stage to rerun."""
    if not features_path.is_file() or not labels_path.is_file():
        raise DatasetError(
            f"{features_path} / {labels_path} missing: run `dvc repro labels features` first"
        )
    feats = pd.read_parquet(features_path)
    labels = pd.read_parquet(labels_path)
    if not feats["time"].equals(labels["time"]):
        raise DatasetError("features and labels are out of step; run `dvc repro` from the start")
    if "r_long" not in labels.columns:
        raise DatasetError(f"{labels_path} predates the engine-like labels; run `dvc repro`")
    names = [c for c in feats.columns if c != "time"]
    usable = feats[names].notna().all(axis=1).to_numpy() & (labels["label"].to_numpy() != NO_LABEL)
    return TrainingRows(
        frame=feats.loc[usable].reset_index(drop=True),
        y=labels["label"].to_numpy()[usable],
        names=names,
        trades=labels.loc[usable].reset_index(drop=True),
    )
