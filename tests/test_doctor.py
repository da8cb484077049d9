"""``aibridge doctor`` against the real MLflow store the pipeline produced (session fixture)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from aibridge.doctor import FAIL, OK, WARN, check_clock, doctor, run_checks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def setup_env(trained_model_store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Point project root and conf/ at the trained project copy; state goes to tmp_path."""
    root = trained_model_store.root
    monkeypatch.setenv("AIBRIDGE_HOME", str(root))
    monkeypatch.setenv("AIBRIDGE_CONF_DIR", str(root / "conf"))
    # load_serving_model() calls mlflow.set_tracking_uri/set_registry_uri, which export
    # MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI into os.environ; setenv makes teardown undo that.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model_store.tracking_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", trained_model_store.tracking_uri)
    return {
        "models": [trained_model_store.model_uri],
        "tracking_uri": trained_model_store.tracking_uri,
        "port": free_port(),
        "metrics_port": free_port(),
        "journal_path": tmp_path / "journal" / "j.sqlite",
        "log_path": tmp_path / "logs" / "serve.jsonl",
        "model_cache_dir": tmp_path / "models",
    }


def cli_args(o: dict) -> list[str]:
    args = []
    for m in o["models"]:
        args += ["--model", m]
    return [
        *args,
        "--tracking-uri", o["tracking_uri"],
        "--port", str(o["port"]),
        "--metrics-port", str(o["metrics_port"]),
        "--journal", str(o["journal_path"]),
        "--log-path", str(o["log_path"]),
        "--model-cache-dir", str(o["model_cache_dir"]),
    ]  # fmt: skip


def invoke(args: list[str]):
    app = typer.Typer()
    app.command()(doctor)
    return CliRunner().invoke(app, args, env={"COLUMNS": "200"})


def test_healthy_setup_passes(setup_env) -> None:
    result = invoke(cli_args(setup_env))
    assert result.exit_code == 0, result.output
    assert "ready to serve" in result.output
    assert "aibridge-EURUSD-H1 v1" in result.output
    assert "EA must send 41 candles" in result.output
    assert "✗" not in result.output
    # Nothing was created by looking.
    assert not setup_env["journal_path"].exists()
    assert not setup_env["model_cache_dir"].exists()


def test_every_problem_is_reported_in_one_run(setup_env, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        broken = {
            **setup_env,
            "models": ["models:/aibridge-EURUSD-H1@nope", "models:/aibridge-EURUSD-H1@champion"],
            "port": busy.getsockname()[1],
            "journal_path": blocker / "journal.sqlite",
        }
        report = run_checks(broken)
        result = invoke(cli_args(broken))
    finally:
        busy.close()
    status = {(c.name, c.status) for c in report.checks}
    assert ("config", OK) in status and ("registry", OK) in status
    models = report.by_name("model")
    assert [c.status for c in models] == [FAIL, OK]
    assert "@nope" in models[0].message and "alias" in models[0].message.lower()
    [port] = report.by_name("port")
    assert port.status == FAIL and "another program uses it" in port.message
    [journal] = report.by_name("journal")
    assert journal.status == FAIL and "is a file" in journal.message
    assert len(report.failed) == 3
    assert result.exit_code == 1
    assert "3 problem(s)" in result.output


def test_missing_sqlite_store_is_not_created(setup_env, tmp_path: Path) -> None:
    db = tmp_path / "nowhere" / "mlflow.db"
    report = run_checks({**setup_env, "tracking_uri": f"sqlite:///{db}"})
    [registry] = report.by_name("registry")
    assert registry.status == FAIL and "run `dvc repro`" in registry.message
    [model] = report.by_name("model")
    assert model.status == FAIL and "unreachable" in model.message
    assert not db.exists()


def test_a_name_never_registered_says_how_to_get_a_model(setup_env) -> None:
    """The store answers, but nothing was ever registered under the served name (a fresh
    clone before `make demo`): the model check says to train and register one."""
    report = run_checks({**setup_env, "models": ["models:/never-registered@champion"]})
    [model] = report.by_name("model")
    assert model.status == FAIL, model.message
    assert "Nothing is registered as never-registered in" in model.message
    assert "run `make demo` or `.venv/bin/dvc repro`" in model.message


def test_unreachable_tracking_server(setup_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = f"http://127.0.0.1:{free_port()}"
    result = invoke(cli_args({**setup_env, "tracking_uri": uri}))
    assert result.exit_code == 1
    assert f"cannot reach MLflow at {uri}" in result.output


def test_clock_behind_the_data_fails(setup_env) -> None:
    report = run_checks(setup_env, now=datetime(2018, 1, 1, tzinfo=UTC))
    [clock] = report.by_name("clock")
    assert clock.status == FAIL
    assert "behind the newest candle (2018-02-07 15:00" in clock.message
    assert not report.ok


def test_clock_allows_a_broker_offset() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    newest = now.replace(tzinfo=None)
    assert check_clock(newest + timedelta(hours=2), now).status == OK  # broker UTC+2
    assert check_clock(newest + timedelta(hours=4), now).status == FAIL
    assert check_clock(None, now).status == WARN


def test_port_taken_by_a_running_aibridge_server_is_a_warning(setup_env) -> None:
    """A real server on the ports: doctor recognises it through /healthz instead of failing."""
    from aibridge.server.run import build_server
    from aibridge.server.settings import load_serve_settings

    settings = load_serve_settings({k: v for k, v in setup_env.items()} | {"poll_interval_s": 0})
    server = build_server(settings)
    try:
        import threading

        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        assert server.ready.wait(10)
        report = run_checks(setup_env)
    finally:
        server.request_stop()
        thread.join(10)
    [port] = report.by_name("port")
    assert port.status == WARN and "running aibridge server" in port.message
    [metrics] = report.by_name("metrics port")
    assert metrics.status == WARN


def test_doctor_leaves_the_environment_as_it_was(setup_env) -> None:
    """mlflow.set_*_uri() export env vars; later subprocesses (dvc repro) must not see them."""
    import os

    before = dict(os.environ)
    run_checks({**setup_env, "tracking_uri": f"sqlite:///{setup_env['journal_path']}.db"})
    run_checks(setup_env)
    assert dict(os.environ) == before


def test_clock_calls_years_old_data_stale_with_the_date() -> None:
    now = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    stale = check_clock(datetime(2018, 2, 7, 15, 0), now, "H1")
    assert stale.status == WARN  # a warning: the demo on the 2018 sample still passes
    assert "stale data: the newest H1 candle (2018-02-07 15:00) is 3,219 day(s) old" in (
        stale.message
    )
    assert "77,256 H1 bars" in stale.message and "dvc repro" in stale.message


def test_clock_freshness_scales_with_the_timeframe() -> None:
    now = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    # Friday's last H1 bar seen on Monday afternoon: a weekend, not stale.
    assert check_clock(datetime(2026, 11, 27, 23, 0), now, "H1").status == OK
    assert check_clock(datetime(2026, 11, 20, 0, 0), now, "H1").status == WARN
    # Eleven days is one W1 bar and fresh; for D1 it is stale.
    assert check_clock(datetime(2026, 11, 20, 0, 0), now, "W1").status == OK
    assert check_clock(datetime(2026, 11, 20, 0, 0), now, "D1").status == WARN
