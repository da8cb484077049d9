"""Stage ``backtest``: walk-forward report, baselines, and the champion/challenger numbers.

Two different questions, two different windows:

* *Is the recipe any good?* Walk-forward over the whole history (retrained per fold), compared
  with flat, buy-and-hold and random signals → ``reports/backtest/report.md`` + metrics/plots.
* *Should the new model replace the served one?* The just-trained challenger (``artifacts/model``)
  and the registry's champion both trade the challenger's held-out test window with the same
  engine and rules → ``reports/backtest/gate.json``, which the ``register`` stage applies.
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
from aibridge.backtest.metrics import compute_metrics
from aibridge.backtest.report import markdown_report, write_outputs
from aibridge.backtest.settings import BacktestSettings
from aibridge.backtest.signals import CANDLE_COLUMNS, load_settings, window_metrics
from aibridge.backtest.walkforward import walk_forward
from aibridge.instruments import InstrumentSpec
from aibridge.model_bundle import load_local_bundle
from aibridge.risk import RiskSettings, risk_settings_from_mapping
from aibridge.settings import PipelineSettings, pipeline_settings
from aibridge.stages.common import StagePaths, console, run_stage
from aibridge.stages.runs import read_train_run

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


def mlflow_trials(settings: PipelineSettings, paths: StagePaths) -> gate_rule.Trials | None:
    """Variants tried so far: the runs of the train run's MLflow experiment (every ``dvc
    repro``, ``dvc exp run`` and sweep trial logs one), and the variance of the Sharpe ratios
    the backtest recorded on them (``bt_gate_sharpe``, else ``bt_sharpe``). None when the
    store cannot be read (the DSR then assumes one variant)."""
    try:
        from mlflow import MlflowClient

        from aibridge.tracking import configure_mlflow

        configure_mlflow(settings.tracking_mapping)
        client = MlflowClient()
        run_id = read_train_run(paths, settings.tracking_mapping)["run_id"]
        experiment = client.get_run(run_id).info.experiment_id
        runs = client.search_runs([experiment], max_results=5000)
    except Exception as exc:
        console.print(f"backtest gate: cannot count MLflow variants ({exc}); assuming 1")
        return None
    sharpes = []
    for run in runs:
        m = run.data.metrics
        value = m.get("bt_gate_sharpe", m.get("bt_sharpe"))
        if value is not None and math.isfinite(value):
            sharpes.append(float(value))
    var = float(np.var(sharpes, ddof=1)) if len(sharpes) >= 2 else None
    return gate_rule.Trials(
        count=max(len(runs), 1),
        sharpe_variance=var,
        source=f"MLflow experiment {experiment}: {len(runs)} runs, {len(sharpes)} with a Sharpe",
    )


def champion_decisions(
    settings: PipelineSettings, candles: pd.DataFrame
) -> tuple[pd.DataFrame, str] | None:
    """The registry champion's decisions on ``candles``, or None when there is no champion."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from aibridge.tracking import configure_mlflow

    configure_mlflow(settings.tracking_mapping)
    name, alias = settings.registry.model_name, settings.registry.champion_alias
    try:
        version = MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    model = mlflow.pyfunc.load_model(f"models:/{name}@{alias}")
    return model.predict(candles[CANDLE_COLUMNS]), str(version.version)


def evaluate_gate(
    pipeline: PipelineSettings,
    paths: StagePaths,
    candles: pd.DataFrame,
    spec: InstrumentSpec,
    risk: RiskSettings,
    settings: BacktestSettings,
) -> gate_rule.GateDecision:
    """Challenger vs champion on the challenger's held-out test window."""
    preds = pd.read_parquet(paths.predictions)
    test_times = preds.loc[preds["split"] == "test", "time"]
    t0, t1 = test_times.min(), test_times.max()
    mask = ((candles["time"] >= t0) & (candles["time"] <= t1)).to_numpy()
    challenger = window_metrics(
        load_local_bundle(paths.model_dir).predict(None, candles[CANDLE_COLUMNS]),
        candles,
        mask,
        spec,
        risk,
        settings,
    )
    champ = champion_decisions(pipeline, candles)
    champion = None
    if champ is not None:
        champion = window_metrics(champ[0], candles, mask, spec, risk, settings) | {
            "version": float(champ[1])
        }
    trials = mlflow_trials(pipeline, paths)
    decision = gate_rule.decide(challenger, champion, settings.gate, trials)
    console.print(
        f"backtest gate ({t0} → {t1}): {'PROMOTE' if decision.promote else 'KEEP'} — "
        f"{decision.reason}"
    )
    return decision


def _log_mlflow(
    settings: PipelineSettings, paths: StagePaths, summary: dict[str, Any], files: list[Path]
) -> None:
    """Attach metrics and files to the train run, so the model's page shows its backtest."""
    import mlflow

    from aibridge.tracking import configure_mlflow

    run_id = read_train_run(paths, settings.tracking_mapping)["run_id"]
    configure_mlflow(settings.tracking_mapping)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({f"bt_{k}": v for k, v in summary["model"].items() if math.isfinite(v)})
        gate_sharpe = summary.get("gate_challenger_sharpe")
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
    decision = evaluate_gate(pipeline, paths, candles, spec, risk, settings)
    trials = gate_rule.Trials(
        count=int(decision.challenger.get("trials", 1.0)), sharpe_variance=None
    )
    wf_metrics = gate_rule.with_dsr(metrics, trials)
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
        "gate": {
            "promote": decision.promote,
            "reason": decision.reason,
            "challenger_dsr": decision.challenger.get("dsr"),
            "trials": decision.challenger.get("trials"),
        },
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
        {"promote": decision.promote, "reason": decision.reason},
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
            f"(seed {settings.bootstrap.seed}); DSR counts the MLflow runs of the experiment as "
            "variants tried.",
        ],
    )
    out = paths.root / settings.output_dir
    files = write_outputs(out, result, base.buy_and_hold_result, summary, wf.fold_metrics, report)
    decision.write(out / GATE_JSON)
    summary["gate_challenger_sharpe"] = float(decision.challenger.get("sharpe", math.nan))
    _log_mlflow(pipeline, paths, summary, [*files.values(), out / GATE_JSON])
    console.print(
        f"backtest: {int(metrics['trade_count'])} trades, net {metrics['net_profit']:.2f}, "
        f"Sharpe {metrics['sharpe']:.2f}, max DD {metrics['max_drawdown_pct']:.2f}% → {out}"
    )
    return summary


def main() -> None:
    run_stage("backtest", backtest, typed=True)
