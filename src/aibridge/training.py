"""Time-ordered splitting, LightGBM fitting and classification metrics.

The walk-forward backtest calls the same ``fit_booster`` on each fold, so a fold's model is
trained exactly like the registered one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


def lightgbm_params(model_params: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Config → LightGBM parameters, with every source of randomness pinned to ``seed``."""
    params = {
        k: v
        for k, v in model_params.items()
        if k not in {"num_boost_round", "early_stopping_rounds", "class_weight", "name"}
    }
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
    """Train with early stopping on the validation segment; returns the native Booster."""
    names = feature_names or "auto"
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
