"""`aibridge serve` as a real process: SIGTERM exits 0 cleanly, kill -9 loses nothing durable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest
import zmq

from aibridge.ea_sim import EaEmulator, SimConfig
from aibridge.server import journal as j
from tests.conftest import TrainedStore
from tests.server_fixtures import ReqClient, free_port, predict_payloads, wait_for

pytestmark = pytest.mark.slow


def _start(store: TrainedStore, tmp: Path, port: int) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "aibridge.server", "serve",
        "--model", store.model_uri,
        "--tracking-uri", store.tracking_uri,
        "--port", str(port),
        "--journal", str(tmp / "journal.sqlite"),
        "--log-path", str(tmp / "serve.jsonl"),
        "--metrics-port", str(free_port()),
        "--model-cache-dir", str(tmp / "cache"),
        "--poll-interval", "0",
    ]  # fmt: skip
    err = (tmp / f"stderr-{port}-{time.monotonic_ns()}.txt").open("w")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)


def _wait_ready(ep: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    def up() -> bool:
        assert proc.poll() is None, "server exited during startup"
        with ReqClient(ep, timeout_ms=300) as c:
            try:
                return c.call({"type": "heartbeat"})["status"] == "ok"
            except zmq.Again:
                return False

    assert wait_for(up, timeout=timeout, interval=0.1), "server did not come up"


def test_sigterm_answers_queued_requests_flushes_and_exits_0(
    trained_model_store: TrainedStore, tmp_path: Path
) -> None:
    port = free_port()
    ep = f"tcp://127.0.0.1:{port}"
    proc = _start(trained_model_store, tmp_path, port)
    try:
        _wait_ready(ep, proc)
        min_bars = ReqClient(ep).call({"type": "heartbeat"})["min_bars"]
        dealer = zmq.Context.instance().socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.RCVTIMEO, 10_000)
        dealer.connect(ep)
        sent = predict_payloads(200, min_bars, "term")
        for body, _, _ in sent:
            dealer.send_multipart([b"", body])
        proc.send_signal(signal.SIGTERM)
        replies = [orjson.loads(dealer.recv_multipart()[-1]) for _ in sent]
        dealer.close()
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0
    assert [r["request_id"] for r in replies] == [rid for _, rid, _ in sent]
    assert all(r["status"] == "ok" for r in replies)
    db = tmp_path / "journal.sqlite"
    assert j.integrity_check(db) == "ok"
    rows = j.tail(db, "requests", 10_000)
    assert sum(1 for r in rows if (r["request_id"] or "").startswith("term-")) == 200
    logs = [json.loads(line) for line in (tmp_path / "serve.jsonl").read_text().splitlines()]
    msgs = [rec["msg"] for rec in logs]
    assert any(m.startswith("serving aibridge-EURUSD-H1 v1 (alias champion, run ") for m in msgs)
    assert "received SIGTERM, shutting down" in msgs and msgs[-1] == "stopped"
    assert all({"ts", "level", "logger", "msg"} <= set(rec) for rec in logs)


def test_kill_9_under_load_then_restart(trained_model_store: TrainedStore, tmp_path: Path) -> None:
    port = free_port()
    ep = f"tcp://127.0.0.1:{port}"
    timeout_ms = 1000
    proc = _start(trained_model_store, tmp_path, port)
    _wait_ready(ep, proc)
    cfg = SimConfig(
        endpoint=ep, bars=None, start=100, timeout_ms=timeout_ms, retries=1,
        heartbeat_s=0.5, pace_s=0.005, quiet=True,
    )  # fmt: skip
    sim = EaEmulator(cfg)
    runner = threading.Thread(target=sim.run, daemon=True)
    runner.start()
    second = None
    db = tmp_path / "journal.sqlite"
    try:
        assert wait_for(lambda: len(sim.summary.latencies_ms) >= 100, timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert wait_for(lambda: any(o == "timeout" for _, _, o in sim.summary.timeline), 30)
        assert j.integrity_check(db) == "ok"  # a killed writer leaves a valid database
        rows_after_kill = j.tail(db, "requests", 100_000)
        second = _start(trained_model_store, tmp_path, port)
        _wait_ready(ep, second)
        ready = time.monotonic()
        recovered = wait_for(
            lambda: any(t > ready and o == "ok" for t, _, o in sim.summary.timeline), timeout=30
        )
        after = [o for t, _, o in sim.summary.timeline if t > ready]
        n_ok = len(sim.summary.latencies_ms)
        assert wait_for(lambda: len(sim.summary.latencies_ms) >= n_ok + 50, timeout=60)
    finally:
        sim.stop()
        runner.join(timeout=30)
        if second is not None:
            second.send_signal(signal.SIGTERM)
            rc = second.wait(timeout=30)
        if proc.poll() is None:
            proc.kill()
    # Recovery is counted in requests, not seconds: once the new server answers, only the
    # request in flight may still time out (its 1 + retries attempts) before the first ok.
    assert recovered and "ok" in after[:2], after[:5]
    assert rc == 0
    s = sim.summary
    assert s.mismatched == 0
    assert any("no reply after 2 attempts" in why for _, why in s.skipped)
    assert j.integrity_check(db) == "ok"
    rows = j.tail(db, "requests", 100_000)
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert rows[: len(rows_after_kill)] == rows_after_kill  # nothing committed was lost
    assert len(rows) > len(rows_after_kill) + 50
    events = j.tail(db, "model_events")
    assert [e["event"] for e in events] == ["loaded", "loaded"]


def test_a_busy_port_fails_on_the_bind_before_any_model_is_loaded(tmp_path: Path) -> None:
    """A second server on a taken port says so, naming the holder, and never reaches the
    model: the URI here does not even exist, so loading first would fail differently."""
    port = free_port()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import socket, time\ns = socket.socket()\n"
         f"s.bind(('127.0.0.1', {port})); s.listen(); print('up', flush=True)\n"
         "time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "up"
        res = subprocess.run(
            [sys.executable, "-m", "aibridge.server", "serve",
             "--model", "models:/no-such-model@champion",
             "--tracking-uri", f"sqlite:///{tmp_path / 'empty.db'}",
             "--port", str(port), "--no-metrics", "--poll-interval", "0",
             "--journal", str(tmp_path / "journal.sqlite"),
             "--model-cache-dir", str(tmp_path / "cache")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    text = " ".join((res.stdout + res.stderr).split())
    assert res.returncode == 1, text
    assert f"cannot bind tcp://127.0.0.1:{port}: Address already in use" in text, text
    assert f"held by pid {holder.pid}" in text and "No model was loaded" in text, text
    assert "no-such-model" not in text and "Traceback" not in text, text
