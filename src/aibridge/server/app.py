"""The ZeroMQ transport: a ROUTER socket that answers every REQ message exactly once.

ROUTER rather than REP: a REP socket that fails to send (or a handler that raises between
recv and send) is stuck in the wrong state; ROUTER has no state machine, so a bad message
can never wedge the server. REQ clients put an empty delimiter frame after their identity;
we echo the whole envelope back so the reply reaches the right peer.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
import time
from typing import Any

import orjson
import zmq

from aibridge.protocol import ErrorCode, ProtocolError
from aibridge.server.handler import RequestHandler, _error_dict
from aibridge.server.journal import Journal
from aibridge.server.keys import load_server_keys
from aibridge.server.metrics import MetricsServer, ServerMetrics
from aibridge.server.models import ModelSet
from aibridge.server.settings import ServeSettings

log = logging.getLogger("aibridge.server")

_BATCH = 64  # messages taken per poll wake-up before checking for shutdown
_SHUTDOWN_QUIET_S = 0.2  # no new request for this long after SIGTERM: done


def is_loopback(host: str) -> bool:
    if host in ("localhost", "127.0.0.1", "::1"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SignalServer:
    """Binds, serves until :meth:`request_stop`, then drains, flushes and closes."""

    def __init__(
        self,
        settings: ServeSettings,
        models: ModelSet,
        risk: dict[str, Any],
        *,
        journal: Journal | None = None,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or ServerMetrics()
        self.journal = journal or Journal(settings.journal_path)
        self.models = models
        self.models.journal = self.models.journal or self.journal
        self.models.metrics = self.models.metrics or self.metrics
        self.drift = _drift_monitor(settings, self.metrics)
        self.shadow: Any = None  # attach_shadow() after the champions are loaded
        self.handler = RequestHandler(
            models,
            risk,
            self.journal,
            self.metrics,
            settings.max_message_bytes,
            clock_mismatch=settings.clock_mismatch,
            drift=self.drift,
        )
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.ctx = zmq.Context()
        self.sock: zmq.Socket | None = None
        self.port: int | None = None
        self.http: MetricsServer | None = None
        self.last_loop = time.monotonic()
        self.served = 0
        self.curve = False

    # ------------------------------------------------------------------ setup
    def bind(self) -> int:
        """Create and bind the ROUTER socket; returns the bound port (random if port is 0)."""
        s = self.settings
        sock = self.ctx.socket(zmq.ROUTER)
        self.sock = sock  # owned from here on, so close() can always release it
        sock.setsockopt(zmq.MAXMSGSIZE, s.hard_max_message_bytes)
        sock.setsockopt(zmq.LINGER, 1000)  # let the last replies leave on shutdown
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting EA reuses its identity slot
        if s.curve_secret_key is not None:
            public, secret = load_server_keys(s.curve_secret_key)
            sock.curve_server = True
            sock.curve_publickey = public
            sock.curve_secretkey = secret
            self.curve = True
        if not is_loopback(s.host) and not self.curve:
            log.warning(
                f"!!! binding {s.host}:{s.port} WITHOUT CurveZMQ: anyone who can reach this port "
                "can read decisions and send requests. Use --host 127.0.0.1, or "
                "`aibridge keys generate` and --curve-secret-key. !!!",
                extra={"host": s.host, "port": s.port, "curve": False},
            )
        addr = f"tcp://{s.host}"
        if s.port == 0:
            self.port = sock.bind_to_random_port(addr)
        else:
            sock.bind(f"{addr}:{s.port}")
            self.port = s.port
        if s.metrics_port is not None:
            self._start_metrics()
        log.info(
            f"bound tcp://{s.host}:{self.port}"
            + (" (CurveZMQ)" if self.curve else "")
            + (f", metrics http://{s.metrics_host}:{self.http.port}/metrics" if self.http else ""),
            extra={"port": self.port, "curve": self.curve},
        )
        return self.port

    def attach_shadow(self, shadow: Any) -> None:
        """Serve a shadow challenger beside the champions (:mod:`aibridge.loop.shadow`)."""
        self.shadow = shadow
        self.handler.shadow = shadow

    def _start_metrics(self) -> None:
        s = self.settings
        self.metrics.uptime.set_function(lambda: time.monotonic() - self.handler.started)
        assert s.metrics_port is not None  # bind() starts metrics only when a port is set
        self.http = MetricsServer(
            self.metrics, self.health, s.metrics_host, s.metrics_port, status=self.status
        )
        self.http.start()

    def status(self) -> dict[str, Any]:
        """The status page's content (``/status``, ``/status.json``)."""
        from aibridge.server.status import status_document

        path = self.journal.path if self.journal is not None else None
        return status_document(
            self.health,
            path,
            ledger=self.handler.ledger.snapshot(),
            drift=self.drift.snapshot() if self.drift is not None else None,
            shadow=self.shadow.snapshot() if self.shadow is not None else None,
        )

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy = request loop alive recently and every slot has a model."""
        loop_age = time.monotonic() - self.last_loop
        models = self.models.describe()
        ok = loop_age < 5.0 and not self._stop.is_set() and bool(models)
        return ok, {
            "status": "ok" if ok else "unhealthy",
            "loop_age_s": round(loop_age, 3),
            "uptime_s": round(time.monotonic() - self.handler.started, 3),
            "served": self.served,
            "models": models,
        }

    # ------------------------------------------------------------------ loop
    def request_stop(self) -> None:
        self._stop.set()

    def serve_forever(self) -> None:
        """Answer requests until stopped; then answer what is already queued and clean up."""
        if self.port is None:
            self.bind()
        assert self.sock is not None
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        log.info(f"answering on tcp://{self.settings.host}:{self.port}", extra={"port": self.port})
        self.ready.set()
        try:
            while not self._stop.is_set():
                self.last_loop = time.monotonic()
                if poller.poll(100):
                    self._drain_batch()
            self._drain_until(time.monotonic() + self.settings.shutdown_grace_s)
        finally:
            self.close()

    def _drain_batch(self) -> int:
        assert self.sock is not None
        n = 0
        # ZMQ_EVENTS instead of recv-until-EAGAIN: an exception per request costs µs
        while n < _BATCH and int(self.sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._answer(frames)
            n += 1
        return n

    def _drain_until(self, deadline: float) -> None:
        """Shutdown: answer requests that already arrived (briefly), so no EA is left hanging.

        Requests sent just before the signal may still be in flight on the TCP connection, so
        one empty read is not the end: stop after ``_SHUTDOWN_QUIET_S`` without new requests
        (or at the deadline).
        """
        assert self.sock is not None
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        quiet_until = time.monotonic() + _SHUTDOWN_QUIET_S
        while (now := time.monotonic()) < deadline:
            if self._drain_batch():
                quiet_until = time.monotonic() + _SHUTDOWN_QUIET_S
            elif now >= quiet_until:
                return
            else:
                poller.poll(10)

    def _answer(self, frames: list[bytes]) -> None:
        assert self.sock is not None
        try:
            split = frames.index(b"") + 1  # REQ: [identity, b"", body]
        except ValueError:
            split = 1  # DEALER without delimiter: [identity, body]
        envelope, body = frames[:split], frames[split:]
        if len(body) == 1:
            raw = body[0]
            try:
                reply = self.handler.handle(raw)
            except Exception as exc:  # handle() never raises; belt and braces for the wire
                log.exception("handler crashed")
                reply = self.handler.internal_error_reply(raw, exc)
        else:
            err = ProtocolError(ErrorCode.SCHEMA, f"expected exactly 1 body frame, got {len(body)}")
            reply = orjson.dumps(_error_dict(err))
        self.served += 1  # before the send: a client that has its reply sees the count
        try:
            self.sock.send_multipart([*envelope, reply], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # peer gone or its queue full: nothing else to do
            log.warning("reply not delivered", extra={"error": str(exc)})

    def close(self) -> None:
        """Stop polling, close the socket (with linger), flush the journal."""
        self.models.stop()
        if self.drift is not None:
            self.drift.stop()
        if self.shadow is not None:
            self.shadow.stop()
        if self.sock is not None:
            self.sock.close(linger=1000 if self.port is not None else 0)
            self.sock = None
        self.ctx.term()
        self.handler.ledger.close()
        self.journal.close()
        if self.http is not None:
            self.http.stop()
            self.http = None
        log.info("stopped", extra={"served": self.served})


def _drift_monitor(settings: ServeSettings, metrics: ServerMetrics) -> Any:
    """The drift monitor of ``serve.drift`` (None when disabled)."""
    d = settings.drift
    if not d.enabled:
        return None
    from aibridge.loop.drift import DriftMonitor

    return DriftMonitor(
        window=d.window,
        min_rows=d.min_rows,
        bins=d.bins,
        interval_s=d.interval_s,
        hold_above=d.hold_above,
        reference_features=d.reference_features,
        metrics=metrics,
    )


def install_signal_handlers(server: SignalServer) -> None:
    """SIGINT/SIGTERM → graceful stop (main thread only, as Python requires)."""

    def handler(signum: int, _frame: object) -> None:
        log.info(f"received {signal.Signals(signum).name}, shutting down")
        server.request_stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
