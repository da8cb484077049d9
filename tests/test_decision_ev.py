"""The expected-value decision: calibration, costs in R, the margin chosen on validation, and
evidence on synthetic series with a planted edge (and a control without one)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aibridge import decision, features, labels, training
from aibridge.decision import BUY, HOLD, SELL, DecisionSettings
from aibridge.instruments import load_instrument

EV = DecisionSettings(
    min_confidence=0.0,
    tp_atr_mult=2.0,
    sl_atr_mult=1.0,
    digits=5,
    point=1e-5,
    rule="ev",
    ev_margin=0.1,
    cost_points=7.0,
    spread_ref_points=5.0,
    default_spread_points=5.0,
)


def test_expected_r_by_hand() -> None:
    # The case: p(TP first) 0.41 at 2:1 is 0.41*2 - 0.59 = +0.23 R before costs.
    assert decision.expected_r(0.41, 2.0, 0.0) == pytest.approx(0.23)
    # SL 100 points, spread 15 (10 beyond the labels' 5), commission 7 → 17/100 R.
    assert decision.costs_r(np.array([100.0]), np.array([15.0]), EV)[0] == pytest.approx(0.17)
    # A spread below the labels' is not a rebate; "full" charges the whole spread.
    assert decision.costs_r(np.array([100.0]), np.array([2.0]), EV)[0] == pytest.approx(0.07)
    full = dataclasses.replace(EV, spread_cost="full")
    assert decision.costs_r(np.array([100.0]), np.array([15.0]), full)[0] == pytest.approx(0.22)


def test_decide_ev_reasons_and_sides() -> None:
    proba = np.array(
        [
            [0.10, 0.49, 0.41],  # BUY: 0.82 - 0.59 - 0.07 = +0.16 > 0.1
            [0.45, 0.45, 0.10],  # SELL: 0.90 - 0.55 - 0.07 = +0.28
            [0.30, 0.40, 0.30],  # both -0.17: below the margin
            [np.nan, np.nan, np.nan],  # no history
            [0.10, 0.49, 0.41],  # no ATR
        ]
    )
    sl = np.array([100.0, 100.0, 100.0, 100.0, np.nan])
    tp = 2 * sl
    spread = np.full(5, 5.0)
    action, conf, reason, ev = decision.decide_ev(proba, sl, tp, spread, EV)
    assert list(action) == [BUY, SELL, HOLD, HOLD, HOLD]
    assert list(reason) == [
        "signal",
        "signal",
        "ev_below_margin",
        "insufficient_history",
        "insufficient_history",
    ]
    np.testing.assert_allclose(ev[:3], [0.16, 0.28, -0.17])
    np.testing.assert_allclose(conf[:3], [0.41, 0.45, 0.30])
    # the optional confidence floor, and a model without a margin (no edge on validation)
    strict = dataclasses.replace(EV, min_confidence=0.42)
    assert list(decision.decide_ev(proba, sl, tp, spread, strict)[2][:2]) == [
        "below_min_confidence",
        "signal",
    ]
    none = dataclasses.replace(EV, ev_margin=None)
    action, _, reason, _ = decision.decide_ev(proba, sl, tp, spread, none)
    assert (action == HOLD).all() and list(reason[:3]) == ["no_edge"] * 3


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_is_fitted_per_class_and_applied_row_by_row(method: str) -> None:
    rng = np.random.default_rng(0)
    n = 4000
    raw = rng.dirichlet([2, 5, 2], n)
    # the true probabilities are sharper than the raw scores: calibration must stretch them
    true = raw**2 / (raw**2).sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(true, axis=1)).sum(axis=1)
    cal = training.fit_calibration(raw, y, method, min_bin=50)
    out = decision.calibrate(raw, cal)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-12)
    # calibrated p(BUY) tracks the observed frequency in deciles of the raw score
    bins = np.quantile(raw[:, 2], np.linspace(0, 1, 11))
    idx = np.clip(np.digitize(raw[:, 2], bins) - 1, 0, 9)
    for b in (0, 9):
        sel = idx == b
        assert abs(out[sel, 2].mean() - (y[sel] == BUY).mean()) < 0.08
    # the one-row path (the server) gives the very bits of the matrix path (the pyfunc)
    for i in range(0, n, 97):
        assert np.array_equal(decision.calibrate(raw[i : i + 1], cal)[0], out[i])
    # rows without history stay NaN
    assert np.isnan(decision.calibrate(np.full((1, 3), np.nan), cal)).all()
    if method == "isotonic":  # fitted on groups of >= 50 rows: no steps of a handful
        assert all(len(x) <= n // 50 + 1 for x in cal["x"])


def test_margin_is_the_best_validation_expectancy_with_enough_trades() -> None:
    ev = np.array([0.05] * 40 + [0.25] * 40 + [0.45] * 10)
    realised = np.array([-0.2] * 40 + [0.5] * 40 + [2.0] * 10)
    margin, table = training.choose_margin(ev, realised, [0.0, 0.2, 0.4], min_trades=30)
    # 0.4 has the best mean (+2 R) but only 10 trades; 0.2 keeps 50 trades at +0.8 R
    assert margin == 0.2
    assert [row["trades"] for row in table] == [90, 50, 10]
    assert table[1]["expectancy_r"] == pytest.approx(0.8)
    # nothing pays: no margin, the model will never trade
    margin, _ = training.choose_margin(ev, -np.abs(realised), [0.0, 0.2], min_trades=30)
    assert margin is None


def test_commission_in_points() -> None:
    spec = load_instrument("EURUSD")  # 3.5 USD per lot per side, 1 USD per point per lot
    total, detail = training.cost_points(spec, 1.1, slippage_points=1.5)
    assert detail["commission_points"] == pytest.approx(7.0)
    assert total == pytest.approx(8.5)


# --------------------------------------------------------------------------- planted edges


def _series(edge_probability: float, seed: int, bars: int, drift_atr: float = 1.0) -> pd.DataFrame:
    """helper D's generator (aibridge.mt4.synthetic): bullish/bearish marubozu triggers at
    ~3 % of bars, followed with ``edge_probability`` by a 1-ATR drift in their direction."""
    synthetic = pytest.importorskip("aibridge.mt4.synthetic")
    PlantedEdge, planted_edge_series = synthetic.PlantedEdge, synthetic.planted_edge_series

    return planted_edge_series(
        PlantedEdge(bars=bars, seed=seed, edge_probability=edge_probability, drift_atr=drift_atr)
    )


def served_on_test_window(
    candles: pd.DataFrame, tmp: Path, seed: int = 42, decision_overrides: dict | None = None
) -> dict:
    """The train stage's recipe (conf defaults: model, calibration, margin search, EURUSD
    costs), the bundle written and loaded as the pyfunc, its decisions over the test window,
    and each traded signal's realised R after costs (as the labels trade it)."""
    import yaml

    from aibridge.model_bundle import BundleSettings, load_local_bundle, write_bundle

    repo = Path(__file__).resolve().parents[1]
    model_conf = yaml.safe_load((repo / "conf/model/lightgbm.yaml").read_text())
    model_conf["num_threads"] = 1
    lab_conf = yaml.safe_load((repo / "conf/labels/triple_barrier.yaml").read_text())
    fp = yaml.safe_load((repo / "conf/features/default.yaml").read_text())
    spec = load_instrument("EURUSD")
    o, h, lo, c = (candles[k].to_numpy() for k in ("open", "high", "low", "close"))
    atr = features.atr(h, lo, c, fp["atr_window"])
    spread = np.full(len(c), spec.default_spread_points)
    tp_m, sl_m, horizon = lab_conf["tp_atr_mult"], lab_conf["sl_atr_mult"], lab_conf["horizon"]
    out = labels.barrier_outcomes(
        o,
        h,
        lo,
        c,
        atr,
        tp_m,
        sl_m,
        horizon,
        point=spec.point,
        digits=spec.digits,
        spread_points=spread,
    )
    X = features.feature_matrix(candles["time"], o, h, lo, c, candles["volume"], fp)
    rows = np.flatnonzero(np.isfinite(X).all(axis=1) & (out.label != labels.NO_LABEL))
    y = out.label[rows]
    split = training.time_split(len(rows), 0.2, 0.3, horizon)
    tr, va = rows[split.train], rows[split.validation]
    booster = training.fit_booster(
        X[tr],
        y[split.train],
        X[va],
        y[split.validation],
        model_conf,
        seed,
        feature_names=features.feature_names(fp),
    )
    costs, _ = training.cost_points(spec, float(c[tr[-1]]), 0.0)
    dparams = (
        dict(model_conf["decision"])
        | {"calibration_min_bin": model_conf["calibration_min_bin"]}
        | (decision_overrides or {})
    )
    settings = DecisionSettings(
        min_confidence=0.0,
        tp_atr_mult=tp_m,
        sl_atr_mult=sl_m,
        digits=spec.digits,
        point=spec.point,
        rule="ev",
        cost_points=costs,
        spread_ref_points=float(np.median(spread[tr])),
        default_spread_points=spec.default_spread_points,
    )
    raw = booster.predict(X[va], num_iteration=booster.best_iteration)
    fit = training.fit_decision(
        raw,
        y[split.validation],
        out.r_long[va],
        out.r_short[va],
        c[va],
        atr[va],
        spread[va],
        settings,
        model_conf["calibration"],
        dparams,
    )
    best = booster.best_iteration or booster.current_iteration()
    booster = booster.__class__(model_str=booster.model_to_string(num_iteration=best))
    bundle = BundleSettings(
        symbol="EURUSD",
        timeframe="H1",
        digits=spec.digits,
        point=spec.point,
        feature_params=fp,
        feature_names=features.feature_names(fp),
        min_bars=features.min_bars(fp),
        min_confidence=0.0,
        tp_atr_mult=tp_m,
        sl_atr_mult=sl_m,
        decision_rule="ev",
        calibration=fit.calibration,
        ev_margin=fit.ev_margin,
        cost_points=costs,
        spread_ref_points=settings.spread_ref_points,
        default_spread_points=settings.default_spread_points,
    )
    write_bundle(tmp, booster, bundle)
    test = rows[split.test]
    pred = load_local_bundle(tmp).predict(None, candles.iloc[: test[-1] + 1])
    pred = pred.iloc[test].reset_index(drop=True)
    side = pred["action"].to_numpy()
    r = np.where(side == "BUY", out.r_long[test], out.r_short[test])
    net = r - costs / pred["sl_points"].to_numpy()
    traded = side != "HOLD"
    trigger = candles["trigger"].to_numpy()[test]
    direction = np.where(side == "BUY", 1, np.where(side == "SELL", -1, 0))
    n = int(traded.sum())
    mean = float(net[traded].mean()) if n else 0.0
    se = float(net[traded].std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    return {
        "margin": fit.ev_margin,
        "validation_trades": fit.validation_trades,
        "test_bars": len(test),
        "triggers": int((trigger != 0).sum()),
        "trigger_trades": int(((direction == trigger) & (trigger != 0)).sum()),
        "trades": n,
        "trade_share": n / len(test),
        "expectancy_r": mean,
        "se": se,
        "reasons": pred["reason"].value_counts().to_dict(),
    }


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 8])
def test_planted_edge_is_traded_and_pays_and_the_controls_are_not(
    tmp_path: Path, seed: int
) -> None:
    """A moderate edge (p = 0.7 of a 1-ATR drift after the pattern): the served decision
    trades a good share of the trigger bars of the test window, in their direction, with a
    positive expectancy after costs (at least two standard errors). Controls: the same
    triggers with a drift in a random direction (p = 0.5: nothing to know at the trigger bar,
    though a drift once under way is predictable) is traded rarely and not significantly
    positively; the same triggers without any drift (pure noise) are never traded."""
    edge = served_on_test_window(_series(0.7, seed, 20000), tmp_path / "edge")
    coin = served_on_test_window(_series(0.5, seed, 20000), tmp_path / "coin")
    noise = served_on_test_window(_series(0.5, seed, 20000, drift_atr=0.0), tmp_path / "noise")
    for name, res in (("edge", edge), ("coin", coin), ("noise", noise)):
        print(f"seed {seed} {name}: {res}")
    assert edge["margin"] is not None
    assert edge["trigger_trades"] >= 0.25 * edge["triggers"]
    assert edge["expectancy_r"] > 2 * edge["se"] > 0
    assert coin["trade_share"] <= 0.02
    assert coin["trades"] == 0 or coin["expectancy_r"] < 2 * coin["se"]
    assert noise["margin"] is None and noise["trades"] == 0
    assert set(noise["reasons"]) == {"no_edge"}
