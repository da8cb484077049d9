"""``aibridge doctor``: check a serving setup end to end and say what is wrong in plain words.

Checks, in the order a broken setup usually fails: the configuration composes, the MLflow
tracking/registry store answers, every configured model URI resolves and loads exactly as the
server would load it (``aibridge.serving_model.load_serving_model``), the ZeroMQ and metrics
ports are free, the clock is not behind the newest candle, and the journal/log/model-cache paths are
writable. Nothing is changed: the model is downloaded into a temporary directory, no SQLite
store is created, and no request is sent to a running server.

Exit code 0 when nothing failed (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

OK, WARN, FAIL = "ok", "warn", "fail"
_MARK = {OK: "[green]✓ ok[/]", WARN: "[yellow]! warn[/]", FAIL: "[bold red]✗ fail[/]"}
# MT4 candle times are broker server time, usually UTC+2/+3; allow that much "future".
BROKER_OFFSET_ALLOWANCE = timedelta(hours=3)
REGISTRY_TIMEOUT_S = 10


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    message: str


@dataclass
class DoctorReport:
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def ok(self) -> bool:
        return not self.failed

    def by_name(self, name: str) -> list[Check]:
        return [c for c in self.checks if c.name == name]


# --------------------------------------------------------------------------- checks


def _port_in_use(host: str, port: int) -> str | None:
    """None if ``host:port`` can be bound now, else the OS's reason."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _running_server_health(host: str, port: int | None) -> dict[str, Any] | None:
    """``/healthz`` of an aibridge server already on the metrics port, if one answers."""
    if not port:
        return None
    import orjson

    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:  # 503 = unhealthy, still an aibridge server
        body = exc.read()
    except (OSError, ValueError):
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) and "models" in doc else None


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _writable_problem(path: Path, *, is_file: bool) -> str | None:
    """Why ``path`` (a file to create/append, or a directory) cannot be written, or None."""
    target_dir = path.parent if is_file else path
    existing = _nearest_existing(target_dir)
    if not existing.is_dir():
        return f"{existing} is a file, so {target_dir} cannot be created"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"no write permission on {existing}"
    if is_file and path.exists():
        if path.is_dir():
            return f"{path} is a directory"
        if not os.access(path, os.W_OK):
            return f"no write permission on {path}"
    return None


def _journal_problem(path: Path) -> str | None:
    problem = _writable_problem(path, is_file=True)
    if problem or not path.exists():
        return problem
    try:  # an existing journal must open and take a write lock (not held by a stuck process)
        con = sqlite3.connect(path, timeout=2)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
        finally:
            con.close()
    except sqlite3.Error as exc:
        return f"{path} cannot be written as SQLite: {exc}"
    return None


def newest_candle(root: Path) -> datetime | None:
    """Newest candle time the pipeline ingested (``artifacts/candles/*.parquet``)."""
    found = newest_candle_and_timeframe(root)
    return found[0] if found else None


def newest_candle_and_timeframe(root: Path) -> tuple[datetime, str | None] | None:
    """Newest ingested candle time and its file's timeframe (``<SYMBOL>_<TF>.parquet``)."""
    import pandas as pd

    newest: tuple[datetime, str | None] | None = None
    for path in sorted((root / "artifacts" / "candles").glob("*.parquet")):
        try:
            t = pd.read_parquet(path, columns=["time"])["time"].max()
        except Exception:  # unreadable file: the pipeline check will say so, not this one
            continue
        if pd.notna(t):
            ts = pd.Timestamp(t).to_pydatetime().replace(tzinfo=None)
            timeframe = path.stem.rsplit("_", 1)[-1].upper() if "_" in path.stem else None
            if newest is None or ts > newest[0]:
                newest = (ts, timeframe)
    return newest


# A feed is "fresh" while its newest candle is younger than this many bars of its timeframe,
# and never less than a weekend plus a day (Friday's close seen on Monday is normal).
FRESH_BARS = 3
FRESH_MIN_AGE = timedelta(days=4)


def _bar_minutes(timeframe: str | None) -> int | None:
    from aibridge.ingest.naming import timeframe_minutes

    try:
        return timeframe_minutes(timeframe) if timeframe else None
    except ValueError:
        return None


def check_clock(newest: datetime | None, now: datetime, timeframe: str | None = None) -> Check:
    """The clock must not be behind the data (candles are broker time, up to UTC+3), and the
    data should be recent for its timeframe: a years-old newest candle is called stale."""
    now_naive = now.astimezone(UTC).replace(tzinfo=None)
    if newest is None:
        return Check(
            "clock", WARN, "no ingested candles under artifacts/candles to compare the clock with"
        )
    if newest > now_naive + BROKER_OFFSET_ALLOWANCE:
        return Check(
            "clock",
            FAIL,
            f"the system clock ({now_naive:%Y-%m-%d %H:%M} UTC) is behind the newest candle "
            f"({newest:%Y-%m-%d %H:%M} broker time) by more than the "
            f"{BROKER_OFFSET_ALLOWANCE.total_seconds() / 3600:g} h a broker offset explains; "
            "fix the time (NTP: `timedatectl set-ntp true`, Windows: `w32tm /resync`)",
        )
    age = max(now_naive - newest, timedelta(0))
    minutes = _bar_minutes(timeframe)
    limit = max(FRESH_MIN_AGE, timedelta(minutes=FRESH_BARS * (minutes or 60)))
    tf = f" {timeframe}" if timeframe else ""
    bars = f", {int(age.total_seconds() // 60 // minutes):,}{tf} bars" if minutes else ""
    head = f"{now_naive:%Y-%m-%d %H:%M} UTC; newest{tf} candle {newest:%Y-%m-%d %H:%M}"
    if age > limit:
        return Check(
            "clock",
            WARN,
            f"stale data: the newest{tf} candle ({newest:%Y-%m-%d %H:%M}) is {age.days:,} "
            f"day(s) old{bars}, at {now_naive:%Y-%m-%d %H:%M} UTC (fresh: under "
            f"{limit.days} days for{tf or ' this timeframe'}); the model was trained on old "
            "candles — export recent history from MT4 into data/ and run `dvc repro` before "
            "serving a live account",
        )
    return Check("clock", OK, f"{head} ({age.days} day(s) old{bars})")


def _check_config(overrides: dict[str, Any]) -> tuple[Check, Any, Any]:
    from aibridge.config import compose_config
    from aibridge.paths import conf_dir
    from aibridge.server.settings import load_serve_settings

    try:
        cfg = compose_config()
    except Exception as exc:
        return (
            Check("config", FAIL, f"{conf_dir()} does not compose: {type(exc).__name__}: {exc}"),
            None,
            None,
        )
    try:
        settings = load_serve_settings(overrides)
    except ValueError as exc:
        first = str(exc).splitlines()
        return Check("config", FAIL, f"invalid serve settings: {' '.join(first[:3])}"), cfg, None
    if not settings.models:
        return (
            Check("config", FAIL, "no models configured (conf/serve models: or --model)"),
            cfg,
            None,
        )
    return (
        Check("config", OK, f"{conf_dir()} composes; serving {', '.join(settings.models)}"),
        cfg,
        settings,
    )


def _check_registry(tracking_uri: str) -> Check:
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():
            return Check(
                "registry",
                FAIL,
                f"no MLflow store at {db}: run `dvc repro` (or `make demo`) first, or point "
                "MLFLOW_TRACKING_URI / --tracking-uri at your tracking server",
            )
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        models = client.search_registered_models(max_results=100)
    except MlflowException as exc:
        return Check("registry", FAIL, f"cannot reach MLflow at {tracking_uri}: {exc.message}")
    except Exception as exc:  # connection refused, DNS, TLS, ...
        return Check(
            "registry", FAIL, f"cannot reach MLflow at {tracking_uri}: {type(exc).__name__}: {exc}"
        )
    return Check("registry", OK, f"{tracking_uri} answers; {len(models)} registered model(s)")


def _check_models(uris: list[str], tracking_uri: str) -> list[Check]:
    from aibridge.serving_model import ModelLoadError, load_serving_model

    checks = []
    with tempfile.TemporaryDirectory(prefix="aibridge-doctor-") as tmp:
        for uri in uris:
            try:
                model = load_serving_model(uri, tracking_uri=tracking_uri, cache_dir=Path(tmp))
            except ModelLoadError as exc:
                checks.append(
                    _no_champion_check(uri, tracking_uri, Path(tmp))
                    or Check("model", FAIL, f"{uri}: {exc}{_unregistered_hint(uri, tracking_uri)}")
                )
                continue
            except Exception as exc:
                checks.append(Check("model", FAIL, f"{uri}: {type(exc).__name__}: {exc}"))
                continue
            info = model.info
            checks.append(
                Check(
                    "model",
                    OK,
                    f"{uri} → {info.name} v{info.version} ({info.symbol} {info.timeframe}, "
                    f"run {info.run_id[:8]}, trained {info.trained_at or '?'}), "
                    f"loads; EA must send {model.min_bars} candles",
                )
            )
    return checks


def _unregistered_hint(uri: str, tracking_uri: str) -> str:
    """``models:/NAME@...`` where NAME was never registered in this store: say how to get one."""
    if not uri.startswith("models:/"):
        return ""
    name = uri.removeprefix("models:/").split("@")[0].split("/")[0]
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).get_registered_model(
            name
        )
    except MlflowException:
        return (
            f". Nothing is registered as {name} in {tracking_uri}: run `make demo` or "
            "`.venv/bin/dvc repro` to train and register it (or --tracking-uri another store)"
        )
    except Exception:  # unreachable store: the registry check says so
        return ""
    return ""


def _no_champion_check(uri: str, tracking_uri: str, cache: Path) -> Check | None:
    """``models:/NAME@champion`` without a champion while NAME has a challenger: the backtest
    gate promoted nothing. The server starts and answers HOLD (``no_champion``): a warning."""
    from aibridge.serving_model import load_serving_model

    prefix, _, alias = uri.rpartition("@")
    if alias != "champion" or not prefix.startswith("models:/"):
        return None
    try:
        model = load_serving_model(
            f"{prefix}@challenger", tracking_uri=tracking_uri, cache_dir=cache
        )
    except Exception:
        return None
    info = model.info
    return Check(
        "model",
        WARN,
        f"{uri}: no champion — the backtest gate promoted no version; the server answers HOLD "
        f"(no_champion). Challenger: {info.name} v{info.version}; serve it explicitly "
        f"(--model {prefix}@challenger) or `aibridge promote {info.version} --reason ...`",
    )


def _check_ports(settings: Any) -> list[Check]:
    checks = []
    running = _running_server_health(settings.metrics_host, settings.metrics_port)
    problem = _port_in_use(settings.host, settings.port)
    if problem is None:
        checks.append(Check("port", OK, f"tcp://{settings.host}:{settings.port} is free"))
    elif running is not None:
        checks.append(
            Check(
                "port",
                WARN,
                f"tcp://{settings.host}:{settings.port} is taken by a running aibridge server "
                f"(healthz: {running.get('status')}); stop it before starting another",
            )
        )
    else:
        checks.append(
            Check(
                "port",
                FAIL,
                f"tcp://{settings.host}:{settings.port} cannot be bound ({problem}): another "
                "program uses it; choose another with --port (and set it in the EA)",
            )
        )
    if settings.metrics_port:
        problem = _port_in_use(settings.metrics_host, settings.metrics_port)
        where = f"http://{settings.metrics_host}:{settings.metrics_port}"
        if problem is None:
            checks.append(Check("metrics port", OK, f"{where} is free"))
        elif running is not None:
            checks.append(Check("metrics port", WARN, f"{where} is the running server's"))
        else:
            checks.append(
                Check(
                    "metrics port",
                    FAIL,
                    f"{where} cannot be bound ({problem}); choose another with --metrics-port",
                )
            )
    else:
        checks.append(Check("metrics port", WARN, "metrics are disabled (no Prometheus alerts)"))
    return checks


def _check_paths(settings: Any) -> list[Check]:
    checks = []
    problem = _journal_problem(settings.journal_path)
    checks.append(
        Check("journal", FAIL, f"journal {settings.journal_path}: {problem}")
        if problem
        else Check("journal", OK, f"{settings.journal_path} is writable")
    )
    targets = [("model cache", settings.model_cache_dir, False)]
    if settings.log_path is not None:
        targets.append(("log", settings.log_path, True))
    for name, path, is_file in targets:
        problem = _writable_problem(path, is_file=is_file)
        checks.append(
            Check(name, FAIL, f"{path}: {problem}")
            if problem
            else Check(name, OK, f"{path} is writable")
        )
    return checks


def run_checks(
    overrides: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> DoctorReport:
    """Every check, continuing past failures so one run lists every problem."""
    quick = {
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # an unreachable server fails in seconds
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(REGISTRY_TIMEOUT_S),
    }
    saved = {k: os.environ.get(k) for k in (*quick, "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    for key, value in quick.items():
        os.environ.setdefault(key, value)
    try:
        return _run_checks(overrides, now=now, progress=progress)
    finally:  # mlflow.set_*_uri() export env vars too: leave the environment as it was
        for name, before in saved.items():
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before


def _run_checks(
    overrides: dict[str, Any] | None,
    *,
    now: datetime | None,
    progress: Callable[[str], None] | None,
) -> DoctorReport:
    from aibridge.paths import project_root
    from aibridge.server.run import tracking_uri_for

    step = progress or (lambda _msg: None)
    root = project_root()
    checks: list[Check] = []

    step("composing the configuration")
    config_check, _cfg, settings = _check_config(
        {k: v for k, v in (overrides or {}).items() if v is not None}
    )
    checks.append(config_check)
    if settings is not None:
        settings = settings.resolve_paths(root)
        tracking_uri = tracking_uri_for(settings)
        step(f"asking MLflow at {tracking_uri}")
        registry = _check_registry(tracking_uri)
        checks.append(registry)
        if registry.status == OK:
            step("loading the configured model(s)")
            checks.extend(_check_models(list(settings.models), tracking_uri))
        else:
            checks.append(Check("model", FAIL, "not checked: the registry is unreachable"))
        step("checking ports and paths")
        checks.extend(_check_ports(settings))
        checks.extend(_check_paths(settings))
    step("checking the clock")
    found = newest_candle_and_timeframe(root)
    newest, timeframe = found if found else (None, None)
    checks.append(check_clock(newest, now or datetime.now(UTC), timeframe))
    return DoctorReport(checks)


def render(report: DoctorReport, console: Console) -> None:
    table = Table(title="aibridge doctor", show_lines=False, expand=False)
    table.add_column("check", style="bold")
    table.add_column("", no_wrap=True)
    table.add_column("details", overflow="fold")
    for c in report.checks:
        table.add_row(c.name, _MARK[c.status], escape(c.message))
    console.print(table)
    if report.ok:
        warnings = sum(c.status == WARN for c in report.checks)
        tail = f" ({warnings} warning(s))" if warnings else ""
        console.print(f"[green]ready to serve[/]{tail}")
    else:
        console.print(f"[bold red]{len(report.failed)} problem(s):[/]")
        for c in report.failed:
            console.print(f"  • {c.name}: {escape(c.message)}", soft_wrap=True)


def doctor(
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Model URI (repeatable); default from conf/serve."),
    ] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking/registry URI.")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address to check.")] = None,
    port: Annotated[int | None, typer.Option(help="ZeroMQ port to check.")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Metrics port to check.")] = None,
    journal: Annotated[Path | None, typer.Option(help="Journal path to check.")] = None,
    log_path: Annotated[Path | None, typer.Option(help="JSON log path to check.")] = None,
    model_cache_dir: Annotated[Path | None, typer.Option(help="Model cache to check.")] = None,
) -> None:
    """Check config, registry, model, ports, clock and journal; say what is wrong (exit 0/1)."""
    console = Console()
    overrides = {
        "models": model or None,
        "tracking_uri": tracking_uri,
        "host": host,
        "port": port,
        "metrics_port": metrics_port,
        "journal_path": journal,
        "log_path": log_path,
        "model_cache_dir": model_cache_dir,
    }
    with console.status("aibridge doctor") as status:
        report = run_checks(overrides, progress=lambda msg: status.update(f"doctor: {msg}"))
    render(report, console)
    raise typer.Exit(0 if report.ok else 1)
