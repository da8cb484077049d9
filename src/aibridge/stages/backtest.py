"""Stage ``backtest``: walk-forward report, baselines, and the challenger's own gate numbers.

Two different questions, two different windows:

* *Is the recipe any good?* Walk-forward over the whole history (retrained per fold), compared
  with flat, buy-and-hold and random signals → ``reports/backtest/report.md`` + metrics/plots.
* *Should the new model replace the served one?* The just-trained challenger (``artifacts/model``)
  trades its own held-out test window → ``reports/backtest/challenger.json`` (the window and the
  challenger's numbers: the floor's inputs). The ``register`` stage runs the registry's champion
  on that same window, counts the variants tried in MLflow (for the Deflated Sharpe) and applies
  the gate (:mod:`aibridge.backtest.gate`).

Every output here depends only on data, code and params (no MLflow reads): a repository with a
registry history and a fresh clone write the same bytes. The Deflated Sharpe in
``metrics.json`` counts one variant (the probabilistic Sharpe ratio); the gate deflates by the
MLflow runs of the experiment.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aibridge.backtest import gate as gate_rule
from aibridge.backtest.baselines import run_baselines, verdicts
from aibridge.backtest.engine import run_backtest
from aibridge.backtest.metrics import compute_metrics, json_safe
from aibridge.backtest.report import markdown_report, write_outputs
from aibridge.backtest.settings import BacktestSettings
from aibridge.backtest.signals import CANDLE_COLUMNS, load_settings, window_metrics
from aibridge.backtest.walkforward import walk_forward
from aibridge.instruments import InstrumentSpec
from aibridge.model_bundle import load_local_bundle
from aibridge.risk import RiskSettings, risk_settings_from_mapping
from aibridge.settings import PipelineSettings, pipeline_settings
from aibridge.stages.common import StageError, StagePaths, console, run_stage, write_json
from aibridge.stages.runs import read_train_run

CHALLENGER_JSON = "challenger.json"
GATE_JSON = "gate.json"


def walk_forward_config(settings: PipelineSettings) -> dict[str, Any]:
    """The plain mapping :func:`aibridge.backtest.walkforward.walk_forward` takes: the same
    values the ``train`` stage trains with."""
    return {
        "features": settings.features.params(),
        "labels": settings.labels.model_dump(),
        "model": settings.model.params(),
        "instrument": settings.instrument.model_dump(),
        "risk": settings.risk,
        "seed": settings.seed,
    }


def risk_settings(settings: PipelineSettings) -> RiskSettings:
    return risk_settings_from_mapping(settings.risk or {})


def test_window(paths: StagePaths, candles: pd.DataFrame) -> tuple[str, str, np.ndarray]:
    """The challenger's held-out test window (first and last bar time) and its bar mask."""
    preds = pd.read_parquet(paths.predictions)
    test_times = preds.loc[preds["split"] == "test", "time"]
    t0, t1 = test_times.min(), test_times.max()
    mask = ((candles["time"] >= t0) & (candles["time"] <= t1)).to_numpy()
    return str(t0), str(t1), mask


def challenger_record(
    paths: StagePaths,
    candles: pd.DataFrame,
    spec: InstrumentSpec,
    risk: RiskSettings,
    settings: BacktestSettings,
) -> dict[str, Any]:
    """The challenger's trading numbers on its test window (``challenger.json``)."""
    t0, t1, mask = test_window(paths, candles)
    decisions = load_local_bundle(paths.model_dir).predict(None, candles[CANDLE_COLUMNS])
    metrics = window_metrics(decisions, candles, mask, spec, risk, settings)
    _, floor = gate_rule.floor_check(gate_rule.with_dsr(metrics, None), settings.gate)
    console.print(
        f"backtest: challenger on its test window ({t0} → {t1}): "
        f"{metrics['trade_count']:.0f} trades; {floor} (the register stage applies the gate)"
    )
    return {
        "window": {"start": t0, "end": t1, "bars": int(mask.sum())},
        "challenger": metrics,
    }


def _log_mlflow(
    settings: PipelineSettings, paths: StagePaths, summary: dict[str, Any], files: list[Path]
) -> None:
    """Attach metrics and files to the train run, so the model's page shows its backtest."""
    import mlflow

    from aibridge.tracking import configure_mlflow

    try:
        run_id = read_train_run(paths, settings.tracking_mapping)["run_id"]
    except StageError as exc:  # a store without the train run: the DVC outputs still stand
        console.print(f"backtest: not logged to MLflow ({exc})")
        return
    configure_mlflow(settings.tracking_mapping)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({f"bt_{k}": v for k, v in summary["model"].items() if math.isfinite(v)})
        gate_sharpe = summary.get("challenger_sharpe")
        if gate_sharpe is not None and math.isfinite(gate_sharpe):
            mlflow.log_metric("bt_gate_sharpe", gate_sharpe)
        for f in files:
            mlflow.log_artifact(str(f), artifact_path="backtest")


def backtest(pipeline: PipelineSettings, paths: StagePaths) -> dict[str, Any]:
    """The stage body (see the module docstring)."""
    pipeline = pipeline_settings(pipeline)
    settings = load_settings(pipeline)
    candles = paths.load_candles(pipeline.instrument.symbol, pipeline.timeframe)
    spec = pipeline.instrument
    risk = risk_settings(pipeline)
    wf = walk_forward(candles, walk_forward_config(pipeline), settings.walk_forward)
    a, b = wf.oos
    window = candles.iloc[a:b].reset_index(drop=True)
    sig, sl, tp = wf.signal[a:b], wf.sl_dist[a:b], wf.tp_dist[a:b]
    result = run_backtest(window, sig, sl, tp, spec, risk, settings.engine)
    metrics = compute_metrics(result, settings.bootstrap)
    base = run_baselines(
        window,
        sig,
        sl,
        tp,
        spec,
        risk,
        settings.engine,
        settings.baselines,
        bootstrap=settings.bootstrap,
        trades=len(result.trades),
    )
    rows = verdicts(metrics, base)
    challenger = challenger_record(paths, candles, spec, risk, settings)
    wf_metrics = gate_rule.with_dsr(metrics, None)  # one variant: see the module docstring
    _, edge = gate_rule.floor_check(wf_metrics, settings.gate)
    folds_trading = sum(1 for f in wf.fold_metrics if f.get("signals", 0.0) > 0)
    metrics = metrics | {
        "dsr": wf_metrics["dsr"],
        "folds_trading_pct": 100.0 * folds_trading / max(len(wf.folds), 1),
        "random_runs_beaten_pct": 100.0 * float(str(rows[-1]["share_of_random_runs_beaten"])),
    }
    wfs = settings.walk_forward
    span = f"{window['time'].iloc[0]} → {window['time'].iloc[-1]} ({len(window)} bars)"
    summary = {
        "window": span,
        "model": metrics,
        "baselines": {
            "flat": base.flat,
            "buy_and_hold": base.buy_and_hold,
            "random_median": base.random_median,
        },
        "verdicts": rows,
        "entry_outcomes": result.entry_outcomes(),
        "folds": len(wf.folds),
        "edge": edge,
    }
    report = markdown_report(
        f"Walk-forward backtest: {spec.symbol} {pipeline.timeframe}",
        span,
        {
            "model": metrics,
            "flat": base.flat,
            "buy-and-hold": base.buy_and_hold,
            "random (median)": base.random_median,
        },
        rows,
        wf.fold_metrics,
        result.entry_outcomes(),
        None,
        edge=f"walk-forward {edge}",
        notes=[
            f"{len(wf.folds)} {wfs.mode} folds: train {wfs.train_bars} bars, test "
            f"{wfs.test_bars} bars, embargo >= label horizon, retrained each fold.",
            "MT4 fills: bars are Bid, longs open at Ask, shorts close at Ask; orders at the next "
            "bar's open; stop first when SL and TP share a bar.",
            f"Random baseline: {settings.baselines.random_runs} seeded runs with as many random "
            "signals as the model made trades.",
            f"Buy-and-hold: a notional of {settings.baselines.buy_and_hold_leverage:g}x the "
            "initial equity, no stop.",
            f"Confidence intervals: {settings.bootstrap.samples} bootstrap resamples "
            f"(seed {settings.bootstrap.seed}). DSR here: one variant (the probabilistic Sharpe "
            "ratio); the register stage's gate deflates by the MLflow runs of the experiment.",
            "Champion vs challenger: the register stage (reports/registration.json, the "
            "MLflow model version's description).",
        ],
    )
    out = paths.root / settings.output_dir
    files = write_outputs(out, result, base.buy_and_hold_result, summary, wf.fold_metrics, report)
    write_json(out / CHALLENGER_JSON, json_safe(challenger))
    (out / GATE_JSON).unlink(missing_ok=True)  # written by earlier versions of this stage
    summary["challenger_sharpe"] = float(challenger["challenger"].get("sharpe", math.nan))
    _log_mlflow(pipeline, paths, summary, [*files.values(), out / CHALLENGER_JSON])
    console.print(
        f"backtest: {int(metrics['trade_count'])} trades, net {metrics['net_profit']:.2f}, "
        f"Sharpe {metrics['sharpe']:.2f}, max DD {metrics['max_drawdown_pct']:.2f}% → {out}"
    )
    return summary


def main() -> None:
    run_stage("backtest", backtest, typed=True)
