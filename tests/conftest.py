"""Shared fixtures: a real `dvc repro` of the project on the bundled sample, in a temp copy.

Everything downstream (registry, pyfunc, server, backtest) tests against what this produced:
a real SQLite MLflow store with a registered, aliased model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# LightGBM's OpenMP threads spin-wait by default: on a busy 2-core box that makes every
# training (in-process and in the project copies' stages) several times slower. The Makefile
# exports the same; a bare `pytest` gets it here. Results do not depend on it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Fixtures that build something expensive for real: the session `dvc repro` of a project copy
# (60-90 s on 2 cores), or a PostgreSQL + S3 + MLflow server stack. Every test that needs
# one, directly or through another fixture, is `slow` without having to say so, so the fast
# tier (`pytest -m "not slow"`, `make test-fast`) never pays for them.
SLOW_FIXTURES = frozenset({"trained_model_store", "postgres", "s3_endpoint", "mlflow_server"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


COPY_ITEMS = [
    "conf",
    "pipelines",
    "src",
    "dvc.yaml",
    "params.yaml",
    "params.base.yaml",
    "data.dvc",
    ".dvcignore",
    ".gitignore",
    "pyproject.toml",
]


def run(
    cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "MPLBACKEND": "Agg"}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    full_env.pop("MLFLOW_REGISTRY_URI", None)  # mlflow.set_registry_uri() exports it
    # The CLI, run in-process from outside a project, points AIBRIDGE_HOME at its checkout:
    # a project copy's stages must never inherit that (they would write into the checkout).
    full_env.pop("AIBRIDGE_HOME", None)
    full_env.pop("AIBRIDGE_CONF_DIR", None)

    full_env.update(env or {})
    result = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode})\n"
            f"STDOUT:\n{result.stdout}\nSTDERR:\n{result.stderr}"
        )
    return result


@pytest.fixture(autouse=True)
def _project_env_restored() -> Iterator[None]:
    """An in-process CLI call may set AIBRIDGE_HOME/AIBRIDGE_CONF_DIR; no test leaks it."""
    keys = ("AIBRIDGE_HOME", "AIBRIDGE_CONF_DIR")
    saved = {k: os.environ.get(k) for k in keys}
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def make_project_copy(dest: Path) -> Path:
    """A fresh git+DVC project with this checkout's pipeline and the bundled sample data."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in COPY_ITEMS:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(
                src, dest / item, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(src, dest / item)
    (dest / ".dvc").mkdir()
    shutil.copy2(REPO / ".dvc" / "config", dest / ".dvc" / "config")
    shutil.copy2(REPO / ".dvc" / ".gitignore", dest / ".dvc" / ".gitignore")
    run(["git", "init", "-q"], dest)
    run(["git", "config", "user.email", "ci@aibridge.local"], dest)
    run(["git", "config", "user.name", "aibridge ci"], dest)
    run([str(BIN / "aibridge"), "sample-data", "--dest", "data"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "test project"], dest)
    return dest


def mlflow_client(uri: str):
    """A client bound to one store for tracking *and* registry.

    ``MlflowClient(tracking_uri=...)`` alone takes the registry from MLflow's process-wide
    setting, which any earlier ``mlflow.set_registry_uri`` (e.g. in ``load_serving_model``)
    leaves pointing at another store.
    """
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@dataclass(frozen=True)
class TrainedStore:
    root: Path
    tracking_uri: str
    model_name: str
    model_uri: str
    candles: pd.DataFrame
    repro_output: str


@pytest.fixture(scope="session")
def trained_model_store(tmp_path_factory: pytest.TempPathFactory) -> TrainedStore:
    root = make_project_copy(tmp_path_factory.mktemp("project") / "aibridge")
    result = run([str(BIN / "dvc"), "repro"], root)
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    # The sample has no edge, so the gate registers v1 as challenger only. Tests that serve
    # "the champion" need one: promote v1 by hand, as an operator would (recorded as such).
    client = mlflow_client(tracking_uri)
    if "champion" not in client.get_registered_model("aibridge-EURUSD-H1").aliases:
        client.set_registered_model_alias("aibridge-EURUSD-H1", "champion", "1")
    from aibridge.ingest import read_mt4_csv

    candles = read_mt4_csv(root / "data" / "EURUSD60.csv").candles.drop(columns=["line"])
    return TrainedStore(
        root=root,
        tracking_uri=tracking_uri,
        model_name="aibridge-EURUSD-H1",
        model_uri="models:/aibridge-EURUSD-H1@champion",
        candles=candles,
        repro_output=result.stdout + result.stderr,
    )
