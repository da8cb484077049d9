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

It has the attributes and ``decide`` of ``aibridge.bundle.ServingModel`` and gives the same
bits; the server can serve either.

>>> model = LeanModel.from_dir(Path("~/.cache/aibridge/models/aibridge-EURUSD-H1-v3"))
>>> model.decide(time, open, high, low, close, volume, spread_points=12).action
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

from aibridge.serving import clock
from aibridge.serving.decide import DecisionTwin, matches
from aibridge.serving.features_row import (
    SUPPORTED_VERSIONS,
    FeatureParams,
    LeanFeatures,
    feature_row,
)
from aibridge.serving.lgbm import NativeBooster, NativeBoosterError
from aibridge.serving.types import Decision, ModelInfo, ModelLoadError, TooFewBarsError

MANIFEST = "aibridge-serving.json"
# The pyfunc's artifact keys (``aibridge.pyfunc_model``), repeated so that module (mlflow,
# pandas) is never imported here.
_ARTIFACTS = ("booster", "settings", "features", "decision")


def load_module_from_file(path: str | Path, tag: str) -> ModuleType:
    """``aibridge.pyfunc_model.load_module_from_file``: the same content-derived module name,
    so both loaders share one module object (and numba's cache) in one process."""
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


def artifact_paths(model_dir: Path) -> dict[str, Path]:
    """Artifact key → file of an MLflow model directory (from the manifest, else MLmodel)."""
    manifest = model_dir / MANIFEST
    if manifest.is_file():
        declared = json.loads(manifest.read_text())["artifacts"]
        return {key: model_dir / rel for key, rel in declared.items()}
    import yaml  # small; only for directories the fetch step did not write

    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    declared = mlmodel["flavors"]["python_function"].get("artifacts", {})
    return {key: model_dir / entry["path"] for key, entry in declared.items()}


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def _optional(cast: Any, value: Any) -> Any:
    return None if value is None else cast(value)


class LeanModel:
    """One registered model version, ready to decide on a window of candles (lean path)."""

    def __init__(self, info: ModelInfo, model_dir: Path) -> None:
        paths = artifact_paths(model_dir)
        missing = set(_ARTIFACTS) - set(paths)
        if missing:
            raise ModelLoadError(
                f"{info.name} v{info.version} is not an aibridge model (missing {sorted(missing)})"
            )
        self.info = info
        self.model_dir = model_dir
        self.settings: dict[str, Any] = json.loads(paths["settings"].read_text())
        s = self.settings
        version = str(s.get("feature_set_version", "2"))
        if version not in SUPPORTED_VERSIONS:
            raise ModelLoadError(
                f"{info.name} v{info.version}: feature set {version} is not in the lean runtime "
                f"({sorted(SUPPORTED_VERSIONS)}); serve it with the full loader (aibridge.bundle)"
            )
        self.feature_params: dict[str, Any] = s["feature_params"]
        self._params = FeatureParams(self.feature_params)
        self.features = LeanFeatures(self.feature_params)
        self.decision: ModuleType = load_module_from_file(paths["decision"], "decision")
        try:
            self.booster = NativeBooster(paths["booster"])
        except NativeBoosterError as exc:
            raise ModelLoadError(f"cannot load {info.name} v{info.version}: {exc}") from None
        if self.booster.num_features != len(self._params.names):
            raise ModelLoadError(
                f"{info.name} v{info.version}: the booster takes {self.booster.num_features} "
                f"features, feature_params give {len(self._params.names)}"
            )
        self.min_bars: int = int(s["min_bars"])
        if self.min_bars != self._params.min_bars:
            raise ModelLoadError(
                f"{info.name} v{info.version}: min_bars {self.min_bars} but the feature "
                f"parameters need {self._params.min_bars}"
            )
        self.digits: int = int(s["digits"])
        self.point: float = float(s["point"])
        self.tick_size: float | None = _optional(float, s.get("tick_size"))
        self.contract_size: float | None = _optional(float, s.get("contract_size"))
        self.broker_utc_offset_s: int | None = _optional(int, s.get("broker_utc_offset_s"))
        self.broker_dst: str | None = s.get("broker_dst")
        self.min_confidence: float = float(s["min_confidence"])
        self.sl_atr_mult: float = float(s["sl_atr_mult"])
        self.tp_atr_mult: float = float(s["tp_atr_mult"])
        self._ev_path = hasattr(self.decision, "decide_rows")
        if self._ev_path:
            self._decision_settings = self.decision.settings_from(s)
        else:
            self._decision_settings = self.decision.DecisionSettings(
                min_confidence=self.min_confidence,
                tp_atr_mult=self.tp_atr_mult,
                sl_atr_mult=self.sl_atr_mult,
                digits=self.digits,
                point=self.point,
            )
        self.calibration: dict[str, Any] | None = s.get("calibration")
        # The scalar twin of decide_rows, for bundles carrying the decision.py it mirrors.
        self._twin: DecisionTwin | None = None
        if self._ev_path and matches(paths["decision"]):
            self._twin = DecisionTwin(self._decision_settings, self.calibration)
        self.decision_rule: str = str(s.get("decision_rule", "confidence"))
        ev_margin = s.get("ev_margin")
        self.ev_margin: float | None = None if ev_margin is None else float(ev_margin)
        self.default_spread_points: float = float(s.get("default_spread_points", 0.0))
        self._classes = tuple(s.get("classes", self.decision.CLASSES))
        if not info.symbol:
            self.info = ModelInfo(
                **{**info.__dict__, "symbol": s["symbol"], "timeframe": s["timeframe"]}
            )
        self._warm_up()

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
                "with the full loader (aibridge.bundle)"
            )
        info = ModelInfo(**{**manifest["info"], "alias": alias or manifest["info"].get("alias")})
        return cls(info, model_dir)

    def broker_utc_offset_at(self, at: float) -> int | None:
        """As ``ServingModel.broker_utc_offset_at``: the offset the training broker's clock had
        at Unix time ``at`` (+1 h while its daylight-saving rule is in effect)."""
        return clock.offset_at(self.broker_utc_offset_s, self.broker_dst, at)

    def _warm_up(self) -> None:
        m = self.min_bars
        close = 1.0 + 0.001 * np.sin(np.arange(m, dtype=np.float64))
        time_s = np.arange(m, dtype=np.int64) * 3600
        self.decide(time_s, close, close + 0.001, close - 0.001, close, np.ones(m))

    def raw_proba(self, time, open, high, low, close, volume) -> tuple[np.ndarray, float]:
        """The booster's probabilities for the newest bar and that bar's ATR."""
        row, atr = feature_row(time, open, high, low, close, volume, self._params)
        x = np.array(row, dtype=np.float64)
        if not np.isfinite(x).all():
            raise ValueError("candles produce non-finite features (zero or NaN prices?)")
        return self.booster.predict_row(x), atr

    def decide(
        self,
        time: np.ndarray,
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
        spread_points: float | None = None,
    ) -> Decision:
        """``ServingModel.decide``: the decision for the newest candle of the last ``min_bars``."""
        m = self.min_bars
        if len(close) < m:
            raise TooFewBarsError(f"{len(close)} candles sent, the model needs {m}")
        proba, atr = self.raw_proba(time, open, high, low, close, volume)
        c_last = float(close[-1])
        if self._twin is not None:
            action, confidence, reason, p, ev, sl, tp, sl_pts, tp_pts = self._twin.decide(
                proba[0], proba[1], proba[2], c_last, atr, spread_points
            )
            trade = action != 1
            return Decision(
                action=self._classes[action],
                confidence=float(confidence),
                probabilities={name: float(p[i]) for i, name in enumerate(self._classes)},
                sl=sl if trade else None,
                tp=tp if trade else None,
                sl_points=sl_pts if trade else None,
                tp_points=tp_pts if trade else None,
                reason=reason,
                ev_r=ev if ev == ev and abs(ev) != float("inf") else None,
            )
        if self._ev_path:
            out = self.decision.decide_rows(
                proba.reshape(1, -1),
                np.array([c_last]),
                np.array([atr]),
                None if spread_points is None else float(spread_points),
                self._decision_settings,
                self.calibration,
            )
            action = int(out["action"][0])
            trade = action != self.decision.HOLD
            p = out["proba"][0]
            ev = float(out["ev_r"][0])
            return Decision(
                action=self._classes[action],
                confidence=float(out["confidence"][0]),
                probabilities={name: float(p[i]) for i, name in enumerate(self._classes)},
                sl=float(out["sl"][0]) if trade else None,
                tp=float(out["tp"][0]) if trade else None,
                sl_points=float(out["sl_points"][0]) if trade else None,
                tp_points=float(out["tp_points"][0]) if trade else None,
                reason=str(out["reason"][0]),
                ev_r=ev if np.isfinite(ev) else None,
            )
        action, confidence, reason = self.decision.decide_one(
            proba[0], proba[1], proba[2], self.min_confidence
        )
        stops = self.decision.stops_one(action, c_last, atr, self._decision_settings)
        sl_p, tp_p, sl_pts, tp_pts = stops if stops else (None, None, None, None)
        return Decision(
            action=self._classes[action],
            confidence=float(confidence),
            probabilities={name: float(proba[i]) for i, name in enumerate(self._classes)},
            sl=sl_p,
            tp=tp_p,
            sl_points=sl_pts,
            tp_points=tp_pts,
            reason=reason,
        )
