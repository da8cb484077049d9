"""Load a registered model for serving: resolve the alias, download once, decide fast.

``pyfunc.predict`` spends ~1.5 ms per call mostly on schema enforcement. The server instead
uses the *same bundled files* directly: the model's own ``features.py`` on the window of
recent candles, the native LightGBM booster, and the model's own ``decision.py``. Because the
features are window-exact (see ``features``), this gives bit-identical decisions to
``pyfunc.predict`` on the full history, which the tests check on every bar of the sample.

This loader imports MLflow, the lightgbm package (which imports pandas and scikit-learn) and
numba: ~410 MB resident in the server. :mod:`aibridge.serving` is the lean data plane with the
same ``decide`` bits in ~80 MB; ``aibridge.serving.fetch`` uses this module to check it.
The value types (``ModelInfo``, ``Decision``, the errors) live in ``aibridge.serving.types``
and are re-exported here.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import lightgbm as lgb
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from aibridge.ingest.broker_clock import BrokerClock
from aibridge.pyfunc_model import (
    ARTIFACT_BOOSTER,
    ARTIFACT_DECISION,
    ARTIFACT_FEATURES,
    ARTIFACT_SETTINGS,
    load_module_from_file,
)
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


def resolve_model_uri(model_uri: str, client: MlflowClient | None = None) -> ModelInfo:
    """Resolve an alias (or the latest version) to a concrete registered version."""
    client = client or MlflowClient()
    name, alias, version = parse_model_uri(model_uri)
    try:
        if alias:
            mv = client.get_model_version_by_alias(name, alias)
        elif version:
            mv = client.get_model_version(name, version)
        else:
            versions = client.search_model_versions(f"name='{name}'")
            if not versions:
                raise ModelLoadError(f"registered model {name!r} has no versions")
            mv = max(versions, key=lambda v: int(v.version))
    except MlflowException as exc:
        raise ModelLoadError(f"cannot resolve {model_uri}: {exc.message}") from None
    tags = mv.tags or {}
    return ModelInfo(
        name=name,
        version=str(mv.version),
        alias=alias,
        run_id=mv.run_id or "",
        trained_at=tags.get("trained_at", ""),
        data_hash=tags.get("data_hash", ""),
        symbol=tags.get("symbol", ""),
        timeframe=tags.get("timeframe", ""),
    )


def _artifact_paths(model_dir: Path) -> dict[str, Path]:
    import yaml

    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    declared = mlmodel["flavors"]["python_function"].get("artifacts", {})
    return {key: model_dir / entry["path"] for key, entry in declared.items()}


class ServingModel:
    """One registered model version, ready to decide on a window of candles."""

    def __init__(self, info: ModelInfo, model_dir: Path) -> None:
        paths = _artifact_paths(model_dir)
        missing = {ARTIFACT_BOOSTER, ARTIFACT_SETTINGS, ARTIFACT_FEATURES, ARTIFACT_DECISION} - set(
            paths
        )
        if missing:
            raise ModelLoadError(
                f"{info.name} v{info.version} is not an aibridge model (missing {sorted(missing)})"
            )
        self.info = info
        self.model_dir = model_dir
        self.settings: dict[str, Any] = json.loads(paths[ARTIFACT_SETTINGS].read_text())
        self.features: ModuleType = load_module_from_file(paths[ARTIFACT_FEATURES], "features")
        self.decision: ModuleType = load_module_from_file(paths[ARTIFACT_DECISION], "decision")
        self.booster = lgb.Booster(model_file=str(paths[ARTIFACT_BOOSTER]))
        s = self.settings
        self.feature_params: dict[str, Any] = s["feature_params"]
        self.min_bars: int = int(s["min_bars"])
        self.digits: int = int(s["digits"])
        self.point: float = float(s["point"])
        # Training instrument and broker clock; None for bundles older than these keys.
        self.tick_size: float | None = _optional(float, s.get("tick_size"))
        self.contract_size: float | None = _optional(float, s.get("contract_size"))
        self.broker_utc_offset_s: int | None = _optional(int, s.get("broker_utc_offset_s"))
        self.broker_dst: str | None = s.get("broker_dst")
        self._broker_clock = BrokerClock(
            utc_offset_s=self.broker_utc_offset_s,
            source=str(s.get("broker_clock", {}).get("source", "unknown")),
            dst=self.broker_dst,
        )
        self.min_confidence: float = float(s["min_confidence"])
        self.sl_atr_mult: float = float(s["sl_atr_mult"])
        self.tp_atr_mult: float = float(s["tp_atr_mult"])
        self._atr_window = int(self.feature_params["atr_window"])
        # The decision rule travels with the model (its own decision.py): the expected-value
        # rule with its calibration, margin and costs, or the older confidence rule.
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

    def broker_utc_offset_at(self, at: float) -> int | None:
        """The UTC offset (seconds) the training broker's clock had at Unix time ``at``:
        ``broker_utc_offset_s``, plus an hour while its daylight-saving rule is in effect.
        Compare this, not ``broker_utc_offset_s``, with the EA's ``TimeCurrent() - TimeGMT()``:
        a GMT+2/+3 broker reports 10800 all summer."""
        return self._broker_clock.offset_at(at)

    def _warm_up(self) -> None:
        """Compile (or load from numba's cache) the feature kernels now, at load time, so the
        first real request -- or the first after a hot swap -- does not wait for it."""
        m = self.min_bars
        close = 1.0 + 0.001 * np.sin(np.arange(m, dtype=np.float64))
        time_s = np.arange(m, dtype=np.int64) * 3600
        self.decide(time_s, close, close + 0.001, close - 0.001, close, np.ones(m))

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
        """Decision for the newest candle, from the last ``min_bars`` candles (oldest first).

        ``spread_points``: the spread the trade would pay (the request's ``spread_points``);
        None: the training instrument's default. It enters the expected-value rule's costs
        and the BUY's SL/TP prices (measured from the Ask).
        """
        m = self.min_bars
        if len(close) < m:
            raise TooFewBarsError(f"{len(close)} candles sent, the model needs {m}")
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
        if self._ev_path:
            # The pyfunc's function on one row: the same bits as on the whole history.
            out = self.decision.decide_rows(
                raw,
                c[-1:],
                atr,
                None if spread_points is None else float(spread_points),
                self._decision_settings,
                self.calibration,
            )
            action = int(out["action"][0])
            trade = action != self.decision.HOLD
            proba = out["proba"][0]
            ev = float(out["ev_r"][0])
            return Decision(
                action=self._classes[action],
                confidence=float(out["confidence"][0]),
                probabilities={name: float(proba[i]) for i, name in enumerate(self._classes)},
                sl=float(out["sl"][0]) if trade else None,
                tp=float(out["tp"][0]) if trade else None,
                sl_points=float(out["sl_points"][0]) if trade else None,
                tp_points=float(out["tp_points"][0]) if trade else None,
                reason=str(out["reason"][0]),
                ev_r=ev if np.isfinite(ev) else None,
            )
        proba = raw[0]
        action, confidence, reason = self.decision.decide_one(
            proba[0], proba[1], proba[2], self.min_confidence
        )
        stops = self.decision.stops_one(action, c[-1], atr[0], self._decision_settings)
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


def _optional(cast: Any, value: Any) -> Any:
    return None if value is None else cast(value)


def load_serving_model(
    model_uri: str, tracking_uri: str | None = None, cache_dir: Path | None = None
) -> ServingModel:
    """Resolve ``model_uri`` through the registry, download that version once, load it."""
    import mlflow

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    info = resolve_model_uri(model_uri, client)
    target = (
        Path(cache_dir or tempfile.mkdtemp(prefix="aibridge-model-"))
        / f"{info.name}-v{info.version}"
    )
    if not (target / "MLmodel").is_file():
        try:
            if tracking_uri:
                mlflow.set_tracking_uri(tracking_uri)
                mlflow.set_registry_uri(tracking_uri)
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{info.name}/{info.version}", dst_path=str(target)
            )
        except (MlflowException, OSError) as exc:
            raise ModelLoadError(f"cannot download {info.name} v{info.version}: {exc}") from None
    try:
        return ServingModel(info, target)
    except (OSError, KeyError, json.JSONDecodeError, lgb.basic.LightGBMError) as exc:
        raise ModelLoadError(f"cannot load {info.name} v{info.version}: {exc}") from None
