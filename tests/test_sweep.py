"""``aibridge sweep``: a 4-trial Optuna grid on the pipeline's real features and labels, with
a real SQLite Optuna storage and a real MLflow store in which every trial is a nested run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from aibridge.sweep import SweepError, run_sweep
from tests.conftest import REPO, mlflow_client

# The pipeline's own model settings are one grid point (the reproduction test needs it).
MODEL_CONF = yaml.safe_load((REPO / "conf" / "model" / "lightgbm.yaml").read_text())
LEAVES = int(MODEL_CONF["num_leaves"])
RATE = float(MODEL_CONF["learning_rate"])
OTHER_LEAVES = 31 if LEAVES != 31 else 15
GRID = [
    f"sweep.space.num_leaves=[{min(LEAVES, OTHER_LEAVES)},{max(LEAVES, OTHER_LEAVES)}]",
    f"sweep.space.learning_rate=[{RATE},{0.1 if RATE != 0.1 else 0.05}]",
]


@pytest.fixture(scope="module")
def swept(trained_model_store, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("sweep")
    mp = pytest.MonkeyPatch()
    tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    # set (not del) both, so undo() also removes what mlflow.set_*_uri() exports to os.environ
    mp.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    mp.setenv("MLFLOW_REGISTRY_URI", tracking_uri)
    mp.setenv("AIBRIDGE_HOME", str(tmp))
    storage = f"sqlite:///{tmp / 'optuna.db'}"
    try:
        result = run_sweep(
            trained_model_store.root,
            GRID,
            storage=storage,
            study_name="test-grid",
            console=Console(file=open(tmp / "console.txt", "w")),  # noqa: SIM115
        )
    finally:
        mp.undo()
    return result, tracking_uri, storage, tmp


def test_every_grid_point_is_one_trial(swept) -> None:
    result, *_ = swept
    assert len(result.trials) == 4
    combos = {(t.params["num_leaves"], t.params["learning_rate"]) for t in result.trials}
    leaves = {LEAVES, OTHER_LEAVES}
    rates = {RATE, 0.1 if RATE != 0.1 else 0.05}
    assert combos == {(n, r) for n in leaves for r in rates}


def test_every_trial_is_a_nested_mlflow_run(swept) -> None:

    result, tracking_uri, *_ = swept
    client = mlflow_client(tracking_uri)
    runs = client.search_runs(
        [result.experiment_id], filter_string="tags.`aibridge.sweep` = 'test-grid'"
    )
    assert len(runs) == 5
    parent = next(r for r in runs if r.info.run_id == result.parent_run_id)
    children = [r for r in runs if r.info.run_id != result.parent_run_id]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    assert all(r.info.status == "FINISHED" for r in runs)
    by_id = {t.run_id: t for t in result.trials}
    assert set(by_id) == {r.info.run_id for r in children}
    for run in children:
        trial = by_id[run.info.run_id]
        assert run.data.params["model.num_leaves"] == str(trial.params["num_leaves"])
        assert run.data.params["model.learning_rate"] == str(trial.params["learning_rate"])
        assert run.data.params["model.min_data_in_leaf"] == "40"  # the pipeline's other params
        assert f"num_leaves={trial.params['num_leaves']}" in run.info.run_name, run.info.run_name
        assert run.data.metrics["validation_log_loss"] == pytest.approx(trial.value, abs=0)
    best_child = min(children, key=lambda r: r.data.metrics["validation_log_loss"])
    assert parent.data.tags["best_run_id"] == best_child.info.run_id == result.best_run_id
    assert json.loads(parent.data.tags["best_params"]) == result.best_params
    assert parent.data.metrics["best_validation_log_loss"] == result.best_value


def test_best_trial_and_next_step(swept) -> None:
    result, *_ = swept
    best = min(result.trials, key=lambda t: t.value)
    assert result.best_trial == best.number and result.best_params == best.params
    assert result.dvc_command == (
        f"dvc exp run -S model.learning_rate={best.params['learning_rate']} "
        f"-S model.num_leaves={best.params['num_leaves']}"
    )
    _, _, _, tmp = swept
    summary = json.loads((tmp / "artifacts" / "sweeps" / "test-grid.json").read_text())
    assert summary["best"]["run_id"] == result.best_run_id


def test_trials_train_exactly_like_the_pipeline(swept, trained_model_store) -> None:
    """The grid point equal to the pipeline's config reproduces its validation log loss."""
    result, *_ = swept
    same = next(
        t for t in result.trials if t.params == {"num_leaves": LEAVES, "learning_rate": RATE}
    )
    train_metrics = json.loads(
        (trained_model_store.root / "reports" / "train_metrics.json").read_text()
    )
    assert round(same.value, 6) == train_metrics["validation"]["log_loss"]


def test_trials_live_in_the_optuna_storage(swept) -> None:
    import optuna

    result, _, storage, _ = swept
    study = optuna.load_study(study_name="test-grid", storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4
    assert {t.user_attrs["mlflow_run_id"] for t in complete} == {t.run_id for t in result.trials}
    assert study.best_value == result.best_value


def test_space_must_name_model_parameters(trained_model_store, tmp_path: Path) -> None:
    with pytest.raises(SweepError, match="not model parameters: \\['num_leafs'\\]"):
        run_sweep(
            trained_model_store.root,
            ["+sweep.space.num_leafs=[7,15]"],
            storage=f"sqlite:///{tmp_path / 'o.db'}",
        )


def test_bad_override_is_one_clear_error(trained_model_store, tmp_path: Path) -> None:
    with pytest.raises(SweepError, match=r"sweep configuration: .*sweep\.nope"):
        run_sweep(trained_model_store.root, ["sweep.nope=1"], storage=f"sqlite:///{tmp_path}/o.db")
