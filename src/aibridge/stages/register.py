"""Stage ``register``: the run's model → a tagged version in the MLflow Model Registry."""

from __future__ import annotations

from omegaconf import DictConfig

from aibridge.config import to_container
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
    } | {f"test_{k}": round(v, 4) for k, v in metrics.items()}
    reg = register_version(
        run["model_uri"],
        str(cfg.registry.model_name),
        run["run_id"],
        tags,
        str(cfg.registry.challenger_alias),
        str(cfg.registry.champion_alias),
    )
    record = {
        "model_name": reg.name,
        "version": reg.version,
        "aliases": reg.aliases,
        "run_id": reg.run_id,
        "model_uri": f"models:/{reg.name}/{reg.version}",
    }
    write_json(paths.reports / "registration.json", record)
    console.print(f"register: {reg.name} v{reg.version} ({', '.join(reg.aliases)})")
    return record


def main() -> None:
    run_stage("register", register)
