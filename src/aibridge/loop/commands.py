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


def _registry_context(model_name: str | None) -> tuple[str, str, Path]:
    """Model name, champion alias and promotions journal from the composed config (MLflow
    pointed at the configured store), as ``aibridge promote`` uses them."""
    from aibridge.config import compose_config, to_container
    from aibridge.paths import project_root
    from aibridge.tracking import configure_mlflow

    cfg = compose_config()
    configure_mlflow(to_container(cfg.tracking))
    name = model_name or str(cfg.registry.model_name)
    return name, str(cfg.registry.champion_alias), project_root() / "reports" / "promotions.jsonl"


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
    backtest gate decide. Exit 0 (promoted / not promoted / no new data), 1 failed,
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


def reconcile(
    symbol: Annotated[str, typer.Option(help="Symbol, e.g. EURUSD.")],
    timeframe: Annotated[str, typer.Option(help="Timeframe, e.g. H1.")] = "H1",
    journal: Annotated[
        Path | None, typer.Option(help="Server journal (default from conf/serve).")
    ] = None,
    csv_path: Annotated[
        Path | None,
        typer.Option("--csv", help="MT4 export of the period (bars when the journal lacks them)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="ISO date/time (UTC) or a duration like 7d.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="ISO date/time (UTC).")] = None,
    account: Annotated[int | None, typer.Option(help="Only this account's trades.")] = None,
    equity: Annotated[float, typer.Option(help="Initial balance of the replay.")] = 10_000.0,
    markdown: Annotated[Path | None, typer.Option(help="Write the report as Markdown.")] = None,
    json_out: Annotated[Path | None, typer.Option(help="Write the report as JSON.")] = None,
    mlflow: Annotated[
        bool,
        typer.Option(
            "--mlflow", help="Attach the Markdown/JSON to the served version's MLflow run."
        ),
    ] = False,
) -> None:
    """Live vs backtest per trade: replay the journaled decisions on the bars the EA sent
    through the backtest engine with the served settings, and diff against the trade events
    (missed signals, risk vetoes, entry/exit slippage in points, exit reasons, unmatched)."""
    import json
    import tempfile

    from rich.table import Table

    from aibridge.backtest.settings import EngineSettings
    from aibridge.loop.reconcile import (
        ReconcileError,
        load_journal,
        log_to_mlflow,
        render_markdown,
    )
    from aibridge.loop.reconcile import reconcile as run_reconcile
    from aibridge.server.commands import parse_since
    from aibridge.server.settings import journal_path

    try:
        lo = parse_since(since) if since else None
        hi = parse_since(until) if until else None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        data = load_journal(
            journal_path(journal), symbol, timeframe, since=lo, until=hi, account=account
        )
        report = run_reconcile(data, csv=csv_path, settings=EngineSettings(initial_equity=equity))
    except (ReconcileError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    md = render_markdown(report)
    c, s = report.counts(), report.slippage()
    typer.echo(
        f"{report.symbol} {report.timeframe} {report.model}: {report.bars} bars, "
        f"{report.signals} signals; matched {c['matched']}, missed {c['missed']}, "
        f"unmatched live {c['unmatched_live']}; entry slippage mean {s['entry_mean_pts']} pts, "
        f"exit {s['exit_mean_pts']} pts; P&L backtest {report.backtest_pnl:.2f} "
        f"live {report.live_pnl:.2f}",
    )
    t = Table(title="trades (slippage in points, + = worse live)")
    cols = ["kind", "entry_time", "side", "ticket", "entry_slip_pts", "exit_slip_pts",
            "bt_exit_reason", "live_exit_reason", "note"]  # fmt: skip
    cols = [col for col in cols if col in report.trades.columns]
    for col in cols:
        t.add_column(col)
    for r in report.trades.to_dict("records"):
        t.add_row(*["" if r.get(col) is None else str(r.get(col)) for col in cols])
    out.print(t)
    written = []
    if markdown:
        markdown.write_text(md, encoding="utf-8")
        written.append(markdown)
    if json_out:
        json_out.write_text(json.dumps(report.as_json(), indent=2), encoding="utf-8")
        written.append(json_out)
    if mlflow:
        from aibridge.server.run import tracking_uri_for
        from aibridge.server.settings import load_serve_settings

        if not written:
            tmp = Path(tempfile.mkdtemp(prefix="aibridge-reconcile-")) / "reconcile.md"
            tmp.write_text(md, encoding="utf-8")
            written.append(tmp)
        try:
            run_id = log_to_mlflow(report, data, written, tracking_uri_for(load_serve_settings()))
        except ReconcileError as exc:
            raise _fail(str(exc)) from None
        out.print(f"logged to MLflow run {run_id} (artifacts reconcile/)")


def shadow_report(
    symbol: Annotated[str, typer.Option(help="Symbol, e.g. EURUSD.")],
    timeframe: Annotated[str, typer.Option(help="Timeframe, e.g. H1.")] = "H1",
    journal: Annotated[
        Path | None, typer.Option(help="Server journal (default from conf/serve).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="ISO date/time (UTC) or a duration like 7d.")
    ] = None,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="MT4 export (bars when the journal lacks them).")
    ] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write the report as Markdown.")] = None,
    json_out: Annotated[Path | None, typer.Option(help="Write the report as JSON.")] = None,
    promote: Annotated[
        bool,
        typer.Option(
            "--promote",
            help="Forward gate: move the champion alias to the challenger when it wins on the "
            "live bars (net profit, min trades, drawdown bound; the reason is recorded).",
        ),
    ] = False,
    require_backtest_gate: Annotated[
        bool,
        typer.Option(
            "--require-backtest-gate",
            help="Both gates: promote only if the challenger version's backtest gate tag "
            "(gate.decision) also says promote.",
        ),
    ] = False,
    min_decisions: Annotated[int, typer.Option(help="Live decisions the gate needs.")] = 500,
    min_trades: Annotated[int, typer.Option(help="Challenger trades the gate needs.")] = 10,
    max_drawdown_pct: Annotated[
        float, typer.Option(help="Challenger's drawdown bound on the live bars (%).")
    ] = 20.0,
    min_improvement: Annotated[
        float, typer.Option(help="Net profit the challenger must add (account currency).")
    ] = 0.0,
) -> None:
    """Forward test of the shadow challenger against the champion on the live bars:
    agreement, action confusion, signals, and each one's trades through the backtest engine.
    With --promote it is a second promotion rule (the forward gate)."""
    import json

    from aibridge.loop.reconcile import ReconcileError
    from aibridge.loop.shadow import forward_report, render_forward_markdown
    from aibridge.server.commands import parse_since
    from aibridge.server.settings import journal_path

    try:
        lo = parse_since(since) if since else None
        doc = forward_report(journal_path(journal), symbol, timeframe, since=lo, csv=csv_path)
    except (ReconcileError, FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    md = render_forward_markdown(doc)
    typer.echo(md)
    if markdown:
        markdown.write_text(md, encoding="utf-8")
    if json_out:
        json_out.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    if not promote:
        return
    from mlflow.exceptions import MlflowException

    from aibridge.backtest.settings import GateSettings
    from aibridge.loop.shadow import forward_gate

    rule = GateSettings(
        metric="net_profit",
        min_trades=min_trades,
        max_drawdown_pct=max_drawdown_pct,
        min_improvement=min_improvement,
    )
    decision = forward_gate(doc, rule, min_decisions)
    version = doc["challenger_versions"][-1]
    try:
        from aibridge.loop.shadow import apply_forward_gate

        name, alias, history = _registry_context(doc.get("model_name"))
        moved = apply_forward_gate(
            name, version, decision, alias, history, require_backtest_gate=require_backtest_gate
        )
    except (ValueError, MlflowException) as exc:
        raise _fail(f"promotion failed: {getattr(exc, 'message', exc)}") from None
    typer.echo(moved)


def register(app: typer.Typer) -> None:
    """Add the loop's commands to the ``aibridge`` app."""
    app.command("retrain")(retrain)
    app.command("reconcile")(reconcile)
    app.command("shadow-report")(shadow_report)
