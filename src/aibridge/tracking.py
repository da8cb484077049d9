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


def ensure_experiment(name: str, tracking_cfg: Mapping[str, Any] | None = None) -> str:
    """Get or create an experiment; local stores keep artifacts next to the database."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = (tracking_cfg or {}).get("artifact_location")
    uri = mlflow.get_tracking_uri()
    if not artifact_location and uri.startswith("sqlite:///"):
        db_path = Path(uri.removeprefix("sqlite:///"))
        artifact_location = (db_path.parent / "mlartifacts").as_uri()
    return mlflow.create_experiment(name, artifact_location=artifact_location or None)


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
