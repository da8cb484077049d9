"""The lean serving runtime: one model version answering from plain files on disk.

A :class:`LeanModel` is built from a materialised bundle directory (what
``aibridge.serving.fetch`` writes into the model cache) and decides on a window of candles with
only numpy, ctypes and the model's own ``decision.py`` (numpy only): the feature row in plain
Python (:mod:`aibridge.serving.features_row`), the trees in LightGBM's C library
(:mod:`aibridge.serving.lgbm`), the calibration from the arrays stored in ``settings.json``
and the expected-value decision by the bundled ``decide_rows``. Importing this module does not
import MLflow, pandas, scikit-learn, SciPy, numba or the ``lightgbm`` Python package -- the
request path carries only what answering needs (``tests/test_serving_runtime.py`` checks
``sys.modules`` in a fresh interpreter).

It shares its attributes and ``decide`` with ``aibridge.serving_model.ServingModel`` (both
are :class:`aibridge.serving.bundled.BundledModel`) and gives the same bits; the server can
serve either.

>>> cached = Path("~/.cache/aibridge/models/aibridge-EURUSD-H1-v3")  # doctest: +SKIP
>>> model = LeanModel.from_dir(cached)  # doctest: +SKIP
>>> model.decide(time, open, high, low, close, volume, spread_points=12).action  # doctest: +SKIP
'HOLD'
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from aibridge.model_bundle import (
    ARTIFACT_BOOSTER,
    ARTIFACT_DECISION,
    MANIFEST,
    artifact_paths,
)
from aibridge.serving.bundled import BundledModel
from aibridge.serving.decide import DecisionTwin, matches
from aibridge.serving.features_row import (
    SUPPORTED_VERSIONS,
    FeatureParams,
    LeanFeatures,
    feature_row,
)
from aibridge.serving.lgbm import NativeBooster, NativeBoosterError
from aibridge.serving.types import ModelInfo, ModelLoadError

__all__ = ["MANIFEST", "LeanModel", "artifact_paths", "load_module_from_file", "read_manifest"]


def load_module_from_file(path: str | Path, tag: str) -> ModuleType:
    """``aibridge.pyfunc_model.load_module_from_file``: the same content-derived module name,
    so both loaders share one module object (and numba's cache) in one process. Written twice
    on purpose: ``pyfunc_model.py`` runs inside MLflow models without this package, and this
    module must not import MLflow or pandas (``pyfunc_model`` does)."""
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


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / MANIFEST
    manifest: dict[str, Any] | None = json.loads(path.read_text()) if path.is_file() else None
    return manifest


class LeanModel(BundledModel):
    """One registered model version, ready to decide on a window of candles (lean path)."""

    def _load(self, paths: dict[str, Path]) -> None:
        info = self.info
        version = str(self.settings.get("feature_set_version", "2"))
        if version not in SUPPORTED_VERSIONS:
            raise ModelLoadError(
                f"{info.name} v{info.version}: feature set {version} is not in the lean runtime "
                f"({sorted(SUPPORTED_VERSIONS)}); serve it with the full loader "
                "(aibridge.serving_model)"
            )
        self._params = FeatureParams(self.feature_params)
        self.features = LeanFeatures(self.feature_params)
        self.decision = load_module_from_file(paths[ARTIFACT_DECISION], "decision")
        try:
            self.booster = NativeBooster(paths[ARTIFACT_BOOSTER])
        except NativeBoosterError as exc:
            raise ModelLoadError(f"cannot load {info.name} v{info.version}: {exc}") from None
        if self.booster.num_features != len(self._params.names):
            raise ModelLoadError(
                f"{info.name} v{info.version}: the booster takes {self.booster.num_features} "
                f"features, feature_params give {len(self._params.names)}"
            )

    def _check(self, paths: dict[str, Path]) -> None:
        if self.min_bars != self._params.min_bars:
            raise ModelLoadError(
                f"{self.info.name} v{self.info.version}: min_bars {self.min_bars} but the "
                f"feature parameters need {self._params.min_bars}"
            )

    def _decision_twin(self, paths: dict[str, Path]) -> DecisionTwin | None:
        # The scalar twin of decide_rows, for bundles carrying the decision.py it mirrors.
        if self._ev_path and matches(paths[ARTIFACT_DECISION]):
            return DecisionTwin(self._decision_settings, self.calibration)
        return None

    @classmethod
    def from_dir(cls, model_dir: Path, alias: str | None = None) -> LeanModel:
        """A model from a directory ``aibridge.serving.fetch`` wrote (info from its manifest)."""
        manifest = read_manifest(model_dir)
        if manifest is None:
            raise ModelLoadError(f"{model_dir} has no {MANIFEST}; run aibridge.serving.fetch")
        check = manifest.get("check") or {}
        if check.get("differ"):
            raise ModelLoadError(
                f"{model_dir.name}: the lean runtime decided differently from the bundle's own "
                f"code on {check['differ']} of {check['bars']} check bars; serve this version "
                "with the full loader (aibridge.serving_model)"
            )
        info = ModelInfo(**{**manifest["info"], "alias": alias or manifest["info"].get("alias")})
        return cls(info, model_dir)

    def raw_proba(
        self,
        time: np.ndarray,
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
    ) -> tuple[np.ndarray, float, float]:
        """The booster's probabilities for the newest bar, its close and its ATR."""
        row, atr = feature_row(time, open, high, low, close, volume, self._params)
        x = np.array(row, dtype=np.float64)
        if not np.isfinite(x).all():
            raise ValueError("candles produce non-finite features (zero or NaN prices?)")
        return self.booster.predict_row(x), float(close[-1]), atr
