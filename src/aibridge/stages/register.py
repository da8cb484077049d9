"""Stage ``register``: the champion/challenger gate, then the model → a version in the registry.

The ``backtest`` stage measured the challenger on its own test window
(``reports/backtest/challenger.json``: a DVC output, the same bytes in every clone). Everything
that depends on the registry's history happens here, and its results live in MLflow and in
untracked files, never in DVC outputs:

1. the champion (``@champion``) trades the same window with the same engine and rules;
2. the variants tried so far are counted in MLflow (the Deflated Sharpe's ``N``);
3. :func:`aibridge.backtest.gate.decide` applies the rule;
4. the model is registered only if its content (:func:`aibridge.model_bundle.bundle_digest`) is
   new: an identical model points the challenger alias at the version that already holds it
   ("model unchanged: same as v3"). ``AIBRIDGE_FORCE_REGISTER=1`` registers it again anyway;
5. the gate moves the champion alias (:func:`aibridge.promotion.apply_gate`);
6. the version gets a Markdown model card as its description and a handful of tags; the full
   decision goes to the train run (``gate/decision.json``, ``gate_*`` metrics) and to
   ``reports/registration.json`` (untracked).

The DVC output ``artifacts/registered.json`` names the model and its digest only, so a fresh
clone reruns this stage and writes the same bytes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from aibridge.backtest import gate as gate_rule
from aibridge.backtest.metrics import json_safe
from aibridge.backtest.signals import CANDLE_COLUMNS, load_settings, window_metrics
from aibridge.model_bundle import bundle_digest
from aibridge.promotion import apply_gate
from aibridge.registry import (
    DIGEST_TAG,
    alias_version,
    find_version_by_digest,
    register_version,
    set_version_description,
)
from aibridge.risk import risk_settings_from_mapping
from aibridge.settings import PipelineSettings, pipeline_settings
from aibridge.stages.common import StageError, StagePaths, console, read_json, run_stage, write_json
from aibridge.stages.runs import read_train_run
from aibridge.tracking import configure_mlflow

FORCE_ENV = "AIBRIDGE_FORCE_REGISTER"
# Params left out of the model card's config diff: they say where, not what.
_NOT_CONFIG = ("tracking.", "data.", "serve.", "sweep.")
# Gate numbers logged on the train run and shown in the model card.
CARD_METRICS = (
    "trade_count",
    "net_profit",
    "expectancy_r",
    "expectancy_r_ci_low",
    "sharpe",
    "max_drawdown_pct",
    "dsr",
)


@dataclass(frozen=True)
class Champion:
    version: str
    run_id: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class VersionVerdict:
    """The gate's verdict as :func:`aibridge.promotion.apply_gate` takes it, with the two
    version tags only (the numbers are in the model card and on the run)."""

    promote: bool
    reason: str

    def as_tags(self) -> dict[str, str]:
        return {
            "gate.decision": "promote" if self.promote else "keep_champion",
            "gate.reason": self.reason[:5000],
        }


def mlflow_trials(client: MlflowClient, experiment_id: str) -> gate_rule.Trials | None:
    """Variants tried so far: the runs of the train run's MLflow experiment (every ``dvc
    repro``, ``dvc exp run`` and sweep trial logs one), and the variance of the Sharpe ratios
    the backtest recorded on them (``bt_gate_sharpe``, else ``bt_sharpe``). None when the
    store cannot be read (the DSR then assumes one variant)."""
    try:
        runs = client.search_runs([experiment_id], max_results=5000)
    except Exception as exc:  # a store we can write to but not search: say so, go on
        console.print(f"register: cannot count MLflow variants ({exc}); assuming 1")
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
        source=f"MLflow experiment {experiment_id}: {len(runs)} runs, {len(sharpes)} with a Sharpe",
    )


def champion_on_window(
    client: MlflowClient,
    settings: PipelineSettings,
    paths: StagePaths,
    window: Mapping[str, Any],
    challenger: Mapping[str, float],
    digest: str,
) -> Champion | None:
    """The champion's numbers on the challenger's test window (None: no champion). A champion
    with the challenger's digest is the same model: its numbers are the challenger's."""
    import mlflow

    name, alias = settings.registry.model_name, settings.registry.champion_alias
    version = alias_version(client, name, alias)
    if version is None:
        return None
    mv = client.get_model_version(name, version)
    if (mv.tags or {}).get(DIGEST_TAG) == digest:
        return Champion(version, mv.run_id or "", dict(challenger))
    candles = paths.load_candles(settings.instrument.symbol, settings.timeframe)
    times = candles["time"]
    mask = (
        (times >= pd.Timestamp(window["start"])) & (times <= pd.Timestamp(window["end"]))
    ).to_numpy()
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    decisions = model.predict(candles[CANDLE_COLUMNS])
    bt = load_settings(settings)
    risk = risk_settings_from_mapping(settings.risk or {})
    metrics = window_metrics(decisions, candles, mask, settings.instrument, risk, bt)
    return Champion(version, mv.run_id or "", metrics)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:,.0f}" if value.is_integer() and abs(value) < 1e9 else f"{value:.4g}"
    return str(value)


def config_diff(client: MlflowClient, run_id: str, champion: Champion | None) -> list[str]:
    """Markdown lines: the params that differ from the champion's run."""
    if champion is None or not champion.run_id:
        return ["No champion to compare with."]
    if champion.run_id == run_id:
        return ["Same run as the champion."]
    mine = client.get_run(run_id).data.params
    theirs = client.get_run(champion.run_id).data.params
    keys = sorted(
        k
        for k in set(mine) | set(theirs)
        if mine.get(k) != theirs.get(k) and not k.startswith(_NOT_CONFIG)
    )
    if not keys:
        return [f"Same configuration as the champion (v{champion.version})."]
    lines = [f"| param | champion v{champion.version} | this version |", "|---|---|---|"]
    lines += [f"| `{k}` | {theirs.get(k, '—')} | {mine.get(k, '—')} |" for k in keys[:30]]
    if len(keys) > 30:
        lines.append(f"| … {len(keys) - 30} more | | |")
    return lines


def model_card(
    *,
    name: str,
    version: str,
    settings: PipelineSettings,
    run: Mapping[str, Any],
    candles: pd.DataFrame,
    test_metrics: Mapping[str, float],
    walk_forward: Mapping[str, Any],
    window: Mapping[str, Any],
    decision: gate_rule.GateDecision,
    verdict: str,
    champion: Champion | None,
    diff: list[str],
) -> str:
    """The version's description: what it was trained on, how it did, what the gate said and
    how to serve it (Markdown; the MLflow UI renders it on the version page)."""
    first, last = candles["time"].iloc[0], candles["time"].iloc[-1]
    wf = walk_forward.get("model", {})
    lines = [
        f"## {settings.instrument.symbol} {settings.timeframe} — {name} v{version}",
        "",
        f"**Gate: {verdict}.** {decision.reason}",
        "",
        f"- Data: {first} → {last} ({len(candles):,} bars), DVC data hash "
        f"`{run.get('data_hash', 'unknown')}`",
        f"- Trained at {run.get('trained_at', '?')} from commit `{run.get('git_commit', '?')}`, "
        f"MLflow run `{run.get('run_id', '?')}`",
        f"- Model digest `{run.get('model_digest', '?')}`",
        "",
        "### Configuration vs the champion",
        "",
        *diff,
        "",
        "### Held-out test window (classification, `reports/metrics.json`)",
        "",
        "| metric | value |",
        "|---|---|",
        *[
            f"| {k} | {_fmt(float(test_metrics[k]))} |"
            for k in ("accuracy", "balanced_accuracy", "log_loss", "trades", "expectancy_r")
            if k in test_metrics
        ],
        "",
        f"### Gate: trading the test window ({window['start']} → {window['end']})",
        "",
        "| metric | this version |" + (f" champion v{champion.version} |" if champion else ""),
        "|---|---|" + ("---|" if champion else ""),
        *[
            f"| {k} | {_fmt(decision.challenger.get(k, math.nan))} |"
            + (f" {_fmt(champion.metrics.get(k, math.nan))} |" if champion else "")
            for k in CARD_METRICS
        ],
        "",
        f"Variants counted for the Deflated Sharpe: {decision.challenger.get('trials', 1):.0f}.",
        "",
        f"### Walk-forward backtest ({walk_forward.get('folds', '?')} folds, "
        f"{walk_forward.get('window', '')})",
        "",
        f"{walk_forward.get('edge', '')}",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {_fmt(wf[k])} |" for k in CARD_METRICS if k in wf],
        "",
        "### Serve it",
        "",
        "```",
        f"aibridge serve --model models:/{name}/{version}",
        "```",
    ]
    return "\n".join(lines) + "\n"


def _log_decision(run_id: str, decision: gate_rule.GateDecision, champion: Champion | None) -> None:
    """The full decision on the train run: a JSON artifact, the key numbers as metrics."""
    import mlflow

    numbers = {f"gate_challenger_{k}": decision.challenger.get(k, math.nan) for k in CARD_METRICS}
    if champion is not None:
        numbers |= {f"gate_champion_{k}": champion.metrics.get(k, math.nan) for k in CARD_METRICS}
    numbers["gate_trials"] = decision.challenger.get("trials", 1.0)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({k: float(v) for k, v in numbers.items() if math.isfinite(float(v))})
        mlflow.set_tags(VersionVerdict(decision.promote, decision.reason).as_tags())
        mlflow.log_dict(json_safe(asdict(decision)), "gate/decision.json")


def version_tags(settings: PipelineSettings, run: Mapping[str, Any], digest: str) -> dict[str, Any]:
    """The few tags a version carries (the rest is on its run and in its description)."""
    return {
        DIGEST_TAG: digest,
        "symbol": settings.instrument.symbol,
        "timeframe": settings.timeframe,
        "data_hash": run["data_hash"],
        "trained_at": run["trained_at"],
    }


def read_challenger(paths: StagePaths) -> tuple[dict[str, Any], dict[str, float]]:
    """The backtest stage's ``challenger.json``: the test window and the challenger's numbers."""
    path = paths.reports / "backtest" / "challenger.json"
    if not path.is_file():
        raise StageError(f"{path} is missing; run `dvc repro` (the backtest stage)")
    measured = read_json(path)
    return measured["window"], gate_rule.numbers(measured["challenger"])


def register_or_reuse(
    client: MlflowClient, settings: PipelineSettings, run: Mapping[str, Any], digest: str
) -> tuple[str, bool]:
    """(version, registered now): an identical model re-points the challenger alias at the
    version that holds it (unless :data:`FORCE_ENV` is set); a new one is registered."""
    names = settings.registry
    force = os.environ.get(FORCE_ENV, "").strip().lower() not in ("", "0", "false", "no")
    existing = None if force else find_version_by_digest(client, names.model_name, digest)
    if existing is not None:
        client.set_registered_model_alias(names.model_name, names.challenger_alias, existing)
        console.print(f"register: model unchanged: same as v{existing}, not registered again")
        return existing, False
    reg = register_version(
        run["model_uri"],
        names.model_name,
        run["run_id"],
        version_tags(settings, run, digest),
        names.challenger_alias,
        client=client,
    )
    # Challenger only: the gate alone makes a version champion (a model without an edge is
    # never served by default).
    return reg.version, True


def verdict_line(version: str, before: str | None, after: str | None) -> str:
    """What the registry says now, after the gate moved (or kept) the champion alias.

    >>> verdict_line("3", "2", "3")
    'v3 promoted to champion (was v2)'
    >>> verdict_line("3", "2", "2")
    'v3 is the challenger; champion stays v2'
    """
    if after == version and before != version:
        return f"v{version} promoted to champion" + (f" (was v{before})" if before else "")
    if after == version:
        return f"v{version} is the champion already"
    if after is None:
        return (
            f"v{version} is the challenger; there is NO champion: a server on `@champion` "
            "answers HOLD (no_champion); serve `@challenger` explicitly or `aibridge promote` "
            "by hand"
        )
    return f"v{version} is the challenger; champion stays v{after}"


def register(settings: PipelineSettings, paths: StagePaths) -> dict[str, Any]:
    """The stage body: the steps of the module docstring, in order."""
    settings = pipeline_settings(settings)
    name, champion_alias = settings.registry.model_name, settings.registry.champion_alias
    configure_mlflow(settings.tracking_mapping)
    client = MlflowClient()
    digest = bundle_digest(paths.model_dir)
    run = dict(read_train_run(paths, settings.tracking_mapping)) | {"model_digest": digest}
    window, challenger = read_challenger(paths)

    # 1-3: the gate
    champion = champion_on_window(client, settings, paths, window, challenger, digest)
    experiment = run.get("experiment_id") or client.get_run(run["run_id"]).info.experiment_id
    decision = gate_rule.decide(
        challenger,
        None if champion is None else champion.metrics,
        load_settings(settings).gate,
        mlflow_trials(client, str(experiment)),
    )
    # 4-5: the version and the champion alias
    version, registered = register_or_reuse(client, settings, run, digest)
    before = None if champion is None else champion.version
    apply_gate(
        name,
        version,
        VersionVerdict(decision.promote, decision.reason),
        champion_alias=champion_alias,
        journal=paths.reports / "promotions.jsonl",
        client=client,
    )
    verdict = verdict_line(version, before, alias_version(client, name, champion_alias))
    # 6: the model card, the decision on the run, the records
    card = model_card(
        name=name,
        version=version,
        settings=settings,
        run=run,
        candles=paths.load_candles(settings.instrument.symbol, settings.timeframe),
        test_metrics=read_json(paths.reports / "metrics.json")["test"],
        walk_forward=read_json(paths.reports / "backtest" / "metrics.json"),
        window=window,
        decision=decision,
        verdict=verdict,
        champion=champion,
        diff=config_diff(client, run["run_id"], champion),
    )
    set_version_description(client, name, version, card)
    _log_decision(run["run_id"], decision, champion)
    console.print(f"gate: {verdict} — {decision.reason}")
    aliases = sorted(
        a for a, v in client.get_registered_model(name).aliases.items() if str(v) == version
    )
    record = {
        "model_name": name,
        "version": version,
        "aliases": aliases,
        "registered": registered,
        "model_digest": digest,
        "gate": json_safe(asdict(decision)),
        "champion_before": before,
        "run_id": run["run_id"],
        "model_uri": f"models:/{name}/{version}",
    }
    write_json(paths.reports / "registration.json", record)
    # The stage's DVC output: what was registered, without run ids, versions or the gate's
    # decision (it depends on the registry's history), so a fresh clone (no artifacts/)
    # reruns this stage and writes the same bytes (dvc.lock stays).
    write_json(paths.artifacts / "registered.json", {"model_name": name, "model_digest": digest})
    console.print(f"register: {name} v{version} ({', '.join(aliases) or 'no alias'})")
    return record


def main() -> None:
    run_stage("register", register, typed=True)
