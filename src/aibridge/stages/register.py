"""Stage ``register``: the run's model → a tagged version in the MLflow Model Registry."""

from __future__ import annotations

from omegaconf import DictConfig

from aibridge.backtest.gate import load_decision
from aibridge.config import to_container
from aibridge.promotion import apply_gate
from aibridge.registry import register_version
from aibridge.stages.common import StagePaths, console, read_json, run_stage, write_json
from aibridge.tracking import configure_mlflow


def register(cfg: DictConfig, paths: StagePaths) -> dict:
    run = read_json(paths.train_run)
    metrics = read_json(paths.reports / "metrics.json")["test"]
    configure_mlflow(to_container(cfg.tracking))
    tags = {
        "data_hash": run["data_hash"],
        "git_commit": run["git_commit"],
        "trained_at": run["trained_at"],
        "symbol": cfg.instrument.symbol,
        "timeframe": cfg.timeframe,
        "model.num_leaves": cfg.model.num_leaves,
        "labels.tp_atr_mult": cfg.labels.tp_atr_mult,
        "labels.sl_atr_mult": cfg.labels.sl_atr_mult,
        "labels.horizon": cfg.labels.horizon,
        "broker_utc_offset_s": run.get("broker_utc_offset_s"),
        "broker_dst": run.get("broker_dst"),
    } | {f"test_{k}": round(v, 4) for k, v in metrics.items()}
    reg = register_version(
        run["model_uri"],
        str(cfg.registry.model_name),
        run["run_id"],
        tags,
        str(cfg.registry.challenger_alias),
        str(cfg.registry.champion_alias),
    )
    # The backtest gate decides whether this challenger replaces the champion. The very first
    # version is champion already (something must be servable); it still gets the gate's tags.
    decision = load_decision(paths.reports / "backtest" / "gate.json")
    move = apply_gate(
        reg.name,
        reg.version,
        decision,
        champion_alias=str(cfg.registry.champion_alias),
        journal=paths.reports / "promotions.jsonl",
    )
    aliases = reg.aliases
    if move is not None and str(cfg.registry.champion_alias) not in aliases:
        aliases = [*aliases, str(cfg.registry.champion_alias)]
    verdict = "promoted to champion" if move else "champion kept"
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
    console.print(f"register: {reg.name} v{reg.version} ({', '.join(aliases)})")
    return record


def main() -> None:
    run_stage("register", register)
