"""`aibridge demo-serve`: the end of `make demo`.

Starts the real signal server on the freshly registered champion, waits for it to answer a
heartbeat, drives it with the EA emulator over the sample for a few hundred bars, stops it with
SIGTERM (it must exit 0), and prints what happened. Nothing here talks to a broker.

When the registry has no champion (the gate found no edge: the sample's model is registered
as challenger only), the demo serves the challenger *explicitly* (``@challenger``) and says
that it is not promoted and why, instead of serving nothing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import zmq
from rich.console import Console

console = Console()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_heartbeat(endpoint: str, timeout_s: float, server: subprocess.Popen) -> dict:
    """Poll with fresh REQ sockets (lazy pirate) until the server answers or dies."""
    ctx = zmq.Context.instance()
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


def run_demo(model_uri: str, bars: int, root: Path) -> int:
    model_uri, note = resolve_demo_model(model_uri, root)
    if note:
        console.print(f"[yellow]{note}[/]")
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    aibridge = str(Path(sys.executable).parent / "aibridge")
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    server_log = (logs / "demo-serve.out").open("w")
    server = subprocess.Popen(
        [
            aibridge,
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
        console.print(f"[bold]server[/] starting on {endpoint} with {model_uri} …")
        hb = wait_for_heartbeat(endpoint, 90, server)
        model = hb.get("model") or {}
        console.print(
            f"[bold]server[/] serving {model.get('name')} v{model.get('version')} "
            f"(alias {model.get('alias')}, run {model.get('run_id')}), "
            f"min_bars {hb.get('min_bars')}"
        )
        summary_path = root / "reports" / "demo_ea_sim.json"
        sim = subprocess.run(
            [
                aibridge,
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
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        server_log.close()
    console.print(f"[bold]server[/] stopped on SIGTERM with exit code {server.returncode}")
    if note:
        console.print(f"[yellow]Served the challenger, not a champion:[/] {note}")
    console.print(
        "Journal: `aibridge journal tail --path journal/demo.sqlite`. "
        "MLflow UI: `make ui`. Not investment advice; no broker was contacted."
    )
    return 0 if server.returncode == 0 else 1
