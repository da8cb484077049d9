"""CLI commands of the loop: ``retrain``, ``reconcile``, ``shadow-report``.

Register them on the main app with :func:`register` (``aibridge.cli``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True)
out = Console()


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def retrain(
    inbox: Annotated[
        Path, typer.Option(help="Directory the MT4 exports land in (e.g. the terminal's Files).")
    ],
    project: Annotated[
        Path | None, typer.Option(help="aibridge project (dvc.yaml, data/); default: this one.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be copied and run; change nothing.")
    ] = False,
    settle: Annotated[
        float, typer.Option(help="Ignore exports modified less than this many seconds ago.")
    ] = 60.0,
    force: Annotated[
        bool, typer.Option("--force", help="Run dvc repro even without a new export.")
    ] = False,
    git_commit: Annotated[
        bool,
        typer.Option(help="git commit data.dvc + dvc.lock after a successful run (git only)."),
    ] = True,
    textfile_dir: Annotated[
        Path | None,
        typer.Option(
            help="node_exporter textfile-collector directory for aibridge_retrain.prom "
            "(default: $AIBRIDGE_TEXTFILE_DIR; none: no metrics file)."
        ),
    ] = None,
) -> None:
    """Retrain on the newest MT4 export(s): copy into data/, dvc add, dvc repro, let the
    backtest gate decide. Exit 0 (promoted / champion kept / no new data), 1 failed,
    2 another run holds the lock."""
    import logging

    from aibridge.loop.retrain import RetrainError, RetrainLocked
    from aibridge.loop.retrain import retrain as run_retrain
    from aibridge.paths import project_root

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    env_dir = os.environ.get("AIBRIDGE_TEXTFILE_DIR")
    textfile = textfile_dir or (Path(env_dir) if env_dir else None)
    try:
        result = run_retrain(
            project or project_root(),
            inbox,
            dry_run=dry_run,
            settle_s=settle,
            force=force,
            git_commit=git_commit,
            textfile_dir=textfile,
        )
    except RetrainLocked as exc:
        raise _fail(str(exc), 2) from None
    except RetrainError as exc:
        raise _fail(str(exc)) from None
    if dry_run:
        for e in result.exports:
            verb = "would copy" if e.changed else "unchanged"
            typer.echo(f"{e.pair}: {verb} {e.source} -> {e.target}")
        if not result.exports:
            typer.echo(f"no settled CSV export in {inbox}")
        stages = ", ".join(result.stale_stages) or "none (nothing to do)"
        typer.echo(f"dvc repro would run: {stages}")
        if result.error:
            raise _fail(result.error)
        return
    typer.echo(result.line())  # one unwrapped line for the log
    if result.status == "failed":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the loop's commands to the ``aibridge`` app."""
    app.command("retrain")(retrain)
