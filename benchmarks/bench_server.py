"""Signal-server round trips against a bare ZeroMQ echo and a seed-style server, in one run.

All servers run as separate processes on loopback and see the same predict payloads
(real sample candles, ``min_bars`` per request, a sliding window so no two are equal):

* ``echo``  — ROUTER that sends every body straight back: the transport floor;
* ``aibridge`` — ``python -m aibridge.server serve`` as shipped (orjson + pydantic validation
  + ``aibridge.serving_model.ServingModel``: numba features, the lightgbm package's booster, MLflow
  in the process for the registry; journal, metrics);
* ``aibridge-lean`` — the same server command and settings with the lean data plane plugged
  into ``aibridge.server.models.registry_backend`` (``aibridge.serving.resolve.lean_backend``:
  ``LeanModel``, no MLflow/pandas/scikit-learn/numba/lightgbm package in the process). The
  launcher reports which of those modules the server process ended up importing;
* ``lean-runtime`` — the data plane alone: a ROUTER loop, ``orjson`` and ``LeanModel.decide``
  (no validation, journal or metrics): what the runtime costs without the server around it;
* ``seed``  — what the seed did: REP, ``json.loads``, a pandas DataFrame per request and
  ``mlflow.pyfunc`` ``predict`` on it.

Goals (issue 12) are checked on ``aibridge-lean``; the shipped server's figures stand beside
them as the baseline of the same run. ``--skip-seed`` leaves the seed out (it needs ~400 MB).

Usage (needs a registered model, e.g. after ``make demo``)::

    python benchmarks/bench_server.py --tracking-uri sqlite:///mlflow.db \
        --model models:/aibridge-EURUSD-H1@champion

Writes ``benchmarks/results/server.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import zmq

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "server.json"
GOALS = {
    "p50_over_echo_ms": 0.3,
    "speedup_vs_seed": 30.0,
    "p99_ms": 2.0,
    "throughput_8_clients": 3000.0,
    "rss_mb": 200.0,
}
HEAVY = ("mlflow", "pandas", "sklearn", "scipy", "numba", "lightgbm")
SERVERS = ("aibridge", "aibridge-lean")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- servers


def run_echo(port: int) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(f"tcp://127.0.0.1:{port}")
    while True:
        sock.send_multipart(sock.recv_multipart())


def run_seed(port: int, model_uri: str, tracking_uri: str) -> None:
    """The seed's design: REP socket, stdlib JSON, DataFrame + pyfunc per request."""
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(model_uri)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.bind(f"tcp://127.0.0.1:{port}")
    cols = ["time", "open", "high", "low", "close", "volume"]
    while True:
        req = json.loads(sock.recv())
        try:
            frame = pd.DataFrame(req["candles"], columns=cols).astype(
                {c: "float64" for c in cols[1:]}
            )
            frame["time"] = pd.to_datetime(frame["time"], unit="s")
            row = model.predict(frame).iloc[-1]
            reply = {
                "status": "ok",
                "action": row["action"],
                "confidence": float(row["confidence"]),
                "request_id": req.get("request_id"),
            }
        except Exception as exc:  # a REP server must still answer
            reply = {"status": "error", "message": str(exc)[:200]}
        sock.send(json.dumps(reply).encode())


def run_lean_runtime(port: int, model_uri: str, tracking_uri: str, cache: Path) -> None:
    """The data plane alone: ROUTER, orjson, ``LeanModel.decide``."""
    import orjson

    from aibridge.serving.resolve import lean_backend

    resolver, loader = lean_backend(tracking_uri, cache)
    info = resolver(model_uri)
    model = loader(f"models:/{info.name}/{info.version}")
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(f"tcp://127.0.0.1:{port}")
    while True:
        frames = sock.recv_multipart()
        req = orjson.loads(frames[-1])
        if req.get("type") == "heartbeat":
            reply = {"status": "ok", "min_bars": model.min_bars}
        else:
            c = np.asarray(req["candles"], dtype=np.float64)
            d = model.decide(
                c[:, 0], c[:, 1], c[:, 2], c[:, 3], c[:, 4], c[:, 5], req.get("spread_points")
            )
            reply = {
                "status": "ok",
                "request_id": req.get("request_id"),
                "action": d.action,
                "confidence": d.confidence,
                "probabilities": d.probabilities,
                "sl": d.sl,
                "tp": d.tp,
                "reason": d.reason,
            }
        sock.send_multipart([*frames[:-1], orjson.dumps(reply)])


def run_lean_serve(serve_args: list[str], modules_file: Path) -> None:
    """``python -m aibridge.serving.serve serve`` (the server with the lean data plane as its
    registry backend), writing which heavy modules the process holds every two seconds."""

    # `aibridge serve` runs the lean data plane by default (serve.runtime: lean)
    def report() -> None:
        while True:
            held = sorted(m for m in HEAVY if m in sys.modules)
            modules_file.write_text(json.dumps(held))
            time.sleep(2.0)

    threading.Thread(target=report, daemon=True).start()
    from aibridge.server.commands import serve_app

    sys.argv = ["aibridge-serve", "serve", *serve_args]
    serve_app()


def serve_args(port: int, args: argparse.Namespace, workdir: Path, tag: str) -> list[str]:
    return [
        "--model",
        args.model,
        "--tracking-uri",
        args.tracking_uri,
        "--port",
        str(port),
        "--journal",
        str(workdir / f"journal-{tag}.sqlite"),
        "--log-path",
        str(workdir / f"serve-{tag}.jsonl"),
        "--metrics-port",
        str(free_port()),
        "--poll-interval",
        "0",
    ]


def start(role: str, port: int, args: argparse.Namespace, workdir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "AIBRIDGE_MODEL_CACHE": str(workdir / "cache")}
    if role == "aibridge-lean":
        cmd = [sys.executable, __file__, "--role", role, "--port", str(port)]
        cmd += ["--modules-file", str(workdir / "lean-modules.json"), "--"]
        cmd += serve_args(port, args, workdir, "lean")
    elif role == "lean-runtime":
        cmd = [sys.executable, __file__, "--role", role, "--port", str(port)]
        cmd += ["--model", args.model, "--tracking-uri", args.tracking_uri]
        cmd += ["--cache", str(workdir / "cache")]
    elif role == "aibridge":
        cmd = [
            sys.executable,
            "-m",
            "aibridge.server",
            "serve",
            "--runtime",
            "full",
            "--model",
            args.model,
            "--tracking-uri",
            args.tracking_uri,
            "--port",
            str(port),
            "--journal",
            str(workdir / "journal.sqlite"),
            "--log-path",
            str(workdir / "serve.jsonl"),
            "--metrics-port",
            str(free_port()),
            "--poll-interval",
            "0",
        ]
    else:
        cmd = [sys.executable, __file__, "--role", role, "--port", str(port)]
        cmd += ["--model", args.model, "--tracking-uri", args.tracking_uri]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(workdir / f"{role}.err", "w")
    )


# --------------------------------------------------------------------------- clients


def payloads(n: int, min_bars: int) -> list[bytes]:
    """``n`` predict requests built like the EA builds them, sliding over the sample."""
    from aibridge.ea_sim import build_predict, load_candles
    from aibridge.paths import sample_data_path

    c = load_candles(sample_data_path())
    out = []
    for k in range(n):
        end = min_bars - 1 + (k % (len(c) - min_bars))
        rid = f"bench-{k}"
        out.append(build_predict(c, end, min_bars, 5, "EURUSD", "H1", rid, 12))
    return out


def connect(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 30_000)
    sock.connect(endpoint)
    return sock


def wait_ready(endpoint: str, probe: bytes, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock = connect(endpoint)
        sock.setsockopt(zmq.RCVTIMEO, 1000)
        try:
            sock.send(probe)
            sock.recv()
            return
        except zmq.Again:
            pass
        finally:
            sock.close()
    raise RuntimeError(f"{endpoint} did not answer within {timeout} s")


def latencies(endpoint: str, reqs: list[bytes], warmup: int = 200) -> np.ndarray:
    sock = connect(endpoint)
    for p in reqs[:warmup]:
        sock.send(p)
        sock.recv()
    out = np.empty(len(reqs))
    for i, p in enumerate(reqs):
        t0 = time.perf_counter()
        sock.send(p)
        sock.recv()
        out[i] = time.perf_counter() - t0
    sock.close()
    return out * 1000.0


def throughput(endpoint: str, reqs: list[bytes], clients: int, seconds: float) -> float:
    counts = [0] * clients
    stop = threading.Event()

    def worker(k: int) -> None:
        sock = connect(endpoint)
        i = k
        while not stop.is_set():
            sock.send(reqs[i % len(reqs)])
            sock.recv()
            counts[k] += 1
            i += clients
        sock.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # ramp up
    before = sum(counts)
    t0 = time.perf_counter()
    time.sleep(seconds)
    done = sum(counts) - before
    elapsed = time.perf_counter() - t0
    stop.set()
    for t in threads:
        t.join()
    return done / elapsed


def stats(ms: np.ndarray) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p90_ms": round(float(np.percentile(ms, 90)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "mean_ms": round(float(ms.mean()), 4),
        "n": len(ms),
    }


# --------------------------------------------------------------------------- main


def _stop(procs: dict[str, tuple[subprocess.Popen, str]]) -> dict[str, int | None]:
    for proc, _ in procs.values():
        proc.terminate()
    codes = {}
    for role, (proc, _) in procs.items():
        try:
            codes[role] = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            codes[role] = None
    return codes


def bench(args: argparse.Namespace) -> dict:
    from aibridge.serving.resolve import run_fetch

    roles = ["echo", "aibridge", "aibridge-lean", "lean-runtime"]
    if not args.skip_seed:
        roles.append("seed")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # The control step, once, before any server starts: resolve, download, check.
        t0 = time.perf_counter()
        info, _ = run_fetch(args.model, args.tracking_uri, work / "cache")
        fetch_s = time.perf_counter() - t0
        procs: dict[str, tuple[subprocess.Popen, str]] = {}
        lat: dict[str, np.ndarray] = {}
        tput: dict[str, float] = {}
        rss: dict[str, float] = {}
        try:
            for role in roles:
                port = free_port()
                procs[role] = (start(role, port, args, work), f"tcp://127.0.0.1:{port}")
            hb = b'{"type":"heartbeat","symbol":"EURUSD","timeframe":"H1"}'
            wait_ready(procs["aibridge"][1], hb)
            sock = connect(procs["aibridge"][1])
            sock.send(hb)
            min_bars = int(json.loads(sock.recv())["min_bars"])
            sock.close()
            reqs = payloads(args.requests, min_bars)
            seed_reqs = reqs[: args.seed_requests]
            for role in roles:
                wait_ready(procs[role][1], reqs[0])
            loads = {"start": round(os.getloadavg()[0], 2)}
            for role in roles:
                lat[role] = (
                    latencies(procs[role][1], seed_reqs, warmup=20)
                    if role == "seed"
                    else latencies(procs[role][1], reqs)
                )
            loads["after_latency"] = round(os.getloadavg()[0], 2)
            for role in roles[1:]:
                seconds = args.seconds / 2 if role == "seed" else args.seconds
                tput[role] = throughput(
                    procs[role][1], seed_reqs if role == "seed" else reqs, args.clients, seconds
                )
            loads["after_throughput"] = round(os.getloadavg()[0], 2)
            for role in roles[1:]:
                rss[role] = psutil.Process(procs[role][0].pid).memory_info().rss / 2**20
            modules_file = work / "lean-modules.json"
            lean_modules = json.loads(modules_file.read_text()) if modules_file.exists() else None
        finally:
            codes = _stop(procs)
    result: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "zmq": zmq.zmq_version(),
            "loadavg_1m": loads,
        },
        "payload": {"candles": min_bars, "bytes": int(np.mean([len(p) for p in reqs]))},
        "model": f"{args.model} (v{info.version})",
        "fetch_s": round(fetch_s, 2),
        "lean_heavy_modules": lean_modules,
    }
    for role in roles:
        result[role] = stats(lat[role])
        if role != "echo":
            result[role] |= {
                "throughput_rps": round(tput[role], 1),
                "clients": args.clients,
                "rss_mb": round(rss[role], 1),
            }
    for role in SERVERS:
        result[role]["exit_code_on_sigterm"] = codes.get(role)
    e = result["echo"]
    ratios: dict = {}
    for role in roles[1:]:
        r = result[role]
        ratios[role] = {"p50_over_echo_ms": round(r["p50_ms"] - e["p50_ms"], 4)}
        if "seed" in result:
            ratios[role]["speedup_vs_seed"] = round(result["seed"]["p50_ms"] / r["p50_ms"], 1)
    ratios["lean_vs_shipped"] = {
        "p50": round(result["aibridge"]["p50_ms"] / result["aibridge-lean"]["p50_ms"], 2),
        "throughput": round(
            result["aibridge-lean"]["throughput_rps"] / result["aibridge"]["throughput_rps"], 2
        ),
        "rss": round(result["aibridge"]["rss_mb"] / result["aibridge-lean"]["rss_mb"], 2),
    }
    result["ratios"] = ratios
    lean = result["aibridge-lean"]
    goals = {
        "rss_mb": [lean["rss_mb"], "<=", GOALS["rss_mb"]],
        "p50_over_echo_ms": [ratios["aibridge-lean"]["p50_over_echo_ms"], "<=", 0.3],
        "p99_ms": [lean["p99_ms"], "<=", GOALS["p99_ms"]],
        "throughput_8_clients": [lean["throughput_rps"], ">=", GOALS["throughput_8_clients"]],
    }
    if "seed" in result:
        goals["speedup_vs_seed"] = [
            ratios["aibridge-lean"]["speedup_vs_seed"],
            ">=",
            GOALS["speedup_vs_seed"],
        ]
    goals["no_heavy_modules"] = [len(lean_modules or []), "<=", 0]
    result["goals"] = {
        k: [v, op, t, bool(v <= t if op == "<=" else v >= t)] for k, (v, op, t) in goals.items()
    }
    return result


LABELS = {
    "echo": "bare ZeroMQ echo",
    "aibridge": "aibridge serve, as shipped (ServingModel)",
    "aibridge-lean": "**aibridge serve, lean data plane (LeanModel)**",
    "lean-runtime": "lean runtime alone (ROUTER + orjson + LeanModel)",
    "seed": "seed-style (pandas + pyfunc)",
}


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"Payload: {r['payload']['candles']} candles ({r['payload']['bytes']} bytes) per predict;"
        f" {m['cpus']} CPUs, Python {m['python']}, libzmq {m['zmq']};"
        f" 1-min load average {m['loadavg_1m']}. Model {r['model']}; control step"
        f" (resolve + download + lean check) {r['fetch_s']} s.",
        "",
        "| server | p50 ms | p90 ms | p99 ms | throughput (8 clients) | RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for role, label in LABELS.items():
        if role not in r:
            continue
        x = r[role]
        tp = f"{x['throughput_rps']:.0f}/s" if "throughput_rps" in x else "–"
        mb = f"{x['rss_mb']:.0f}" if "rss_mb" in x else "–"
        lines.append(
            f"| {label} | {x['p50_ms']:.3f} | {x['p90_ms']:.3f} | {x['p99_ms']:.3f} | {tp} | {mb} |"
        )
    lv = r["ratios"]["lean_vs_shipped"]
    lines += [
        "",
        f"Lean vs shipped, same run: p50 {lv['p50']}x faster, throughput {lv['throughput']}x,"
        f" RSS {lv['rss']}x smaller. Heavy modules in the lean server process:"
        f" {r['lean_heavy_modules']}.",
        "",
        "| goal (lean server) | measured | target | met |",
        "|---|---:|---:|:---:|",
    ]
    for name, (value, op, target, met) in r["goals"].items():
        lines.append(f"| {name} | {value} | {op} {target} | {'met' if met else 'NOT MET'} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="models:/aibridge-EURUSD-H1@champion")
    p.add_argument("--tracking-uri", default=f"sqlite:///{ROOT / 'mlflow.db'}")
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--seed-requests", type=int, default=300)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--skip-seed", action="store_true", help="leave the seed-style server out")
    p.add_argument(
        "--role", choices=["echo", "seed", "aibridge-lean", "lean-runtime"], help=argparse.SUPPRESS
    )
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--modules-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "aibridge-lean":
        run_lean_serve(args.rest, args.modules_file)
        return
    if args.role == "lean-runtime":
        run_lean_runtime(args.port, args.model, args.tracking_uri, args.cache)
        return
    if args.role == "echo":
        run_echo(args.port)
        return
    if args.role == "seed":
        run_seed(args.port, args.model, args.tracking_uri)
        return
    result = bench(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
