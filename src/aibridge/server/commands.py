"""CLI commands for the signal server: ``serve``, ``ea-sim``, ``journal …``, ``keys …``.

Wire into the main app with :func:`register` (or register the objects one by one). User
errors print one red line and exit non-zero; they never show a traceback.
"""

from __future__ import annotations

import csv
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
out = Console()

journal_app = typer.Typer(help="Query the server's SQLite journal.", no_args_is_help=True)
keys_app = typer.Typer(help="CurveZMQ keys for an encrypted server.", no_args_is_help=True)


def _fail(message: str | BaseException, code: int = 1) -> typer.Exit:
    """Print one red line (the same printer as ``run_stage``'s) and return the Exit to raise."""
    from aibridge.errors import AibridgeError, print_error

    print_error(
        message if isinstance(message, BaseException) else AibridgeError(message), None, console
    )
    return typer.Exit(code)


# --------------------------------------------------------------------------- serve


def serve(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model URI (repeatable), e.g. models:/aibridge-EURUSD-H1@champion "
            "(default: conf/serve models).",
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Bind address (default: conf/serve host, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="ZeroMQ TCP port (default: conf/serve port, 5555).")
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking/registry URI (default: MLFLOW_TRACKING_URI, else "
            "conf/tracking, else ./mlflow.db)."
        ),
    ] = None,
    poll_interval: Annotated[
        float | None,
        typer.Option(
            help="Seconds between registry checks for alias moves; 0 = off (default: 30)."
        ),
    ] = None,
    journal: Annotated[
        Path | None, typer.Option(help="SQLite journal (default: journal/aibridge.sqlite).")
    ] = None,
    log_path: Annotated[
        Path | None,
        typer.Option(help="JSON log file, rotated (default: logs/aibridge-serve.jsonl)."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Prometheus /metrics, /healthz and /status port; 0 = random (default: 9108)."
        ),
    ] = None,
    no_metrics: Annotated[
        bool, typer.Option("--no-metrics", help="Do not start the metrics HTTP server.")
    ] = False,
    curve_secret_key: Annotated[
        Path | None, typer.Option(help="server.key_secret to enable CurveZMQ.")
    ] = None,
    model_cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where downloaded model versions are kept (default: artifacts/serve-models)."
        ),
    ] = None,
    max_message_bytes: Annotated[
        int | None,
        typer.Option(help="Largest request answered normally, bytes (default: 1048576)."),
    ] = None,
    clock_mismatch: Annotated[
        str | None,
        typer.Option(
            help="EA broker clock differs from the model's: warn (log + metric) or refuse "
            "(predict answers clock_mismatch). Default from conf/serve: warn."
        ),
    ] = None,
    runtime: Annotated[
        str | None,
        typer.Option(
            help="lean: no MLflow/pandas/sklearn on the request path (default); full: the "
            "MLflow-loaded bundle. Same decisions."
        ),
    ] = None,
    shadow: Annotated[
        str | None,
        typer.Option(
            help="Registry alias of a shadow challenger (e.g. challenger): it decides on every "
            "live predict off the hot path, journaled only (table shadow)."
        ),
    ] = None,
) -> None:
    """Serve registered model versions to MT4 EAs over ZeroMQ until SIGINT/SIGTERM."""
    from aibridge.errors import AibridgeError
    from aibridge.server.run import run_server

    overrides: dict[str, Any] = {
        "models": model or None,
        "host": host,
        "port": port,
        "tracking_uri": tracking_uri,
        "poll_interval_s": poll_interval,
        "journal_path": journal,
        "log_path": log_path,
        "metrics_port": metrics_port,
        "curve_secret_key": curve_secret_key,
        "max_message_bytes": max_message_bytes,
        "model_cache_dir": model_cache_dir,
        "clock_mismatch": clock_mismatch,
        "runtime": runtime,
        "shadow": {"alias": shadow} if shadow else None,
    }
    try:
        run_server(overrides, no_metrics=no_metrics)
    except AibridgeError as exc:
        raise _fail(exc) from None


# --------------------------------------------------------------------------- ea-sim


def ea_sim(
    endpoint: Annotated[str, typer.Option(help="Server endpoint.")] = "tcp://127.0.0.1:5555",
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="MT4 CSV to replay (default: sample).")
    ] = None,
    symbol: Annotated[
        str | None, typer.Option(help="Symbol (default: from the file name).")
    ] = None,
    timeframe: Annotated[
        str | None, typer.Option(help="Timeframe, e.g. H1 (default: from the file name).")
    ] = None,
    bars: Annotated[int, typer.Option(help="Bars to replay (0 = all).")] = 300,
    start: Annotated[
        int | None, typer.Option(help="Index of the first bar to decide (default min_bars-1).")
    ] = None,
    timeout_ms: Annotated[
        int | None,
        typer.Option(help="Reply timeout per attempt, ms (default: conf/serve client, 1500)."),
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option(
            help="Resends after a timeout before skipping the bar (default: conf/serve, 2)."
        ),
    ] = None,
    heartbeat_s: Annotated[
        float | None, typer.Option(help="Heartbeat timer, seconds (default: conf/serve client, 5).")
    ] = None,
    server_key: Annotated[
        Path | None, typer.Option(help="Server public key (server.key) for CurveZMQ.")
    ] = None,
    pace: Annotated[float, typer.Option(help="Seconds to wait between bars.")] = 0.0,
    no_trade: Annotated[
        bool, typer.Option("--no-trade", help="Do not simulate orders/trade events.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="No line per bar, only the summary.")
    ] = False,
    spawn_server: Annotated[
        bool,
        typer.Option(
            "--spawn-server",
            help="Start `aibridge serve` (conf/serve's models) on a free port for this run, "
            "then stop it with SIGTERM; --endpoint is ignored.",
        ),
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option(help="Also write the summary as JSON here.")
    ] = None,
) -> None:
    """Replay candles against a running server exactly as the MT4 EA would.

    Heartbeat, then one predict per bar with the EA's text, simulated orders under the served
    risk rules, reported as trade events; a summary at the end (--json-out to keep it)."""
    import signal

    from aibridge.ea_sim import EaEmulator, SimConfig, render_summary
    from aibridge.server.keys import CurveKeyError, load_public_key
    from aibridge.server.settings import load_serve_settings

    client = load_serve_settings().client
    try:
        key = load_public_key(server_key) if server_key else None
    except CurveKeyError as exc:
        raise _fail(str(exc)) from None
    if csv_path is not None and not csv_path.is_file():
        raise _fail(f"no such CSV: {csv_path}")
    cfg = SimConfig(
        endpoint=endpoint,
        csv=csv_path,
        symbol=symbol,
        timeframe=timeframe,
        bars=bars or None,
        start=start,
        timeout_ms=timeout_ms or client.timeout_ms,
        retries=client.retries if retries is None else retries,
        heartbeat_s=heartbeat_s or client.heartbeat_s,
        server_key=key,
        pace_s=pace,
        trade=not no_trade,
        quiet=quiet,
    )
    proc = None
    if spawn_server:
        proc, endpoint = _spawn_server()
        cfg.endpoint = endpoint
    try:
        try:
            sim = EaEmulator(cfg, console=out)
        except Exception as exc:  # bad CSV and the like: one line, no traceback
            raise _fail(f"{type(exc).__name__}: {exc}") from None
        signal.signal(signal.SIGINT, lambda *_: sim.stop())
        console.print(
            f"ea-sim → {cfg.endpoint}: {sim.symbol} {sim.timeframe}, timeout {cfg.timeout_ms} ms"
            f" × {cfg.retries + 1} attempts, heartbeat every {cfg.heartbeat_s:g} s"
        )
        summary = sim.run()
    finally:
        if proc is not None:
            _stop_server(proc)
    render_summary(summary, out)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_bytes(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2))
    if summary.heartbeats_ok == 0:
        raise _fail(_no_heartbeat_message(sim, cfg))


def _no_heartbeat_message(sim: Any, cfg: Any) -> str:
    """Why no heartbeat succeeded: no reply at all, or what the server answered instead."""
    asked = f"{sim.symbol} {sim.timeframe}"
    err = sim.last_heartbeat_error
    if err is None:
        return (
            f"no heartbeat ever succeeded: no reply from {cfg.endpoint} within "
            f"{cfg.timeout_ms} ms × {cfg.retries + 1} attempts (is `aibridge serve` running "
            "there? or pass --spawn-server)"
        )
    if err.get("code") == "unknown_model":
        served = (err.get("details") or {}).get("served") or []
        return (
            f"the server at {cfg.endpoint} answers but does not serve {asked}; it serves "
            f"{', '.join(served) or 'no model'}. Replay a CSV of a served pair (named like "
            "EURUSD60.csv) or pass --symbol/--timeframe, or start the server with a model for "
            f"{asked}"
        )
    return (
        f"the server at {cfg.endpoint} answered every heartbeat for {asked} with "
        f"{err.get('code')}: {err.get('message')}"
    )


def _spawn_server() -> tuple[Any, str]:
    """Run ``python -m aibridge.server serve`` on free ports; wait until it answers."""
    import socket
    import subprocess

    import zmq

    def free() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    port = free()
    endpoint = f"tcp://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "aibridge.server", "serve", "--port", str(port)]
    cmd += ["--metrics-port", str(free())]
    console.print(f"starting: {' '.join(cmd[1:])}")
    proc = subprocess.Popen(cmd)
    sock: Any = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise _fail(f"the server exited with code {proc.returncode} during startup")
            sock = zmq.Context.instance().socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            sock.send(b'{"type":"heartbeat"}')
            if sock.poll(500):
                sock.recv()
                return proc, endpoint
            sock.close()
            sock = None
        _stop_server(proc)
        raise _fail("the spawned server did not answer within 120 s")
    finally:
        if sock is not None:
            sock.close()


def _stop_server(proc: Any) -> None:
    import signal
    import subprocess

    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    console.print(f"server stopped (exit code {code})")


# --------------------------------------------------------------------------- journal


def _journal_path(path: Path | None) -> Path:
    from aibridge.paths import project_root
    from aibridge.server.settings import load_serve_settings

    if path is not None:
        return path
    return load_serve_settings().resolve_paths(project_root()).journal_path


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: float | None = None) -> float:
    """``2026-11-25``, ``2026-11-25T10:00``, ``1h``, ``30m``, ``2d`` → unix seconds (UTC)."""
    m = _DURATION.match(text.strip())
    if m:
        return (now or time.time()) - float(m[1]) * _UNIT[m[2]]
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: use an ISO date/time (2026-11-25T10:00) or a duration (1h, 30m)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _fmt_ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


_TAIL_COLUMNS = {
    "requests": ["id", "ts", "type", "request_id", "status", "code", "action",
                 "model_version", "latency_us"],
    "trade_events": ["id", "ts", "event", "symbol", "account", "ticket", "side", "price",
                     "lots", "profit", "reason", "error_code", "model_version"],
    "model_events": ["id", "ts", "symbol", "timeframe", "event", "from_version",
                     "to_version", "detail"],
    "reconcile": ["id", "ts", "account", "magic", "symbol", "positions", "ledger_open",
                  "orphans", "unprotected", "missing_closes", "detail"],
    "shadow": ["id", "ts", "symbol", "timeframe", "bar_time", "champion_version",
               "champion_action", "challenger_version", "challenger_action",
               "challenger_reason", "latency_us"],
}  # fmt: skip


def _cell(row: dict[str, Any], col: str, empty: str = "") -> str:
    value = row.get(col)
    if col == "ts" and value is not None:
        return _fmt_ts(value)
    return empty if value is None else str(value)


def _line(row: dict[str, Any], cols: list[str]) -> str:
    """A row as one line, empty cells as ``-`` so the columns stay countable."""
    return "  ".join(_cell(row, c, "-") for c in cols)


def _json_line(row: dict[str, Any]) -> None:
    """One row as one line of JSON (``jq -c`` style), flushed: a pipe sees it at once."""
    sys.stdout.write(orjson.dumps(row).decode() + "\n")
    sys.stdout.flush()


@journal_app.command("tail")
def journal_tail(
    n: Annotated[int, typer.Option("-n", help="How many of the newest rows to show first.")] = 20,
    table: Annotated[
        str, typer.Option(help="requests | trade_events | model_events | reconcile | shadow")
    ] = "requests",
    path: Annotated[
        Path | None, typer.Option(help="Journal file (default: conf/serve's journal_path).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON lines (one object per line) instead of a table.")
    ] = False,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Keep printing new rows as the server writes them (Ctrl-C)."
        ),
    ] = False,
    for_seconds: Annotated[
        float | None,
        typer.Option(help="With --follow: stop after this many seconds (scripts, tests)."),
    ] = None,
    interval: Annotated[
        float, typer.Option(help="With --follow: seconds between polls of the journal.")
    ] = 0.5,
) -> None:
    """Show the newest journal rows; --follow keeps printing new ones until Ctrl-C.

    A table on a terminal; one line per row when following or piped; --json for scripts."""
    from aibridge.server import journal as j

    file = _journal_path(path)
    cols = _TAIL_COLUMNS.get(table)
    if cols is None:
        raise _fail(f"unknown journal table {table!r}; choose from {', '.join(_TAIL_COLUMNS)}")
    if for_seconds is not None and not follow:
        raise _fail("--for-seconds goes with --follow")
    deadline = None if for_seconds is None else time.monotonic() + for_seconds
    try:
        if follow and not _wait_for_file(file, deadline, interval):
            return
        try:
            rows = j.tail(file, table, n)
        except FileNotFoundError as exc:
            raise _fail(f"{exc}{_other_journals(file)}") from None
        except ValueError as exc:
            raise _fail(str(exc)) from None
        mode = "json" if as_json else "lines" if follow or not out.is_terminal else "table"
        _print_rows(rows, table, cols, mode)
        if follow:
            last_id = rows[-1]["id"] if rows else _max_id(j, file, table)
            _follow(file, table, cols, mode, last_id, deadline, interval)
    except KeyboardInterrupt:
        return


def _wait_for_file(file: Path, deadline: float | None, interval: float) -> bool:
    """--follow on a journal the server has not created yet: wait (False at the deadline)."""
    if file.is_file():
        return True
    console.print(f"no journal at {file} yet; waiting for the server to create it")
    while not file.is_file():
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def _print_rows(rows: list[dict[str, Any]], table: str, cols: list[str], mode: str) -> None:
    """``json``: JSON lines; ``lines``: a header, then one line per row (appendable, grep-able
    in a pipe); ``table``: a rich table for a terminal."""
    if mode == "json":
        for r in rows:
            _json_line(r)
    elif mode == "lines":
        out.print("  ".join(cols), highlight=False, soft_wrap=True)
        for r in rows:
            out.print(_line(r, cols), highlight=False, soft_wrap=True)
    else:
        t = Table(title=f"{table} (last {len(rows)})")
        for c in cols:
            t.add_column(c)
        for r in rows:
            t.add_row(*[_cell(r, c) for c in cols])
        out.print(t)


def _follow(
    file: Path,
    table: str,
    cols: list[str],
    mode: str,
    last_id: int,
    deadline: float | None,
    interval: float,
) -> None:
    """Poll for rows after ``last_id`` and print them as they come, until the deadline."""
    from aibridge.server import journal as j

    while deadline is None or time.monotonic() < deadline:
        wait = interval if deadline is None else min(interval, deadline - time.monotonic())
        time.sleep(max(0.0, wait))
        for r in j.rows_after(file, table, last_id):
            last_id = r["id"]
            if mode == "json":
                _json_line(r)
            else:
                out.print(_line(r, cols), highlight=False, soft_wrap=True)


def _other_journals(missing: Path) -> str:
    """A missing journal: name the ones next to it (``make demo`` writes demo*.sqlite), or
    say who creates it."""
    others = (
        sorted(p.name for p in missing.parent.glob("*.sqlite")) if missing.parent.is_dir() else []
    )
    if others:
        where = missing.parent
        return f" (in {where}: {', '.join(others)}; pick one with --path {where / others[0]})"
    return " (`aibridge serve` creates it; --path names another journal)"


def _max_id(j: Any, file: Path, table: str) -> int:
    """The newest row id (0 for an empty table): --follow -n 0 starts after it."""
    rows = j.tail(file, table, 1)
    return int(rows[-1]["id"]) if rows else 0


@journal_app.command("export")
def journal_export(
    since: Annotated[str, typer.Option(help="ISO date/time (UTC) or a duration like 1h, 2d.")],
    table: Annotated[
        str, typer.Option(help="requests | trade_events | model_events | reconcile | shadow")
    ] = "requests",
    fmt: Annotated[str, typer.Option("--format", help="jsonl | csv")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write (default stdout).")
    ] = None,
    path: Annotated[
        Path | None, typer.Option(help="Journal file (default: conf/serve's journal_path).")
    ] = None,
) -> None:
    """Export journal rows since a time, as JSON lines or CSV."""
    from aibridge.server import journal as j

    if fmt not in ("jsonl", "csv"):
        raise _fail("--format must be jsonl or csv")
    try:
        since_ts = parse_since(since)
        rows = j.iter_since(_journal_path(path), since_ts, table)
        fh = output.open("w", newline="", encoding="utf-8") if output else sys.stdout
        n = 0
        try:
            writer: Any = None
            for r in rows:
                if fmt == "jsonl":
                    fh.write(orjson.dumps(r).decode() + "\n")
                else:
                    if writer is None:
                        writer = csv.DictWriter(fh, fieldnames=list(r))
                        writer.writeheader()
                    writer.writerow(r)
                n += 1
        finally:
            if output:
                fh.close()
    except FileNotFoundError as exc:
        raise _fail(f"{exc}{_other_journals(_journal_path(path))}") from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    console.print(f"exported {n} {table} rows since {_fmt_ts(since_ts)} UTC")


# --------------------------------------------------------------------------- keys


@keys_app.command("generate")
def keys_generate(
    directory: Annotated[Path, typer.Option("--dir", help="Where to write the key files.")] = Path(
        "keys"
    ),
    name: Annotated[str, typer.Option(help="File name stem.")] = "server",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing keys.")] = False,
) -> None:
    """Create a CurveZMQ key pair: <name>.key (public, for the EA) and <name>.key_secret."""
    from aibridge.server.keys import CurveKeyError, generate_keys, load_public_key

    try:
        public, secret = generate_keys(directory, name, overwrite=force)
    except CurveKeyError as exc:
        raise _fail(str(exc)) from None
    out.print(f"public key  {public}  ({load_public_key(public).decode()})")
    out.print(f"secret key  {secret}  (mode 0600; keep it on the server)")
    out.print(f"serve with: aibridge serve --curve-secret-key {secret}")


def register(app: typer.Typer) -> None:
    """Add every server command to the main ``aibridge`` app."""
    app.command("serve")(serve)
    app.command("ea-sim")(ea_sim)
    app.add_typer(journal_app, name="journal")
    app.add_typer(keys_app, name="keys")


serve_app = typer.Typer(
    help="aibridge signal server commands", no_args_is_help=True, pretty_exceptions_enable=False
)
register(serve_app)
