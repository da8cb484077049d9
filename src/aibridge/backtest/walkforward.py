"""Walk-forward: retrain on each fold with the training code, predict only the unseen window.

Why: a single train/test split shows one market regime; walking forward shows how the *recipe*
(features + labels + LightGBM settings) does when it is refit as time passes, the way it would
be used live. Each fold trains through :func:`aibridge.training.fit_booster` (the very function
the ``train`` stage uses), calibrates and chooses the EV margin on its own validation rows
through :func:`aibridge.training.fit_decision` (as the ``train`` stage does, never on the
test window) and decides through :func:`aibridge.decision.decide_rows`, with the labels of the
``labels`` stage (entry at the next open, spread, stop first). The test windows are
contiguous, so their signals concatenate into one out-of-sample equity curve.

Leakage guard: a label at bar ``t`` looks ``horizon`` bars ahead, so ``embargo >= horizon``
bars are left unused between the training rows and the validation rows, and between the
validation rows and the test window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress

from aibridge import decision, features, labels, training
from aibridge.backtest.settings import WalkForwardSettings
from aibridge.instruments import spec_from_mapping


@dataclass(frozen=True)
class Fold:
    """Bar positions of one fold: [start, end) ranges."""

    number: int
    train: tuple[int, int]
    validation: tuple[int, int]
    test: tuple[int, int]


@dataclass
class WalkForwardResult:
    """Out-of-sample signals for the whole series (0 outside the test windows)."""

    signal: np.ndarray  # -1 / 0 / +1 per bar
    sl_dist: np.ndarray  # price distance per bar (all bars, for baselines too)
    tp_dist: np.ndarray
    folds: list[Fold]
    fold_metrics: list[dict[str, float]] = field(default_factory=list)

    @property
    def oos(self) -> tuple[int, int]:
        """[start, end) of the concatenated out-of-sample window."""
        return self.folds[0].test[0], self.folds[-1].test[1]


def make_folds(
    n_bars: int, first_usable: int, settings: WalkForwardSettings, embargo: int
) -> list[Fold]:
    """Rolling (fixed-length train) or anchored (growing train) folds over ``n_bars``.

    ``first_usable`` is the first bar whose features are complete. Training rows are
    ``[train_start, test_start - embargo)``; the last ``validation_fraction`` of them is the
    early-stopping set, separated from the fitting rows by another ``embargo``.
    """
    folds: list[Fold] = []
    test_start = first_usable + settings.train_bars + embargo
    while test_start < n_bars:
        if settings.max_folds and len(folds) >= settings.max_folds:
            break
        test_end = min(test_start + settings.test_bars, n_bars)
        train_end = test_start - embargo
        train_start = (
            first_usable if settings.mode == "anchored" else train_end - settings.train_bars
        )
        span = train_end - train_start
        n_val = round(span * settings.validation_fraction)
        fit_end = train_end - n_val - embargo
        if fit_end - train_start < 10 or n_val < 10:
            raise ValueError(
                f"train_bars={settings.train_bars} is too short for validation and an embargo "
                f"of {embargo} bars"
            )
        folds.append(
            Fold(
                number=len(folds) + 1,
                train=(train_start, fit_end),
                validation=(train_end - n_val, train_end),
                test=(test_start, test_end),
            )
        )
        test_start = test_end
    if not folds:
        raise ValueError(
            f"{n_bars} bars are too few for one fold (need > {first_usable} warm-up + "
            f"{settings.train_bars} train + {embargo} embargo)"
        )
    return folds


def stop_distances(
    candles: pd.DataFrame,
    feature_params: Mapping[str, Any],
    sl_mult: float,
    tp_mult: float,
    digits: int,
    point: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ATR and the SL/TP price distances the server would send for a trade on *every* bar.

    Goes through :func:`aibridge.decision.stops` (whole points, as the server rounds them);
    every bar gets a distance so that baselines can trade where the model held.
    """
    close = candles["close"].to_numpy(dtype=np.float64)
    atr = features.atr(
        candles["high"].to_numpy(),
        candles["low"].to_numpy(),
        close,
        int(feature_params["atr_window"]),
    )
    settings = decision.DecisionSettings(
        min_confidence=0.0, tp_atr_mult=tp_mult, sl_atr_mult=sl_mult, digits=digits, point=point
    )
    everywhere = np.full(len(close), decision.BUY)
    _, _, sl_pts, tp_pts = decision.stops(everywhere, close, atr, settings)
    return atr, sl_pts * point, tp_pts * point


def _labelled(y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return rows[y[rows] != labels.NO_LABEL]


def walk_forward(
    candles: pd.DataFrame,
    cfg: Mapping[str, Any],
    settings: WalkForwardSettings,
    *,
    progress: bool = True,
    fit: Callable[..., Any] = training.fit_booster,
) -> WalkForwardResult:
    """Retrain per fold and return the concatenated out-of-sample signals.

    ``cfg`` is the composed config as a plain mapping (``features``, ``labels``, ``model``,
    ``risk``, ``instrument``, ``seed``).
    """
    fparams = dict(cfg["features"])
    lab = cfg["labels"]
    horizon = int(lab["horizon"])
    embargo = horizon if settings.embargo_bars is None else settings.embargo_bars
    if embargo < horizon:
        raise ValueError(f"embargo {embargo} < label horizon {horizon}: labels would leak")
    inst = cfg["instrument"]
    atr, sl_dist, tp_dist = stop_distances(
        candles,
        fparams,
        float(lab["sl_atr_mult"]),
        float(lab["tp_atr_mult"]),
        int(inst["digits"]),
        float(inst["point"]),
    )
    frame = features.compute_features(candles, fparams)
    names = list(frame.columns)
    X = np.ascontiguousarray(frame.to_numpy(dtype=np.float64))
    spec = spec_from_mapping(inst)
    close = candles["close"].to_numpy(dtype=np.float64)
    if "spread" in candles.columns:
        spread = candles["spread"].to_numpy(dtype=np.float64)
        spread = np.where(np.isfinite(spread), spread, float(spec.default_spread_points))
    else:
        spread = np.full(len(candles), float(spec.default_spread_points))
    out = labels.barrier_outcomes(
        candles["open"].to_numpy(),
        candles["high"].to_numpy(),
        candles["low"].to_numpy(),
        close,
        atr,
        float(lab["tp_atr_mult"]),
        float(lab["sl_atr_mult"]),
        horizon,
        point=float(inst["point"]),
        digits=int(inst["digits"]),
        spread_points=spread,
    )
    y = out.label
    model_cfg = dict(cfg["model"])
    dparams = dict(model_cfg.get("decision") or {})
    dparams["calibration_min_bin"] = int(model_cfg.get("calibration_min_bin", 50))
    calibration_method = str(model_cfg.get("calibration", "sigmoid"))
    complete = np.isfinite(X).all(axis=1)
    first_usable = int(np.argmax(complete)) if complete.any() else len(X)
    folds = make_folds(len(candles), first_usable, settings, embargo)
    signal = np.zeros(len(candles), dtype=np.int64)
    fold_metrics: list[dict[str, float]] = []
    with Progress(disable=not progress) as bar:
        task = bar.add_task("walk-forward folds", total=len(folds))
        for fold in folds:
            tr = _labelled(y, np.arange(*fold.train))
            va = _labelled(y, np.arange(*fold.validation))
            te = np.arange(*fold.test)
            booster = fit(
                X[tr],
                y[tr],
                X[va],
                y[va],
                dict(cfg["model"]),
                int(cfg["seed"]),
                feature_names=names,
            )
            # the EV rule's settings from the training rows (as the train stage), then the
            # calibration and the margin from the validation rows only
            dsettings = training.make_decision_settings(
                spec,
                float(lab["tp_atr_mult"]),
                float(lab["sl_atr_mult"]),
                dparams,
                float(np.median(spread[tr])) if len(tr) else 0.0,
                float(close[tr[-1]]) if len(tr) else float(close[0]),
            )
            fitted = training.fit_decision(
                booster.predict(X[va]),
                y[va],
                out.r_long[va],
                out.r_short[va],
                close[va],
                atr[va],
                spread[va],
                dsettings,
                calibration_method,
                dparams,
            )
            dsettings = dataclasses.replace(dsettings, ev_margin=fitted.ev_margin)
            proba = np.full((len(te), 3), np.nan)
            ready = complete[te]
            if ready.any():
                proba[ready] = booster.predict(X[te][ready])
            rows = decision.decide_rows(
                proba, close[te], atr[te], spread[te], dsettings, fitted.calibration
            )
            action = rows["action"]
            proba = rows["proba"]
            signal[te] = decision.DIRECTION[action]
            scored = te[(y[te] != labels.NO_LABEL) & ready]
            metrics: dict[str, float] = {"fold": float(fold.number), "test_bars": float(len(te))}
            if len(scored):
                metrics |= training.classification_metrics(
                    y[scored], proba[np.searchsorted(te, scored)]
                )
            metrics["signals"] = float(np.count_nonzero(signal[te]))
            metrics["ev_margin"] = (
                float("nan") if fitted.ev_margin is None else float(fitted.ev_margin)
            )
            fold_metrics.append(metrics)
            bar.advance(task)
    return WalkForwardResult(signal, sl_dist, tp_dist, folds, fold_metrics)
