"""The ``aibridge`` command line (typer + rich)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from aibridge import __version__
from aibridge.paths import project_root, sample_data_path

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
