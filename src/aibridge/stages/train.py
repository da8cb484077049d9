"""Stage ``train``: features + labels → LightGBM → MLflow run with the model as a pyfunc."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from aibridge import features as feature_code
from aibridge.config import flatten, to_container
from aibridge.decision import CLASSES, RULE_EV, DecisionSettings, decide_rows
from aibridge.ingest.broker_clock import BrokerClock
from aibridge.instruments import spec_from_mapping
from aibridge.labels import NO_LABEL
from aibridge.loop.drift import reference_from_matrix
from aibridge.model_bundle import (
    BundleSettings,
    load_local_bundle,
    pyfunc_code_path,
    write_bundle,
)
from aibridge.plots import confusion_png, importance_png
from aibridge.stages.common import (
    StageError,
    StagePaths,
    console,
    read_json,
    run_stage,
    write_json,
)
from aibridge.stages.features import load_candles
from aibridge.tracking import configure_mlflow, data_hash, ensure_experiment, git_commit
from aibridge.training import (
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


def _pinned_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in PIP_REQUIREMENTS]


def _dataset(paths: StagePaths) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Usable rows: features, labels and feature names (what ``aibridge.sweep`` trains on)."""
    frame, y, names, _ = _dataset_with_trades(paths)
    return frame, y, names


def _dataset_with_trades(
    paths: StagePaths,
) -> tuple[pd.DataFrame, np.ndarray, list[str], pd.DataFrame]:
    """``_dataset`` and the label frame's trade columns (atr, close, spread, r_long, r_short)
    for the same rows."""
    feats = pd.read_parquet(paths.features)
    labels = pd.read_parquet(paths.labels)
    if not feats["time"].equals(labels["time"]):
        raise StageError("features and labels are out of step; run `dvc repro` from the start")
    if "r_long" not in labels.columns:
        raise StageError(f"{paths.labels} predates the engine-like labels; run `dvc repro`")
    names = [c for c in feats.columns if c != "time"]
    usable = feats[names].notna().all(axis=1).to_numpy() & (labels["label"].to_numpy() != NO_LABEL)
    return (
        feats.loc[usable].reset_index(drop=True),
        labels["label"].to_numpy()[usable],
        names,
        labels.loc[usable].reset_index(drop=True),
    )


def decision_settings_for(
    cfg: DictConfig, spec: Any, lab: pd.DataFrame, train_rows: np.ndarray
) -> tuple[DecisionSettings, dict[str, float]]:
    """The expected-value rule's settings before the margin: stops, costs, spreads."""
    dparams = to_container(cfg.model).get("decision", {}) or {}
    reference = float(lab["close"].to_numpy()[train_rows][-1])
    settings = make_decision_settings(
        spec,
        float(cfg.labels.tp_atr_mult),
        float(cfg.labels.sl_atr_mult),
        dparams,
        float(np.median(lab["spread"].to_numpy()[train_rows])),
        reference,
    )
    _, detail = cost_points(spec, reference, float(dparams.get("slippage_points", 0.0)))
    return settings, detail


def _broker_clock(cfg: DictConfig, paths: StagePaths) -> BrokerClock:
    """The clock ``ingest`` found (or was told) for the training export."""
    key = f"{cfg.instrument.symbol}_{cfg.timeframe}"
    if not paths.broker_clock.is_file():
        raise StageError(f"{paths.broker_clock} is missing; run `dvc repro` from the start")
    clocks = read_json(paths.broker_clock)
    if key not in clocks:
        raise StageError(
            f"{paths.broker_clock} has no clock for {key} (it has {', '.join(clocks) or 'none'}); "
            "run `dvc repro` from the start"
        )
    return BrokerClock.from_dict(clocks[key])


def train(cfg: DictConfig, paths: StagePaths) -> dict[str, Any]:
    import mlflow
    from mlflow.models import infer_signature

    frame, y, names, lab = _dataset_with_trades(paths)
    embargo = int(cfg.split.embargo)
    if embargo < int(cfg.labels.horizon):
        raise StageError(
            f"split.embargo ({embargo}) must be at least labels.horizon ({cfg.labels.horizon}) "
            "or training labels would see validation bars"
        )
    try:
        split = time_split(
            len(frame),
            float(cfg.split.validation_fraction),
            float(cfg.split.test_fraction),
            embargo,
        )
    except ValueError as exc:
        raise StageError(str(exc)) from None
    X = frame[names].to_numpy(dtype=np.float64)
    model_params = OmegaConf.to_container(cfg.model, resolve=True)
    seed = int(cfg.seed)
    console.print(
        f"train: {len(split.train)} train / {len(split.validation)} validation / "
        f"{len(split.test)} test rows, embargo {embargo} bars"
    )
    booster = fit_booster(
        X[split.train],
        y[split.train],
        X[split.validation],
        y[split.validation],
        model_params,
        seed,
        feature_names=names,
    )
    raw = {
        part: booster.predict(X[idx], num_iteration=booster.best_iteration)
        for part, idx in (("validation", split.validation), ("test", split.test))
    }
    try:
        spec = spec_from_mapping(to_container(cfg.instrument))
    except ValueError as exc:
        raise StageError(f"instrument: {exc}") from None
    # Calibration and the EV margin come from the validation window only.
    dsettings, cost_detail = decision_settings_for(cfg, spec, lab, split.train)
    dparams = dict(to_container(cfg.model).get("decision", {}) or {})
    dparams["calibration_min_bin"] = int(cfg.model.get("calibration_min_bin", 50))
    va = split.validation
    fitted = fit_decision(
        raw["validation"],
        y[va],
        lab["r_long"].to_numpy()[va],
        lab["r_short"].to_numpy()[va],
        lab["close"].to_numpy()[va],
        lab["atr"].to_numpy()[va],
        lab["spread"].to_numpy()[va],
        dsettings,
        str(cfg.model.get("calibration", "sigmoid")),
        dparams,
    )
    dsettings = dataclasses.replace(dsettings, ev_margin=fitted.ev_margin)
    decided = {}
    for part, idx in (("validation", split.validation), ("test", split.test)):
        decided[part] = decide_rows(
            raw[part],
            lab["close"].to_numpy()[idx],
            lab["atr"].to_numpy()[idx],
            lab["spread"].to_numpy()[idx],
            dsettings,
            fitted.calibration,
        )
    proba = {part: decided[part]["proba"] for part in decided}
    # The booster's own probabilities (what early stopping and a sweep trial measure), the
    # calibrated log loss beside them, and the decisions' trades after costs.
    metrics = {
        part: classification_metrics(y[idx], raw[part])
        | {
            "calibrated_log_loss": classification_metrics(y[idx], proba[part])["log_loss"],
        }
        | trade_metrics(decided[part], lab.iloc[idx], dsettings)
        for part, idx in (("validation", split.validation), ("test", split.test))
    }

    feature_params = to_container(cfg.features)
    clock = _broker_clock(cfg, paths)
    settings = BundleSettings(
        symbol=str(cfg.instrument.symbol),
        timeframe=str(cfg.timeframe),
        digits=int(cfg.instrument.digits),
        point=float(cfg.instrument.point),
        feature_params=feature_params,
        feature_names=names,
        min_bars=feature_code.min_bars(feature_params),
        min_confidence=dsettings.min_confidence,
        tp_atr_mult=float(cfg.labels.tp_atr_mult),
        sl_atr_mult=float(cfg.labels.sl_atr_mult),
        tick_size=spec.tick,
        contract_size=spec.contract_size,
        broker_utc_offset_s=clock.utc_offset_s,
        broker_dst=clock.dst,
        broker_clock=clock.to_dict(),
        decision_rule=RULE_EV,
        drift_reference=reference_from_matrix(X[split.train], names),
        calibration=fitted.calibration,
        ev_margin=fitted.ev_margin,
        cost_points=dsettings.cost_points,
        cost_detail=cost_detail,
        spread_ref_points=dsettings.spread_ref_points,
        default_spread_points=dsettings.default_spread_points,
        spread_cost=dsettings.spread_cost,
        decision_validation={
            "margins": fitted.table,
            "trades": fitted.validation_trades,
            "expectancy_r": fitted.validation_expectancy_r,
            "edge": fitted.ev_margin is not None,
        },
        data_hash=data_hash(),
        git_commit=git_commit(),
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    # Keep only the best iteration so the booster file alone reproduces the predictions.
    booster.free_dataset()
    best = booster.best_iteration or booster.current_iteration()
    booster = booster.__class__(model_str=booster.model_to_string(num_iteration=best))
    artifacts = write_bundle(paths.model_dir, booster, settings)

    preds = []
    for part, idx in (("validation", split.validation), ("test", split.test)):
        d = decided[part]
        preds.append(
            pd.DataFrame(
                {"time": frame["time"].to_numpy()[idx], "split": part, "label": y[idx]}
                | {f"p_{c.lower()}": proba[part][:, i] for i, c in enumerate(CLASSES)}
                | {f"raw_p_{c.lower()}": raw[part][:, i] for i, c in enumerate(CLASSES)}
                | {
                    "action": d["action"],
                    "reason": d["reason"],
                    "ev_r": d["ev_r"],
                    "net_r": realised_net_r(d, lab.iloc[idx], dsettings),
                }
            )
        )
    pd.concat(preds, ignore_index=True).to_parquet(paths.predictions, index=False)

    tracking_uri = configure_mlflow(to_container(cfg.tracking))
    experiment_id = ensure_experiment(str(cfg.tracking.experiment), to_container(cfg.tracking))
    candles = load_candles(cfg, paths)
    example = candles.tail(settings.min_bars + 2).reset_index(drop=True)[
        ["time", "open", "high", "low", "close", "volume"]
    ]
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=os.environ.get("DVC_EXP_NAME")
    ) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in flatten(to_container(cfg)).items()})
        mlflow.log_param("broker_utc_offset_s", str(clock.utc_offset_s))
        mlflow.set_tags(
            {
                "git_commit": settings.git_commit,
                "data_hash": settings.data_hash,
                "symbol": settings.symbol,
                "timeframe": settings.timeframe,
                "feature_set_version": settings.feature_set_version,
                "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
                "broker_clock.source": clock.source,
                "broker_clock.dst": str(clock.dst),
                "broker_clock.evidence": clock.evidence[:5000],
            }
        )
        mlflow.log_metric("best_iteration", best)
        mlflow.log_param("decision.ev_margin", str(fitted.ev_margin))
        mlflow.set_tag("decision.edge", str(fitted.ev_margin is not None).lower())
        mlflow.log_dict(settings.decision_validation, "decision/validation_margins.json")
        for part, values in metrics.items():
            mlflow.log_metrics({f"{part}_{k}": v for k, v in values.items()})
        mlflow.log_figure(importance_png(booster, names), "plots/feature_importance.png")
        mlflow.log_figure(confusion_png(y[split.test], proba["test"]), "plots/confusion_test.png")
        from aibridge.pyfunc_model import CandleDecisionModel  # noqa: F401  (validates imports)

        logged = mlflow.pyfunc.log_model(
            name="model",
            python_model=pyfunc_code_path(),
            artifacts=artifacts,
            signature=_signature(infer_signature(example, _example_output(paths, example))),
            input_example=example,
            pip_requirements=_pinned_requirements(),
        )
        run_id = run.info.run_id
    record = {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "model_uri": logged.model_uri,
        "model_id": getattr(logged, "model_id", None),
        "tracking_uri": tracking_uri,
        "data_hash": settings.data_hash,
        "git_commit": settings.git_commit,
        "trained_at": settings.trained_at,
        "best_iteration": best,
        "broker_utc_offset_s": clock.utc_offset_s,
        "broker_dst": clock.dst,
        "ev_margin": fitted.ev_margin,
    }
    write_json(paths.train_run, record)
    write_json(
        paths.reports / "train_metrics.json",
        {part: {k: round(v, 6) for k, v in vals.items()} for part, vals in metrics.items()},
    )
    edge = (
        f"EV margin {fitted.ev_margin:+.2f} R chosen on validation "
        f"({fitted.validation_trades} trades, {fitted.validation_expectancy_r:+.3f} R each); "
        f"test: {metrics['test']['trades']:.0f} trades, "
        f"{metrics['test']['expectancy_r']:+.3f} R each after costs"
        if fitted.ev_margin is not None
        else "NO EDGE: no EV margin paid on the validation window, the model never trades"
    )
    console.print(f"train: {edge}")
    console.print(
        f"train: run {run_id}, best iteration {best}, validation log loss "
        f"{metrics['validation']['log_loss']:.4f}, test balanced accuracy "
        f"{metrics['test']['balanced_accuracy']:.3f}; broker clock {clock.evidence}"
    )
    return record


def _signature(inferred: Any) -> Any:
    """The inferred signature plus an optional ``spread`` input column (points per bar, as in
    MT4's export): the spread the decision's costs and BUY levels use; without it the
    training instrument's default spread."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    inputs = Schema([*inferred.inputs.inputs, ColSpec("double", "spread", required=False)])
    return ModelSignature(inputs=inputs, outputs=inferred.outputs, params=inferred.params)


def _example_output(paths: StagePaths, example: pd.DataFrame) -> pd.DataFrame:
    """Run the bundle on the example exactly as MLflow will, to get the output schema."""
    return load_local_bundle(paths.model_dir).predict(None, example)


def main() -> None:
    run_stage("train", train)
