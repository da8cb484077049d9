"""Figures logged to MLflow (matplotlib, headless)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import lightgbm as lgb
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from aibridge.decision import CLASSES
from aibridge.training import confusion


def importance_png(booster: lgb.Booster, names: list[str], top: int = 25) -> Figure:
    gain = booster.feature_importance(importance_type="gain")
    order = np.argsort(gain)[::-1][:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(order) + 1.2))
    ax.barh([names[i] for i in order], gain[order])
    ax.set_xlabel("total gain")
    ax.set_title("Feature importance (gain)")
    fig.tight_layout()
    return fig


def confusion_png(y: np.ndarray, proba: np.ndarray) -> Figure:
    cm = confusion(y, proba)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(CLASSES)), CLASSES)
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center")
    ax.set_title("Confusion matrix (test)")
    fig.tight_layout()
    return fig
