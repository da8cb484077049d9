"""MLflow wiring: where runs go, and what makes a run traceable (code, data, config).

The default store is SQLite inside the project (``mlflow.db`` + ``mlartifacts/``), anchored to
the real project root so that ``dvc exp run --queue`` (which runs in a temp copy) logs into the
same store. ``MLFLOW_TRACKING_URI`` or ``tracking.uri`` in ``conf/tracking/`` point elsewhere.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from aibridge.paths import project_root, workspace_root


def default_tracking_uri() -> str:
    return f"sqlite:///{project_root() / 'mlflow.db'}"


def default_artifact_root() -> str:
    return (project_root() / "mlartifacts").as_uri()


def resolve_tracking_uri(tracking_cfg: Mapping[str, Any] | None = None) -> str:
    """Environment beats config beats the embedded default."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    uri = (tracking_cfg or {}).get("uri")
    return str(uri) if uri else default_tracking_uri()


def configure_mlflow(tracking_cfg: Mapping[str, Any] | None = None) -> str:
    """Point MLflow at the configured store (tracking and registry) and return its URI."""
    import mlflow

    uri = resolve_tracking_uri(tracking_cfg)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI", uri))
    return uri


EXPERIMENT_NOTE = """\
Training runs of the aibridge pipeline (`dvc repro`, `dvc exp run`, `aibridge sweep`): one run
per trained model, named `SYMBOL-TF <what changed>` (the DVC experiment's name, the `-S`
overrides, or the params that differ from the previous run).

Each run has the config (Parameters), the training candles (Inputs: source and DVC hash),
test metrics (`test_*`, `eval_test_*`), the walk-forward backtest (`bt_*`, artifacts
`backtest/`), the champion/challenger gate (`gate_*`, `gate/decision.json`) and the model.
Registered versions (Models tab) carry a model card: data, config diff from the champion,
metrics, the gate's decision and how to serve the version.
"""

# Tags that make the MLflow UI open an experiment on its training runs (MLflow 3 otherwise
# guesses GenAI and opens the traces page) and show a description on the experiment page.
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",
    "mlflow.note.content": EXPERIMENT_NOTE,
}


def ensure_experiment(name: str, tracking_cfg: Mapping[str, Any] | None = None) -> str:
    """Get or create an experiment (local stores keep artifacts next to the database) and give
    it :data:`EXPERIMENT_TAGS` unless it has its own."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        artifact_location = (tracking_cfg or {}).get("artifact_location")
        uri = mlflow.get_tracking_uri()
        if not artifact_location and uri.startswith("sqlite:///"):
            db_path = Path(uri.removeprefix("sqlite:///"))
            artifact_location = (db_path.parent / "mlartifacts").as_uri()
        experiment_id = mlflow.create_experiment(name, artifact_location=artifact_location or None)
        tags: Mapping[str, str] = {}
    else:
        experiment_id, tags = experiment.experiment_id, experiment.tags
    client = mlflow.MlflowClient()
    for key, value in EXPERIMENT_TAGS.items():
        if key not in tags:
            client.set_experiment_tag(experiment_id, key, value)
    return str(experiment_id)


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def describe_changes(changed: Mapping[str, Any], limit: int = 3) -> str:
    """``num_leaves=15 horizon=12 +2 more``: changed params by their last key part.

    >>> describe_changes({"model.num_leaves": 15, "labels.horizon": 12})
    'horizon=12 num_leaves=15'
    >>> describe_changes({"learning_rate": 0.052341, "a": 1, "b": 2, "c": 3})
    'a=1 b=2 c=3 +1 more'
    """
    items = [
        f"{_short(k)}={v:.4g}" if isinstance(v, float) else f"{_short(k)}={v}"
        for k, v in sorted(changed.items(), key=lambda kv: _short(kv[0]))
    ]
    more = f" +{len(items) - limit} more" if len(items) > limit else ""
    return " ".join(items[:limit]) + more


def param_overrides(root: Path) -> dict[str, Any]:
    """Values in ``params.yaml`` that differ from ``params.base.yaml`` (conf/ as composed):
    the ``dvc exp run -S`` overrides in effect."""
    from aibridge.config import flatten

    try:
        params = flatten(yaml.safe_load((root / "params.yaml").read_text()) or {})
        base = flatten(yaml.safe_load((root / "params.base.yaml").read_text()) or {})
    except (OSError, yaml.YAMLError):
        return {}
    return {k: v for k, v in params.items() if base.get(k) != v}


def run_name(
    prefix: str, params: Mapping[str, str], root: Path, experiment_id: str | None = None
) -> str:
    """``EURUSD-H1 num_leaves=15``: the DVC experiment's name when there is one
    (``DVC_EXP_NAME``), then what changed: the ``-S`` overrides, else the params (as logged,
    ``params``) that differ from the experiment's latest run; ``first run`` / ``same params``."""
    parts = [prefix]
    exp = os.environ.get("DVC_EXP_NAME")
    if exp:
        parts.append(exp)
    changes = describe_changes(param_overrides(root))
    if not changes and experiment_id is not None:
        import mlflow

        runs = mlflow.MlflowClient().search_runs(
            [experiment_id], order_by=["attributes.start_time DESC"], max_results=1
        )
        if not runs:
            changes = "first run"
        else:
            before = runs[0].data.params
            changed = {
                k: v
                for k, v in params.items()
                if k in before and before[k] != v and not k.startswith(("tracking.", "data."))
            }
            changes = describe_changes(changed) or "same params"
    if changes:
        parts.append(changes)
    return " ".join(parts)


# What a pipeline run itself rewrites: not a reason to call the code "-dirty" (``dvc repro``
# updates dvc.lock and the reports while it runs, before and after ``train``).
PIPELINE_OUTPUTS = ("dvc.lock", "reports")


def git_commit() -> str:
    """The commit the workspace was built from, with ``-dirty`` when tracked files other than
    the pipeline's own outputs (:data:`PIPELINE_OUTPUTS`) differ from it."""
    try:
        root = workspace_root()
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        excluded = [f":(exclude){path}" for path in PIPELINE_OUTPUTS]
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def data_hash(dvc_file: Path | None = None) -> str:
    """The DVC content hash of ``data/`` as recorded in ``data.dvc`` (``md5`` of the directory)."""
    path = dvc_file or workspace_root() / "data.dvc"
    try:
        outs = yaml.safe_load(path.read_text()).get("outs", [])
        return str(outs[0].get("md5", "unknown"))
    except (OSError, AttributeError, IndexError, yaml.YAMLError):
        return "unknown"
