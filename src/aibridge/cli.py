"""The ``aibridge`` command line (typer + rich)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from aibridge import __version__
from aibridge.doctor import doctor
from aibridge.loop.commands import register as register_loop_commands
from aibridge.paths import is_project, locate_project, project_root, sample_data_path
from aibridge.server.commands import register as register_server_commands
from aibridge.sweep import sweep

NEWCOMER_PATH = (
    "First run, in the cloned project: [bold]make demo[/] (Windows: "
    "[bold].venv\\Scripts\\aibridge quickstart[/]) trains on the bundled EURUSD sample, then "
    "drives the signal server with the EA emulator (the sample model, then a planted-edge one "
    "that trades).\n\n"
    "Next: [bold]aibridge doctor[/] (is everything in place?), [bold]dvc repro[/] (retrain "
    "after changing conf/ or data/), [bold]make ui[/] (MLflow), [bold]aibridge serve[/] (serve "
    "the champion to your EA), [bold]aibridge journal tail --follow[/] (watch it). Without an "
    "activated venv: .venv/bin/aibridge, .venv/bin/dvc. Outside the project directory: set "
    "AIBRIDGE_HOME. README.md, First run."
)

app = typer.Typer(
    help="Train LightGBM decisions on MT4 candles and serve them to an MT4 Expert Advisor.",
    epilog=NEWCOMER_PATH,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

# Commands that need no project directory (no conf/, no MLflow store).
_NO_PROJECT_NEEDED = {"version", "keys"}


@app.callback()
def _find_project(ctx: typer.Context) -> None:
    """Say where the project is when the current directory is not one."""
    if ctx.invoked_subcommand in _NO_PROJECT_NEEDED:
        return
    from aibridge.paths import conf_dir

    root, how = locate_project()
    if how == "AIBRIDGE_HOME":
        # Services point AIBRIDGE_HOME at a state directory and AIBRIDGE_CONF_DIR at conf/.
        if not conf_dir().is_dir():
            err_console.print(
                f"[yellow]aibridge:[/] no configuration: AIBRIDGE_HOME={root} has no conf/ and "
                "AIBRIDGE_CONF_DIR is not set; point AIBRIDGE_HOME at the cloned project, or "
                "AIBRIDGE_CONF_DIR at its conf/",
                soft_wrap=True,
            )
        return
    if how == "checkout" and root is not None:
        # Installed editable from a checkout and run elsewhere: use that checkout.
        os.environ["AIBRIDGE_HOME"] = str(root)
        err_console.print(
            f"[dim]aibridge: {Path.cwd()} is not an aibridge project; using {root} "
            "(set AIBRIDGE_HOME to choose another)[/]",
            soft_wrap=True,
        )
    elif how == "none":
        err_console.print(
            f"[yellow]aibridge:[/] {Path.cwd()} is not an aibridge project (no dvc.yaml and "
            "conf/ here or above): run it from the project directory, or set "
            "AIBRIDGE_HOME=/path/to/aibridge",
            soft_wrap=True,
        )


@app.command("version")
def version() -> None:
    """Print the aibridge version."""
    console.print(__version__)


@app.command("sample-data")
def sample_data(
    dest: Path = typer.Option(Path("data"), help="Directory to write EURUSD60.csv into."),
    force: bool = typer.Option(False, help="Overwrite an existing file."),
) -> None:
    """Write the bundled real EURUSD H1 sample (MT4 History Center format) into data/.

    The copy is byte-for-byte, so it matches the hash recorded in data.dvc (`make demo` and
    `aibridge quickstart` do this, then `dvc commit` and `dvc repro`).
    """
    target = dest / "EURUSD60.csv"
    if target.exists() and not force:
        console.print(f"{target} exists; keeping it (use --force to overwrite)")
        return
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample_data_path(), target)
    console.print(f"wrote {target} (5,000 EURUSD H1 candles, 2017-04 → 2018-02)")


@app.command("summary")
def summary(
    root: Path = typer.Option(
        None, help="Project root (default: AIBRIDGE_HOME, else the project you are in)."
    ),
) -> None:
    """Summarise the last pipeline run: data, metrics, MLflow run and registered version."""
    base = root or project_root()
    reports = base / "reports"

    def load(name: str) -> dict:
        path = reports / name
        return json.loads(path.read_text()) if path.is_file() else {}

    ingest, train, metrics, reg = (
        load("ingest.json"),
        load("train_metrics.json"),
        load("metrics.json"),
        load("registration.json"),
    )
    run = {}
    if (base / "artifacts" / "train_run.json").is_file():
        run = json.loads((base / "artifacts" / "train_run.json").read_text())
    if not reg:
        console.print("[red]no pipeline results yet[/]: run `dvc repro` (or `make demo`) first")
        raise typer.Exit(1)
    table = Table(title="aibridge pipeline", show_header=False)
    totals = ingest.get("totals", {})
    table.add_row(
        "candles",
        f"{totals.get('rows', '?')} from {totals.get('files', '?')} file(s), "
        f"{totals.get('issues', 0)} issue(s)",
    )
    table.add_row("MLflow run", f"{run.get('run_id', '?')} ({run.get('tracking_uri', '?')})")
    table.add_row("data hash", str(run.get("data_hash", "?")))
    val, test = train.get("validation", {}), metrics.get("test", {})
    table.add_row(
        "validation",
        f"log loss {val.get('log_loss', float('nan')):.4f}, "
        f"balanced acc {val.get('balanced_accuracy', float('nan')):.3f}",
    )
    table.add_row(
        "test",
        f"log loss {test.get('log_loss', float('nan')):.4f}, "
        f"acc {test.get('accuracy', float('nan')):.3f}, "
        f"balanced acc {test.get('balanced_accuracy', float('nan')):.3f}, "
        f"AUC {test.get('auc_macro', float('nan')):.3f}",
    )
    table.add_row(
        "registered",
        f"{reg['model_name']} v{reg['version']} (aliases: {', '.join(reg['aliases'])})",
    )
    console.print(table)


def _registry_context(model_name: str | None) -> tuple[str, str, Path]:
    """Model name, champion alias and promotions journal from the composed config."""
    from aibridge.config import compose_config, to_container
    from aibridge.tracking import configure_mlflow

    cfg = compose_config()
    configure_mlflow(to_container(cfg.tracking))
    name = model_name or str(cfg.registry.model_name)
    return name, str(cfg.registry.champion_alias), project_root() / "reports" / "promotions.jsonl"


@app.command("promote")
def promote(
    version: str = typer.Argument(..., help="Registered version to make champion."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why (recorded in the registry)."),
    model_name: str = typer.Option(None, "--model-name", help="Default: registry.model_name."),
) -> None:
    """Point the champion alias at VERSION by hand; the reason is recorded."""
    from mlflow.exceptions import MlflowException

    from aibridge.promotion import promote as promote_version

    name, alias, journal = _registry_context(model_name)
    try:
        move = promote_version(name, version, reason, alias, journal)
    except (ValueError, MlflowException) as exc:
        console.print(f"[red]promote failed:[/] {getattr(exc, 'message', exc)}")
        raise typer.Exit(1) from None
    console.print(f"{name}: {alias} v{move.from_version} → v{move.to_version} ({reason})")


@app.command("rollback")
def rollback(
    reason: str = typer.Option(..., "--reason", "-r", help="Why (recorded in the registry)."),
    to: str = typer.Option(None, "--to", help="Version to restore (default: the previous one)."),
    model_name: str = typer.Option(None, "--model-name", help="Default: registry.model_name."),
) -> None:
    """Put the champion alias back on the version it replaced (or on --to)."""
    from mlflow.exceptions import MlflowException

    from aibridge.promotion import rollback as rollback_version

    name, alias, journal = _registry_context(model_name)
    try:
        move = rollback_version(name, reason, alias, to, journal)
    except (ValueError, MlflowException) as exc:
        console.print(f"[red]rollback failed:[/] {getattr(exc, 'message', exc)}")
        raise typer.Exit(1) from None
    console.print(f"{name}: {alias} v{move.from_version} → v{move.to_version} ({reason})")


@app.command("demo-serve")
def demo_serve(
    model: str = typer.Option("models:/aibridge-EURUSD-H1@champion", help="Registered model URI."),
    bars: int = typer.Option(300, help="Sample bars the EA emulator replays."),
    trading: bool = typer.Option(
        True,
        "--trading/--no-trading",
        help="Part 2: also train (in a temp dir) and serve a model on a synthetic series with "
        "a planted edge, so BUY/SELL with SL/TP, risk vetoes and trade events appear.",
    ),
    trading_bars: int = typer.Option(800, help="Part 2: bars of the synthetic series replayed."),
) -> None:
    """The end of `make demo`: a real server driven by the EA emulator, in two parts.

    Part 1 serves the registered model (the challenger, said so, when the gate promoted none)
    over the bundled sample, where it has no edge: HOLD. Part 2 trains a model on a synthetic
    series with a planted edge in a temp dir (its own MLflow store), serves it and trades it:
    BUY/SELL with SL/TP, risk vetoes, trade events, journaled in journal/demo-trading.sqlite.
    """
    from aibridge.demo import run_demo

    root = project_root()
    raise typer.Exit(run_demo(model, bars, root, trading=trading, trading_bars=trading_bars))


@app.command("ea-replay")
def ea_replay(
    csv_path: Path = typer.Option(None, "--csv", help="MT4 CSV to replay (default: the sample)."),
    endpoint: str = typer.Option("tcp://127.0.0.1:5555", help="Signal server endpoint."),
    out: Path = typer.Option(Path("reports/ea_replay"), help="Output directory."),
    instrument: str = typer.Option(
        None, help="conf/instrument symbol or a YAML path (default: the CSV's symbol)."
    ),
    inputs: list[str] = typer.Option(
        None, "--input", "-i", help="EA input override NAME=VALUE (repeatable)."
    ),
    trade: bool = typer.Option(
        True, "--trade/--dry-run", help="Send orders (InpDryRun=false) or only log decisions."
    ),
    start_bar: int = typer.Option(0, help="First bar (index in the CSV)."),
    stop_bar: int = typer.Option(None, help="Last bar (default: the end)."),
    equity: float = typer.Option(10_000.0, help="Initial balance (account currency)."),
    broker_utc_offset: int = typer.Option(0, help="Broker clock minus UTC, seconds."),
    connect_timeout_ms: int = typer.Option(3000, help="Wait this long for the server check."),
) -> None:
    """Run the MQL4 EA itself over an MT4 CSV against a running signal server.

    The EA is compiled with g++ against the MT4 stand-in and fed the CSV bar by bar; writes
    trades.csv, the EA's journal, summary.json and the EA's log into --out."""
    from aibridge.ingest.naming import parse_symbol_timeframe
    from aibridge.instruments import load_instrument
    from aibridge.mt4.build import BuildError
    from aibridge.mt4.replay import ReplayError, check_server, run_replay

    csv = csv_path or sample_data_path()
    if not csv.is_file():
        console.print(f"[red]ea-replay:[/] candle file {csv} not found")
        raise typer.Exit(1)
    parsed = parse_symbol_timeframe(csv)
    symbol = (parsed[0] if parsed else None) or "EURUSD"
    try:
        ref = instrument or symbol
        spec = ref if ref.endswith((".yaml", ".yml")) else load_instrument(ref)
    except FileNotFoundError as exc:
        console.print(f"[red]ea-replay:[/] {exc}")
        raise typer.Exit(1) from None
    overrides: dict[str, object] = {"InpDryRun": not trade}
    for item in inputs or []:
        name, sep, value = item.partition("=")
        if not sep:
            console.print(f"[red]ea-replay:[/] --input {item!r}: expected NAME=VALUE")
            raise typer.Exit(1)
        overrides[name.strip()] = value
    why = check_server(endpoint, symbol, parsed[1] if parsed else "H1", connect_timeout_ms)
    if why:
        console.print(f"[red]ea-replay:[/] {why}")
        raise typer.Exit(1)
    out.mkdir(parents=True, exist_ok=True)
    try:
        res = run_replay(
            csv,
            endpoint,
            out / "terminal",
            inputs=overrides,
            instrument=spec,
            initial_equity=equity,
            broker_utc_offset_s=broker_utc_offset,
            start_bar=start_bar,
            stop_bar=stop_bar,
        )
    except (BuildError, ReplayError) as exc:
        console.print(f"[red]ea-replay:[/] {str(exc).strip()}")
        raise typer.Exit(1) from None
    shutil.copyfile(res.out_dir / "trades.csv", out / "trades.csv")
    shutil.copyfile(res.out_dir / "summary.json", out / "summary.json")
    shutil.copyfile(res.log_path, out / "ea.log")
    if res.journal_path is not None:
        shutil.copyfile(res.journal_path, out / res.journal_path.name)
    s = res.summary
    console.print(
        f"ea-replay: bars {s['first_bar']}-{s['last_bar']}, {len(res.trades)} trade(s), "
        f"balance {s['balance']:.2f}, OnInit {s['init_result']}, "
        f"{s['counts'].get('order_send_calls', 0)} OrderSend call(s), "
        f"{res.seconds:.1f} s → {out}"
    )
    if s.get("fatal"):
        console.print(f"[red]ea-replay:[/] the EA stopped: {s['fatal']}")
        raise typer.Exit(1)


# --------------------------------------------------------------------------- params

params_app = typer.Typer(
    help="params.yaml overrides left by `dvc exp run -S` (conf/ is ignored for those keys).",
    no_args_is_help=True,
)
app.add_typer(params_app, name="params")


def _describe_overrides(overrides: dict) -> list[str]:
    return [
        f"{key} = {value!r}"
        + (" (not in conf/)" if conf_value is None else f" (conf/ says {conf_value!r})")
        for key, (value, conf_value) in sorted(overrides.items())
    ]


@params_app.command("show")
def params_show() -> None:
    """List the values in params.yaml that differ from what conf/ composes to."""
    from aibridge.params_sync import current_overrides

    overrides = current_overrides(project_root())
    if not overrides:
        console.print("params.yaml has no overrides: it is what conf/ composes to")
        return
    console.print(f"{len(overrides)} override(s) in params.yaml, kept over conf/ by `dvc repro`:")
    for line in _describe_overrides(overrides):
        console.print(f"  {line}", soft_wrap=True)
    console.print("drop them with `aibridge params reset`")


@params_app.command("reset")
def params_reset() -> None:
    """Drop every override in params.yaml (`dvc exp run -S`, hand edits): conf/ rules again."""
    from aibridge.params_sync import reset_params

    root = project_root()
    dropped = reset_params(root)
    if not dropped:
        console.print("params.yaml had no overrides; it is what conf/ composes to")
        return
    console.print(f"dropped {len(dropped)} override(s) from {root / 'params.yaml'}:")
    for line in _describe_overrides(dropped):
        console.print(f"  {line}", soft_wrap=True)
    console.print("params.yaml is now conf/ as composed; the next `dvc repro` trains on it")


# --------------------------------------------------------------------------- quickstart


def _step(n: int, total: int, what: str) -> None:
    console.print(f"[bold]==> [{n}/{total}] {what}[/]")


def _run_tool(args: list[str], root: Path, env: dict[str, str]) -> None:
    started = time.monotonic()
    code = subprocess.call(args, cwd=root, env=env)
    if code != 0:
        console.print(
            f"[red]quickstart:[/] `{' '.join(args[2:] if args[1] == '-m' else args)}` "
            f"failed with exit code {code}"
        )
        raise typer.Exit(code)
    console.print(f"[dim]({time.monotonic() - started:.0f} s)[/]")


@app.command("quickstart")
def quickstart(
    serve: bool = typer.Option(
        True,
        "--serve/--no-serve",
        help="End with demo-serve (servers driven by the EA emulator, ~1 min).",
    ),
    bars: int = typer.Option(300, help="Sample bars the EA emulator replays."),
    trading: bool = typer.Option(
        True,
        "--trading/--no-trading",
        help="demo-serve's part 2: a planted-edge model that trades (see demo-serve --help).",
    ),
) -> None:
    """What `make demo` does, without make or bash (Windows).

    Sample data, dvc commit, dvc repro, summary, demo-serve (both parts). From the project:
    `.venv\\Scripts\\aibridge quickstart`."""
    root = project_root()
    if not is_project(root):
        console.print(
            f"[red]quickstart:[/] {root} is not an aibridge project; run it from the cloned "
            "directory or set AIBRIDGE_HOME"
        )
        raise typer.Exit(2)
    # dvc.yaml's stages run `python pipelines/...`: put this venv's python first on PATH, here
    # and (the .pth hook) for later `.venv/bin/dvc repro` / `.venv\\Scripts\\dvc repro` too.
    from aibridge.paths import install_venv_path_hook

    install_venv_path_hook()
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    dvc = [sys.executable, "-m", "dvc"]
    total = 4 if serve else 3
    _step(1, total, "data: the bundled EURUSD H1 sample")
    data_dir = root / "data"
    if any(data_dir.glob("*.csv")):
        console.print(f"{data_dir} already holds CSV exports; using them")
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample_data_path(), data_dir / "EURUSD60.csv")
        console.print(f"wrote {data_dir / 'EURUSD60.csv'}")
        _run_tool([*dvc, "commit", "-q", "-f", "data.dvc"], root, env)
    _step(2, total, "dvc repro: ingest, features, labels, train, evaluate, backtest, register")
    _run_tool([*dvc, "repro"], root, env)
    _step(3, total, "summary")
    summary(root)
    if serve:
        _step(4, total, "demo-serve: the signal server on the champion, driven by the EA emulator")
        from aibridge.demo import run_demo

        uri = "models:/aibridge-EURUSD-H1@champion"
        raise typer.Exit(run_demo(uri, bars, root, trading=trading))


register_server_commands(app)
register_loop_commands(app)  # retrain, reconcile, shadow-report
app.command("doctor")(doctor)
app.command("sweep")(sweep)


def main() -> None:
    """Entry point: every aibridge error ends in one line on stderr and exit 1."""
    from aibridge.errors import AibridgeError, print_error

    try:
        app()
    except AibridgeError as exc:
        print_error(exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
