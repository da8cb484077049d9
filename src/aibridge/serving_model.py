"""The full serving runtime: a registered model version loaded with the bundle's own code.

``pyfunc.predict`` spends ~1.5 ms per call mostly on schema enforcement. :class:`ServingModel`
instead uses the *same bundled files* directly: the model's own ``features.py`` (numba kernel)
on the window of recent candles, the native LightGBM booster (the ``lightgbm`` package), and
the model's own ``decision.py``. Because the features are window-exact (see ``features``), this
gives bit-identical decisions to ``pyfunc.predict`` on the full history, which the tests check
on every bar of the sample.

This runtime imports MLflow, the lightgbm package (which imports pandas and scikit-learn) and
numba: ~410 MB resident in the server. :class:`aibridge.serving.runtime.LeanModel` is the lean
data plane with the same ``decide`` bits in ~80 MB; ``aibridge.serving.fetch`` uses this module
to check it. Both are :class:`aibridge.serving.bundled.BundledModel` (settings, decision rule,
warm-up written once). Registry lookups and downloads are ``aibridge.registry``'s; the value
types (``ModelInfo``, ``Decision``, the errors) live in ``aibridge.serving.types`` and are
re-exported here.

>>> uri = "models:/aibridge-EURUSD-H1@champion"  # doctest: +SKIP
>>> model = load_serving_model(uri, "sqlite:///mlflow.db")  # doctest: +SKIP
>>> model.decide(time, open, high, low, close, volume, spread_points=12).action  # doctest: +SKIP
'HOLD'
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import lightgbm as lgb
import numpy as np

from aibridge.model_bundle import ARTIFACT_BOOSTER, ARTIFACT_DECISION, ARTIFACT_FEATURES
from aibridge.pyfunc_model import load_module_from_file
from aibridge.registry import download_version, registry_client, resolve_model_uri
from aibridge.serving.bundled import BundledModel
from aibridge.serving.types import (
    Decision,
    ModelInfo,
    ModelLoadError,
    TooFewBarsError,
    parse_model_uri,
)

__all__ = [
    "Decision",
    "ModelInfo",
    "ModelLoadError",
    "ServingModel",
    "TooFewBarsError",
    "load_serving_model",
    "parse_model_uri",
    "resolve_model_uri",
]


class ServingModel(BundledModel):
    """One registered model version, ready to decide on a window of candles (full path)."""

    features: ModuleType

    def _load(self, paths: dict[str, Path]) -> None:
        self.features = load_module_from_file(paths[ARTIFACT_FEATURES], "features")
        self.decision = load_module_from_file(paths[ARTIFACT_DECISION], "decision")
        self.booster = lgb.Booster(model_file=str(paths[ARTIFACT_BOOSTER]))
        self._atr_window = int(self.feature_params["atr_window"])

    def raw_proba(
        self,
        time: np.ndarray,
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
    ) -> tuple[np.ndarray, Any, Any]:
        """The booster's probabilities for the newest bar, its close and its ATR."""
        m = self.min_bars
        sl = slice(-m, None)
        t, o, h, lo, c, v = (np.asarray(a)[sl] for a in (time, open, high, low, close, volume))
        # Only the newest row is computed; the kernel is window-exact, so it equals training.
        row = self.features.feature_matrix(t, o, h, lo, c, v, self.feature_params, first_row=m - 1)[
            -1:
        ]
        if not np.isfinite(row).all():
            raise ValueError("candles produce non-finite features (zero or NaN prices?)")
        # One row: threads cost 10-50x the prediction itself (LightGBM defaults to all cores).
        raw = self.booster.predict(row, num_threads=1)
        atr = self.features.atr(h, lo, c, self._atr_window, first_row=m - 1)[-1:]
        return raw[0], c[-1], atr[0]


def load_serving_model(
    model_uri: str, tracking_uri: str | None = None, cache_dir: Path | None = None
) -> ServingModel:
    """Resolve ``model_uri`` through the registry, download that version once, load it.

    Uses a client bound to ``tracking_uri`` (None: MLflow's configured store); MLflow's
    process-wide tracking and registry URIs stay as they were.
    """
    info = resolve_model_uri(model_uri, registry_client(tracking_uri))
    target = (
        Path(cache_dir or tempfile.mkdtemp(prefix="aibridge-model-"))
        / f"{info.name}-v{info.version}"
    )
    if not (target / "MLmodel").is_file():
        download_version(info.name, info.version, target, tracking_uri)
    try:
        return ServingModel(info, target)
    except (OSError, KeyError, json.JSONDecodeError, lgb.basic.LightGBMError) as exc:
        raise ModelLoadError(f"cannot load {info.name} v{info.version}: {exc}") from None
