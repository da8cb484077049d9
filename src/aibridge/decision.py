"""From class probabilities to a trading decision with stop-loss and take-profit.

Shared by the MLflow pyfunc model, the server's fast path and the backtest, so that all three
turn the same probabilities into the same action.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# This module is bundled into every logged model next to ``features.py``; it imports only numpy.
CLASSES: tuple[str, str, str] = ("SELL", "HOLD", "BUY")
SELL, HOLD, BUY = 0, 1, 2
ACTION_NAMES = CLASSES  # index → "SELL" / "HOLD" / "BUY"
DIRECTION = np.array([-1, 0, 1], dtype=np.int8)  # index → -1 / 0 / +1

REASON_SIGNAL = "signal"
REASON_MODEL_HOLD = "model_hold"
REASON_LOW_CONFIDENCE = "below_min_confidence"
REASON_NO_HISTORY = "insufficient_history"


@dataclass(frozen=True)
class DecisionSettings:
    """Everything besides the booster that decides an action; logged with the model."""

    min_confidence: float
    tp_atr_mult: float
    sl_atr_mult: float
    digits: int
    point: float


def decide(proba: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: class index of the action, its confidence, and a reason code.

    The most probable class is the candidate; a BUY/SELL whose probability is below
    ``min_confidence`` becomes HOLD. Rows with NaN probabilities (no history) are HOLD.
    """
    proba = np.asarray(proba, dtype=np.float64)
    missing = ~np.isfinite(proba).all(axis=1)
    safe = np.where(missing[:, None], 0.0, proba)
    best = safe.argmax(axis=1)
    confidence = safe[np.arange(len(safe)), best]
    action = best.copy()
    weak = (best != HOLD) & (confidence < min_confidence)
    action[weak] = HOLD
    reason = np.where(
        missing,
        REASON_NO_HISTORY,
        np.where(
            weak, REASON_LOW_CONFIDENCE, np.where(best == HOLD, REASON_MODEL_HOLD, REASON_SIGNAL)
        ),
    )
    confidence = np.where(missing, 0.0, confidence)
    action[missing] = HOLD
    return action, confidence, reason


def stops(
    action: np.ndarray, close: np.ndarray, atr: np.ndarray, settings: DecisionSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SL/TP prices (rounded to the symbol's digits) and distances in points; NaN for HOLD."""
    close = np.asarray(close, dtype=np.float64)
    atr = np.asarray(atr, dtype=np.float64)
    direction = DIRECTION[np.asarray(action)]
    sl_dist = np.round(settings.sl_atr_mult * atr / settings.point)
    tp_dist = np.round(settings.tp_atr_mult * atr / settings.point)
    sl = np.round(close - direction * sl_dist * settings.point, settings.digits)
    tp = np.round(close + direction * tp_dist * settings.point, settings.digits)
    trade = (direction != 0) & np.isfinite(atr)
    nan = np.nan
    return (
        np.where(trade, sl, nan),
        np.where(trade, tp, nan),
        np.where(trade, sl_dist, nan),
        np.where(trade, tp_dist, nan),
    )


__all__ = [
    "ACTION_NAMES",
    "BUY",
    "CLASSES",
    "DIRECTION",
    "HOLD",
    "REASON_LOW_CONFIDENCE",
    "REASON_NO_HISTORY",
    "SELL",
    "DecisionSettings",
    "decide",
    "decide_one",
    "stops",
    "stops_one",
]


def decide_one(
    p_sell: float, p_hold: float, p_buy: float, min_confidence: float
) -> tuple[int, float, str]:
    """``decide`` for one row without array overhead (the server's per-request path).

    Same rule, same tie-breaking as ``np.argmax`` (first maximum wins); tested equal to
    ``decide`` on every bar of the sample.
    """
    proba = (p_sell, p_hold, p_buy)
    if not all(np.isfinite(proba)):
        return HOLD, 0.0, REASON_NO_HISTORY
    best = SELL
    if p_hold > proba[best]:
        best = HOLD
    if p_buy > proba[best]:
        best = BUY
    confidence = proba[best]
    if best == HOLD:
        return HOLD, confidence, REASON_MODEL_HOLD
    if confidence < min_confidence:
        return HOLD, confidence, REASON_LOW_CONFIDENCE
    return best, confidence, REASON_SIGNAL


def stops_one(
    action: int, close: float, atr: float, settings: DecisionSettings
) -> tuple[float, float, float, float] | None:
    """``stops`` for one row: (sl, tp, sl_points, tp_points), or ``None`` for HOLD.

    Uses numpy float64 scalars and ``np.round`` so the rounding is the array version's.
    """
    direction = int(DIRECTION[action])
    if direction == 0 or not np.isfinite(atr):
        return None
    close64, atr64 = np.float64(close), np.float64(atr)
    sl_dist = np.round(settings.sl_atr_mult * atr64 / settings.point)
    tp_dist = np.round(settings.tp_atr_mult * atr64 / settings.point)
    sl = np.round(close64 - direction * sl_dist * settings.point, settings.digits)
    tp = np.round(close64 + direction * tp_dist * settings.point, settings.digits)
    return float(sl), float(tp), float(sl_dist), float(tp_dist)
