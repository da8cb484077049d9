"""``aibridge sweep``: LightGBM parameter search with Optuna, every trial a nested MLflow run.

The engine is Optuna with an RDB storage, not a home-made scheduler: one process on a laptop
uses SQLite (``artifacts/sweeps/optuna.db``); a cluster points every worker at the same
PostgreSQL URL and study name, and Optuna hands each worker different trials. Each trial is
trained exactly like the pipeline's model (``aibridge.training.fit_booster`` on
``artifacts/features.parquet`` + ``artifacts/labels.parquet`` with the pipeline's split and
embargo) and scored on the validation split; the test split is not looked at.

In MLflow, each worker opens one parent run (tag ``aibridge.sweep``) and logs one nested run per
trial under it (parameters, validation metrics, best iteration). The winner is *not* registered
from here: it goes through the normal path, ``dvc exp run -S model.<key>=<value> ...`` and the
pipeline's evaluate → register stages (and the promotion gate), so its lineage is the same as
any other model's. ``run_sweep`` prints that command.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import typer
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from aibridge.config import compose_config, flatten, load_params, to_container
from aibridge.errors import AibridgeError, print_error
from aibridge.paths import conf_dir, project_root, workspace_root
from aibridge.settings import ModelSettings, PipelineSettings, pipeline_settings
from aibridge.training import classification_metrics, fit_booster, time_split

SWEEP_TAG = "aibridge.sweep"


class SweepError(AibridgeError):
    """A problem the user can fix (no features yet, bad space, ...)."""


@dataclass
class TrialResult:
    number: int
    params: dict[str, Any]
    value: float
    run_id: str
    best_iteration: int
    seconds: float


@dataclass
class SweepResult:
    study_name: str
    storage: str
    parent_run_id: str
    experiment_id: str
    metric: str
    direction: str
    trials: list[TrialResult] = field(default_factory=list)
    best_params: dict[str, Any] = field(default_factory=dict)
    best_value: float = float("nan")
    best_trial: int = -1
    best_run_id: str = ""

    @property
    def dvc_command(self) -> str:
        sets = " ".join(f"-S model.{k}={v}" for k, v in sorted(self.best_params.items()))
        return f"dvc exp run {sets}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "study_name": self.study_name,
            "storage": self.storage,
            "parent_run_id": self.parent_run_id,
            "experiment_id": self.experiment_id,
            "metric": f"validation_{self.metric}",
            "direction": self.direction,
            "best": {
                "trial": self.best_trial,
                "value": self.best_value,
                "params": self.best_params,
                "run_id": self.best_run_id,
            },
            "trials": [t.__dict__ for t in self.trials],
            "next": self.dvc_command,
        }


def resolve_storage(storage: str, root: Path) -> str:
    """Anchor a relative ``sqlite:///path`` to the project root (and create its folder)."""
    prefix = "sqlite:///"
    if storage.startswith(prefix) and not storage.startswith(prefix + "/"):
        path = root / storage.removeprefix(prefix)
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"{prefix}{path}"
    return storage


def load_sweep_config(overrides: Sequence[str] = (), config_dir: Path | None = None) -> DictConfig:
    """``conf/sweep/default.yaml`` composed with the rest of the tree (for interpolations)."""
    try:
        cfg = compose_config(["+sweep=default", *overrides], config_dir=config_dir)
    except Exception as exc:  # Hydra's messages are clear; drop the traceback
        raise SweepError(f"sweep configuration: {exc}".replace("\n", " ")) from None
    return cfg.sweep


def _grid(space: Mapping[str, Any]) -> dict[str, list[Any]]:
    grid = {}
    for name, spec in space.items():
        if not isinstance(spec, list | tuple) or not spec:
            raise SweepError(
                f"sweep.space.{name}: the grid sampler needs a list of values, got {spec!r}"
            )
        grid[name] = list(spec)
    return grid


def _suggest(trial: Any, space: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, list | tuple):
            params[name] = trial.suggest_categorical(name, list(spec))
        elif isinstance(spec, Mapping) and {"low", "high"} <= set(spec):
            low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
            if isinstance(low, int) and isinstance(high, int):
                params[name] = trial.suggest_int(name, low, high, log=log)
            else:
                params[name] = trial.suggest_float(name, float(low), float(high), log=log)
        else:
            raise SweepError(f"sweep.space.{name}: use a list of values or {{low, high}}")
    return params


def _dataset(
    root: Path, settings: PipelineSettings
) -> tuple[np.ndarray, np.ndarray, Any, list[str]]:
    """The pipeline's training rows and split (``aibridge.dataset``; the test rows unused)."""
    from aibridge.dataset import load_training_rows

    artifacts = root / "artifacts"
    rows = load_training_rows(artifacts / "features.parquet", artifacts / "labels.parquet")
    s = settings.split
    split = time_split(len(rows.frame), s.validation_fraction, s.test_fraction, s.embargo)
    return rows.X, rows.y, split, rows.names


@dataclass(frozen=True)
class SweepPlan:
    """The validated ``sweep`` config: what to search, how, and where the study lives."""

    space: dict[str, Any]
    metric: str
    direction: Literal["minimize", "maximize"]
    sampler_name: str
    sampler: Any
    n_trials: int
    n_jobs: int
    storage_url: str
    study_name: str


def plan_sweep(
    settings: PipelineSettings,
    sw: Mapping[str, Any],
    *,
    n_trials: int | None,
    storage: str | None,
    study_name: str | None,
) -> SweepPlan:
    """Check the search space against the model's parameters and build the Optuna sampler."""
    import optuna

    space = dict(sw.get("space") or {})
    if not space:
        raise SweepError("sweep.space is empty: nothing to search")
    unknown = set(space) - set(ModelSettings.model_fields)
    if unknown:
        raise SweepError(f"sweep.space has keys that are not model parameters: {sorted(unknown)}")
    sampler_name, seed = str(sw["sampler"]), int(sw["seed"])
    direction = str(sw["direction"])
    if direction not in ("minimize", "maximize"):
        raise SweepError(f"sweep.direction must be 'minimize' or 'maximize', not {direction!r}")
    if sampler_name == "grid":
        grid = _grid(space)
        sampler: Any = optuna.samplers.GridSampler(grid, seed=seed)
        default_trials = int(np.prod([len(v) for v in grid.values()]))
    elif sampler_name == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed)
        default_trials = 20
    else:
        raise SweepError(f"sweep.sampler must be 'grid' or 'tpe', not {sampler_name!r}")
    return SweepPlan(
        space=space,
        metric=str(sw["metric"]),
        direction="minimize" if direction == "minimize" else "maximize",
        sampler_name=sampler_name,
        sampler=sampler,
        n_trials=int(n_trials or sw.get("n_trials") or default_trials),
        n_jobs=int(sw.get("n_jobs") or 1),
        storage_url=resolve_storage(storage or str(sw["storage"]), project_root()),
        study_name=study_name or str(sw["study_name"]),
    )


class _Trials:
    """The Optuna objective: one nested MLflow run per trial, trained like the pipeline."""

    def __init__(
        self,
        plan: SweepPlan,
        settings: PipelineSettings,
        data: tuple[np.ndarray, np.ndarray, Any, list[str]],
        client: Any,
        experiment_id: str,
        parent_id: str,
        tags: dict[str, str],
        result: SweepResult,
        console: Console,
    ) -> None:
        self.plan, self.data, self.client = plan, data, client
        self.experiment_id, self.parent_id, self.tags = experiment_id, parent_id, tags
        self.result, self.console = result, console
        self.base_params = settings.model.params()
        self.seed = settings.seed
        self.lock = threading.Lock()

    def __call__(self, trial: Any) -> float:
        from aibridge.tracking import describe_changes

        t0 = time.perf_counter()
        params = _suggest(trial, self.plan.space)
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{trial.number:03d} {describe_changes(params, limit=4)}",
            tags={
                **self.tags,
                "mlflow.parentRunId": self.parent_id,
                "optuna.trial": str(trial.number),
            },
        )
        try:
            value, best_iter = self._fit_and_log(run.info.run_id, params)
            self.client.set_terminated(run.info.run_id, "FINISHED")
        except Exception:
            self.client.set_terminated(run.info.run_id, "FAILED")
            raise
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        seconds = time.perf_counter() - t0
        with self.lock:
            self.result.trials.append(
                TrialResult(trial.number, params, value, run.info.run_id, best_iter, seconds)
            )
        self.console.print(
            f"trial {trial.number:3d}  {params}  validation {self.plan.metric} {value:.5f}  "
            f"({best_iter} iterations, {seconds:.1f} s)",
            highlight=False,
            soft_wrap=True,
        )
        return value

    def _fit_and_log(self, run_id: str, params: dict[str, Any]) -> tuple[float, int]:
        from mlflow.entities import Metric, Param, RunTag

        X, y, split, names = self.data
        model_params = {**self.base_params, **params}
        booster = fit_booster(
            X[split.train],
            y[split.train],
            X[split.validation],
            y[split.validation],
            model_params,
            self.seed,
            feature_names=names,
        )
        proba = np.asarray(
            booster.predict(X[split.validation], num_iteration=booster.best_iteration)
        )
        scores = classification_metrics(y[split.validation], proba)
        value = float(scores[self.plan.metric])
        best_iter = int(booster.best_iteration or booster.current_iteration())
        now = int(time.time() * 1000)
        flat = {**flatten({"model": self.base_params}), **flatten({"model": model_params})}
        self.client.log_batch(
            run_id,
            params=[Param(k, str(v)[:500]) for k, v in flat.items()]
            + [Param("seed", str(self.seed))],
            metrics=[Metric(f"validation_{k}", v, now, 0) for k, v in scores.items()]
            + [Metric("best_iteration", best_iter, now, 0)],
            tags=[RunTag("optuna.value", repr(value))],
        )
        return value, best_iter


def _open_parent_run(client: Any, experiment_id: str, plan: SweepPlan, tags: dict[str, str]) -> str:
    from mlflow.entities import Param

    parent = client.create_run(
        experiment_id,
        run_name=f"sweep-{plan.study_name}",
        tags={
            **tags,
            "optuna.storage": _redact(plan.storage_url),
            "optuna.sampler": plan.sampler_name,
        },
    )
    parent_id = str(parent.info.run_id)
    client.log_batch(
        parent_id,
        params=[
            Param(f"sweep.space.{k}", json.dumps(v)[:500]) for k, v in sorted(plan.space.items())
        ]
        + [
            Param("sweep.metric", f"validation_{plan.metric}"),
            Param("sweep.n_trials", str(plan.n_trials)),
        ],
    )
    return parent_id


def _close_parent_run(client: Any, parent_id: str, study: Any, result: SweepResult) -> None:
    """Record the study's best on the result and on the parent run."""
    from mlflow.entities import Metric, RunTag

    best = study.best_trial
    result.best_params = dict(best.params)
    result.best_value = float(best.value)
    result.best_trial = best.number
    result.best_run_id = str(best.user_attrs.get("mlflow_run_id", ""))
    result.trials.sort(key=lambda t: t.number)
    now = int(time.time() * 1000)
    client.log_batch(
        parent_id,
        metrics=[Metric(f"best_validation_{result.metric}", result.best_value, now, 0)],
        tags=[
            RunTag("best_trial", str(result.best_trial)),
            RunTag("best_run_id", result.best_run_id),
            RunTag("best_params", json.dumps(result.best_params, sort_keys=True)),
            RunTag("next_step", result.dvc_command),
        ],
    )
    client.set_terminated(parent_id, "FINISHED")


def run_sweep(
    root: Path | None = None,
    overrides: Sequence[str] = (),
    *,
    n_trials: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    console: Console | None = None,
) -> SweepResult:
    """Run (or join) a study; returns every trial this process ran and the study's best."""
    import mlflow
    import optuna
    from mlflow import MlflowClient

    from aibridge.tracking import configure_mlflow, data_hash, ensure_experiment, git_commit

    console = console or Console(stderr=True)
    root = root or workspace_root()
    settings = pipeline_settings(load_params(root / "params.yaml"))
    config_dir = root / "conf" if (root / "conf").is_dir() else conf_dir()
    sw = to_container(load_sweep_config(overrides, config_dir=config_dir))
    plan = plan_sweep(settings, sw, n_trials=n_trials, storage=storage, study_name=study_name)
    data = _dataset(root, settings)

    tracking_uri = configure_mlflow(settings.tracking_mapping)
    experiment_id = ensure_experiment(settings.tracking.experiment, settings.tracking_mapping)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=plan.study_name,
        storage=plan.storage_url,
        sampler=plan.sampler,
        direction=plan.direction,
        load_if_exists=True,
    )
    tags = {
        SWEEP_TAG: plan.study_name,
        "git_commit": git_commit(),
        "data_hash": data_hash(root / "data.dvc"),
        "symbol": settings.instrument.symbol,
        "timeframe": settings.timeframe,
    }
    parent_id = _open_parent_run(client, experiment_id, plan, tags)
    result = SweepResult(
        study_name=plan.study_name,
        storage=_redact(plan.storage_url),
        parent_run_id=parent_id,
        experiment_id=experiment_id,
        metric=plan.metric,
        direction=plan.direction,
    )
    objective = _Trials(
        plan, settings, data, client, experiment_id, parent_id, tags, result, console
    )
    console.print(
        f"sweep {plan.study_name}: {plan.n_trials} trial(s), {plan.sampler_name} sampler, "
        f"storage {_redact(plan.storage_url)}, MLflow {tracking_uri} (parent run {parent_id})"
    )
    try:
        study.optimize(objective, n_trials=plan.n_trials, n_jobs=plan.n_jobs)
    except Exception:
        client.set_terminated(parent_id, "FAILED")
        raise
    _close_parent_run(client, parent_id, study, result)
    mlflow.set_tracking_uri(tracking_uri)
    out = project_root() / "artifacts" / "sweeps" / f"{plan.study_name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    return result


def _redact(url: str) -> str:
    """Hide a password in a database URL before it is logged."""
    import re

    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


def render(result: SweepResult, console: Console) -> None:
    table = Table(title=f"sweep {result.study_name} (validation {result.metric})")
    table.add_column("trial", justify="right")
    keys = sorted({k for t in result.trials for k in t.params})
    for k in keys:
        table.add_column(k)
    table.add_column(result.metric, justify="right")
    table.add_column("iterations", justify="right")
    table.add_column("MLflow run")
    for t in result.trials:
        style = "bold green" if t.number == result.best_trial else None
        table.add_row(
            str(t.number),
            *[str(t.params.get(k, "")) for k in keys],
            f"{t.value:.5f}",
            str(t.best_iteration),
            t.run_id[:8],
            style=style,
        )
    console.print(table)
    console.print(
        f"best: trial {result.best_trial} {result.best_params} → validation {result.metric} "
        f"{result.best_value:.5f} (run {result.best_run_id[:8]}, parent {result.parent_run_id[:8]})"
    )
    console.print(
        "register it through the pipeline (evaluate → register → promotion gate):\n"
        f"  {result.dvc_command}"
    )


def sweep(
    override: Annotated[
        list[str] | None,
        typer.Option("--override", "-o", help="Hydra override, e.g. sweep.sampler=tpe."),
    ] = None,
    n_trials: Annotated[int | None, typer.Option(help="Trials for this worker.")] = None,
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL (shared by all workers).")
    ] = None,
    study_name: Annotated[str | None, typer.Option(help="Study to create or join.")] = None,
) -> None:
    """Search LightGBM parameters with Optuna; every trial is a nested MLflow run."""
    console = Console(stderr=True)
    try:
        result = run_sweep(
            overrides=override or (),
            n_trials=n_trials,
            storage=storage,
            study_name=study_name,
            console=console,
        )
    except AibridgeError as exc:
        print_error(exc, "sweep", console)
        raise typer.Exit(1) from None
    render(result, Console())
