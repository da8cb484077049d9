"""Helpers for server tests: a real server on a free loopback port, and a plain REQ client."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import zmq

from aibridge.server.app import SignalServer
from aibridge.server.journal import Journal
from aibridge.server.metrics import ServerMetrics
from aibridge.server.models import ModelSet
from aibridge.server.settings import ServeSettings

RISK = {
    "risk_per_trade_pct": 1.0,
    "max_spread_points": 30.0,
    "max_daily_drawdown_pct": 3.0,
    "max_open_positions": 1,
    "max_total_lots": 5.0,
    "min_confidence": 0.45,
    "trading_start_hour": 0,
    "trading_end_hour": 24,
    "min_lot_policy": "skip",
    "close_on_opposite": True,
    "max_hold_bars": 24,
    "exposure_policy": "shrink",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def empty_models() -> ModelSet:
    """A model set serving nothing (transport tests that need no model)."""

    def nothing(uri: str) -> Any:
        raise AssertionError(f"no model expected, asked for {uri}")

    return ModelSet([], resolver=nothing, loader=nothing)


@contextmanager
def running_server(
    tmp_path: Path, models: ModelSet | None = None, **settings: Any
) -> Iterator[tuple[SignalServer, str]]:
    """A real :class:`SignalServer` in a thread; yields (server, endpoint)."""
    opts: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "journal_path": tmp_path / "journal.sqlite",
        "log_path": None,
        "metrics_port": 0,
        "poll_interval_s": 0,
    }
    opts.update(settings)
    cfg = ServeSettings(**opts)
    journal = Journal(cfg.journal_path)
    metrics = ServerMetrics()
    models = models if models is not None else empty_models()
    models.journal, models.metrics = journal, metrics
    if models.uris and not models.slots:
        models.load_all()
    server = SignalServer(cfg, models, RISK, journal=journal, metrics=metrics)
    port = server.bind()
    thread = threading.Thread(target=server.serve_forever, name="test-server", daemon=True)
    thread.start()
    assert server.ready.wait(30), "the server thread did not get ready (bind, models)"
    try:
        yield server, f"tcp://127.0.0.1:{port}"
    finally:
        server.request_stop()
        thread.join(timeout=15)
        assert not thread.is_alive(), "server did not stop"


class ReqClient:
    """Plain REQ client with a receive timeout (a stuck test fails instead of hanging)."""

    def __init__(self, endpoint: str, timeout_ms: int = 5000, **sockopts: Any) -> None:
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
        for key, value in sockopts.items():
            setattr(self.sock, key, value)
        self.sock.connect(endpoint)

    def raw(self, payload: bytes) -> bytes:
        self.sock.send(payload)
        return self.sock.recv()

    def call(self, payload: bytes | dict[str, Any]) -> dict[str, Any]:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        return orjson.loads(self.raw(body))

    def close(self) -> None:
        self.sock.close(linger=0)

    def __enter__(self) -> ReqClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout``; for background effects, not for speed."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def private_store(store: Any, dest: Path) -> str:
    """A private copy of the session's registry DB (artifacts shared read-only).

    Tests that move aliases or register versions must not disturb other tests' store.
    """
    import shutil

    src = Path(store.tracking_uri.removeprefix("sqlite:///"))
    shutil.copy2(src, dest / "mlflow.db")
    return f"sqlite:///{dest / 'mlflow.db'}"


def real_models(tracking_uri: str, uris: list[str], cache_dir: Path) -> ModelSet:
    """A model set backed by the real registry and :mod:`aibridge.bundle` loader."""
    from aibridge.server.models import registry_backend

    resolver, loader = registry_backend(tracking_uri, cache_dir)
    return ModelSet(uris, resolver=resolver, loader=loader)


def predict_payloads(n: int, min_bars: int, prefix: str = "r") -> list[tuple[bytes, str, int]]:
    """``n`` EA-style predict requests over the sample: (payload, request_id, bar_time)."""
    from aibridge.ea_sim import build_predict, load_candles
    from aibridge.paths import sample_data_path

    c = load_candles(sample_data_path())
    out = []
    for k in range(n):
        end = min_bars - 1 + (k * 7) % (len(c) - min_bars)
        rid = f"{prefix}-{k}"
        out.append(
            (build_predict(c, end, min_bars, 5, "EURUSD", "H1", rid, 10), rid, int(c.time[end]))
        )
    return out
