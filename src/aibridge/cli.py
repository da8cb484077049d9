"""The ``aibridge`` command line (typer + rich)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from aibridge import __version__
from aibridge.doctor import doctor
from aibridge.loop.commands import register as register_loop_commands
from aibridge.paths import project_root, sample_data_path
from aibridge.server.commands import register as register_server_commands
from aibridge.sweep import sweep

app = typer.Typer(
    help="Train LightGBM decisions on MT4 candles and serve them to an MT4 Expert Advisor.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()


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

    The copy is byte-for-byte, so it matches the hash recorded in ``data.dvc``.
    """
    target = dest / "EURUSD60.csv"
    if target.exists() and not force:
        console.print(f"{target} exists; keeping it (use --force to overwrite)")
        return
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample_data_path(), target)
    console.print(f"wrote {target} (5,000 EURUSD H1 candles, 2017-04 → 2018-02)")


@app.command("summary")
def summary(root: Path = typer.Option(None, help="Project root (default: this checkout).")) -> None:
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
) -> None:
    """Start the server on a registered model, drive it with the EA emulator, stop it."""
    from aibridge.demo import run_demo

    raise typer.Exit(run_demo(model, bars, project_root()))


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
    """Run the MQL4 EA itself (compiled with g++ against the MT4 stand-in) over an MT4 CSV,
    bar by bar, against a running signal server; writes trades.csv, the EA's journal,
    summary.json and the EA's log."""
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


register_server_commands(app)
register_loop_commands(app)  # retrain, reconcile, shadow-report
app.command("doctor")(doctor)
app.command("sweep")(sweep)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
