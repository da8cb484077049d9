"""Stage ``train``: features + labels → LightGBM → MLflow run with the model as a pyfunc.

The body is a sequence of named steps: split the rows, fit the booster, fit the decision rule
on the validation window, decide and score, write the bundle and predictions (DVC outputs:
deterministic, no run ids or times in them), log to MLflow, and write the run record
(``artifacts/train_run.json``: the MLflow identity, untracked by DVC and git).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aibridge import features as feature_code
from aibridge.backtest.walkforward import plan_folds_for
from aibridge.config import flatten
from aibridge.dataset import TrainingRows, load_training_rows
from aibridge.decision import CLASSES, RULE_EV, DecisionSettings, decide_rows
from aibridge.ingest.broker_clock import BrokerClock
from aibridge.instruments import InstrumentSpec
from aibridge.loop.drift import reference_from_matrix
from aibridge.model_bundle import (
    BundleSettings,
    load_local_bundle,
    pyfunc_code_path,
    write_bundle,
)
from aibridge.plots import confusion_png, importance_png
from aibridge.settings import PipelineSettings, pipeline_settings
from aibridge.stages.common import (
    StageError,
    StagePaths,
    console,
    read_json,
    run_stage,
    write_json,
)
from aibridge.stages.runs import MODEL_MD5_TAG, MODEL_URI_TAG, bundle_md5
from aibridge.tracking import (
    configure_mlflow,
    data_hash,
    ensure_experiment,
    git_commit,
    run_name,
)
from aibridge.training import (
    DecisionFit,
    Split,
    classification_metrics,
    cost_points,
    fit_booster,
    fit_decision,
    make_decision_settings,
    realised_net_r,
    time_split,
    trade_metrics,
)

PIP_REQUIREMENTS = ["mlflow", "lightgbm", "numpy", "pandas", "numba"]
PARTS = ("validation", "test")


def _pinned_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in PIP_REQUIREMENTS]


@dataclasses.dataclass
class Fitted:
    """What the fitting steps produced, for the writing steps."""

    booster: Any
    best_iteration: int
    raw: dict[str, np.ndarray]  # booster probabilities per part
    decision: DecisionSettings
    fit: DecisionFit
    cost_detail: dict[str, float]
    decided: dict[str, dict[str, np.ndarray]]
    metrics: dict[str, dict[str, float]]

    @property
    def proba(self) -> dict[str, np.ndarray]:
        return {part: self.decided[part]["proba"] for part in self.decided}


def training_rows(paths: StagePaths) -> TrainingRows:
    """The rows ``train`` (and ``aibridge sweep``) use (``aibridge.dataset``)."""
    return load_training_rows(paths.features, paths.labels)


def split_rows(settings: PipelineSettings, n: int) -> Split:
    s = settings.split
    try:
        return time_split(n, s.validation_fraction, s.test_fraction, s.embargo)
    except ValueError as exc:
        raise StageError(str(exc)) from None


def decision_settings_for(
    settings: PipelineSettings, spec: InstrumentSpec, lab: pd.DataFrame, train_rows: np.ndarray
) -> tuple[DecisionSettings, dict[str, float]]:
    """The expected-value rule's settings before the margin: stops, costs, spreads."""
    dparams = settings.model.decision_params()
    reference = float(lab["close"].to_numpy()[train_rows][-1])
    decision = make_decision_settings(
        spec,
        tp_atr_mult=settings.labels.tp_atr_mult,
        sl_atr_mult=settings.labels.sl_atr_mult,
        decision_params=dparams,
        spread_ref_points=float(np.median(lab["spread"].to_numpy()[train_rows])),
        reference_price=reference,
    )
    _, detail = cost_points(spec, reference, settings.model.decision.slippage_points)
    return decision, detail


def broker_clock(settings: PipelineSettings, paths: StagePaths) -> BrokerClock:
    """The clock ``ingest`` found (or was told) for the training export."""
    if not paths.broker_clock.is_file():
        raise StageError(f"{paths.broker_clock} is missing; run `dvc repro` from the start")
    clocks = read_json(paths.broker_clock)
    if settings.key not in clocks:
        raise StageError(
            f"{paths.broker_clock} has no clock for {settings.key} (it has "
            f"{', '.join(clocks) or 'none'}); run `dvc repro` from the start"
        )
    return BrokerClock.from_dict(clocks[settings.key])


def fit(settings: PipelineSettings, rows: TrainingRows, split: Split) -> Fitted:
    """Booster on train (early stopping on validation), then the decision rule on validation
    only (calibration and the EV margin), then decisions and metrics on validation and test."""
    X, y, lab = rows.X, rows.y, rows.trades
    booster = fit_booster(
        X[split.train],
        y[split.train],
        X[split.validation],
        y[split.validation],
        settings.model.params(),
        settings.seed,
        feature_names=rows.names,
    )
    rows_of = {"validation": split.validation, "test": split.test}
    raw = {
        p: np.asarray(booster.predict(X[i], num_iteration=booster.best_iteration))
        for p, i in rows_of.items()
    }
    decision, cost_detail = decision_settings_for(settings, settings.instrument, lab, split.train)
    va = split.validation
    fitted = fit_decision(
        raw["validation"],
        y[va],
        lab["r_long"].to_numpy()[va],
        lab["r_short"].to_numpy()[va],
        lab["close"].to_numpy()[va],
        lab["atr"].to_numpy()[va],
        lab["spread"].to_numpy()[va],
        decision,
        settings.model.calibration,
        settings.model.decision_params(),
    )
    decision = dataclasses.replace(decision, ev_margin=fitted.ev_margin)
    decided = {
        part: decide_rows(
            raw[part],
            lab["close"].to_numpy()[idx],
            lab["atr"].to_numpy()[idx],
            lab["spread"].to_numpy()[idx],
            decision,
            fitted.calibration,
        )
        for part, idx in rows_of.items()
    }
    # The booster's own probabilities (what early stopping and a sweep trial measure), the
    # calibrated log loss beside them, and the decisions' trades after costs.
    metrics = {
        part: classification_metrics(y[idx], raw[part])
        | {
            "calibrated_log_loss": classification_metrics(y[idx], decided[part]["proba"])[
                "log_loss"
            ]
        }
        | trade_metrics(decided[part], lab.iloc[idx], decision)
        for part, idx in rows_of.items()
    }
    # Keep only the best iteration so the booster file alone reproduces the predictions.
    booster.free_dataset()
    best = int(booster.best_iteration or booster.current_iteration())
    booster = booster.__class__(model_str=booster.model_to_string(num_iteration=best))
    return Fitted(booster, best, raw, decision, fitted, cost_detail, decided, metrics)


def bundle_settings(
    settings: PipelineSettings,
    rows: TrainingRows,
    split: Split,
    fitted: Fitted,
    clock: BrokerClock,
) -> BundleSettings:
    """What the served model needs besides the booster. No run-dependent values: ``git_commit``
    and ``trained_at`` are added only to the copy logged to MLflow (:func:`with_provenance`)."""
    feature_params = settings.features.params()
    spec, d, fit_ = settings.instrument, fitted.decision, fitted.fit
    return BundleSettings(
        symbol=spec.symbol,
        timeframe=settings.timeframe,
        digits=spec.digits,
        point=spec.point,
        feature_params=feature_params,
        feature_names=rows.names,
        min_bars=feature_code.min_bars(feature_params),
        min_confidence=d.min_confidence,
        tp_atr_mult=settings.labels.tp_atr_mult,
        sl_atr_mult=settings.labels.sl_atr_mult,
        tick_size=spec.tick,
        contract_size=spec.contract_size,
        broker_utc_offset_s=clock.utc_offset_s,
        broker_dst=clock.dst,
        broker_clock=clock.to_dict(),
        decision_rule=RULE_EV,
        drift_reference=reference_from_matrix(rows.X[split.train], rows.names),
        calibration=fit_.calibration,
        ev_margin=fit_.ev_margin,
        cost_points=d.cost_points,
        cost_detail=fitted.cost_detail,
        spread_ref_points=d.spread_ref_points,
        default_spread_points=d.default_spread_points,
        spread_cost=d.spread_cost,
        decision_validation={
            "margins": fit_.table,
            "trades": fit_.validation_trades,
            "expectancy_r": fit_.validation_expectancy_r,
            "edge": fit_.ev_margin is not None,
        },
        data_hash=data_hash(),
    )


def with_provenance(bundle: BundleSettings) -> BundleSettings:
    """The bundle settings as logged to MLflow: plus the commit and the training time."""
    return dataclasses.replace(
        bundle,
        git_commit=git_commit(),
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def write_predictions(path: Path, rows: TrainingRows, split: Split, fitted: Fitted) -> None:
    """Validation and test rows: label, calibrated and raw probabilities, the decision."""
    frames = []
    for part, idx in (("validation", split.validation), ("test", split.test)):
        d, proba, raw = fitted.decided[part], fitted.proba[part], fitted.raw[part]
        frames.append(
            pd.DataFrame(
                {"time": rows.frame["time"].to_numpy()[idx], "split": part, "label": rows.y[idx]}
                | {f"p_{c.lower()}": proba[:, i] for i, c in enumerate(CLASSES)}
                | {f"raw_p_{c.lower()}": raw[:, i] for i, c in enumerate(CLASSES)}
                | {
                    "action": d["action"],
                    "reason": d["reason"],
                    "ev_r": d["ev_r"],
                    "net_r": realised_net_r(d, rows.trades.iloc[idx], fitted.decision),
                }
            )
        )
    pd.concat(frames, ignore_index=True).to_parquet(path, index=False)


def logged_params(settings: PipelineSettings) -> dict[str, str]:
    """The run's params: the whole config, flattened (``model.num_leaves``), as strings."""
    return {k: str(v)[:500] for k, v in flatten(settings.model_dump(mode="json")).items()}


def _log_training(
    settings: PipelineSettings,
    paths: StagePaths,
    rows: TrainingRows,
    split: Split,
    fitted: Fitted,
    logged_bundle: BundleSettings,
    clock: BrokerClock,
) -> None:
    """Into the active MLflow run: the config, lineage tags, metrics and plots."""
    import mlflow

    fit_ = fitted.fit
    mlflow.log_params(logged_params(settings))
    mlflow.log_param("broker_utc_offset_s", str(clock.utc_offset_s))
    mlflow.set_tags(
        {
            "git_commit": logged_bundle.git_commit,
            "data_hash": logged_bundle.data_hash,
            "symbol": logged_bundle.symbol,
            "timeframe": logged_bundle.timeframe,
            "feature_set_version": logged_bundle.feature_set_version,
            "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
            "broker_clock.source": clock.source,
            "broker_clock.dst": str(clock.dst),
            "broker_clock.evidence": clock.evidence[:5000],
            "aibridge.trained_at": logged_bundle.trained_at,
            MODEL_MD5_TAG: bundle_md5(paths.model_dir),
        }
    )
    mlflow.log_metric("best_iteration", fitted.best_iteration)
    mlflow.log_param("decision.ev_margin", str(fit_.ev_margin))
    mlflow.set_tag("decision.edge", str(fit_.ev_margin is not None).lower())
    mlflow.log_dict(logged_bundle.decision_validation, "decision/validation_margins.json")
    for part, values in fitted.metrics.items():
        mlflow.log_metrics({f"{part}_{k}": v for k, v in values.items()})
    mlflow.log_figure(importance_png(fitted.booster, rows.names), "plots/feature_importance.png")
    mlflow.log_figure(
        confusion_png(rows.y[split.test], fitted.proba["test"]), "plots/confusion_test.png"
    )


def log_run(
    settings: PipelineSettings,
    paths: StagePaths,
    rows: TrainingRows,
    split: Split,
    fitted: Fitted,
    bundle: BundleSettings,
    clock: BrokerClock,
) -> dict[str, Any]:
    """One MLflow run: params, tags, metrics, plots and the pyfunc model (with provenance).
    Returns the run record (its MLflow identity)."""
    import mlflow
    from mlflow.models import infer_signature

    from aibridge.pyfunc_model import CandleDecisionModel  # noqa: F401  (validates imports)

    tracking_uri = configure_mlflow(settings.tracking_mapping)
    experiment_id = ensure_experiment(settings.tracking.experiment, settings.tracking_mapping)
    candles = paths.load_candles(settings.instrument.symbol, settings.timeframe)
    example = candles.tail(bundle.min_bars + 2).reset_index(drop=True)[
        ["time", "open", "high", "low", "close", "volume"]
    ]
    logged_bundle = with_provenance(bundle)
    fit_ = fitted.fit
    name = run_name(
        f"{settings.instrument.symbol}-{settings.timeframe}",
        logged_params(settings),
        paths.root,
        experiment_id,
    )
    # A context manager: any exception inside ends the run as FAILED (MLflow's __exit__).
    with (
        tempfile.TemporaryDirectory(prefix="aibridge-bundle-") as tmp,
        mlflow.start_run(experiment_id=experiment_id, run_name=name) as run,
    ):
        artifacts = write_bundle(Path(tmp) / "model", fitted.booster, logged_bundle)
        _log_training(settings, paths, rows, split, fitted, logged_bundle, clock)
        _log_dataset(settings, candles, bundle.data_hash)
        logged = mlflow.pyfunc.log_model(
            name="model",
            python_model=pyfunc_code_path(),
            artifacts=artifacts,
            signature=_signature(infer_signature(example, _example_output(paths, example))),
            input_example=example,
            pip_requirements=_pinned_requirements(),
        )
        mlflow.set_tag(MODEL_URI_TAG, logged.model_uri)
        run_id = run.info.run_id
    return {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "model_uri": logged.model_uri,
        "model_id": getattr(logged, "model_id", None),
        "model_md5": bundle_md5(paths.model_dir),
        "tracking_uri": tracking_uri,
        "data_hash": bundle.data_hash,
        "git_commit": logged_bundle.git_commit,
        "trained_at": logged_bundle.trained_at,
        "best_iteration": fitted.best_iteration,
        "broker_utc_offset_s": clock.utc_offset_s,
        "broker_dst": clock.dst,
        "ev_margin": fit_.ev_margin,
    }


def _log_dataset(settings: PipelineSettings, candles: pd.DataFrame, digest: str) -> None:
    """The training candles as an MLflow dataset (the run's Inputs): name, source, digest."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    data = settings.data
    dataset = from_pandas(
        candles,
        source=f"{data.dir}/{data.pattern} (DVC data.dvc md5 {digest})",
        name=f"{settings.key} candles",
        digest=digest.removesuffix(".dir")[:36],
    )
    mlflow.log_input(dataset, context="training")


def check_history(settings: PipelineSettings, paths: StagePaths) -> None:
    """Fail before any MLflow run exists when the history cannot hold one walk-forward fold
    (:func:`aibridge.backtest.walkforward.plan_folds` says which bars and settings)."""
    candles = paths.load_candles(settings.instrument.symbol, settings.timeframe)
    plan_folds_for(
        len(candles),
        {
            "backtest": settings.backtest or {},
            "features": settings.features.params(),
            "labels": settings.labels.model_dump(),
            "timeframe": settings.timeframe,
        },
    )


def report(record: dict[str, Any], fitted: Fitted, clock: BrokerClock) -> None:
    fit_, metrics = fitted.fit, fitted.metrics
    edge = (
        f"EV margin {fit_.ev_margin:+.2f} R chosen on validation "
        f"({fit_.validation_trades} trades, {fit_.validation_expectancy_r:+.3f} R each); "
        f"test: {metrics['test']['trades']:.0f} trades, "
        f"{metrics['test']['expectancy_r']:+.3f} R each after costs"
        if fit_.ev_margin is not None
        else "NO EDGE: no EV margin paid on the validation window, the model never trades"
    )
    console.print(f"train: {edge}")
    console.print(
        f"train: run {record['run_id']}, best iteration {fitted.best_iteration}, validation log "
        f"loss {metrics['validation']['log_loss']:.4f}, test balanced accuracy "
        f"{metrics['test']['balanced_accuracy']:.3f}; broker clock {clock.evidence}"
    )


def train(settings: PipelineSettings, paths: StagePaths) -> dict[str, Any]:
    settings = pipeline_settings(settings)
    check_history(settings, paths)
    rows = training_rows(paths)
    split = split_rows(settings, len(rows.frame))
    console.print(
        f"train: {len(split.train)} train / {len(split.validation)} validation / "
        f"{len(split.test)} test rows, embargo {settings.split.embargo} bars"
    )
    clock = broker_clock(settings, paths)
    fitted = fit(settings, rows, split)
    bundle = bundle_settings(settings, rows, split, fitted, clock)
    write_bundle(paths.model_dir, fitted.booster, bundle)
    write_predictions(paths.predictions, rows, split, fitted)
    record = log_run(settings, paths, rows, split, fitted, bundle, clock)
    write_json(paths.train_run, record)
    # Validation only: the test split's numbers are the evaluate stage's (reports/metrics.json);
    # both parts go to the MLflow run (validation_*, test_*).
    write_json(
        paths.reports / "train_metrics.json",
        {"validation": {k: round(v, 6) for k, v in fitted.metrics["validation"].items()}},
    )
    report(record, fitted, clock)
    return record


def _signature(inferred: Any) -> Any:
    """The inferred signature plus an optional ``spread`` input column (points per bar, as in
    MT4's export): the spread the decision's costs and BUY levels use; without it the
    training instrument's default spread."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    # ``volume`` accepts any numeric dtype: pandas reads an MT4 export's volume as int64, which
    # MLflow will not convert to double (not lossless above 2**53); the model casts it itself.
    columns = [
        ColSpec(AnyType(), "volume") if c.name == "volume" else c for c in inferred.inputs.inputs
    ]
    inputs = Schema([*columns, ColSpec("double", "spread", required=False)])
    return ModelSignature(inputs=inputs, outputs=inferred.outputs, params=inferred.params)


def _example_output(paths: StagePaths, example: pd.DataFrame) -> pd.DataFrame:
    """Run the bundle on the example exactly as MLflow will, to get the output schema."""
    return load_local_bundle(paths.model_dir).predict(None, example)


def main() -> None:
    run_stage("train", train, typed=True)
