"""The MLflow pyfunc that turns raw candles into decisions (logged as *model from code*).

MLflow copies this file into the model, and ``features.py`` / ``decision.py`` travel as model
artifacts. Loading the model therefore needs only mlflow, numpy, pandas, numba and lightgbm -- not
this package -- and always runs the feature code the booster was trained with.

``predict`` takes a DataFrame of candles (``time, open, high, low, close, volume``, oldest
first, bars are Bid; optionally ``spread`` in points) and returns one decision per row:
action, confidence, calibrated class probabilities, SL/TP prices and points, the reason and
``ev_r`` (the candidate side's expected R after costs; see ``decision.py``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

# The artifact keys of ``aibridge.model_bundle`` (the bundle layout's one home), repeated here
# because this file runs inside the MLflow model, where aibridge may not be installed; for the
# same reason ``load_module_from_file`` and the old-bundle ``DecisionSettings`` mapping are
# written here and in ``aibridge.serving`` (tests/test_model_bundle.py checks the keys agree).
ARTIFACT_BOOSTER = "booster"
ARTIFACT_SETTINGS = "settings"
ARTIFACT_FEATURES = "features"
ARTIFACT_DECISION = "decision"


def load_module_from_file(path: str | Path, tag: str) -> ModuleType:
    """Import a bundled source file under a private name, so it never shadows the package."""
    # Named by content: the same code gets the same module (and numba's on-disk cache, which
    # records the module name, stays valid across processes).
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    name = f"_aibridge_bundled_{tag}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import bundled module {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class CandleDecisionModel(PythonModel):
    """Candles in, BUY/SELL/HOLD with confidence and SL/TP out."""

    def load_context(self, context: Any) -> None:
        artifacts = context.artifacts
        self.features = load_module_from_file(artifacts[ARTIFACT_FEATURES], "features")
        self.decision = load_module_from_file(artifacts[ARTIFACT_DECISION], "decision")
        self.booster = lgb.Booster(model_file=artifacts[ARTIFACT_BOOSTER])
        self.settings = json.loads(Path(artifacts[ARTIFACT_SETTINGS]).read_text())

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        s = self.settings
        frame = model_input.reset_index(drop=True)
        matrix = self.features.feature_matrix(
            frame["time"].to_numpy(),
            frame["open"].to_numpy(),
            frame["high"].to_numpy(),
            frame["low"].to_numpy(),
            frame["close"].to_numpy(),
            frame["volume"].to_numpy(),
            s["feature_params"],
        )
        proba = np.full((len(frame), 3), np.nan)
        ready = np.isfinite(matrix).all(axis=1)
        if ready.any():
            proba[ready] = self.booster.predict(np.ascontiguousarray(matrix[ready]))
        close = frame["close"].to_numpy(dtype=np.float64)
        atr = self.features.atr(
            frame["high"].to_numpy(),
            frame["low"].to_numpy(),
            close,
            s["feature_params"]["atr_window"],
        )
        # The spread each bar would be traded at (points, MT4's export column) when given;
        # otherwise the training instrument's default.
        spread = (
            frame["spread"].to_numpy(dtype=np.float64)
            if "spread" in frame.columns and frame["spread"].notna().all()
            else None
        )
        names = np.asarray(self.decision.ACTION_NAMES, dtype=object)
        if hasattr(self.decision, "decide_rows"):
            settings = self.decision.settings_from(s)
            out = self.decision.decide_rows(
                proba, close, atr, spread, settings, s.get("calibration")
            )
            p = out["proba"]
            return pd.DataFrame(
                {
                    "action": names[out["action"]],
                    "confidence": out["confidence"],
                    "p_sell": p[:, 0],
                    "p_hold": p[:, 1],
                    "p_buy": p[:, 2],
                    "sl": out["sl"],
                    "tp": out["tp"],
                    "sl_points": out["sl_points"],
                    "tp_points": out["tp_points"],
                    "reason": out["reason"].astype(object),
                    "ev_r": out["ev_r"],
                }
            )
        # A bundle whose decision.py predates the expected-value rule.
        action, confidence, reason = self.decision.decide(proba, s["min_confidence"])
        settings = self.decision.DecisionSettings(
            min_confidence=s["min_confidence"],
            tp_atr_mult=s["tp_atr_mult"],
            sl_atr_mult=s["sl_atr_mult"],
            digits=s["digits"],
            point=s["point"],
        )
        sl, tp, sl_pts, tp_pts = self.decision.stops(action, close, atr, settings)
        return pd.DataFrame(
            {
                "action": names[action],
                "confidence": confidence,
                "p_sell": proba[:, 0],
                "p_hold": proba[:, 1],
                "p_buy": proba[:, 2],
                "sl": sl,
                "tp": tp,
                "sl_points": sl_pts,
                "tp_points": tp_pts,
                "reason": reason.astype(object),
            }
        )


mlflow.models.set_model(CandleDecisionModel())
