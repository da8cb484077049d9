"""LightGBM settings for long histories, chosen by measurement (issue 12).

Run: ``.venv/bin/python benchmarks/bench_training.py [--bars 1000000] [--edge-bars 200000]``.
Writes ``benchmarks/results/training.json`` and prints two tables:

* **speed**: the ``train`` stage's fit (70 / 15 / 15 % split, embargo 24) on ``--bars`` M1
  bars of the pipeline benchmark's random walk, with the shipped parameters and with each
  long-data setting of :data:`aibridge.training.LONG_DATA` alone and together: seconds to
  build the LightGBM datasets and to train, rounds, best round, validation log loss;
* **edge**: the same fit on a planted-edge H1 series (:mod:`aibridge.mt4.synthetic`, the
  moderate edge of ``tests/test_planted_edge.py``) long enough that the long-data settings
  apply, then the decision rule fitted on validation and traded on the test rows: test AUC,
  trades and expectancy in R after costs. The long-data settings must keep the edge.

The box is shared: the 1-minute load average is recorded beside the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_pipeline import synthetic_m1  # noqa: E402

from aibridge import decision, features, labels, training  # noqa: E402
from aibridge.backtest.walkforward import stop_distances  # noqa: E402
from aibridge.config import compose_config, to_container  # noqa: E402
from aibridge.instruments import spec_from_mapping  # noqa: E402
from aibridge.mt4.synthetic import PlantedEdge, planted_edge_series  # noqa: E402

MODERATE = PlantedEdge(edge_probability=0.7, drift_atr=2.0)


def _rows(candles: pd.DataFrame, cfg: dict) -> dict[str, np.ndarray]:
    """Features, labels and each side's R for every usable bar (as the pipeline builds them)."""
    lab, inst = cfg["labels"], cfg["instrument"]
    atr, _, _ = stop_distances(
        candles,
        cfg["features"],
        lab["sl_atr_mult"],
        lab["tp_atr_mult"],
        inst["digits"],
        inst["point"],
    )
    X = np.ascontiguousarray(
        features.compute_features(candles, cfg["features"]).to_numpy(np.float64)
    )
    spread = np.full(len(candles), float(inst["default_spread_points"]))
    out = labels.barrier_outcomes(
        *(candles[k].to_numpy() for k in ("open", "high", "low", "close")),
        atr,
        float(lab["tp_atr_mult"]),
        float(lab["sl_atr_mult"]),
        int(lab["horizon"]),
        point=float(inst["point"]),
        digits=int(inst["digits"]),
        spread_points=spread,
    )
    ok = np.isfinite(X).all(axis=1) & (out.label != labels.NO_LABEL)
    return {
        "X": X[ok],
        "y": out.label[ok],
        "close": candles["close"].to_numpy()[ok],
        "atr": atr[ok],
        "spread": spread[ok],
        "r_long": out.r_long[ok],
        "r_short": out.r_short[ok],
    }


def fit_once(rows: dict[str, np.ndarray], model: dict, seed: int) -> tuple[lgb.Booster, dict]:
    n = len(rows["y"])
    split = training.time_split(n, 0.15, 0.15, 24)
    X, y = rows["X"], rows["y"]
    tr, va = slice(split.train[0], split.train[-1] + 1), split.validation
    params = training.effective_params(model, len(split.train))
    t0 = time.perf_counter()
    train_set = lgb.Dataset(
        X[tr],
        y[tr],
        weight=training.class_weights(y[tr], params.get("class_weight")),
        free_raw_data=False,
        params={"max_bin": params.get("max_bin", 255)},
    ).construct()
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    booster = training.fit_booster(X[tr], y[tr], X[va], y[va], model, seed)
    seconds = time.perf_counter() - t0
    raw = booster.predict(X[va], num_iteration=booster.best_iteration)
    del train_set
    # LightGBM keeps only the best rounds; early stopping trained `patience` more
    best = booster.best_iteration or booster.current_iteration()
    limit = int(params.get("num_boost_round", 500))
    rounds = min(limit, best + int(params.get("early_stopping_rounds", 50)))
    return booster, {
        "train_rows": len(split.train),
        "dataset_s": round(build, 2),
        "fit_s": round(seconds, 2),
        "rounds": rounds,
        "best_round": best,
        "s_per_round": round(seconds / rounds, 4),
        "validation_log_loss": round(training.classification_metrics(y[va], raw)["log_loss"], 5),
    }


VARIANTS = {
    "shipped (long_data off)": {},
    "max_bin 63": {"max_bin": 63},
    "bagging 0.25": {"bagging_fraction": 0.25, "bagging_freq": 1},
    "patience 50": {"early_stopping_rounds": 50},
    "LONG_DATA (all three)": {k: v for k, v in training.LONG_DATA.items() if k != "min_rows"},
}


def model_for(base: dict, variant: dict) -> dict:
    """The shipped model parameters with ``variant`` as the long-data block (min_rows 1)."""
    return base | {"long_data": ({"min_rows": 1} | variant) if variant else {}}


def bench_speed(bars: int, cfg: dict) -> list[dict]:
    rows = _rows(synthetic_m1(bars), cfg)
    out = []
    for name, variant in VARIANTS.items():
        _, m = fit_once(rows, model_for(cfg["model"], variant), int(cfg["seed"]))
        out.append({"variant": name, **m, "load_1m": round(os.getloadavg()[0], 2)})
        print("speed", out[-1], flush=True)
    return out


def bench_edge(bars: int, cfg: dict) -> list[dict]:
    series = planted_edge_series(dataclasses.replace(MODERATE, bars=bars))
    rows = _rows(series, cfg)
    spec = spec_from_mapping(cfg["instrument"])
    dparams = dict(cfg["model"]["decision"]) | {
        "calibration_min_bin": cfg["model"]["calibration_min_bin"]
    }
    out = []
    for name in ("shipped (long_data off)", "LONG_DATA (all three)"):
        booster, m = fit_once(rows, model_for(cfg["model"], VARIANTS[name]), int(cfg["seed"]))
        split = training.time_split(len(rows["y"]), 0.15, 0.15, 24)
        va, te = split.validation, split.test
        settings = training.make_decision_settings(
            spec,
            cfg["labels"]["tp_atr_mult"],
            cfg["labels"]["sl_atr_mult"],
            dparams,
            float(np.median(rows["spread"][split.train])),
            float(rows["close"][split.train[-1]]),
        )
        best = booster.best_iteration
        fitted = training.fit_decision(
            booster.predict(rows["X"][va], num_iteration=best),
            rows["y"][va],
            rows["r_long"][va],
            rows["r_short"][va],
            rows["close"][va],
            rows["atr"][va],
            rows["spread"][va],
            settings,
            cfg["model"]["calibration"],
            dparams,
        )
        settings = dataclasses.replace(settings, ev_margin=fitted.ev_margin)
        raw = booster.predict(rows["X"][te], num_iteration=best)
        decided = decision.decide_rows(
            raw,
            rows["close"][te],
            rows["atr"][te],
            rows["spread"][te],
            settings,
            fitted.calibration,
        )
        lab = pd.DataFrame({k: rows[k][te] for k in ("atr", "spread", "r_long", "r_short")})
        trades = training.trade_metrics(decided, lab, settings)
        cls = training.classification_metrics(rows["y"][te], raw)
        out.append(
            {
                "variant": name,
                **m,
                "test_auc": round(cls.get("auc_macro", float("nan")), 4),
                "ev_margin": fitted.ev_margin,
                "test_trades": int(trades["trades"]),
                "test_expectancy_r": round(trades["expectancy_r"], 4),
                "load_1m": round(os.getloadavg()[0], 2),
            }
        )
        print("edge", out[-1], flush=True)
    return out


def markdown(results: dict) -> str:
    lines = [
        f"Fit of the `train` stage on {results['bars']:,} random-walk M1 bars "
        f"({results['speed'][0]['train_rows']:,} training rows, LightGBM on "
        f"{results.get('threads', 1)} thread):",
        "",
        "| LightGBM settings | dataset s | fit s | rounds (best) | s/round | val log loss | load |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["speed"]:
        lines.append(
            f"| {r['variant']} | {r['dataset_s']} | {r['fit_s']} | {r['rounds']} "
            f"({r['best_round']}) | {r['s_per_round']} | {r['validation_log_loss']} | "
            f"{r['load_1m']} |"
        )
    edge = results.get("edge") or []
    if edge:
        lines += [
            "",
            f"Planted edge (moderate, {results['edge_bars']:,} H1 bars, "
            f"{edge[0]['train_rows']:,} training rows): test window after costs:",
            "",
            "| LightGBM settings | fit s | best round | test AUC | EV margin | trades | "
            "expectancy R |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in edge:
            lines.append(
                f"| {r['variant']} | {r['fit_s']} | {r['best_round']} | {r['test_auc']} | "
                f"{r['ev_margin']} | {r['test_trades']} | {r['test_expectancy_r']} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--edge-bars", type=int, default=200_000)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="LightGBM threads (1: the walk-forward's per-worker setting; a shared, loaded box "
        "makes OpenMP threads wait on each other)",
    )
    ap.add_argument(
        "--edge-from", type=Path, help="take the edge rows from this earlier JSON (no rerun)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/training.json")
    args = ap.parse_args()
    cfg = to_container(compose_config([]))
    cfg["model"]["num_threads"] = args.threads
    results: dict = {
        "bars": args.bars,
        "edge_bars": args.edge_bars,
        "cpus": os.cpu_count(),
        "threads": args.threads,
    }
    results["loadavg_1m_at_start"] = round(os.getloadavg()[0], 2)
    if args.edge_from:
        earlier = json.loads(args.edge_from.read_text())
        results["edge"], results["edge_bars"] = earlier["edge"], earlier["edge_bars"]
    else:
        results["edge"] = bench_edge(args.edge_bars, cfg)
    if not args.skip_speed:
        results["speed"] = bench_speed(args.bars, cfg)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if "speed" in results:
        print(markdown(results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
