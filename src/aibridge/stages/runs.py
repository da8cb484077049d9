"""Which MLflow run holds the model in ``artifacts/model``: the link between DVC and MLflow.

``train`` logs the bundle to a new MLflow run and tags the run with the bundle's content hash.
The run id itself is not a DVC output (it differs per store and per run); stages that log into
that run or register its model (``evaluate``, ``backtest``, ``register``) ask
:func:`read_train_run`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aibridge.stages.common import StageError, StagePaths, read_json, write_json

MODEL_MD5_TAG = "aibridge.model_md5"
MODEL_URI_TAG = "aibridge.model_uri"


def bundle_md5(model_dir: Path) -> str:
    """Content hash of a model bundle (its files, not caches): the key that ties the DVC output
    ``artifacts/model`` to the MLflow run that logged it (tag :data:`MODEL_MD5_TAG`)."""
    digest = hashlib.md5()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_train_run(paths: StagePaths, tracking: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The MLflow identity of the model in ``artifacts/model`` (run id, model URI, ...).

    ``train`` writes it to ``artifacts/train_run.json``, which is not a DVC output (run ids
    differ per store). Where that file is missing or belongs to another model (a queued
    ``dvc exp run`` workspace, a fresh clone after ``dvc pull``, a ``dvc checkout``), the run
    is found in MLflow by the bundle's content hash and the file is written again.
    """
    md5 = bundle_md5(paths.model_dir) if paths.model_dir.is_dir() else None
    if paths.train_run.is_file():
        record: dict[str, Any] = read_json(paths.train_run)
        if md5 is None or record.get("model_md5") in (None, md5):
            return record
    if md5 is None:
        raise StageError(f"{paths.model_dir} is missing; run `dvc repro` from the start")
    from mlflow import MlflowClient

    from aibridge.tracking import configure_mlflow

    client = MlflowClient(configure_mlflow(tracking))
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`{MODEL_MD5_TAG}` = '{md5}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise StageError(
            f"no MLflow run holds {paths.model_dir} (bundle md5 {md5}) in this store; "
            "run `dvc repro --force train`"
        )
    run = runs[0]
    tags, params = run.data.tags, run.data.params
    offset = params.get("broker_utc_offset_s")
    margin = params.get("decision.ev_margin")
    record = {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "model_uri": tags.get(MODEL_URI_TAG, f"runs:/{run.info.run_id}/model"),
        "model_md5": md5,
        "data_hash": tags.get("data_hash", "unknown"),
        "git_commit": tags.get("git_commit", "unknown"),
        "trained_at": tags.get("aibridge.trained_at", ""),
        "broker_utc_offset_s": None if offset in (None, "None") else int(offset),
        "broker_dst": tags.get("broker_clock.dst"),
        "ev_margin": None if margin in (None, "None") else float(margin),
        "found_by": MODEL_MD5_TAG,
    }
    write_json(paths.train_run, record)
    return record
