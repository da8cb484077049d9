"""What both serving runtimes share: a model version read from its bundle, and its decision.

The full runtime (``aibridge.serving_model.ServingModel``: compiled feature kernel, the
lightgbm package, MLflow downloads) and the lean one (``aibridge.serving.runtime.LeanModel``:
feature row in Python, LightGBM's C library) differ only in how they get the newest bar's
class probabilities and ATR. Everything else is here, written once: reading ``settings.json``
(:func:`aibridge.model_bundle.read_settings`), the served attributes (``min_bars``, the
training instrument and broker clock, the decision settings), the bundled ``decision.py``
turned into a :class:`~aibridge.serving.types.Decision` for one row, and the warm-up.
Imports numpy and the standard library only, like the lean runtime.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from aibridge.model_bundle import artifact_paths, missing_artifacts, read_settings
from aibridge.serving import clock
from aibridge.serving.types import Decision, ModelInfo, ModelLoadError, TooFewBarsError


def decision_settings(decision: ModuleType, s: dict[str, Any]) -> Any:
    """The bundled ``decision.py``'s settings object from ``settings.json``: its own
    ``settings_from`` (expected-value rule), or, for a ``decision.py`` older than that rule, its
    ``DecisionSettings`` from the five keys it knew. (``pyfunc_model.py`` repeats this: MLflow
    loads it where this package may be missing.)"""
    if hasattr(decision, "decide_rows"):
        return decision.settings_from(s)
    return decision.DecisionSettings(
        min_confidence=float(s["min_confidence"]),
        tp_atr_mult=float(s["tp_atr_mult"]),
        sl_atr_mult=float(s["sl_atr_mult"]),
        digits=int(s["digits"]),
        point=float(s["point"]),
    )


def _optional(cast: Any, value: Any) -> Any:
    return None if value is None else cast(value)


class BundledModel:
    """One registered model version read from its bundle directory; subclasses load the code
    (:meth:`_load`) and compute the newest bar's probabilities (:meth:`raw_proba`)."""

    decision: ModuleType

    def __init__(self, info: ModelInfo, model_dir: Path) -> None:
        paths = artifact_paths(model_dir)
        missing = missing_artifacts(paths)
        if missing:
            raise ModelLoadError(
                f"{info.name} v{info.version} is not an aibridge model (missing {missing})"
            )
        self.info = info
        self.model_dir = model_dir
        self.settings: dict[str, Any] = read_settings(paths)
        s = self.settings
        self.feature_params: dict[str, Any] = s["feature_params"]
        self._load(paths)
        self.min_bars: int = int(s["min_bars"])
        self._check(paths)
        self.digits: int = int(s["digits"])
        self.point: float = float(s["point"])
        # Training instrument and broker clock; None for bundles older than these keys.
        self.tick_size: float | None = _optional(float, s.get("tick_size"))
        self.contract_size: float | None = _optional(float, s.get("contract_size"))
        self.broker_utc_offset_s: int | None = _optional(int, s.get("broker_utc_offset_s"))
        self.broker_dst: str | None = s.get("broker_dst")
        self.min_confidence: float = float(s["min_confidence"])
        self.sl_atr_mult: float = float(s["sl_atr_mult"])
        self.tp_atr_mult: float = float(s["tp_atr_mult"])
        # The decision rule travels with the model (its own decision.py): the expected-value
        # rule with its calibration, margin and costs, or the older confidence rule.
        self._ev_path = hasattr(self.decision, "decide_rows")
        self._decision_settings = decision_settings(self.decision, s)
        self.calibration: dict[str, Any] | None = s.get("calibration")
        self._twin: Any = self._decision_twin(paths)
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

    # ------------------------------------------------------------------ per runtime
    def _load(self, paths: dict[str, Path]) -> None:
        """Load the bundle's code and trees; must set ``self.decision``."""
        raise NotImplementedError

    def _check(self, paths: dict[str, Path]) -> None:
        """Refuse a bundle this runtime cannot serve (:class:`ModelLoadError`)."""

    def _decision_twin(self, paths: dict[str, Path]) -> Any:
        """A scalar stand-in for ``decide_rows`` (``aibridge.serving.decide``), or None."""
        return None

    def raw_proba(
        self,
        time: np.ndarray,
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
    ) -> tuple[np.ndarray, Any, Any]:
        """(class probabilities, close, ATR) of the newest of the last ``min_bars`` candles."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    def broker_utc_offset_at(self, at: float) -> int | None:
        """The UTC offset (seconds) the training broker's clock had at Unix time ``at``:
        ``broker_utc_offset_s``, plus an hour while its daylight-saving rule is in effect.
        Compare this, not ``broker_utc_offset_s``, with the EA's ``TimeCurrent() - TimeGMT()``:
        a GMT+2/+3 broker reports 10800 all summer."""
        return clock.offset_at(self.broker_utc_offset_s, self.broker_dst, at)

    def _warm_up(self) -> None:
        """Decide once at load time, so the first real request -- or the first after a hot
        swap -- does not wait for compilation, caches or lazy imports."""
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
        proba, c_last, atr = self.raw_proba(time, open, high, low, close, volume)
        return self.decide_proba(proba, c_last, atr, spread_points)

    def decide_proba(
        self, proba: np.ndarray, c_last: Any, atr: Any, spread_points: float | None
    ) -> Decision:
        """The bundled decision rule on one bar's raw class probabilities."""
        names = self._classes
        if self._twin is not None:
            action, confidence, reason, p, ev, sl, tp, sl_pts, tp_pts = self._twin.decide(
                proba[0], proba[1], proba[2], c_last, atr, spread_points
            )
            trade = action != 1
            return Decision(
                action=names[action],
                confidence=float(confidence),
                probabilities={name: float(p[i]) for i, name in enumerate(names)},
                sl=sl if trade else None,
                tp=tp if trade else None,
                sl_points=sl_pts if trade else None,
                tp_points=tp_pts if trade else None,
                reason=reason,
                ev_r=ev if ev == ev and abs(ev) != float("inf") else None,
            )
        if self._ev_path:
            # The pyfunc's function on one row: the same bits as on the whole history.
            out = self.decision.decide_rows(
                np.asarray(proba).reshape(1, -1),
                np.array([c_last]),
                np.array([atr]),
                None if spread_points is None else float(spread_points),
                self._decision_settings,
                self.calibration,
            )
            action = int(out["action"][0])
            trade = action != self.decision.HOLD
            row = out["proba"][0]
            ev_r = float(out["ev_r"][0])
            return Decision(
                action=names[action],
                confidence=float(out["confidence"][0]),
                probabilities={name: float(row[i]) for i, name in enumerate(names)},
                sl=float(out["sl"][0]) if trade else None,
                tp=float(out["tp"][0]) if trade else None,
                sl_points=float(out["sl_points"][0]) if trade else None,
                tp_points=float(out["tp_points"][0]) if trade else None,
                reason=str(out["reason"][0]),
                ev_r=ev_r if np.isfinite(ev_r) else None,
            )
        action, confidence, reason = self.decision.decide_one(
            proba[0], proba[1], proba[2], self.min_confidence
        )
        stops = self.decision.stops_one(action, c_last, atr, self._decision_settings)
        sl_p, tp_p, sl_pts_, tp_pts_ = stops if stops else (None, None, None, None)
        return Decision(
            action=names[action],
            confidence=float(confidence),
            probabilities={name: float(proba[i]) for i, name in enumerate(names)},
            sl=sl_p,
            tp=tp_p,
            sl_points=sl_pts_,
            tp_points=tp_pts_,
            reason=reason,
        )
