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
import itertools
import multiprocessing
import os
import pickle
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress

from aibridge import decision, features, labels, training
from aibridge.backtest.settings import WalkForwardSettings
from aibridge.errors import AibridgeError
from aibridge.ingest.naming import timeframe_minutes
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
    plan: str = ""  # one line for reports (:func:`describe_plan`)
    n_jobs: int = 1  # processes the folds trained in

    @property
    def oos(self) -> tuple[int, int]:
        """[start, end) of the concatenated out-of-sample window."""
        return self.folds[0].test[0], self.folds[-1].test[1]


AUTO_FOLDS = 10
"""Test windows of ``folds: auto`` (fewer only when a window would be under ``min_test_bars``)."""

PARALLEL_MIN_TRAIN_BARS = 20_000
"""``n_jobs: auto`` trains folds in parallel from this training window up: below it a fold
fits in a second and starting worker processes (imports, ~2 s each) costs more than it saves."""


class TooShortHistoryError(AibridgeError):
    """The history cannot hold one walk-forward fold; the message names the bars and settings."""


def embargo_bars(settings: WalkForwardSettings, horizon: int) -> int:
    """Bars left unused at each boundary: ``embargo_bars``, else the label horizon."""
    embargo = horizon if settings.embargo_bars is None else settings.embargo_bars
    if embargo < horizon:
        raise ValueError(f"embargo {embargo} < label horizon {horizon}: labels would leak")
    return embargo


def _span(bars: int, timeframe: str | None) -> str:
    """``"1,292 H4 bars (~215 days)"``: bars and, when the timeframe is known, calendar days
    of a 5-day trading week."""
    text = f"{bars:,} {timeframe + ' ' if timeframe else ''}bars"
    if timeframe:
        try:
            minutes = timeframe_minutes(timeframe)
        except ValueError:
            return text
        days = bars * minutes / 1440 * 7 / 5 if minutes < 1440 else bars * minutes / 1440
        text += f" (~{days:,.0f} days)" if days >= 2 else f" (~{days * 24:,.0f} hours)"
    return text


def _too_short(n_bars: int, need: int, parts: str, timeframe: str | None, change: str) -> None:
    raise TooShortHistoryError(
        f"{_span(n_bars, timeframe)} are too few for a walk-forward: one fold needs {need:,} "
        f"({parts}); export more history or {change}"
    )


def plan_folds(
    n_bars: int,
    settings: WalkForwardSettings,
    timeframe: str | None = None,
    *,
    horizon: int = 0,
    warmup: int = 0,
) -> list[Fold]:
    """The walk-forward folds for a history of ``n_bars`` bars.

    ``horizon``: the label horizon (the embargo's minimum); ``warmup``: bars before the first
    complete feature row (:func:`aibridge.features.min_bars` - 1). Windows given in bars are
    kept (rolling or anchored, as many as fit, ``max_folds`` caps them); ``auto`` windows
    follow :class:`~aibridge.backtest.settings.WalkForwardSettings`' rule. Raises
    :class:`TooShortHistoryError` (one line: the bars it has, the bars it needs, what to
    change) when not even one fold fits.

    >>> s = WalkForwardSettings()
    >>> folds = plan_folds(100_000, s, "M1", horizon=24, warmup=40)
    >>> len(folds), folds[0].train[0], folds[0].test[0], folds[-1].test[1]
    (10, 40, 30052, 100000)
    >>> folds = plan_folds(1_000_000, s, "M1", horizon=24, warmup=40)
    >>> folds[0].validation[1] - folds[0].train[0], folds[0].test[1] - folds[0].test[0]
    (100000, 89994)
    >>> len(plan_folds(1292, s, "H4", horizon=24, warmup=40))
    7
    >>> plan_folds(150, s, "H4", horizon=24, warmup=40)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aibridge.backtest.walkforward.TooShortHistoryError: 150 H4 bars (~35 days) are too few ...
    """
    embargo = embargo_bars(settings, horizon)
    usable = n_bars - warmup
    auto_train = settings.train_bars == "auto"
    if settings.train_bars == "auto":
        train = round(settings.train_fraction * usable)
        if settings.max_train_bars:
            train = min(train, settings.max_train_bars)
        train = max(settings.min_train_bars, train)
    else:
        train = int(settings.train_bars)
    auto_test = settings.test_bars == "auto"
    min_test = settings.min_test_bars if auto_test else 1
    first_test = warmup + train + embargo
    room = n_bars - first_test
    if room < min_test:
        need = first_test + min_test
        knobs = (
            "lower backtest.walk_forward.min_train_bars"
            if auto_train
            else "lower backtest.walk_forward.train_bars (or set it to auto)"
        )
        if auto_test:
            knobs += " / min_test_bars"
        _too_short(
            n_bars,
            need,
            f"{warmup} warm-up + {train:,} train + {embargo} embargo + {min_test:,} test",
            timeframe,
            knobs,
        )
    n_val = round(train * settings.validation_fraction)
    if train - n_val - embargo < 10 or n_val < 10:
        raise TooShortHistoryError(
            f"a training window of {train:,} bars leaves too few rows to fit and validate "
            f"around an embargo of {embargo} bars; raise backtest.walk_forward.train_bars / "
            "min_train_bars or lower labels.horizon"
        )
    if auto_test:
        wanted = AUTO_FOLDS if settings.folds == "auto" else int(settings.folds)
        if settings.max_folds:
            wanted = min(wanted, settings.max_folds)
        k = min(wanted, room // min_test)
        if settings.folds != "auto" and k < wanted:
            _too_short(
                n_bars,
                first_test + wanted * min_test,
                f"{warmup} warm-up + {train:,} train + {embargo} embargo + {wanted} folds x "
                f"{min_test:,} test",
                timeframe,
                "lower backtest.walk_forward.folds (or set it to auto) / min_test_bars",
            )
        edges = first_test + np.round(np.linspace(0, room, k + 1)).astype(np.int64)
        tests = [(int(a), int(b)) for a, b in itertools.pairwise(edges)]
    else:
        cap = settings.max_folds
        if settings.folds != "auto":
            cap = min(cap, int(settings.folds)) if cap else int(settings.folds)
        step = int(settings.test_bars)
        starts = range(first_test, n_bars, step)
        tests = [(a, min(a + step, n_bars)) for a in starts][: cap or None]
    folds = []
    for number, (test_start, test_end) in enumerate(tests, start=1):
        train_end = test_start - embargo
        train_start = warmup if settings.mode == "anchored" else train_end - train
        span = train_end - train_start
        val = round(span * settings.validation_fraction)
        folds.append(
            Fold(
                number=number,
                train=(train_start, train_end - val - embargo),
                validation=(train_end - val, train_end),
                test=(test_start, test_end),
            )
        )
    return folds


def plan_folds_for(n_bars: int, cfg: Mapping[str, Any]) -> list[Fold]:
    """:func:`plan_folds` from the composed config (a plain mapping with ``backtest``,
    ``labels``, ``features`` and ``timeframe``): what the ``train`` stage checks before it
    starts an MLflow run, with the warm-up the feature parameters need."""
    bt = cfg.get("backtest") or {}
    settings = WalkForwardSettings.model_validate(dict(bt.get("walk_forward") or {}))
    warmup = features.min_bars(dict(cfg["features"])) - 1
    tf = cfg.get("timeframe")
    return plan_folds(
        n_bars,
        settings,
        str(tf) if tf else None,
        horizon=int(cfg["labels"]["horizon"]),
        warmup=warmup,
    )


def describe_plan(
    folds: list[Fold], settings: WalkForwardSettings, timeframe: str | None = None
) -> str:
    """One line for reports: ``"10 rolling folds (auto): train 29,988 bars, test ~6,997
    bars each, embargo >= label horizon, retrained each fold."``"""
    first = folds[0]
    train = first.validation[1] - first.train[0]
    tests = [f.test[1] - f.test[0] for f in folds]
    test = f"{tests[0]:,}" if len(set(tests)) == 1 else f"~{round(np.mean(tests)):,}"
    how = "auto" if settings.test_bars == "auto" or settings.train_bars == "auto" else "fixed"
    grows = ", growing" if settings.mode == "anchored" else ""
    return (
        f"{len(folds)} {settings.mode} folds ({how}): train {_span(train, timeframe)}{grows}, "
        f"test {test} bars each, embargo >= label horizon, retrained each fold."
    )


def make_folds(
    n_bars: int, first_usable: int, settings: WalkForwardSettings, embargo: int
) -> list[Fold]:
    """:func:`plan_folds` with the embargo given (kept for callers of the old signature)."""
    fixed = settings.model_copy(update={"embargo_bars": embargo})
    return plan_folds(n_bars, fixed, horizon=0, warmup=first_usable)


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


ARRAYS = ("X", "y", "complete", "close", "atr", "spread", "r_long", "r_short")


@dataclass(frozen=True)
class _FoldJob:
    """Everything a fold needs besides the shared arrays (picklable: sent to workers)."""

    names: list[str]
    model: dict[str, Any]
    seed: int
    instrument: dict[str, Any]
    tp_mult: float
    sl_mult: float
    dparams: dict[str, Any]
    calibration_method: str
    fit: Callable[..., Any]


def _run_fold(
    job: _FoldJob, a: Mapping[str, np.ndarray], fold: Fold
) -> tuple[np.ndarray, dict[str, float]]:
    """Train one fold's model, fit its decision rule on its validation rows, and decide its
    test window: the test window's signals and the fold's metrics."""
    X, y, complete, close, atr, spread = (
        a["X"],
        a["y"],
        a["complete"],
        a["close"],
        a["atr"],
        a["spread"],
    )
    spec = spec_from_mapping(job.instrument)
    tr = _labelled(y, np.arange(*fold.train))
    va = _labelled(y, np.arange(*fold.validation))
    te = np.arange(*fold.test)
    X_va, y_va = np.asarray(X[va]), np.asarray(y[va])
    booster = job.fit(
        np.asarray(X[tr]),
        np.asarray(y[tr]),
        X_va,
        y_va,
        dict(job.model),
        job.seed,
        feature_names=job.names,
    )
    # the EV rule's settings from the training rows (as the train stage), then the
    # calibration and the margin from the validation rows only
    dsettings = training.make_decision_settings(
        spec,
        job.tp_mult,
        job.sl_mult,
        job.dparams,
        float(np.median(spread[tr])) if len(tr) else 0.0,
        float(close[tr[-1]]) if len(tr) else float(close[0]),
    )
    fitted = training.fit_decision(
        booster.predict(X_va),
        y_va,
        np.asarray(a["r_long"][va]),
        np.asarray(a["r_short"][va]),
        np.asarray(close[va]),
        np.asarray(atr[va]),
        np.asarray(spread[va]),
        dsettings,
        job.calibration_method,
        job.dparams,
    )
    dsettings = dataclasses.replace(dsettings, ev_margin=fitted.ev_margin)
    proba = np.full((len(te), 3), np.nan)
    ready = np.asarray(complete[te])
    if ready.any():
        proba[ready] = booster.predict(np.asarray(X[fold.test[0] : fold.test[1]])[ready])
    rows = decision.decide_rows(
        proba,
        np.asarray(close[te]),
        np.asarray(atr[te]),
        np.asarray(spread[te]),
        dsettings,
        fitted.calibration,
    )
    proba = rows["proba"]
    signal = np.asarray(decision.DIRECTION[rows["action"]], dtype=np.int64)
    y_te = np.asarray(y[te])
    scored = te[(y_te != labels.NO_LABEL) & ready]
    metrics: dict[str, float] = {"fold": float(fold.number), "test_bars": float(len(te))}
    if len(scored):
        metrics |= training.classification_metrics(
            np.asarray(y[scored]), proba[np.searchsorted(te, scored)]
        )
    metrics["signals"] = float(np.count_nonzero(signal))
    metrics["ev_margin"] = float("nan") if fitted.ev_margin is None else float(fitted.ev_margin)
    return signal, metrics


# Worker-process state: the arrays, memory-mapped once per worker (read-only, shared through
# the page cache instead of pickled per fold), and the job.
_WORKER: dict[str, Any] = {}


def _init_worker(folder: str, job: _FoldJob) -> None:
    _WORKER["arrays"] = {k: np.load(f"{folder}/{k}.npy", mmap_mode="r") for k in ARRAYS}
    _WORKER["job"] = job


def _worker_fold(fold: Fold) -> tuple[np.ndarray, dict[str, float]]:
    return _run_fold(_WORKER["job"], _WORKER["arrays"], fold)


def _picklable(obj: Any) -> bool:
    try:
        pickle.dumps(obj)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


def available_cores() -> int:
    """CPUs this process may run on (the affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def fold_jobs(settings: WalkForwardSettings, folds: list[Fold], cores: int | None = None) -> int:
    """Processes for the folds: ``n_jobs``, or for ``auto`` min(cores, folds) when a training
    window has at least :data:`PARALLEL_MIN_TRAIN_BARS` bars, else 1.

    >>> s = WalkForwardSettings()
    >>> fold_jobs(s, plan_folds(1_000_000, s, "M1", horizon=24), cores=2)
    2
    >>> fold_jobs(s, plan_folds(6_000, s, "H1", horizon=24), cores=2)
    1
    """
    if settings.n_jobs != "auto":
        return max(1, min(int(settings.n_jobs), len(folds)))
    first = folds[0]
    if first.validation[1] - first.train[0] < PARALLEL_MIN_TRAIN_BARS:
        return 1
    return max(1, min(cores or available_cores(), len(folds)))


def _run_folds(
    job: _FoldJob, arrays: dict[str, np.ndarray], folds: list[Fold], n_jobs: int, progress: bool
) -> list[tuple[np.ndarray, dict[str, float]]]:
    """Every fold's result in fold order: in this process (``n_jobs`` 1), else in ``n_jobs``
    spawned worker processes. Each fold is computed the same way either way (same inputs,
    same seed, same LightGBM threads), so the results are identical."""
    results: list[tuple[np.ndarray, dict[str, float]]] = []
    with Progress(disable=not progress) as bar:
        task = bar.add_task("walk-forward folds", total=len(folds))
        if n_jobs == 1:
            for fold in folds:
                results.append(_run_fold(job, arrays, fold))
                bar.advance(task)
            return results
        with tempfile.TemporaryDirectory(prefix="aibridge-wf-") as folder:
            for k in ARRAYS:
                np.save(f"{folder}/{k}.npy", arrays[k])
            with ProcessPoolExecutor(
                n_jobs,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(folder, job),
            ) as pool:
                for result in pool.map(_worker_fold, folds):
                    results.append(result)
                    bar.advance(task)
    return results


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
    ``instrument``, ``seed``; ``timeframe`` when present names the bars in messages). Folds
    come from :func:`plan_folds`; with ``n_jobs`` > 1 (:func:`fold_jobs`) they train in
    worker processes, each fold's LightGBM on ``model.num_threads // n_jobs`` threads (at
    least 1), so the cores are not oversubscribed; a ``fit`` that cannot be pickled (a closure)
    runs the folds here instead.
    """
    fparams = dict(cfg["features"])
    lab = cfg["labels"]
    horizon = int(lab["horizon"])
    timeframe = str(cfg["timeframe"]) if cfg.get("timeframe") else None
    inst = cfg["instrument"]
    atr, sl_dist, tp_dist = stop_distances(
        candles,
        fparams,
        float(lab["sl_atr_mult"]),
        float(lab["tp_atr_mult"]),
        int(inst["digits"]),
        float(inst["point"]),
    )
    # the matrix itself (what compute_features wraps in a frame): one copy of the features
    names = features.feature_names(fparams)
    X = features.feature_matrix(
        candles["time"].to_numpy(),
        candles["open"].to_numpy(),
        candles["high"].to_numpy(),
        candles["low"].to_numpy(),
        candles["close"].to_numpy(),
        candles["volume"].to_numpy(),
        fparams,
    )
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
    model_cfg = dict(cfg["model"])
    dparams = dict(model_cfg.get("decision") or {})
    dparams["calibration_min_bin"] = int(model_cfg.get("calibration_min_bin", 50))
    complete = np.isfinite(X).all(axis=1)
    first_usable = int(np.argmax(complete)) if complete.any() else len(X)
    folds = plan_folds(len(candles), settings, timeframe, horizon=horizon, warmup=first_usable)
    n_jobs = fold_jobs(settings, folds)
    if n_jobs > 1 and not _picklable(fit):  # a closure cannot reach a worker process
        n_jobs = 1
    if n_jobs > 1:
        threads = int(model_cfg.get("num_threads", 0) or available_cores())
        model_cfg["num_threads"] = max(1, threads // n_jobs)
    job = _FoldJob(
        names=names,
        model=model_cfg,
        seed=int(cfg["seed"]),
        instrument=dict(inst),
        tp_mult=float(lab["tp_atr_mult"]),
        sl_mult=float(lab["sl_atr_mult"]),
        dparams=dparams,
        calibration_method=str(model_cfg.get("calibration", "sigmoid")),
        fit=fit,
    )
    arrays = {
        "X": X,
        "y": out.label,
        "complete": complete,
        "close": close,
        "atr": atr,
        "spread": spread,
        "r_long": out.r_long,
        "r_short": out.r_short,
    }
    signal = np.zeros(len(candles), dtype=np.int64)
    fold_metrics: list[dict[str, float]] = []
    for fold, (fold_signal, metrics) in zip(
        folds, _run_folds(job, arrays, folds, n_jobs, progress), strict=True
    ):
        signal[fold.test[0] : fold.test[1]] = fold_signal
        fold_metrics.append(metrics)
    return WalkForwardResult(
        signal,
        sl_dist,
        tp_dist,
        folds,
        fold_metrics,
        plan=describe_plan(folds, settings, timeframe),
        n_jobs=n_jobs,
    )
