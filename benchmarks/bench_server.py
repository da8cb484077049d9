"""Signal-server round trips against (a) a bare ZeroMQ echo and (b) a seed-style server.

All three servers run as separate processes on loopback and see the same predict payloads
(real sample candles, ``min_bars`` per request, a sliding window so no two are equal):

* ``echo``  — ROUTER that sends every body straight back: the transport floor;
* ``aibridge`` — ``python -m aibridge.server serve`` (the real server: orjson + pydantic
  validation + numpy features + native booster + journal + metrics);
* ``seed``  — what the seed did: REP, ``json.loads``, a pandas DataFrame per request and
  ``mlflow.pyfunc`` ``predict`` on it.

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
    "p50_over_echo_ms": 0.5,
    "speedup_vs_seed": 10.0,
    "p99_ms": 3.0,
    "throughput_8_clients": 2000.0,
    "rss_mb": 400.0,
}


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


def start(role: str, port: int, args: argparse.Namespace, workdir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if role == "aibridge":
        cmd = [
            sys.executable,
            "-m",
            "aibridge.server",
            "serve",
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


def bench(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        procs: dict[str, tuple[subprocess.Popen, str]] = {}
        try:
            for role in ("echo", "aibridge", "seed"):
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
            for role in ("echo", "seed"):
                wait_ready(procs[role][1], reqs[0])
            echo = latencies(procs["echo"][1], reqs)
            ours = latencies(procs["aibridge"][1], reqs)
            seed = latencies(procs["seed"][1], seed_reqs, warmup=20)
            tput = throughput(procs["aibridge"][1], reqs, args.clients, args.seconds)
            tput_seed = throughput(procs["seed"][1], seed_reqs, args.clients, args.seconds / 2)
            rss = psutil.Process(procs["aibridge"][0].pid).memory_info().rss / 2**20
            rss_seed = psutil.Process(procs["seed"][0].pid).memory_info().rss / 2**20
        finally:
            for proc, _ in procs.values():
                proc.terminate()
            for proc, _ in procs.values():
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        ours_code = procs["aibridge"][0].returncode
    result: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "zmq": zmq.zmq_version(),
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "payload": {"candles": min_bars, "bytes": int(np.mean([len(p) for p in reqs]))},
        "model": args.model,
    }
    result["echo"] = stats(echo)
    result["aibridge"] = stats(ours) | {
        "throughput_rps": round(tput, 1),
        "clients": args.clients,
        "rss_mb": round(rss, 1),
        "exit_code_on_sigterm": ours_code,
    }
    result["seed"] = stats(seed) | {
        "throughput_rps": round(tput_seed, 1),
        "clients": args.clients,
        "rss_mb": round(rss_seed, 1),
    }
    a, e, s = result["aibridge"], result["echo"], result["seed"]
    result["ratios"] = {
        "p50_over_echo_ms": round(a["p50_ms"] - e["p50_ms"], 4),
        "speedup_vs_seed": round(s["p50_ms"] / a["p50_ms"], 1),
    }
    result["goals"] = {
        "p50_over_echo_ms": [result["ratios"]["p50_over_echo_ms"], "<=", GOALS["p50_over_echo_ms"]],
        "speedup_vs_seed": [result["ratios"]["speedup_vs_seed"], ">=", GOALS["speedup_vs_seed"]],
        "p99_ms": [a["p99_ms"], "<=", GOALS["p99_ms"]],
        "throughput_8_clients": [a["throughput_rps"], ">=", GOALS["throughput_8_clients"]],
        "rss_mb": [a["rss_mb"], "<=", GOALS["rss_mb"]],
    }
    return result


def markdown(r: dict) -> str:
    e, a, s = r["echo"], r["aibridge"], r["seed"]
    lines = [
        f"Payload: {r['payload']['candles']} candles ({r['payload']['bytes']} bytes) per predict;"
        f" {r['machine']['cpus']} CPUs, Python {r['machine']['python']},"
        f" libzmq {r['machine']['zmq']}; load average {r['machine']['loadavg_1m_at_end']}.",
        "",
        "| server | p50 ms | p90 ms | p99 ms | throughput (8 clients) | RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
        f"| bare ZeroMQ echo | {e['p50_ms']:.3f} | {e['p90_ms']:.3f} | {e['p99_ms']:.3f} | – | – |",
        f"| **aibridge serve** | {a['p50_ms']:.3f} | {a['p90_ms']:.3f} | {a['p99_ms']:.3f} "
        f"| {a['throughput_rps']:.0f}/s | {a['rss_mb']:.0f} |",
        f"| seed-style (pandas + pyfunc) | {s['p50_ms']:.3f} | {s['p90_ms']:.3f}"
        f" | {s['p99_ms']:.3f} | {s['throughput_rps']:.0f}/s | {s['rss_mb']:.0f} |",
        "",
        "| goal | measured | target | met |",
        "|---|---:|---:|:---:|",
    ]
    for name, (value, op, target) in r["goals"].items():
        met = value <= target if op == "<=" else value >= target
        lines.append(f"| {name} | {value} | {op} {target} | {'yes' if met else 'NO'} |")
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
    p.add_argument("--role", choices=["echo", "seed"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
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
