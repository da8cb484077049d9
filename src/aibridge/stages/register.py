"""Stage ``register``: the run's model → a tagged version in the MLflow Model Registry."""

from __future__ import annotations

import dataclasses

from mlflow import MlflowClient

from aibridge.backtest.gate import load_decision
from aibridge.promotion import apply_gate
from aibridge.registry import alias_version, register_version
from aibridge.settings import PipelineSettings, pipeline_settings
from aibridge.stages.common import StagePaths, console, read_json, run_stage, write_json
from aibridge.stages.runs import read_train_run
from aibridge.tracking import configure_mlflow


def register(settings: PipelineSettings, paths: StagePaths) -> dict:
    settings = pipeline_settings(settings)
    reg_cfg = settings.registry
    run = read_train_run(paths, settings.tracking_mapping)
    metrics = read_json(paths.reports / "metrics.json")["test"]
    configure_mlflow(settings.tracking_mapping)
    tags = {
        "data_hash": run["data_hash"],
        "git_commit": run["git_commit"],
        "trained_at": run["trained_at"],
        "symbol": settings.instrument.symbol,
        "timeframe": settings.timeframe,
        "model.num_leaves": settings.model.num_leaves,
        "labels.tp_atr_mult": settings.labels.tp_atr_mult,
        "labels.sl_atr_mult": settings.labels.sl_atr_mult,
        "labels.horizon": settings.labels.horizon,
        "broker_utc_offset_s": run.get("broker_utc_offset_s"),
        "broker_dst": run.get("broker_dst"),
    } | {f"test_{k}": round(v, 4) for k, v in metrics.items()}
    reg = register_version(
        run["model_uri"],
        reg_cfg.model_name,
        run["run_id"],
        tags,
        reg_cfg.challenger_alias,
        reg_cfg.champion_alias,
    )
    # The backtest gate decides whether this challenger replaces the champion -- the first
    # version too: it is registered as challenger only and becomes champion only through the
    # gate's floor (a project whose model has no edge has no champion, and the server says
    # so). registry.register_version still aliases the very first version as champion; that
    # alias is taken back here so the gate alone decides (and records the move).
    decision = load_decision(paths.reports / "backtest" / "gate.json")
    champion_alias = reg_cfg.champion_alias
    if champion_alias in reg.aliases:
        MlflowClient().delete_registered_model_alias(reg.name, champion_alias)
        reg = dataclasses.replace(reg, aliases=[a for a in reg.aliases if a != champion_alias])
    move = apply_gate(
        reg.name,
        reg.version,
        decision,
        champion_alias=champion_alias,
        journal=paths.reports / "promotions.jsonl",
    )
    aliases = reg.aliases
    if move is not None and champion_alias not in aliases:
        aliases = [*aliases, champion_alias]
    if move:
        verdict = "promoted to champion"
    elif alias_version(MlflowClient(), reg.name, champion_alias) is None:
        verdict = (
            "registered as challenger only; there is NO champion: a server on @champion answers "
            "HOLD (no_champion); serve @challenger explicitly or `aibridge promote` by hand"
        )
    else:
        verdict = "champion kept; registered as challenger"
    console.print(f"gate: {verdict} — {decision.reason}")
    record = {
        "model_name": reg.name,
        "version": reg.version,
        "aliases": aliases,
        "gate": {"promote": decision.promote, "reason": decision.reason},
        "run_id": reg.run_id,
        "model_uri": f"models:/{reg.name}/{reg.version}",
    }
    write_json(paths.reports / "registration.json", record)
    # The stage's DVC output: what was registered, without run ids or version numbers, so a
    # fresh clone (no artifacts/) reruns this stage and writes the same bytes (dvc.lock stays).
    write_json(
        paths.artifacts / "registered.json",
        {"model_name": reg.name, "gate": {"promote": decision.promote, "reason": decision.reason}},
    )
    console.print(f"register: {reg.name} v{reg.version} ({', '.join(aliases)})")
    return record


def main() -> None:
    run_stage("register", register, typed=True)
