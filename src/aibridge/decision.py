"""From class probabilities to a trading decision with stop-loss and take-profit.

Shared by the MLflow pyfunc model, the server's fast path and the backtest, so that all three
turn the same probabilities into the same action.

Two rules, chosen by the model's settings (``decision_rule``):

* ``ev`` (models trained since the expected-value rule): the booster's class probabilities are
  calibrated (:func:`calibrate`, fitted on the validation window), then each side's expected
  result in R (multiples of the stop distance) is

      EV = p(TP first) * TP/SL - (1 - p(TP first)) * 1 - costs_R

  where ``p(TP first)`` is the calibrated p(BUY) for a long and p(SELL) for a short (a label
  BUY means "the long entered at the next open reached TP before SL"); whatever is not a TP is
  counted as a full stop, which is conservative for trades that end at the time barrier.
  ``costs_R = (cost_points + spread_cost) / sl_points`` (commission round trip + expected
  slippage, and the spread beyond the one the labels already paid; see :func:`costs_r`).
  The side with the larger EV is traded when its EV exceeds ``ev_margin`` (chosen on the
  validation window, stored in the model); ``ev_margin`` None means no margin paid on
  validation: the model never trades (reason ``no_edge``). ``min_confidence`` (> 0) is an
  optional extra filter on the traded side's calibrated probability.
* ``confidence`` (older bundles): the most probable class, HOLD when below ``min_confidence``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
REASON_EV_BELOW_MARGIN = "ev_below_margin"
REASON_NO_EDGE = "no_edge"

RULE_CONFIDENCE = "confidence"
RULE_EV = "ev"
_P_EPS = 1e-6


@dataclass(frozen=True)
class DecisionSettings:
    """Everything besides the booster that decides an action; logged with the model.

    The fields after ``point`` belong to the expected-value rule; their defaults give the
    confidence rule of older bundles.
    """

    min_confidence: float
    tp_atr_mult: float
    sl_atr_mult: float
    digits: int
    point: float
    rule: str = RULE_CONFIDENCE
    ev_margin: float | None = None  # R; None: no margin paid on validation → never trade
    cost_points: float = 0.0  # commission round trip + expected slippage, in points
    spread_ref_points: float = 0.0  # spread the labels already paid (training median)
    default_spread_points: float = 0.0  # when the request carries no spread
    spread_cost: str = "excess"  # "excess": spread beyond spread_ref; "full": the whole spread


def settings_from(s: dict[str, Any]) -> DecisionSettings:
    """The decision settings of a bundle's ``settings.json`` (older keys default)."""
    margin = s.get("ev_margin")
    return DecisionSettings(
        min_confidence=float(s["min_confidence"]),
        tp_atr_mult=float(s["tp_atr_mult"]),
        sl_atr_mult=float(s["sl_atr_mult"]),
        digits=int(s["digits"]),
        point=float(s["point"]),
        rule=str(s.get("decision_rule", RULE_CONFIDENCE)),
        ev_margin=None if margin is None else float(margin),
        cost_points=float(s.get("cost_points", 0.0)),
        spread_ref_points=float(s.get("spread_ref_points", 0.0)),
        default_spread_points=float(s.get("default_spread_points", 0.0)),
        spread_cost=str(s.get("spread_cost", "excess")),
    )


# --------------------------------------------------------------------------- calibration


def calibrate(proba: np.ndarray, calibration: dict[str, Any] | None) -> np.ndarray:
    """Calibrated class probabilities, one-vs-rest per class, renormalised to sum to 1.

    ``calibration``: None / ``{"method": "none"}``, ``{"method": "isotonic", "x": [[...]] * 3,
    "y": [[...]] * 3}`` (piecewise-linear, clipped at the ends, as sklearn's isotonic
    regression predicts) or ``{"method": "sigmoid", "a": [..3], "b": [..3]}``
    (``1 / (1 + exp(-(a * logit(p) + b)))``). Rows with NaN stay NaN. Elementwise only, so one
    row gives the same bits alone as inside a matrix.

    An isotonic map that halves p(SELL) and keeps the others, then renormalised:

    >>> iso = {"method": "isotonic", "x": [[0, 1]] * 3, "y": [[0, 0.5], [0, 1], [0, 1]]}
    >>> calibrate(np.array([[0.2, 0.3, 0.5]]), iso).round(4)
    array([[0.1111, 0.3333, 0.5556]])
    """
    proba = np.asarray(proba, dtype=np.float64)
    method = (calibration or {}).get("method", "none")
    if method == "none" or calibration is None:
        return proba
    out = np.empty_like(proba)
    for k in range(proba.shape[1]):
        p = proba[:, k]
        if method == "isotonic":
            out[:, k] = np.interp(
                p,
                np.asarray(calibration["x"][k], dtype=np.float64),
                np.asarray(calibration["y"][k], dtype=np.float64),
            )
        elif method == "sigmoid":
            q = np.clip(p, _P_EPS, 1.0 - _P_EPS)
            z = np.log(q) - np.log(1.0 - q)
            a, b = float(calibration["a"][k]), float(calibration["b"][k])
            out[:, k] = 1.0 / (1.0 + np.exp(-(a * z + b)))
        else:
            raise ValueError(f"unknown calibration method {method!r}")
    total = out[:, 0] + out[:, 1] + out[:, 2]
    ok = total > 0.0
    return np.where(ok[:, None], out / np.where(ok, total, 1.0)[:, None], proba)


# --------------------------------------------------------------------------- expected value


def distances(atr: np.ndarray, settings: DecisionSettings) -> tuple[np.ndarray, np.ndarray]:
    """SL and TP distances in whole points (what the EA uses); NaN where ATR is unknown.

    >>> s = DecisionSettings(min_confidence=0, tp_atr_mult=2, sl_atr_mult=1, digits=5, point=1e-5)
    >>> distances(np.array([0.0012, np.nan]), s)
    (array([120.,  nan]), array([240.,  nan]))
    """
    atr = np.asarray(atr, dtype=np.float64)
    sl_dist = np.round(settings.sl_atr_mult * atr / settings.point)
    tp_dist = np.round(settings.tp_atr_mult * atr / settings.point)
    return sl_dist, tp_dist


def costs_r(
    sl_points: np.ndarray, spread_points: np.ndarray, settings: DecisionSettings
) -> np.ndarray:
    """Trading costs of one round trip in R (fractions of the stop distance).

    Labels enter at the next open on the right side of the spread, so the spread at training
    time is already in the probabilities; ``spread_cost="excess"`` therefore charges only the
    spread beyond ``spread_ref_points`` (the training median), ``"full"`` charges all of it
    (conservative, counts the typical spread twice).

    20 points of commission and slippage on a 100-point stop; the 5-point spread is the one
    the labels already paid:

    >>> s = DecisionSettings(0, 2, 1, 5, 1e-5, cost_points=20, spread_ref_points=5)
    >>> costs_r(np.array([100.0]), np.array([5.0]), s), costs_r(np.array([100.0]), 15.0, s)
    (array([0.2]), array([0.3]))
    """
    spread = np.asarray(spread_points, dtype=np.float64)
    if settings.spread_cost == "full":
        extra = spread
    else:
        extra = np.maximum(spread - settings.spread_ref_points, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (settings.cost_points + extra) / np.asarray(sl_points, dtype=np.float64)


def expected_r(p_tp: np.ndarray, reward_risk: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """EV in R of one side: ``p * TP/SL - (1 - p) - costs_R``.

    >>> expected_r(0.5, 2.0, 0.25)  # a coin flip at 2:1 pays 0.5 R, minus a quarter R of costs
    0.25
    """
    return p_tp * reward_risk - (1.0 - p_tp) - cost


def decide_ev(
    proba: np.ndarray,
    sl_points: np.ndarray,
    tp_points: np.ndarray,
    spread_points: np.ndarray,
    settings: DecisionSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row (calibrated probabilities): action index, confidence (the calibrated
    probability of the candidate side), reason, and the candidate side's EV in R.

    Stop 100 points, target 200, costs 0.2 R, margin 0.1 R: the first row's long is worth
    0.45 * 2 - 0.55 - 0.2 = 0.15 R and is traded; the second row's best side is worth -0.3 R.

    >>> s = DecisionSettings(0, 2, 1, 5, 1e-5, rule=RULE_EV, ev_margin=0.1, cost_points=20)
    >>> proba = np.array([[0.2, 0.35, 0.45], [0.3, 0.4, 0.3]])
    >>> action, confidence, reason, ev = decide_ev(proba, [100, 100], [200, 200], [0, 0], s)
    >>> [CLASSES[a] for a in action], reason.tolist(), ev.round(2).tolist()
    (['BUY', 'HOLD'], ['signal', 'ev_below_margin'], [0.15, -0.3])
    """
    proba = np.asarray(proba, dtype=np.float64)
    sl_points = np.asarray(sl_points, dtype=np.float64)
    tp_points = np.asarray(tp_points, dtype=np.float64)
    missing = ~(np.isfinite(proba).all(axis=1) & np.isfinite(sl_points) & (sl_points > 0))
    safe_sl = np.where(missing, 1.0, sl_points)
    rr = np.where(missing, 0.0, tp_points) / safe_sl
    cost = costs_r(safe_sl, spread_points, settings)
    p_buy = np.where(missing, 0.0, proba[:, BUY])
    p_sell = np.where(missing, 0.0, proba[:, SELL])
    ev_buy = expected_r(p_buy, rr, cost)
    ev_sell = expected_r(p_sell, rr, cost)
    long_side = ev_buy >= ev_sell
    side = np.where(long_side, BUY, SELL)
    ev = np.where(long_side, ev_buy, ev_sell)
    confidence = np.where(long_side, p_buy, p_sell)
    if settings.ev_margin is None:
        pays = np.zeros(len(proba), dtype=bool)
        not_paid = REASON_NO_EDGE
    else:
        pays = ev > settings.ev_margin
        not_paid = REASON_EV_BELOW_MARGIN
    confident = confidence >= settings.min_confidence
    trade = ~missing & pays & confident
    action = np.where(trade, side, HOLD)
    reason = np.where(
        missing,
        REASON_NO_HISTORY,
        np.where(~pays, not_paid, np.where(~confident, REASON_LOW_CONFIDENCE, REASON_SIGNAL)),
    )
    return (
        action,
        np.where(missing, 0.0, confidence),
        reason,
        np.where(missing, np.nan, ev),
    )


# --------------------------------------------------------------------------- confidence rule


def decide(proba: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The confidence rule per row: class index of the action, its confidence, a reason code.

    The most probable class is the candidate; a BUY/SELL whose probability is below
    ``min_confidence`` becomes HOLD. Rows with NaN probabilities (no history) are HOLD.

    >>> action, confidence, reason = decide(np.array([[0.2, 0.3, 0.5], [np.nan] * 3]), 0.4)
    >>> [CLASSES[a] for a in action], confidence.tolist(), reason.tolist()
    (['BUY', 'HOLD'], [0.5, 0.0], ['signal', 'insufficient_history'])
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
    action: np.ndarray,
    close: np.ndarray,
    atr: np.ndarray,
    settings: DecisionSettings,
    spread_points: np.ndarray | float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SL/TP prices (rounded to the symbol's digits) and distances in points; NaN for HOLD.

    The prices are measured from the expected fill, like the engine measures them from the
    order's price: a BUY from the Ask (``close + spread``), a SELL from the Bid (``close``);
    the EA uses the distances from its own fill.
    """
    close = np.asarray(close, dtype=np.float64)
    atr = np.asarray(atr, dtype=np.float64)
    direction = DIRECTION[np.asarray(action)]
    sl_dist, tp_dist = distances(atr, settings)
    spread = np.asarray(spread_points, dtype=np.float64) * settings.point
    entry = close + np.where(direction > 0, spread, 0.0)
    sl = np.round(entry - direction * sl_dist * settings.point, settings.digits)
    tp = np.round(entry + direction * tp_dist * settings.point, settings.digits)
    trade = (direction != 0) & np.isfinite(atr)
    nan = np.nan
    return (
        np.where(trade, sl, nan),
        np.where(trade, tp, nan),
        np.where(trade, sl_dist, nan),
        np.where(trade, tp_dist, nan),
    )


def decide_rows(
    raw_proba: np.ndarray,
    close: np.ndarray,
    atr: np.ndarray,
    spread_points: np.ndarray | float | None,
    settings: DecisionSettings,
    calibration: dict[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """The whole decision from the booster's raw probabilities: what the pyfunc computes on a
    history and the server on one row (same function, same bits).

    Returns ``action, confidence, reason, proba`` (calibrated), ``ev_r``, ``sl, tp,
    sl_points, tp_points``.
    """
    n = len(close)
    if spread_points is None:
        spread_points = settings.default_spread_points
    spread = np.broadcast_to(np.asarray(spread_points, dtype=np.float64), (n,))
    if settings.rule == RULE_EV:
        proba = calibrate(raw_proba, calibration)
        sl_pts, tp_pts = distances(atr, settings)
        action, confidence, reason, ev = decide_ev(proba, sl_pts, tp_pts, spread, settings)
    else:
        proba = np.asarray(raw_proba, dtype=np.float64)
        action, confidence, reason = decide(proba, settings.min_confidence)
        ev = np.full(n, np.nan)
        spread = np.zeros(n)  # the confidence rule measured SL/TP from the close
    sl, tp, sl_points, tp_points = stops(action, close, atr, settings, spread)
    return {
        "action": action,
        "confidence": confidence,
        "reason": reason,
        "proba": proba,
        "ev_r": ev,
        "sl": sl,
        "tp": tp,
        "sl_points": sl_points,
        "tp_points": tp_points,
    }


__all__ = [
    "ACTION_NAMES",
    "BUY",
    "CLASSES",
    "DIRECTION",
    "HOLD",
    "REASON_EV_BELOW_MARGIN",
    "REASON_LOW_CONFIDENCE",
    "REASON_NO_EDGE",
    "REASON_NO_HISTORY",
    "RULE_CONFIDENCE",
    "RULE_EV",
    "SELL",
    "DecisionSettings",
    "calibrate",
    "costs_r",
    "decide",
    "decide_ev",
    "decide_one",
    "decide_rows",
    "distances",
    "expected_r",
    "settings_from",
    "stops",
    "stops_one",
]


def decide_one(
    p_sell: float, p_hold: float, p_buy: float, min_confidence: float
) -> tuple[int, float, str]:
    """``decide`` (the confidence rule) for one row without array overhead.

    Same rule, same tie-breaking as ``np.argmax`` (first maximum wins); tested equal to
    ``decide`` on every bar of the sample.

    >>> decide_one(0.2, 0.3, 0.5, min_confidence=0.4) == (BUY, 0.5, REASON_SIGNAL)
    True
    >>> decide_one(0.2, 0.3, 0.5, min_confidence=0.6)
    (1, 0.5, 'below_min_confidence')
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
    action: int, close: float, atr: float, settings: DecisionSettings, spread_points: float = 0.0
) -> tuple[float, float, float, float] | None:
    """``stops`` for one row: (sl, tp, sl_points, tp_points), or ``None`` for HOLD.

    Uses numpy float64 scalars and ``np.round`` so the rounding is the array version's.

    A BUY fills at the Ask (close + 10 points of spread); stop 1 ATR, target 2 ATR:

    >>> s = DecisionSettings(min_confidence=0, tp_atr_mult=2, sl_atr_mult=1, digits=5, point=1e-5)
    >>> stops_one(BUY, 1.1, 0.001, s, spread_points=10), stops_one(HOLD, 1.1, 0.001, s)
    ((1.0991, 1.1021, 100.0, 200.0), None)
    """
    direction = int(DIRECTION[action])
    if direction == 0 or not np.isfinite(atr):
        return None
    close64, atr64 = np.float64(close), np.float64(atr)
    sl_dist = np.round(settings.sl_atr_mult * atr64 / settings.point)
    tp_dist = np.round(settings.tp_atr_mult * atr64 / settings.point)
    entry = close64 + (np.float64(spread_points) * settings.point if direction > 0 else 0.0)
    sl = np.round(entry - direction * sl_dist * settings.point, settings.digits)
    tp = np.round(entry + direction * tp_dist * settings.point, settings.digits)
    return float(sl), float(tp), float(sl_dist), float(tp_dist)
