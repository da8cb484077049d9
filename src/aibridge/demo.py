"""`aibridge demo-serve`: the end of `make demo`, in two parts.

1. **The sample, honestly.** Starts the real signal server on the freshly registered model,
   waits for it to answer a heartbeat, drives it with the EA emulator over the bundled sample
   for a few hundred bars, stops it with SIGTERM (it must exit 0), and prints what happened.
   The sample carries no edge, so this model says HOLD on (nearly) every bar. When the registry
   has no champion (the gate found no edge: the sample's model is registered as challenger
   only), the demo serves the challenger *explicitly* (``@challenger``) and says that it is not
   promoted and why, instead of serving nothing.
2. **The whole protocol, on a series that trades.** A model trained by the project's own
   pipeline (``dvc repro`` in a temp copy, :func:`aibridge.mt4.synthetic.register_synthetic_model`,
   what ``make ea-parity`` does) on a synthetic H1 series with a *planted* edge, served by a
   second real server on loopback, driven by the EA emulator over the series' last bars. The
   summary shows BUY/SELL replies with their SL/TP, the EA's risk vetoes (a broker-style spread
   widening at the 00:00 rollover trips the spread veto; a signal while a position is open
   trips the exposure limit), and the trade events the server journaled (opened, closed with
   the reason). Its training runs in the background while part 1 replays.

Nothing in the project is touched by part 2: its MLflow store, DVC cache and model cache live
in a temp directory that is removed at the end; only its journal
(``journal/demo-trading.sqlite``) and the summary (``logs/demo-trading.json``) stay, both
git-ignored. Nothing here talks to a broker. Not investment advice.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import zmq
from rich.console import Console

console = Console()

# Part 2's series and replay: the planted-edge defaults of aibridge.mt4.synthetic (the model
# `make ea-parity` trades), replayed over its last TRADING_BARS bars (the model's test period)
# with the spread of the 00:00 bar widened to ROLLOVER_SPREAD points (conf/risk's
# max_spread_points is 30) and DEFAULT_SPREAD elsewhere (the instrument's default, which the
# pipeline's backtest assumed).
TRADING_BARS = 800
# This interpreter's CLI (no `aibridge` executable lookup: `.exe` on Windows, PATH elsewhere)
AIBRIDGE = [sys.executable, "-m", "aibridge.cli"]
ROLLOVER_SPREAD = 40
DEFAULT_SPREAD = 5
TRADING_JOURNAL = Path("journal") / "demo-trading.sqlite"
TRADING_SUMMARY = Path("logs") / "demo-trading.json"
NO_EDGE_NOTE = (
    "The sample model has no edge: on the bundled EURUSD sample it answers HOLD. The second "
    "model trades a synthetic series with a planted edge, so you see the whole protocol; its "
    "profits say nothing about any market. Not investment advice; no broker was contacted."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def step(text: str) -> None:
    console.print(f"[bold]==> {text}[/]", highlight=False)


def wait_for_heartbeat(endpoint: str, timeout_s: float, server: subprocess.Popen) -> dict:
    """Poll with fresh REQ sockets (lazy pirate) until the server answers or dies."""
    ctx: zmq.Context[Any] = zmq.Context.instance()
    deadline = time.monotonic() + timeout_s
    request = json.dumps(
        {
            "protocol_version": 1,
            "type": "heartbeat",
            "request_id": "demo-hb",
            "symbol": "EURUSD",
            "timeframe": "H1",
            "client": "aibridge demo",
        }
    )
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with code {server.returncode} before answering")
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        try:
            sock.send_string(request)
            if sock.poll(1000, zmq.POLLIN):
                return json.loads(sock.recv())
        finally:
            sock.close()
    raise RuntimeError(f"no heartbeat from {endpoint} within {timeout_s:.0f} s")


def stop_server(server: subprocess.Popen) -> int:
    """SIGTERM, then SIGKILL after 15 s; the exit code."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return int(server.returncode)


def resolve_demo_model(model_uri: str, root: Path) -> tuple[str, str | None]:
    """``models:/NAME@champion`` when that alias exists; else the challenger with a note that
    it is not promoted (the gate's reason). Other URIs are served as given."""
    prefix, suffix = "models:/", "@champion"
    if not (model_uri.startswith(prefix) and model_uri.endswith(suffix)):
        return model_uri, None
    name = model_uri[len(prefix) : -len(suffix)]
    try:
        from mlflow import MlflowClient

        from aibridge.config import compose_config, to_container
        from aibridge.registry import alias_version
        from aibridge.tracking import configure_mlflow

        cfg = compose_config()
        configure_mlflow(to_container(cfg.tracking))
        client = MlflowClient()
        if alias_version(client, name, "champion") is not None:
            return model_uri, None
        challenger = alias_version(client, name, "challenger")
        if challenger is None:
            return model_uri, None
        reason = client.get_model_version(name, challenger).tags.get("gate.reason", "unknown")
    except Exception as exc:  # the server will say what is wrong with the URI
        return model_uri, f"could not read the registry ({exc}); serving {model_uri}"
    note = (
        f"{name} has no champion: the gate did not promote any version ({reason}). "
        f"The demo serves the challenger v{challenger} explicitly; it is NOT promoted and "
        "must not trade a real account."
    )
    return f"{prefix}{name}@challenger", note


# --------------------------------------------------------------------------- part 1


def sample_demo(model_uri: str, bars: int, root: Path, label: str) -> int:
    """Part 1: the project's model on the bundled sample (honest: no edge, HOLD)."""
    model_uri, note = resolve_demo_model(model_uri, root)
    if note:
        console.print(f"[yellow]{note}[/]")
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    server_log = (logs / "demo-serve.out").open("w")
    server = subprocess.Popen(
        [
            *AIBRIDGE,
            "serve",
            "--model",
            model_uri,
            "--port",
            str(port),
            "--metrics-port",
            "0",
            "--poll-interval",
            "0",
            "--journal",
            str(root / "journal" / "demo.sqlite"),
        ],
        cwd=root,
        stdout=server_log,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    try:
        step(f"{label} server on {endpoint} with {model_uri} …")
        hb = wait_for_heartbeat(endpoint, 90, server)
        model = hb.get("model") or {}
        console.print(
            f"[bold]server[/] serving {model.get('name')} v{model.get('version')} "
            f"(alias {model.get('alias')}, run {model.get('run_id')}), "
            f"min_bars {hb.get('min_bars')}"
        )
        step(f"{label} EA emulator over {bars} sample bars")
        summary_path = root / "reports" / "demo_ea_sim.json"
        sim = subprocess.run(
            [
                *AIBRIDGE,
                "ea-sim",
                "--endpoint",
                endpoint,
                "--bars",
                str(bars),
                "--quiet",
                "--json-out",
                str(summary_path),
            ],
            cwd=root,
        )
        if sim.returncode != 0:
            console.print(f"[red]EA emulator failed with code {sim.returncode}[/]")
            return sim.returncode
    except RuntimeError as exc:
        console.print(f"[red]demo failed:[/] {exc} (see {logs / 'demo-serve.out'})")
        return 1
    finally:
        stop_server(server)
        server_log.close()
    console.print(f"[bold]server[/] stopped on SIGTERM with exit code {server.returncode}")
    if note:
        console.print(f"[yellow]Served the challenger, not a champion:[/] {note}")
    return 0 if server.returncode == 0 else 1


# --------------------------------------------------------------------------- part 2


def train_planted_edge(work: Path) -> Any:
    """The planted-edge model, registered by ``dvc repro`` in ``work/project`` (~37 s of CPU,
    the same for 3,000 or 6,000 bars: the stages' start-up dominates)."""
    from aibridge.mt4 import synthetic

    return synthetic.register_synthetic_model(work / "project", synthetic.PlantedEdge())


def replay_csv(source: Path, dest: Path) -> tuple[Path, int]:
    """The series as a headed MT4 export with a spread column: ``DEFAULT_SPREAD`` points,
    ``ROLLOVER_SPREAD`` on the 00:00 bar (brokers widen spreads at the daily rollover)."""
    from aibridge.ingest.mt4_csv import read_mt4_csv

    candles = read_mt4_csv(source).candles
    spread = [ROLLOVER_SPREAD if t.hour == 0 else DEFAULT_SPREAD for t in candles["time"]]
    lines = ["datetime,open,high,low,close,volume,spread"]
    lines += [
        f"{t:%Y.%m.%d %H:%M},{o:.5f},{h:.5f},{lo:.5f},{c:.5f},{int(v)},{s}"
        for t, o, h, lo, c, v, s in zip(
            candles["time"], candles["open"], candles["high"], candles["low"],
            candles["close"], candles["volume"], spread, strict=True,
        )
    ]  # fmt: skip
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(lines) + "\n", encoding="ascii")
    return dest, len(candles)


def _clean_env() -> dict[str, str]:
    """No project pointers or MLflow URIs from the caller: the temp project is the project."""
    drop = ("AIBRIDGE_HOME", "AIBRIDGE_CONF_DIR", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    return {k: v for k, v in os.environ.items() if k not in drop}


def journal_report(journal: Path, since: float) -> dict[str, Any]:
    """What the server journaled since ``since``: replies by action, the first BUY and SELL
    reply (with SL/TP), trade events by kind, closes by reason, one closed trade per reason."""
    from aibridge.server.journal import iter_since

    actions: Counter[str] = Counter()
    examples: dict[str, dict[str, Any]] = {}
    for row in iter_since(journal, since, "requests"):
        if row["type"] != "predict" or row["status"] != "ok":
            continue
        actions[row["action"]] += 1
        if row["action"] in ("BUY", "SELL") and row["action"] not in examples and row["reply"]:
            r = json.loads(row["reply"])
            keys = ("action", "bar_time", "confidence", "sl", "tp", "sl_points", "tp_points")
            examples[row["action"]] = {k: r.get(k) for k in keys}
    events: Counter[str] = Counter()
    closed_by: Counter[str] = Counter()
    closed: dict[str, dict[str, Any]] = {}
    for row in iter_since(journal, since, "trade_events"):
        events[row["event"]] += 1
        if row["event"] == "closed":
            reason = str(row["reason"])
            closed_by[reason] += 1
            keys = ("ticket", "side", "lots", "price", "profit", "reason", "time")
            closed.setdefault(reason, {k: row[k] for k in keys})
    return {
        "replies": dict(actions),
        "reply_examples": examples,
        "trade_events": dict(events),
        "closed_by": dict(closed_by),
        "closed_examples": closed,
    }


def trading_demo(
    root: Path,
    work: Path,
    model: Any,
    bars: int = TRADING_BARS,
    label: str = "[2/2]",
) -> dict[str, Any]:
    """Part 2: serve ``model`` (a :class:`~aibridge.mt4.synthetic.RegisteredModel`) on
    loopback, drive it with the EA emulator over the series' last ``bars`` bars, and report
    from the emulator (vetoes) and the server's journal (replies, trade events). Raises
    ``RuntimeError`` when the server does not come up or does not stop cleanly."""
    from aibridge.ea_sim import EaEmulator, SimConfig

    journal = root / TRADING_JOURNAL
    journal.parent.mkdir(parents=True, exist_ok=True)
    csv, n = replay_csv(model.csv_path, work / "replay" / model.csv_path.name)
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    cmd = [
        *AIBRIDGE, "serve", "--model", model.model_uri, "--tracking-uri", model.tracking_uri,
        "--port", str(port), "--no-metrics", "--poll-interval", "0",
        "--journal", str(journal), "--model-cache-dir", str(work / "models"),
        "--log-path", str(work / "server.log"),
    ]  # fmt: skip
    started = time.time()
    out_path = work / "server.out"
    with out_path.open("w") as out:
        server = subprocess.Popen(
            cmd, cwd=model.root, stdout=out, stderr=subprocess.STDOUT, env=_clean_env()
        )
        try:
            step(f"{label} server on {endpoint} with {model.model_uri} (temp MLflow store)")
            hb = wait_for_heartbeat(endpoint, 90, server)
            m = hb.get("model") or {}
            console.print(
                f"[bold]server[/] serving {m.get('name')} v{m.get('version')} "
                f"(alias {m.get('alias')}), min_bars {hb.get('min_bars')}"
            )
            step(f"{label} EA emulator over the series' last {bars} bars (trading)")
            cfg = SimConfig(endpoint=endpoint, csv=csv, bars=bars, start=max(n - bars, 0))
            cfg.quiet = True
            summary = EaEmulator(cfg, console=console).run().to_dict()
        except RuntimeError as exc:
            stop_server(server)
            raise RuntimeError(f"{exc}; server output:\n{out_path.read_text()[-2000:]}") from None
        finally:  # whatever went wrong (Ctrl-C included), no server is left behind
            code = stop_server(server)
    if code != 0:
        raise RuntimeError(
            f"the trading demo's server exited with code {code}:\n{out_path.read_text()[-2000:]}"
        )
    report = journal_report(journal, started)
    return {
        "model_uri": model.model_uri,
        "series": "synthetic EURUSD H1 with a planted edge (aibridge.mt4.synthetic)",
        "bars": summary["bars"],
        "vetoes": summary["vetoes"],
        "pnl": summary["pnl"],
        "emulator": summary,
        "journal": str(journal),
        **report,
    }


def _cli(root: Path) -> str:
    """How the user runs the CLI from the project: the venv's, else whatever is on PATH."""
    for rel in (Path(".venv") / "bin" / "aibridge", Path(".venv") / "Scripts" / "aibridge.exe"):
        if (root / rel).exists():
            return str(rel).removesuffix(".exe")
    return "aibridge"


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def hints(root: Path, trading: bool = True) -> list[str]:
    """The commands the demo ends with (tests run each of them against the real CLI)."""
    cli, journal = _cli(root), _rel(root / TRADING_JOURNAL, root)
    sample = [f"{cli} journal tail --path {_rel(root / 'journal' / 'demo.sqlite', root)}"]
    if not trading:
        return sample
    return [
        f"{cli} journal tail --path {journal} --table trade_events",
        f"{cli} journal tail --path {journal} --json -n 5",
        *sample,
    ]


def _when(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(ts))) if ts is not None else "?"


def print_trading(report: dict[str, Any], root: Path) -> None:
    """The part-2 summary: replies, SL/TP, vetoes, trade events, the journal."""
    from rich.table import Table

    t = Table(title="planted-edge model, driven by the EA emulator", show_header=False)
    r = report["replies"]
    t.add_row("bars replayed", str(report["bars"]))
    t.add_row("replies", ", ".join(f"{a} {r.get(a, 0)}" for a in ("BUY", "SELL", "HOLD")))
    for action in ("BUY", "SELL"):
        ex = report["reply_examples"].get(action)
        if ex:
            t.add_row(
                f"first {action} reply",
                f"bar {_when(ex['bar_time'])}, confidence {ex['confidence']:.2f}, "
                f"SL {ex['sl']:.5f} TP {ex['tp']:.5f} "
                f"({ex['sl_points']:g} / {ex['tp_points']:g} points)",
            )
    vetoes = report["vetoes"]
    t.add_row(
        "risk vetoes (EA side)",
        ", ".join(f"{k} {v}" for k, v in vetoes.items()) or "none",
    )
    ev = report["trade_events"]
    t.add_row("trade events (journal)", ", ".join(f"{k} {v}" for k, v in ev.items()) or "none")
    t.add_row("closed by", ", ".join(f"{k} {v}" for k, v in report["closed_by"].items()) or "-")
    for reason, c in report["closed_examples"].items():
        t.add_row(
            f"  a close by {reason}",
            f"ticket {c['ticket']} {c['side']} {c['lots']:g} lots @ {c['price']:.5f} "
            f"on {_when(c['time'])}, profit {c['profit']:+.2f}",
        )
    t.add_row("simulated P&L", f"{report['pnl']:+.2f} (synthetic series)")
    t.add_row("journal", _rel(Path(report["journal"]), root))
    console.print(t)


def wait_for(pending: Future[Any], started: float, every_s: float = 15.0) -> Any:
    """The background training's result, with a progress line every ``every_s`` seconds."""
    while True:
        try:
            return pending.result(timeout=every_s)
        except TimeoutError:
            console.print(f"  still training ({time.monotonic() - started:.0f} s since the start)")


def run_demo(
    model_uri: str,
    bars: int,
    root: Path,
    *,
    trading: bool = True,
    trading_bars: int = TRADING_BARS,
) -> int:
    """Part 1 (the sample), then part 2 (the planted-edge model) unless ``trading`` is off;
    0 when both servers answered and stopped cleanly."""
    started = time.monotonic()
    total = 2 if trading else 1
    tmp: tempfile.TemporaryDirectory[str] | None = None
    pool: ThreadPoolExecutor | None = None
    pending: Future[Any] | None = None
    if trading:
        # ignore_cleanup_errors: Windows keeps a file the MLflow client opened until exit
        tmp = tempfile.TemporaryDirectory(prefix="aibridge-demo-", ignore_cleanup_errors=True)
        pool = ThreadPoolExecutor(max_workers=1)
        step(
            "[2/2] starts now, in the background: dvc repro of this project in a temp dir on "
            "a synthetic H1 series with a planted edge (its own MLflow store; 30-60 s)"
        )
        pending = pool.submit(train_planted_edge, Path(tmp.name))
    try:
        step(f"[1/{total}] the project's model on the bundled sample (no edge: expect HOLD)")
        code = sample_demo(model_uri, bars, root, f"[1/{total}]")
        if code != 0:
            return code
        if pending is not None and tmp is not None:
            step("[2/2] the planted-edge model (waiting for its training)")
            model = wait_for(pending, started)
            console.print(
                f"registered {model.model_uri} in {model.tracking_uri} ({model.seconds:.0f} s)"
            )
            report = trading_demo(root, Path(tmp.name), model, trading_bars)
            out = root / TRADING_SUMMARY
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2, default=str) + "\n")
            print_trading(report, root)
    except RuntimeError as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        return 1
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
        if tmp is not None:
            tmp.cleanup()
    if trading:
        console.print(f"[yellow]{NO_EDGE_NOTE}[/]")
    else:
        console.print(
            "[yellow]The sample model has no edge: it answers HOLD. Not investment advice.[/]"
        )
    console.print(f"demo done in {time.monotonic() - started:.0f} s. Journals:")
    for line in hints(root, trading):
        console.print(f"  `{line}`", highlight=False, soft_wrap=True)
    return 0
