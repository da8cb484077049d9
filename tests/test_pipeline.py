"""End to end: a real `dvc repro` → MLflow run → registered model → pyfunc on raw candles."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from aibridge import features
from tests.conftest import BIN, REPO, TrainedStore, mlflow_client, run

pytestmark = pytest.mark.slow

STAGES = ["params", "ingest", "features", "labels", "train", "evaluate", "backtest", "register"]


def test_repro_runs_every_stage(trained_model_store: TrainedStore) -> None:
    for stage in STAGES:
        assert f"Running stage '{stage}'" in trained_model_store.repro_output


def test_mlflow_run_has_params_metrics_plots_and_model(trained_model_store: TrainedStore) -> None:
    client = mlflow_client(trained_model_store.tracking_uri)
    version = client.get_model_version_by_alias(trained_model_store.model_name, "champion")
    run_ = client.get_run(version.run_id)
    conf = yaml.safe_load((trained_model_store.root / "conf/model/lightgbm.yaml").read_text())
    assert run_.data.params["model.num_leaves"] == str(conf["num_leaves"])
    assert run_.data.params["labels.horizon"] == "24"
    for key in (
        "validation_log_loss",
        "test_log_loss",
        "test_accuracy",
        "test_balanced_accuracy",
        "test_precision_buy",
        "test_recall_sell",
        "test_auc_macro",
        "eval_test_accuracy",
    ):
        assert key in run_.data.metrics, key
    assert run_.data.tags["data_hash"].endswith(".dir")
    assert len(run_.data.tags["git_commit"]) >= 40
    artifacts = {a.path for a in client.list_artifacts(version.run_id, "plots")}
    assert {"plots/feature_importance.png", "plots/confusion_test.png"} <= artifacts
    assert version.tags["data_hash"] == run_.data.tags["data_hash"]


def test_first_version_is_champion_and_challenger(trained_model_store: TrainedStore) -> None:
    client = mlflow_client(trained_model_store.tracking_uri)
    model = client.get_registered_model(trained_model_store.model_name)
    assert {k: str(v) for k, v in model.aliases.items()} == {"champion": "1", "challenger": "1"}


def test_pyfunc_from_registry_decides_on_raw_candles(trained_model_store: TrainedStore) -> None:
    mlflow.set_tracking_uri(trained_model_store.tracking_uri)
    model = mlflow.pyfunc.load_model(trained_model_store.model_uri)
    candles = trained_model_store.candles.tail(300).reset_index(drop=True)
    out = model.predict(candles)
    assert len(out) == len(candles)
    assert set(out["action"]) <= {"BUY", "SELL", "HOLD"}
    warmup = features.min_bars() - 1
    assert (out["reason"].iloc[:warmup] == "insufficient_history").all()
    assert (out["reason"].iloc[warmup:] != "insufficient_history").all()
    probs = out[["p_sell", "p_hold", "p_buy"]].iloc[warmup:].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-9)
    trades = out[out["action"] != "HOLD"]
    buys = trades[trades["action"] == "BUY"]
    assert (buys["tp"] > buys["sl"]).all()
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def mutable_project(
    trained_model_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    dest = tmp_path_factory.mktemp("mutable") / "aibridge"
    shutil.copytree(trained_model_store.root, dest, symlinks=True)
    return dest


def test_noop_repro_is_up_to_date(mutable_project: Path) -> None:
    out = run([str(BIN / "dvc"), "repro"], mutable_project)
    assert "Data and pipelines are up to date" in out.stdout


def test_editing_conf_retrains_only_affected_stages(mutable_project: Path) -> None:
    conf = mutable_project / "conf" / "model" / "lightgbm.yaml"
    text = conf.read_text()
    leaves = yaml.safe_load(text)["num_leaves"]
    assert f"num_leaves: {leaves}" in text
    conf.write_text(text.replace(f"num_leaves: {leaves}", f"num_leaves: {leaves + 8}"))
    out = run([str(BIN / "dvc"), "repro"], mutable_project).stdout
    assert "Running stage 'params'" in out
    assert "Stage 'features' didn't change, skipping" in out
    assert "Stage 'labels' didn't change, skipping" in out
    assert "Running stage 'train'" in out
    params = yaml.safe_load((mutable_project / "params.yaml").read_text())
    assert params["model"]["num_leaves"] == 15
    client = mlflow_client(f"sqlite:///{mutable_project / 'mlflow.db'}")
    model = client.get_registered_model("aibridge-EURUSD-H1")
    assert {k: str(v) for k, v in model.aliases.items()} == {"champion": "1", "challenger": "2"}
    v2 = client.get_model_version("aibridge-EURUSD-H1", "2")
    assert client.get_run(v2.run_id).data.params["model.num_leaves"] == "15"


def test_dvc_exp_run_set_param_trains_variant(mutable_project: Path) -> None:
    run(["git", "add", "-A"], mutable_project)
    run(["git", "commit", "-q", "-m", "num_leaves 15"], mutable_project)
    out = run([str(BIN / "dvc"), "exp", "run", "-S", "model.num_leaves=63"], mutable_project).stdout
    assert "Running stage 'train'" in out
    params = yaml.safe_load((mutable_project / "params.yaml").read_text())
    assert params["model"]["num_leaves"] == 63
    client = mlflow_client(f"sqlite:///{mutable_project / 'mlflow.db'}")
    latest = max(int(v.version) for v in client.search_model_versions("name='aibridge-EURUSD-H1'"))
    run_ = client.get_run(client.get_model_version("aibridge-EURUSD-H1", str(latest)).run_id)
    assert run_.data.params["model.num_leaves"] == "63"
    diff = run([str(BIN / "dvc"), "params", "diff"], mutable_project).stdout
    assert "model.num_leaves" in diff and "63" in diff


def test_queued_experiment_logs_into_the_project_store(mutable_project: Path) -> None:
    """`dvc exp run --queue` runs in .dvc/tmp/exps/...; its MLflow run must land in our store."""
    run(["git", "add", "-A"], mutable_project)
    run(["git", "commit", "-q", "-m", "before queue"], mutable_project)
    # A value the committed params don't have, so the queued run trains (DVC outputs are
    # deterministic: an unchanged variant would rightly skip every stage).
    run([str(BIN / "dvc"), "exp", "run", "--queue", "-S", "model.num_leaves=9"], mutable_project)
    out = run([str(BIN / "dvc"), "exp", "run", "--run-all"], mutable_project)
    assert "Running stage 'train'" in out.stdout + out.stderr
    client = mlflow_client(f"sqlite:///{mutable_project / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    leaves = {r.data.params.get("model.num_leaves") for r in client.search_runs(experiments)}
    assert "9" in leaves
    assert not list((mutable_project / ".dvc" / "tmp").rglob("mlflow.db"))


def test_a_run_leaves_a_clean_tree_and_a_fresh_run_reproduces_the_lock(tmp_path: Path) -> None:
    """DVC outputs hold no run ids, times or other per-run bytes: after `dvc repro` and a
    commit, a second `dvc repro` is a no-op and leaves `git status` clean, and a from-scratch
    run (no MLflow store, no artifacts: a fresh clone) reproduces the committed dvc.lock."""
    from tests.conftest import make_project_copy

    root = make_project_copy(tmp_path / "aibridge")
    run([str(BIN / "dvc"), "repro"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", "first run"], root)

    out = run([str(BIN / "dvc"), "repro"], root).stdout
    assert "Data and pipelines are up to date" in out
    assert run(["git", "status", "--porcelain"], root).stdout == ""

    for volatile in (root / "mlflow.db", root / "mlartifacts", root / "artifacts"):
        if volatile.is_dir():
            shutil.rmtree(volatile)
        else:
            volatile.unlink(missing_ok=True)
    run([str(BIN / "dvc"), "repro", "--force"], root)
    status = run(["git", "status", "--porcelain"], root).stdout
    assert status == "", (
        f"a fresh run changed tracked files:\n{status}\n"
        + run(["git", "diff", "--unified=0", "--", "reports"], root).stdout[:3000]
    )


def test_stages_find_the_train_run_in_mlflow_without_train_run_json(
    mutable_project: Path,
) -> None:
    """artifacts/train_run.json is not a DVC output: where it is missing (a queued experiment's
    workspace, a fresh clone), the run is found in MLflow by the bundle's content hash."""
    import json
    import sys

    record = json.loads((mutable_project / "artifacts" / "train_run.json").read_text())
    (mutable_project / "artifacts" / "train_run.json").unlink()
    run([sys.executable, "pipelines/evaluate.py"], mutable_project)
    found = json.loads((mutable_project / "artifacts" / "train_run.json").read_text())
    assert found["found_by"] == "aibridge.model_md5"
    for key in ("run_id", "model_uri", "model_md5", "data_hash", "git_commit", "trained_at"):
        assert found[key] == record[key], key


def test_an_identical_model_is_not_registered_again(mutable_project: Path) -> None:
    """Registry hygiene: register again with the same artifacts/model → no new version; the
    challenger alias points at the version that holds that content."""
    import sys

    client = mlflow_client(f"sqlite:///{mutable_project / 'mlflow.db'}")
    before = client.search_model_versions("name='aibridge-EURUSD-H1'")
    out = run([sys.executable, "pipelines/register.py"], mutable_project)
    after = client.search_model_versions("name='aibridge-EURUSD-H1'")
    assert len(after) == len(before)
    text = out.stdout + out.stderr
    assert "model unchanged: same as v" in text and "not registered again" in text


def test_version_carries_a_model_card_and_few_tags(trained_model_store: TrainedStore) -> None:
    client = mlflow_client(trained_model_store.tracking_uri)
    mv = client.get_model_version(trained_model_store.model_name, "1")
    assert len(mv.tags) <= 8, sorted(mv.tags)
    card = mv.description
    assert card.startswith("## EURUSD H1"), card[:200]
    for part in ("**Gate:", "DVC data hash", "walk-forward", "Walk-forward backtest"):
        assert part.lower() in card.lower(), part
    # The card's serve command is one the CLI accepts (its option is named in serve --help).
    assert f"aibridge serve --model models:/{trained_model_store.model_name}/1" in card
    serve_help = run([str(BIN / "aibridge"), "serve", "--help"], REPO).stdout
    assert "--model " in serve_help
    run_ = client.get_run(mv.run_id)
    assert run_.info.run_name.startswith("EURUSD-H1 "), run_.info.run_name
    assert run_.inputs.dataset_inputs, "the training candles are logged as a dataset"
    experiment = client.get_experiment(run_.info.experiment_id)
    assert "Training runs" in experiment.tags["mlflow.note.content"]


def test_pyfunc_accepts_volume_as_pandas_reads_an_mt4_csv(
    trained_model_store: TrainedStore,
) -> None:
    """`pd.read_csv` gives int64 volume; the registered pyfunc must take it as it is."""
    import pandas as pd

    names = ["date", "clock", "open", "high", "low", "close", "volume"]
    df = pd.read_csv(trained_model_store.root / "data" / "EURUSD60.csv", names=names)
    df.insert(0, "time", pd.to_datetime(df.pop("date") + " " + df.pop("clock")))
    assert df["volume"].dtype == np.int64
    mlflow.set_tracking_uri(trained_model_store.tracking_uri)
    try:
        model = mlflow.pyfunc.load_model(trained_model_store.model_uri)
        tail = df.tail(200).reset_index(drop=True)
        out = model.predict(tail)
        same = model.predict(tail.astype({"volume": np.float64}))
    finally:
        mlflow.set_tracking_uri(None)
    assert len(out) == 200
    pd.testing.assert_frame_equal(out, same)


def test_backtest_outputs_do_not_depend_on_the_registry(
    trained_model_store: TrainedStore, tmp_path: Path
) -> None:
    """The store has a champion (v1, promoted by hand) and runs; rerunning the backtest there
    writes the bytes a fresh project wrote (the champion and the trial count are the register
    stage's business)."""
    root = tmp_path / "aibridge"
    shutil.copytree(trained_model_store.root, root, symlinks=True)
    out = root / "reports" / "backtest"
    fresh = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".json", ".csv", ".md")}
    run([str(BIN / "dvc"), "repro", "--force", "--single-item", "backtest"], root)
    again = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".json", ".csv", ".md")}
    assert "challenger.json" in fresh and "gate.json" not in fresh
    assert again == fresh


def test_a_too_short_history_fails_before_any_mlflow_run(
    trained_model_store: TrainedStore, tmp_path: Path
) -> None:
    """300 bars cannot hold one walk-forward fold: train says so in one line, no run exists."""
    root = tmp_path / "aibridge"
    shutil.copytree(trained_model_store.root, root, symlinks=True)
    csv = root / "data" / "EURUSD60.csv"
    csv.write_text("".join(csv.read_text().splitlines(keepends=True)[:300]))
    client = mlflow_client(f"sqlite:///{root / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs_before = len(client.search_runs(experiments))
    result = run([str(BIN / "dvc"), "repro"], root, check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "train failed: 300 H1 bars" in text and "too few for a walk-forward" in text, text
    assert "Traceback" not in text
    assert len(client.search_runs(experiments)) == runs_before


def test_checking_out_an_earlier_model_neither_retrains_nor_registers_it_again(
    mutable_project: Path,
) -> None:
    """`git checkout` + `dvc checkout` of the num_leaves=15 commit restores its model from the
    DVC cache; `dvc repro` then retrains nothing (train_run.json is not needed: the run is
    found by the model's hash) and register re-points the challenger at that model's version."""
    # (the last test on mutable_project: it leaves the copy on another commit)
    sha = run(["git", "log", "--format=%H", "--grep", "num_leaves 15"], mutable_project).stdout
    run(["git", "stash", "-u", "-q"], mutable_project, check=False)
    run(["git", "checkout", "-q", sha.split()[0]], mutable_project)
    try:
        run([str(BIN / "dvc"), "checkout", "-q"], mutable_project, check=False)
        out = run([str(BIN / "dvc"), "repro"], mutable_project)
        text = out.stdout + out.stderr
        assert "Running stage 'train'" not in text
        assert "model unchanged: same as v2, not registered again" in text, text[-2000:]
        client = mlflow_client(f"sqlite:///{mutable_project / 'mlflow.db'}")
        model = client.get_registered_model("aibridge-EURUSD-H1")
        assert str(model.aliases["challenger"]) == "2"
    finally:
        run(["git", "checkout", "-q", "-f", "-"], mutable_project)
        run([str(BIN / "dvc"), "checkout", "-q", "-f"], mutable_project, check=False)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_mlflow_ui_shows_the_model_card_on_the_version_page(
    trained_model_store: TrainedStore, tmp_path: Path
) -> None:
    """Headless Chromium on the real MLflow UI: the version page renders the model card."""
    import subprocess
    import time
    import urllib.request

    from tests.server_fixtures import free_port

    assert CHROMIUM is not None
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", trained_model_store.tracking_uri,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180  # the UI server starts slowly on a loaded box
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "mlflow server did not start"
                assert server.poll() is None, "mlflow server exited"
                time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/#/models/{trained_model_store.model_name}/versions/1"
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=30000",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=180,
        ).stdout  # fmt: skip
    finally:
        import os
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert f"EURUSD H1 — {trained_model_store.model_name} v1" in dom
    assert "Serve it" in dom and "Walk-forward backtest" in dom
