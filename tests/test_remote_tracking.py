"""The pipeline against a shared MLflow server: PostgreSQL backend store + S3 artifact store.

Everything is real and on loopback: a PostgreSQL cluster made with Debian's ``initdb`` /
``pg_ctl``, moto's S3-compatible server (``ThreadedMotoServer``), and ``mlflow server``
as a subprocess with ``--backend-store-uri postgresql://...`` and
``--artifacts-destination s3://...``. ``dvc repro`` of a project copy logs and registers into
it through ``MLFLOW_TRACKING_URI``; the registered model is then loaded for serving from it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BIN, make_project_copy, run


def find_pg_bin(debian_root: Path = Path("/usr/lib/postgresql")) -> Path:
    """PostgreSQL's server binaries (initdb, pg_ctl), whatever the installed version:
    ``AIBRIDGE_PG_BIN``; else the newest ``/usr/lib/postgresql/<version>/bin`` (Debian,
    Ubuntu); else ``pg_config --bindir``; else the directory of ``initdb`` on PATH."""
    if os.environ.get("AIBRIDGE_PG_BIN"):
        return Path(os.environ["AIBRIDGE_PG_BIN"])
    debian = sorted(
        (d for d in debian_root.glob("*/bin") if (d / "initdb").is_file()),
        key=lambda d: [int(x) if x.isdigit() else 0 for x in d.parent.name.split(".")],
    )
    if debian:
        return debian[-1]
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "initdb").is_file():
            return Path(out.stdout.strip())
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else Path("/usr/lib/postgresql/bin")


PG_BIN = find_pg_bin()
BUCKET = "aibridge-mlflow"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "aibridge-test", "AWS_SECRET_ACCESS_KEY": "aibridge-test"}

pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").is_file() or not (PG_BIN / "pg_ctl").is_file(),
    reason=f"PostgreSQL server binaries not found in {PG_BIN} "
    "(Debian: apt-get install -y postgresql, or set AIBRIDGE_PG_BIN)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}")
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not ready after {timeout:.0f} s")


@dataclass
class Postgres:
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/mlflow"


def _as_postgres_user(cmd: list[str]) -> list[str]:
    """initdb refuses to run as root: drop to the ``postgres`` system user when root."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without runuser; cannot start PostgreSQL")
    return [runuser, "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    # Not under pytest's tmp_path: /tmp/pytest-of-root is 0700, unreadable for `postgres`.
    base = Path(tempfile.mkdtemp(prefix="aibridge-pg-"))
    data = base / "data"
    data.mkdir()
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        for p in (base, data):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    port = free_port()
    subprocess.run(
        _as_postgres_user(
            [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E",
             "UTF8", "--no-sync"]
        ),
        check=True,
        capture_output=True,
    )  # fmt: skip
    subprocess.run(
        _as_postgres_user(
            [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w",
             "-t", "60", "-o",
             f"-p {port} -c listen_addresses=127.0.0.1 -k {base} -c fsync=off",
             "start"]
        ),
        check=True,
        capture_output=True,
    )  # fmt: skip
    try:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        con.autocommit = True
        con.cursor().execute("CREATE DATABASE mlflow")
        con.close()
        yield Postgres(port=port, data_dir=data)
    finally:
        subprocess.run(
            _as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        import boto3

        boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", **_boto_keys()
        ).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def _boto_keys() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_KEYS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_KEYS["AWS_SECRET_ACCESS_KEY"],
    }


@dataclass
class MlflowServer:
    uri: str
    log: Path


@pytest.fixture(scope="module")
def mlflow_server(
    postgres: Postgres, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    port = free_port()
    log = tmp_path_factory.mktemp("mlflow-server") / "server.log"
    env = {
        **os.environ,
        **S3_KEYS,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server",
             "--backend-store-uri", postgres.url,
             "--artifacts-destination", f"s3://{BUCKET}/",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=fh, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    try:
        try:
            wait_for(healthy, 120, "mlflow server", proc)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from None
        yield MlflowServer(uri=uri, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def remote_project(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory):
    root = make_project_copy(tmp_path_factory.mktemp("remote") / "aibridge")
    # The client needs no S3 credentials: the server proxies artifacts (mlflow-artifacts:/).
    env = {
        "MLFLOW_TRACKING_URI": mlflow_server.uri,
        # mlflow.set_registry_uri() exports MLFLOW_REGISTRY_URI into os.environ, so an earlier
        # test in this session could otherwise send the register stage to another store.
        "MLFLOW_REGISTRY_URI": mlflow_server.uri,
        # LightGBM's OpenMP threads spin-wait by default; on a busy 2-core box that made the
        # backtest stage >60 s instead of ~13 s (measured). Results do not depend on it.
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
    }
    result = run([str(BIN / "dvc"), "repro"], root, env=env)
    return root, result.stdout + result.stderr


def test_pipeline_logs_and_registers_on_the_shared_server(
    remote_project, mlflow_server: MlflowServer, postgres: Postgres
) -> None:
    from mlflow import MlflowClient

    root, _output = remote_project
    train_run = json.loads((root / "artifacts" / "train_run.json").read_text())
    registration = json.loads((root / "reports" / "registration.json").read_text())
    assert train_run["tracking_uri"] == mlflow_server.uri
    # Nothing went to the embedded store.
    assert not (root / "mlflow.db").exists()

    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    run_ = client.get_run(train_run["run_id"])
    import yaml

    conf = yaml.safe_load((root / "conf" / "model" / "lightgbm.yaml").read_text())
    assert run_.data.params["model.num_leaves"] == str(conf["num_leaves"])
    assert "test_log_loss" in run_.data.metrics
    assert run_.info.artifact_uri.startswith("mlflow-artifacts:/")
    # the sample has no edge: the gate registers v1 as challenger only, no champion
    assert registration["gate"]["promote"] is False
    assert "champion" not in client.get_registered_model("aibridge-EURUSD-H1").aliases
    mv = client.get_model_version_by_alias("aibridge-EURUSD-H1", "challenger")
    assert mv.version == str(registration["version"]) == "1"
    assert mv.run_id == train_run["run_id"]
    assert mv.tags["gate.decision"] == "keep_champion"

    # The rows really are in PostgreSQL ...
    import psycopg2

    con = psycopg2.connect(host="127.0.0.1", port=postgres.port, user="postgres", dbname="mlflow")
    try:
        cur = con.cursor()
        cur.execute("SELECT run_uuid FROM runs")
        assert [r[0] for r in cur.fetchall()] == [train_run["run_id"]]
        cur.execute("SELECT name, version FROM model_versions")
        assert cur.fetchall() == [("aibridge-EURUSD-H1", 1)]
        cur.execute("SELECT alias, version FROM registered_model_aliases")
        assert sorted(cur.fetchall()) == [("challenger", 1)]
    finally:
        con.close()


def test_artifacts_land_in_s3(remote_project, s3_endpoint: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **_boto_keys())
    keys = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for obj in page.get("Contents", [])
    ]
    names = {Path(k).name for k in keys}
    assert {"MLmodel", "booster.txt", "settings.json", "features.py", "decision.py"} <= names
    assert "feature_importance.png" in names


def test_registered_model_serves_from_the_shared_server(
    remote_project, mlflow_server: MlflowServer, tmp_path: Path, trained_model_store
) -> None:
    from aibridge.serving_model import load_serving_model

    model = load_serving_model(
        "models:/aibridge-EURUSD-H1@challenger",
        tracking_uri=mlflow_server.uri,
        cache_dir=tmp_path / "models",
    )
    assert (model.info.name, model.info.version, model.info.alias) == (
        "aibridge-EURUSD-H1",
        "1",
        "challenger",
    )
    assert (model.info.symbol, model.info.timeframe) == ("EURUSD", "H1")
    c = trained_model_store.candles.tail(model.min_bars)
    decision = model.decide(
        c["time"].to_numpy(), c["open"].to_numpy(), c["high"].to_numpy(),
        c["low"].to_numpy(), c["close"].to_numpy(), c["volume"].to_numpy(),
    )  # fmt: skip
    assert decision.action in {"BUY", "SELL", "HOLD"}
    # Same code, data and seed as the locally trained model: the same decision.
    local = load_serving_model(
        trained_model_store.model_uri,
        tracking_uri=trained_model_store.tracking_uri,
        cache_dir=tmp_path / "local",
    )
    same = local.decide(
        c["time"].to_numpy(), c["open"].to_numpy(), c["high"].to_numpy(),
        c["low"].to_numpy(), c["close"].to_numpy(), c["volume"].to_numpy(),
    )  # fmt: skip
    assert decision.probabilities == same.probabilities


def test_remote_tracking_config_selects_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """``tracking=remote`` composes to the shared-server URI the docs describe."""
    from omegaconf import OmegaConf

    from aibridge.config import compose_config

    cfg = compose_config(["tracking=remote"])
    tracking = OmegaConf.to_container(cfg.tracking, resolve=True)
    assert tracking["uri"] == "http://127.0.0.1:5000"
    assert tracking["experiment"] == "aibridge-EURUSD-H1"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from aibridge.tracking import resolve_tracking_uri

    assert resolve_tracking_uri(tracking) == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert resolve_tracking_uri(tracking) == "http://mlflow.internal:5000"


def test_postgres_binaries_are_found_whatever_the_version(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("AIBRIDGE_PG_BIN", raising=False)
    for version in ("9.6", "13", "16", "17"):
        (tmp_path / version / "bin").mkdir(parents=True)
        if version != "17":  # a client-only install has no initdb
            (tmp_path / version / "bin" / "initdb").write_text("")
    assert find_pg_bin(tmp_path) == tmp_path / "16" / "bin"
    monkeypatch.setenv("AIBRIDGE_PG_BIN", "/opt/pg/bin")
    assert find_pg_bin(tmp_path) == Path("/opt/pg/bin")
