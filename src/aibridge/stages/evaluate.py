"""Stage ``evaluate``: test-split metrics and plots for DVC, mirrored into the MLflow run.

(The walk-forward trading backtest is its own stage, ``backtest``.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aibridge.decision import CLASSES, HOLD
from aibridge.settings import PipelineSettings, pipeline_settings
from aibridge.stages.common import (
    StagePaths,
    console,
    run_stage,
    write_json,
)
from aibridge.stages.runs import read_train_run
from aibridge.tracking import configure_mlflow
from aibridge.training import classification_metrics, confusion

CALIBRATION_BINS = 10


def calibration_table(y: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """Per class and confidence bin: mean predicted probability vs observed frequency."""
    rows = []
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    for k, name in enumerate(CLASSES):
        p = proba[:, k]
        hit = (y == k).astype(float)
        bins = np.clip(np.digitize(p, edges) - 1, 0, CALIBRATION_BINS - 1)
        for b in range(CALIBRATION_BINS):
            mask = bins == b
            if mask.any():
                rows.append(
                    {
                        "class": name,
                        "predicted": float(p[mask].mean()),
                        "observed": float(hit[mask].mean()),
                        "count": int(mask.sum()),
                    }
                )
    return pd.DataFrame(rows)


def evaluate(settings: PipelineSettings, paths: StagePaths) -> dict[str, float]:
    settings = pipeline_settings(settings)
    preds = pd.read_parquet(paths.predictions)
    test = preds[preds["split"] == "test"]
    y = test["label"].to_numpy()
    proba = test[[f"p_{c.lower()}" for c in CLASSES]].to_numpy()
    metrics = classification_metrics(y, proba)
    # The model's own decisions (expected-value rule, margin from validation) on the test rows.
    action = test["action"].to_numpy()
    traded = action != HOLD
    metrics["signal_rate"] = float(np.mean(traded))
    metrics["signal_precision"] = (
        float(np.mean(action[traded] == y[traded])) if traded.any() else 0.0
    )
    net = test["net_r"].to_numpy(dtype=np.float64)
    metrics["trades"] = float(traded.sum())
    metrics["expectancy_r"] = float(np.nanmean(net[traded])) if traded.any() else 0.0
    reasons = test["reason"].value_counts()
    for reason, count in reasons.items():
        metrics[f"reason_{reason}"] = float(count)

    plots = paths.reports / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    cm = confusion(y, proba)
    pd.DataFrame(
        [
            {"actual": CLASSES[i], "predicted": CLASSES[j]}
            for i in range(len(CLASSES))
            for j in range(len(CLASSES))
            for _ in range(int(cm[i, j]))
        ]
    ).to_csv(plots / "confusion.csv", index=False)
    calibration_table(y, proba).to_csv(plots / "calibration.csv", index=False)
    rounded = {k: round(v, 6) for k, v in metrics.items()}
    write_json(paths.reports / "metrics.json", {"test": rounded})

    import mlflow

    run = read_train_run(paths, settings.tracking_mapping)
    configure_mlflow(settings.tracking_mapping)
    with mlflow.start_run(run_id=run["run_id"]):
        mlflow.log_metrics({f"eval_test_{k}": v for k, v in metrics.items()})
        mlflow.log_artifact(str(plots / "calibration.csv"), "evaluation")
        mlflow.log_artifact(str(paths.reports / "metrics.json"), "evaluation")
    console.print(
        f"evaluate: test accuracy {metrics['accuracy']:.3f}, "
        f"balanced {metrics['balanced_accuracy']:.3f}, signals on {metrics['signal_rate']:.1%} "
        f"of bars, precision {metrics['signal_precision']:.3f}, expectancy "
        f"{metrics['expectancy_r']:+.3f} R after costs; reasons "
        + ", ".join(f"{k} {v}" for k, v in reasons.items())
    )
    return metrics


def main() -> None:
    run_stage("evaluate", evaluate, typed=True)
