"""Backtest outputs: CSVs for DVC plots, PNGs, the trade list and a short Markdown report.

Why Markdown: it renders in MLflow's artifact viewer, on GitHub and in a terminal, and diffs
cleanly between experiments.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

from aibridge.backtest.engine import BacktestResult
from aibridge.backtest.metrics import METRIC_LABELS, json_safe

EQUITY_CSV = "equity.csv"
DRAWDOWN_CSV = "drawdown.csv"
TRADES_CSV = "trades.csv"
FOLDS_CSV = "folds.csv"
METRICS_JSON = "metrics.json"
SUMMARY_JSON = "summary.json"
# The keys of the stage's summary that go to METRICS_JSON (DVC metrics: what `dvc metrics diff`
# and `dvc exp show` compare); the rest (baselines, verdicts, entry outcomes) to SUMMARY_JSON.
METRIC_KEYS = ("model", "folds", "edge", "window")
REPORT_MD = "report.md"
EQUITY_PNG = "equity.png"
DRAWDOWN_PNG = "drawdown.png"


def curves(
    model: BacktestResult, buy_and_hold: BacktestResult
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Equity (model vs buy-and-hold vs flat) and drawdown %, one row per bar."""
    eq = pd.DataFrame(
        {
            "bar": range(len(model.equity)),
            "time": model.equity.index.strftime("%Y-%m-%d %H:%M"),
            "model": model.equity.to_numpy().round(2),
            "buy_and_hold": buy_and_hold.equity.to_numpy().round(2),
            "flat": model.initial_equity,
        }
    )
    peak = model.equity.cummax().clip(lower=model.initial_equity)
    dd = pd.DataFrame(
        {
            "bar": eq["bar"],
            "time": eq["time"],
            "drawdown_pct": (100.0 * (model.equity / peak - 1.0)).to_numpy().round(4),
            "drawdown_money": model.drawdown.to_numpy().round(2),
        }
    )
    return eq, dd


def _png(frame: pd.DataFrame, columns: Sequence[str], title: str, ylabel: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 3.6))
    x = pd.to_datetime(frame["time"])
    for col in columns:
        ax.plot(x, frame[col], label=col, linewidth=1.0)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(columns) > 1:
        ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(x: Any) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "∞" if x > 0 else ("-∞" if x < 0 else "n/a")
        if x.is_integer() and abs(x) < 1e9:
            return f"{x:,.0f}"
        return f"{x:,.2f}" if abs(x) >= 100 else f"{x:.4g}"
    return str(x)


def _metrics_table(columns: Mapping[str, Mapping[str, float]]) -> list[str]:
    names = list(columns)
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key, label in METRIC_LABELS.items():
        lines.append(f"| {label} | " + " | ".join(_fmt(columns[n].get(key)) for n in names) + " |")
    return lines


def markdown_report(
    title: str,
    window: str,
    metrics: Mapping[str, Mapping[str, float]],
    verdicts: Sequence[Mapping[str, Any]],
    folds: Sequence[Mapping[str, float]],
    entry_outcomes: Mapping[str, int],
    gate: Mapping[str, Any] | None,
    notes: Sequence[str] = (),
    edge: str | None = None,
) -> str:
    """The human-readable report: verdicts first, then the numbers behind them."""
    lines = [f"# {title}", "", f"Out-of-sample window: {window}", "", "## Verdict", ""]
    if edge is not None:
        plain = "**No edge.**" if "no edge" in edge else "**Edge.**"
        lines += [f"{plain} {edge[0].upper()}{edge[1:]}", ""]
    for v in verdicts:
        extra = ""
        if "share_of_random_runs_beaten" in v:
            extra = f" (beats {100 * float(v['share_of_random_runs_beaten']):.0f}% of random runs)"
        lines.append(
            f"- vs **{v['baseline']}**: beats it on net profit: "
            f"**{_fmt(v['beats_on_net_profit'])}** ({_fmt(v['model_net_profit'])} vs "
            f"{_fmt(v['baseline_net_profit'])}); on Sharpe: "
            f"**{_fmt(v['beats_on_sharpe'])}** ({_fmt(v['model_sharpe'])} vs "
            f"{_fmt(v['baseline_sharpe'])}){extra}"
        )
    if gate is not None:
        decision = "promote the challenger" if gate["promote"] else "keep the champion"
        lines += ["", f"Gate: **{decision}** — {gate['reason']}"]
    lines += ["", "## Metrics", "", *_metrics_table(metrics), ""]
    lines += ["## Signals acted on / vetoed", ""]
    lines += [f"- {k}: {v}" for k, v in sorted(entry_outcomes.items())] or ["- no signals"]
    if folds:
        keys = [
            k
            for k in (
                "fold",
                "test_bars",
                "signals",
                "ev_margin",
                "log_loss",
                "balanced_accuracy",
                "accuracy",
            )
            if k in folds[0]
        ]
        lines += [
            "",
            "## Walk-forward folds",
            "",
            "| " + " | ".join(keys) + " |",
            "|---" * len(keys) + "|",
        ]
        lines += [
            "| " + " | ".join(_fmt(f.get(k, float("nan"))) for k in keys) + " |" for f in folds
        ]
    if notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def write_outputs(
    out: Path,
    model: BacktestResult,
    buy_and_hold: BacktestResult,
    summary: Mapping[str, Any],
    folds: Sequence[Mapping[str, float]],
    report_md: str,
) -> dict[str, Path]:
    """Write every file of the backtest stage; returns name → path (for MLflow logging)."""
    out.mkdir(parents=True, exist_ok=True)
    eq, dd = curves(model, buy_and_hold)
    paths = {
        name: out / name
        for name in (
            EQUITY_CSV,
            DRAWDOWN_CSV,
            TRADES_CSV,
            FOLDS_CSV,
            METRICS_JSON,
            SUMMARY_JSON,
            REPORT_MD,
            EQUITY_PNG,
            DRAWDOWN_PNG,
        )
    }
    eq.to_csv(paths[EQUITY_CSV], index=False)
    dd.to_csv(paths[DRAWDOWN_CSV], index=False)
    model.trades.to_csv(paths[TRADES_CSV], index=False, float_format="%.6f")
    pd.DataFrame(list(folds)).to_csv(paths[FOLDS_CSV], index=False)
    metrics = {k: v for k, v in summary.items() if k in METRIC_KEYS}
    rest = {k: v for k, v in summary.items() if k not in METRIC_KEYS}
    for path, payload in ((paths[METRICS_JSON], metrics), (paths[SUMMARY_JSON], rest)):
        path.write_text(json.dumps(json_safe(payload), indent=2, sort_keys=True) + "\n")
    paths[REPORT_MD].write_text(report_md, encoding="utf-8")
    _png(
        eq, ["model", "buy_and_hold", "flat"], "Equity (out of sample)", "equity", paths[EQUITY_PNG]
    )
    _png(dd, ["drawdown_pct"], "Drawdown of the model (out of sample)", "%", paths[DRAWDOWN_PNG])
    return paths
