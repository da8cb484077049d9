"""``decision.decide_rows`` for one row in scalars: the same bits in ~10 µs instead of ~150 µs.

The bundled ``decide_rows`` runs ~60 numpy calls on 1-element arrays. This twin does the same
IEEE arithmetic on Python floats, and calls numpy where the array version's result depends on
numpy's own routine (``log``, ``exp``, ``interp``, ``round``), on float64 scalars, which runs
the same loops. It is used only for bundles whose ``decision.py`` is byte-identical to the one
this twin was written against (:data:`TWIN_OF`, checked by content hash when a model loads);
any other bundle decides with its own ``decide_rows``. ``tests/test_serving_runtime.py``
compares the twin to ``decide_rows`` on every sample bar, for each calibration and rule.

>>> twin = DecisionTwin(settings_from(settings), settings.get("calibration"))  # doctest: +SKIP
>>> twin.decide(0.2, 0.5, 0.3, close=1.1012, atr=0.0011, spread_points=12.0)  # doctest: +SKIP
(1, 0.31, 'ev_below_margin', (0.2, 0.49, 0.31), -0.12, nan, nan, nan, nan)
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

SELL, HOLD, BUY = 0, 1, 2
_P_EPS = 1e-6
_NAN = float("nan")


def _source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def twin_hash() -> str | None:
    """Content hash of the ``decision.py`` this twin mirrors: the installed ``aibridge.decision``
    source (read as a file, not imported)."""
    path = Path(__file__).resolve().parents[1] / "decision.py"
    return _source_hash(path) if path.is_file() else None


TWIN_OF = twin_hash()


def matches(bundled_decision: Path) -> bool:
    return TWIN_OF is not None and _source_hash(bundled_decision) == TWIN_OF


class DecisionTwin:
    """The decision of one row: calibration, EV (or the confidence rule) and stops."""

    def __init__(self, settings: Any, calibration: dict[str, Any] | None) -> None:
        self.s = settings
        self.rule_ev = settings.rule == "ev"
        cal: dict[str, Any] = calibration or {}
        self.method = cal.get("method", "none") if self.rule_ev else "none"
        if self.method not in ("none", "isotonic", "sigmoid"):
            raise ValueError(f"unknown calibration method {self.method!r}")
        if self.method == "isotonic":
            self.xy = [
                (
                    np.asarray(cal["x"][k], dtype=np.float64),
                    np.asarray(cal["y"][k], dtype=np.float64),
                )
                for k in range(3)
            ]
        elif self.method == "sigmoid":
            self.ab = [(float(cal["a"][k]), float(cal["b"][k])) for k in range(3)]
        self.point = float(settings.point)
        self.digits = int(settings.digits)

    def _calibrate(self, p: tuple[float, float, float]) -> tuple[float, float, float]:
        if self.method == "none":
            return p
        if self.method == "isotonic":
            out = [float(np.interp(p[k], *self.xy[k])) for k in range(3)]
        else:
            out = []
            log, exp, f64 = np.log, np.exp, np.float64
            for k in range(3):
                pk = p[k]
                q = _P_EPS if pk < _P_EPS else (1.0 - _P_EPS if pk > 1.0 - _P_EPS else pk)
                q = f64(q)
                z = float(log(q) - log(1.0 - q))
                a, b = self.ab[k]
                out.append(float(1.0 / (1.0 + exp(-(a * z + b)))))
        total = out[0] + out[1] + out[2]
        if total > 0.0:
            return (out[0] / total, out[1] / total, out[2] / total)
        return p

    def _distances(self, atr: float) -> tuple[float, float]:
        s = self.s
        return (
            float(np.round(s.sl_atr_mult * atr / s.point)),
            float(np.round(s.tp_atr_mult * atr / s.point)),
        )

    def decide(
        self,
        p_sell: float,
        p_hold: float,
        p_buy: float,
        close: float,
        atr: float,
        spread_points: float | None,
    ) -> tuple[int, float, str, tuple[float, float, float], float, float, float, float, float]:
        """(action, confidence, reason, probabilities, ev_r, sl, tp, sl_points, tp_points)."""
        s = self.s
        spread = float(s.default_spread_points if spread_points is None else spread_points)
        raw = (float(p_sell), float(p_hold), float(p_buy))
        if self.rule_ev:
            proba = self._calibrate(raw)
            sl_pts, tp_pts = self._distances(atr)
            missing = not (
                math.isfinite(proba[0])
                and math.isfinite(proba[1])
                and math.isfinite(proba[2])
                and math.isfinite(sl_pts)
                and sl_pts > 0
            )
            safe_sl = 1.0 if missing else sl_pts
            rr = (0.0 if missing else tp_pts) / safe_sl
            if s.spread_cost == "full":
                extra = spread
            else:
                d = spread - s.spread_ref_points
                extra = d if (d > 0.0 or d != d) else 0.0
            cost = (s.cost_points + extra) / safe_sl
            pb = 0.0 if missing else proba[BUY]
            ps = 0.0 if missing else proba[SELL]
            ev_buy = pb * rr - (1.0 - pb) - cost
            ev_sell = ps * rr - (1.0 - ps) - cost
            long_side = ev_buy >= ev_sell
            side = BUY if long_side else SELL
            ev = ev_buy if long_side else ev_sell
            confidence = pb if long_side else ps
            if s.ev_margin is None:
                pays, not_paid = False, "no_edge"
            else:
                pays, not_paid = ev > s.ev_margin, "ev_below_margin"
            confident = confidence >= s.min_confidence
            trade = not missing and pays and confident
            action = side if trade else HOLD
            if missing:
                reason = "insufficient_history"
            elif not pays:
                reason = not_paid
            elif not confident:
                reason = "below_min_confidence"
            else:
                reason = "signal"
            confidence = 0.0 if missing else confidence
            ev = _NAN if missing else ev
        else:
            proba = raw
            ev = _NAN
            spread = 0.0  # the confidence rule measured SL/TP from the close
            if not all(math.isfinite(x) for x in raw):
                action, confidence, reason = HOLD, 0.0, "insufficient_history"
            else:
                best = SELL
                if raw[HOLD] > raw[best]:
                    best = HOLD
                if raw[BUY] > raw[best]:
                    best = BUY
                confidence = raw[best]
                if best == HOLD:
                    action, reason = HOLD, "model_hold"
                elif confidence < s.min_confidence:
                    action, reason = HOLD, "below_min_confidence"
                else:
                    action, reason = best, "signal"
        direction = 1 if action == BUY else -1 if action == SELL else 0
        if direction == 0 or not math.isfinite(atr):
            return action, confidence, reason, proba, ev, _NAN, _NAN, _NAN, _NAN
        sl_dist, tp_dist = self._distances(atr)
        point = self.point
        entry = close + (spread * point if direction > 0 else 0.0)
        sl = float(np.round(np.float64(entry - direction * sl_dist * point), self.digits))
        tp = float(np.round(np.float64(entry + direction * tp_dist * point), self.digits))
        return action, confidence, reason, proba, ev, sl, tp, sl_dist, tp_dist
