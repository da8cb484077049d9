"""Time-ordered splitting, LightGBM fitting and classification metrics.

The walk-forward backtest calls the same ``fit_booster`` on each fold, so a fold's model is
trained exactly like the registered one.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from aibridge.decision import CLASSES


@dataclass(frozen=True)
class Split:
    """Row positions of each segment; ``embargo`` rows are left out between segments."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    embargo: int

    def part(self, name: str) -> slice:
        """The segment ``name`` (train / validation / test) as a slice: ``X[split.part("train")]``
        is a view of the rows, where ``X[split.train]`` copies them (0.3 GB at 1 M bars).

        >>> s = time_split(100, 0.2, 0.2, 5)
        >>> s.part("validation"), int(s.validation[0]), int(s.validation[-1])
        (slice(55, 75, None), 55, 74)
        """
        rows = getattr(self, name)
        return slice(int(rows[0]), int(rows[-1]) + 1) if len(rows) else slice(0, 0)


def time_split(n: int, validation_fraction: float, test_fraction: float, embargo: int) -> Split:
    """Chronological train / validation / test with ``embargo`` unused rows at each boundary.

    A label at row ``t`` looks ``horizon`` bars ahead; with ``embargo >= horizon`` no training
    label can see a bar that belongs to the next segment.
    """
    if not 0 < validation_fraction < 1 or not 0 < test_fraction < 1:
        raise ValueError("validation and test fractions must be between 0 and 1")
    n_test = round(n * test_fraction)
    n_val = round(n * validation_fraction)
    n_train = n - n_test - n_val - 2 * embargo
    if n_train <= 0 or n_val <= 0 or n_test <= 0:
        raise ValueError(
            f"{n} labelled rows are too few for this split (embargo {embargo} bars per boundary)"
        )
    idx = np.arange(n)
    train = idx[:n_train]
    val_start = n_train + embargo
    validation = idx[val_start : val_start + n_val]
    test_start = val_start + n_val + embargo
    test = idx[test_start:]
    return Split(train=train, validation=validation, test=test, embargo=embargo)


def class_weights(y: np.ndarray, mode: str | None) -> np.ndarray | None:
    """``balanced`` weighs each class by n / (k * count); HOLD often dominates otherwise."""
    if mode in (None, "none"):
        return None
    if mode != "balanced":
        raise ValueError(f"unknown class_weight {mode!r}; use 'balanced' or 'none'")
    counts = np.bincount(y, minlength=len(CLASSES)).astype(np.float64)
    weights = len(y) / (len(CLASSES) * np.maximum(counts, 1.0))
    return weights[y]


LONG_DATA: dict[str, Any] = {
    "min_rows": 50_000,
    "max_bin": 63,
    "bagging_fraction": 0.25,
    "bagging_freq": 1,
    "early_stopping_rounds": 50,
}
"""LightGBM settings for long histories, applied by :func:`fit_booster` when a model trains
on at least ``min_rows`` rows (the train stage and the walk-forward folds of a 1 M-bar M1
history; never the bundled sample or the planted-edge series, whose results stay as they
were): 63 histogram bins instead of 255, a quarter of the rows per tree (bagging), and early
stopping after 50 rounds without improvement (a validation window of tens of thousands of
rows gives a steady loss; the sample's 200 rounds guard against a noisy one). Measured with
``benchmarks/bench_training.py``: on a 200 k-bar planted-edge series the edge is kept (test
AUC 0.605 vs 0.610, expectancy 1.14 vs 1.15 R after costs). ``model.long_data`` (a mapping)
replaces it; ``long_data: {}`` turns it off."""

_NOT_LIGHTGBM = {
    "num_boost_round",
    "early_stopping_rounds",
    "class_weight",
    "name",
    "calibration",
    "calibration_min_bin",
    "decision",
    "long_data",
}


def effective_params(model_params: Mapping[str, Any], n_rows: int) -> dict[str, Any]:
    """``model_params`` with the long-data settings (``model.long_data``, else
    :data:`LONG_DATA`) laid over them when ``n_rows`` reaches their ``min_rows``.

    >>> effective_params({"num_leaves": 7, "max_bin": 255}, 5_000)["max_bin"]
    255
    >>> effective_params({"num_leaves": 7, "max_bin": 255}, 700_000)["max_bin"]
    63
    >>> effective_params({"long_data": {}}, 700_000)
    {'long_data': {}}
    """
    extra = model_params.get("long_data", LONG_DATA)
    extra = dict(LONG_DATA if extra is None else extra)
    min_rows = int(extra.pop("min_rows", LONG_DATA["min_rows"]))
    if not extra or n_rows < min_rows:
        return dict(model_params)
    return dict(model_params) | extra


def lightgbm_params(model_params: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Config → LightGBM parameters, with every source of randomness pinned to ``seed``."""
    params = {k: v for k, v in model_params.items() if k not in _NOT_LIGHTGBM}
    params.update(
        objective="multiclass",
        num_class=len(CLASSES),
        seed=seed,
        bagging_seed=seed,
        feature_fraction_seed=seed,
        data_random_seed=seed,
        deterministic=True,
        force_row_wise=True,
        verbosity=-1,
    )
    return params


def fit_booster(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    model_params: Mapping[str, Any],
    seed: int,
    feature_names: list[str] | None = None,
) -> lgb.Booster:
    """Train with early stopping on the validation segment; returns the native Booster.

    Long training sets get :func:`effective_params` (fewer bins, row subsampling, shorter
    patience); short ones train with ``model_params`` as given."""
    model_params = effective_params(model_params, len(X_train))
    names: list[str] | Literal["auto"] = feature_names or "auto"
    w_train = class_weights(y_train, model_params.get("class_weight"))
    w_val = class_weights(y_val, model_params.get("class_weight"))
    train_set = lgb.Dataset(
        X_train, y_train, weight=w_train, feature_name=names, free_raw_data=False
    )
    val_set = lgb.Dataset(X_val, y_val, weight=w_val, reference=train_set, free_raw_data=False)
    return lgb.train(
        lightgbm_params(model_params, seed),
        train_set,
        num_boost_round=int(model_params.get("num_boost_round", 500)),
        valid_sets=[val_set],
        valid_names=["validation"],
        callbacks=[
            lgb.early_stopping(int(model_params.get("early_stopping_rounds", 50)), verbose=False),
            lgb.log_evaluation(period=0),
        ],
    )


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Log loss, accuracy, balanced accuracy, per-class precision/recall and macro AUC."""
    labels = list(range(len(CLASSES)))
    pred = proba.argmax(axis=1)
    out: dict[str, float] = {
        "log_loss": float(log_loss(y, proba, labels=labels)),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "n": float(len(y)),
    }
    precision, recall, _, _ = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0
    )
    for i, name in enumerate(CLASSES):
        out[f"precision_{name.lower()}"] = float(precision[i])
        out[f"recall_{name.lower()}"] = float(recall[i])
    present = np.unique(y)
    if len(present) == len(CLASSES):
        out["auc_macro"] = float(roc_auc_score(y, proba, multi_class="ovr", labels=labels))
    return out


def confusion(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    return confusion_matrix(y, proba.argmax(axis=1), labels=list(range(len(CLASSES))))


# --------------------------------------------------------------------------- decision model


def _bins(p: np.ndarray, hit: np.ndarray, min_bin: int) -> tuple[np.ndarray, ...]:
    """Consecutive groups of at least ``min_bin`` rows in order of ``p`` (ties kept together):
    mean p, mean outcome and size per group."""
    order = np.argsort(p, kind="stable")
    ps, hs = p[order], hit[order]
    edges = [0]
    i = min_bin
    while i < len(ps):
        while i < len(ps) and ps[i] == ps[i - 1]:
            i += 1
        if len(ps) - i < min_bin:
            break
        edges.append(i)
        i += min_bin
    edges.append(len(ps))
    xs, ys, ws = [], [], []
    for lo, hi in itertools.pairwise(edges):
        xs.append(ps[lo:hi].mean())
        ys.append(hs[lo:hi].mean())
        ws.append(hi - lo)
    return np.array(xs), np.array(ys), np.array(ws, dtype=np.float64)


def _stable(x: float) -> float:
    """``x`` to 10 significant digits. The solver's last digits move with how BLAS splits its
    sums (threads, memory alignment): the same data gave coefficients 2e-14 apart in two
    processes, so the model bundle and everything DVC tracks after it changed between clones.
    Ten digits keep the calibration far finer than any decision needs.

    >>> _stable(-10.281100286361673) == _stable(-10.281100286361486) == -10.28110029
    True
    """
    return float(f"{float(x):.10g}")


def fit_calibration(
    proba: np.ndarray, y: np.ndarray, method: str, min_bin: int = 50
) -> dict[str, Any] | None:
    """One-vs-rest calibrators per class fitted on (validation) probabilities and labels, in
    the form :func:`aibridge.decision.calibrate` applies (JSON-able lists, no sklearn at
    serving time). ``none`` → None.

    ``isotonic`` is fitted on groups of at least ``min_bin`` validation rows (in order of the
    raw probability): a plain isotonic fit makes steps of a handful of rows at the top, which
    the margin search then mistakes for an edge (seen on a control series with no edge).
    """
    if method in (None, "none"):
        return None
    proba = np.asarray(proba, dtype=np.float64)
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        xs, ys = [], []
        for k in range(len(CLASSES)):
            bx, by, bw = _bins(proba[:, k], (y == k).astype(np.float64), max(int(min_bin), 1))
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            iso.fit(bx, by, sample_weight=bw)
            xs.append([float(v) for v in iso.X_thresholds_])
            ys.append([float(v) for v in iso.y_thresholds_])
        return {"method": "isotonic", "x": xs, "y": ys}
    if method == "sigmoid":
        from sklearn.linear_model import LogisticRegression

        a, b = [], []
        for k in range(len(CLASSES)):
            q = np.clip(proba[:, k], 1e-6, 1 - 1e-6)
            z = (np.log(q) - np.log(1 - q))[:, None]
            target = (y == k).astype(int)
            if target.min() == target.max():  # one class only: identity
                a.append(1.0)
                b.append(0.0)
                continue
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(z, target)
            a.append(_stable(lr.coef_[0, 0]))
            b.append(_stable(lr.intercept_[0]))
        return {"method": "sigmoid", "a": a, "b": b}
    raise ValueError(f"unknown calibration {method!r}; use isotonic, sigmoid or none")


def cost_points(
    spec: Any, reference_price: float, slippage_points: float
) -> tuple[float, dict[str, float]]:
    """Round-trip costs besides the spread, in points of ``spec`` (an InstrumentSpec):
    commission at open and at close converted at ``reference_price``, plus the expected
    slippage (per trade, in points)."""
    try:
        tick_value = spec.tick_value_at(reference_price)
    except ValueError:  # a cross without a conversion rate: approximate as base = account
        tick_value = spec.fixed_tick_value / reference_price
    point_value = tick_value * spec.point / spec.tick  # money per point per 1.0 lot
    commission = 2.0 * spec.commission_per_lot_per_side / point_value if point_value > 0 else 0.0
    total = commission + float(slippage_points)
    return total, {
        "commission_points": float(commission),
        "slippage_points": float(slippage_points),
    }


def choose_margin(
    ev: np.ndarray,
    realised_r: np.ndarray,
    grid: list[float],
    min_trades: int,
    min_t: float = 0.0,
    benchmark: np.ndarray | None = None,
) -> tuple[float | None, list[dict[str, float]]]:
    """The EV margin (R) for the decision, chosen on the validation window.

    ``ev``: the candidate side's EV per validation bar; ``realised_r``: what that side's trade
    actually made, net of costs; ``benchmark``: per bar, what a trade on that side made on
    average over the whole window (None: 0). For each margin in ``grid`` the bars with
    ``ev > margin`` are the trades. A margin qualifies with at least ``min_trades`` trades, a
    positive mean net R, and a mean *excess* over the benchmark that is positive with a
    t-statistic (mean / standard error) of at least ``min_t``: betting the window's drift on
    every bar is not skill. Among those the highest expectancy (mean net R per trade) wins.
    None when no margin qualifies: the model never trades. Returns the margin and the whole
    table (for the run's report).
    """
    ev = np.asarray(ev, dtype=np.float64)
    realised_r = np.asarray(realised_r, dtype=np.float64)
    bench = np.zeros_like(realised_r) if benchmark is None else np.asarray(benchmark, float)
    usable = np.isfinite(ev) & np.isfinite(realised_r)
    table: list[dict[str, float]] = []
    best: float | None = None
    best_mean = -np.inf
    for margin in sorted(float(m) for m in grid):
        take = usable & (ev > margin)
        r = realised_r[take]
        x = r - bench[take]
        n = len(r)
        mean = float(r.mean()) if n else 0.0
        excess = float(x.mean()) if n else 0.0
        sd = float(x.std(ddof=1)) if n > 1 else 0.0
        t = excess / (sd / np.sqrt(n)) if n > 1 and sd > 0 else 0.0
        ok = n >= min_trades and mean > 0 and excess > 0 and t >= min_t
        table.append(
            {
                "margin": margin,
                "trades": float(n),
                "expectancy_r": mean,
                "excess_r": excess,
                "t": float(t),
                "ok": bool(ok),
            }
        )
        if ok and mean > best_mean:
            best, best_mean = margin, mean
    return best, table


def make_decision_settings(
    spec: Any,
    tp_atr_mult: float,
    sl_atr_mult: float,
    decision_params: Mapping[str, Any],
    spread_ref_points: float,
    reference_price: float,
) -> Any:
    """The expected-value rule's settings before the margin (``ev_margin`` None): stops from
    the label multiples, costs from the instrument (``spec``: an InstrumentSpec) and
    ``model.decision`` (``decision_params``). The train stage and the walk-forward use this."""
    from aibridge import decision

    costs, _ = cost_points(
        spec, reference_price, float(decision_params.get("slippage_points", 0.0))
    )
    return decision.DecisionSettings(
        min_confidence=float(decision_params.get("min_confidence", 0.0) or 0.0),
        tp_atr_mult=float(tp_atr_mult),
        sl_atr_mult=float(sl_atr_mult),
        digits=int(spec.digits),
        point=float(spec.point),
        rule=decision.RULE_EV,
        ev_margin=None,
        cost_points=costs,
        spread_ref_points=float(spread_ref_points),
        default_spread_points=float(spec.default_spread_points),
        spread_cost=str(decision_params.get("spread_cost", "excess")),
    )


@dataclass
class DecisionFit:
    """What the validation window decides besides the trees."""

    calibration: dict[str, Any] | None
    ev_margin: float | None
    table: list[dict[str, float]]
    validation_trades: int
    validation_expectancy_r: float


def fit_decision(
    raw_proba_val: np.ndarray,
    y_val: np.ndarray,
    r_long_val: np.ndarray,
    r_short_val: np.ndarray,
    close_val: np.ndarray,
    atr_val: np.ndarray,
    spread_val: np.ndarray | float,
    settings: Any,
    calibration_method: str,
    decision_params: Mapping[str, Any],
) -> DecisionFit:
    """Calibrate on the validation window, then choose the EV margin there (never on test).

    ``settings``: a :class:`aibridge.decision.DecisionSettings` with ``rule="ev"`` and the
    costs (its ``ev_margin`` is ignored); ``r_long_val``/``r_short_val``: each side's realised
    R from :func:`aibridge.labels.barrier_outcomes` (before commission/slippage). A fixed
    ``decision_params["ev_margin"]`` (a number) skips the search.
    """
    import dataclasses

    from aibridge import decision

    calibration = fit_calibration(
        raw_proba_val,
        y_val,
        calibration_method,
        int(decision_params.get("calibration_min_bin", 50)),
    )
    probe = dataclasses.replace(settings, ev_margin=-np.inf, min_confidence=0.0)
    rows = decision.decide_rows(raw_proba_val, close_val, atr_val, spread_val, probe, calibration)
    side = rows["action"]
    sl_pts, _ = decision.distances(atr_val, settings)
    spread = np.broadcast_to(np.asarray(spread_val, dtype=np.float64), (len(side),))
    cost = decision.costs_r(sl_pts, spread, settings)
    realised = np.where(side == decision.BUY, r_long_val, r_short_val) - cost
    realised = np.where(side == decision.HOLD, np.nan, realised)
    # What each side made on average over the window: the drift a model could ride without
    # any skill (``benchmark: none`` compares with zero instead).
    bench_long = np.nanmean(r_long_val - cost) if np.isfinite(r_long_val).any() else 0.0
    bench_short = np.nanmean(r_short_val - cost) if np.isfinite(r_short_val).any() else 0.0
    benchmark = (
        np.where(side == decision.BUY, bench_long, bench_short)
        if decision_params.get("benchmark", "side_mean") == "side_mean"
        else None
    )
    fixed = decision_params.get("ev_margin", "auto")
    grid = [float(m) for m in decision_params.get("ev_margin_grid", [0.0])]
    chosen, table = choose_margin(
        rows["ev_r"],
        realised,
        grid,
        int(decision_params.get("min_validation_trades", 30)),
        float(decision_params.get("min_validation_t", 0.0)),
        benchmark,
    )
    if fixed not in (None, "auto"):
        chosen = float(fixed)
    picked = (
        np.isfinite(realised) & (rows["ev_r"] > chosen)
        if chosen is not None
        else np.zeros(len(side), dtype=bool)
    )
    n = int(picked.sum())
    return DecisionFit(
        calibration=calibration,
        ev_margin=chosen,
        table=table,
        validation_trades=n,
        validation_expectancy_r=float(realised[picked].mean()) if n else 0.0,
    )


def realised_net_r(rows: Mapping[str, np.ndarray], lab: Any, settings: Any) -> np.ndarray:
    """Per bar: the traded side's realised R after commission, slippage and extra spread
    (NaN where the decision holds). ``lab``: label frame rows (r_long, r_short, atr, spread)."""
    from aibridge import decision

    action = np.asarray(rows["action"])
    sl_pts, _ = decision.distances(lab["atr"].to_numpy(), settings)
    cost = decision.costs_r(sl_pts, lab["spread"].to_numpy(dtype=np.float64), settings)
    r = np.where(action == decision.BUY, lab["r_long"].to_numpy(), lab["r_short"].to_numpy())
    return np.where(action == decision.HOLD, np.nan, r - cost)


def trade_metrics(rows: Mapping[str, np.ndarray], lab: Any, settings: Any) -> dict[str, float]:
    """Trades the decision takes on these rows and their expectancy in R after costs (every
    signal counted as its own trade, as the labels trade it)."""
    net = realised_net_r(rows, lab, settings)
    traded = np.isfinite(net)
    n = int(traded.sum())
    return {
        "trades": float(n),
        "trade_rate": float(n / max(len(net), 1)),
        "expectancy_r": float(net[traded].mean()) if n else 0.0,
        "win_rate": float((net[traded] > 0).mean()) if n else 0.0,
    }
