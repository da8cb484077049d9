"""Prometheus metrics and ``/healthz`` on a small HTTP server of their own.

Each server instance owns its registry, so several servers (tests, benchmarks) can live in
one process without colliding in prometheus-client's global registry.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.002,
    0.003,
    0.005,
    0.01,
    0.025,
    0.1,
    1.0,
)


class ServerMetrics:
    """All series the server exports; label values are low-cardinality by construction."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "aibridge_requests",
            "Requests answered, by type and status/code",
            ["type", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "aibridge_request_seconds",
            "Server-side handling time per request",
            ["type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "aibridge_decisions", "Predict replies by action", ["model", "action"], registry=r
        )
        self.model_info = Gauge(
            "aibridge_model_info",
            "Served model version (value 1)",
            ["symbol", "timeframe", "name", "version", "alias", "run_id"],
            registry=r,
        )
        self.registry_model_info = Gauge(
            "aibridge_registry_model_info",
            "Version each served alias points at in the registry (value 1); an alert compares "
            "it with aibridge_model_info to catch a server stuck on an old version",
            ["name", "alias", "version"],
            registry=r,
        )
        self._registry_versions: dict[tuple[str, str], str] = {}
        self.reloads = Counter(
            "aibridge_model_reloads", "Model swaps after an alias move", ["model"], registry=r
        )
        self.reload_failures = Counter(
            "aibridge_model_reload_failures", "Failed model loads", ["model"], registry=r
        )
        self.reload_failing = Gauge(
            "aibridge_model_reload_failing",
            "1 while the last load of a newer version failed (old one still serving)",
            ["model"],
            registry=r,
        )
        self.last_heartbeat = Gauge(
            "aibridge_last_ea_heartbeat_timestamp_seconds",
            "Unix time of the last heartbeat received from an EA",
            registry=r,
        )
        self.uptime = Gauge("aibridge_uptime_seconds", "Seconds since start", registry=r)
        self.clock_mismatches = Counter(
            "aibridge_clock_mismatches",
            "Requests whose broker UTC offset differs from the served model's",
            ["type", "symbol", "timeframe"],
            registry=r,
        )
        ledger = ["account", "magic", "symbol"]
        self.ledger_orphans = Gauge(
            "aibridge_ledger_orphan_positions",
            "EA positions the server's ledger does not hold open (last heartbeat)",
            ledger,
            registry=r,
        )
        self.ledger_unprotected = Gauge(
            "aibridge_ledger_unprotected_positions",
            "EA positions without a stop loss (last heartbeat)",
            ledger,
            registry=r,
        )
        self.ledger_missing_closes = Gauge(
            "aibridge_ledger_missing_closes",
            "Ledger-open tickets absent from the EA's last two heartbeats",
            ledger,
            registry=r,
        )

        slot = ["symbol", "timeframe"]
        self.feature_psi = Gauge(
            "aibridge_feature_psi",
            "Population stability index of one feature: live rows (rolling window) vs the "
            "model's training distribution",
            [*slot, "feature"],
            registry=r,
        )
        self.drift_psi_max = Gauge(
            "aibridge_drift_psi_max", "Largest feature PSI of the served model", slot, registry=r
        )
        self.drift_psi_median = Gauge(
            "aibridge_drift_psi_median",
            "Median feature PSI of the served model (alert and drift HOLD use this)",
            slot,
            registry=r,
        )
        self.drift_rows = Gauge(
            "aibridge_drift_rows", "Live feature rows in the drift window", slot, registry=r
        )
        self.drift_enabled = Gauge(
            "aibridge_drift_enabled",
            "1 when the served model has a drift reference (0: disabled, reason in the log)",
            slot,
            registry=r,
        )
        self.shadow_decisions = Counter(
            "aibridge_shadow_decisions",
            "Shadow challenger decisions on live requests, by agreement with the champion",
            [*slot, "challenger_version", "agreement"],
            registry=r,
        )
        self.shadow_lag = Gauge(
            "aibridge_shadow_queue",
            "Requests waiting for the shadow challenger (background queue length)",
            registry=r,
        )
        self.shadow_dropped = Counter(
            "aibridge_shadow_dropped",
            "Requests the shadow challenger skipped because its queue was full",
            registry=r,
        )

    def clear_drift(self, symbol: str, timeframe: str) -> None:
        """Forget a slot's per-feature PSI series (a new model has other features)."""
        for labels in list(self.feature_psi._metrics):  # prometheus-client keeps children here
            if labels[:2] == (symbol, timeframe):
                with contextlib.suppress(KeyError):
                    self.feature_psi.remove(*labels)
        for g in (self.drift_psi_max, self.drift_psi_median, self.drift_rows):
            with contextlib.suppress(KeyError):
                g.remove(symbol, timeframe)

    def set_model(self, symbol: str, timeframe: str, info: Any, previous: Any | None) -> None:
        """Point the info gauge at the served version (and drop the old series)."""
        if previous is not None:
            with contextlib.suppress(KeyError):
                self.model_info.remove(*_info_labels(symbol, timeframe, previous))
        self.model_info.labels(*_info_labels(symbol, timeframe, info)).set(1)
        if info.alias:  # at load time the registry and the served version agree
            self.set_registry_version(info.name, info.alias, str(info.version))

    def set_registry_version(self, name: str, alias: str, version: str) -> None:
        """Record what the registry says ``alias`` points at (one series per alias)."""
        previous = self._registry_versions.get((name, alias))
        if previous == version:
            return
        if previous is not None:
            with contextlib.suppress(KeyError):
                self.registry_model_info.remove(name, alias, previous)
        self.registry_model_info.labels(name, alias, version).set(1)
        self._registry_versions[name, alias] = version

    def set_ledger(
        self, account: int | None, magic: int | None, symbol: str, counts: dict[str, int]
    ) -> None:
        """The reconciliation gauges of one EA (labels: account, magic, symbol)."""
        labels = ("" if account is None else str(account), "" if magic is None else str(magic))
        self.ledger_orphans.labels(*labels, symbol).set(counts["orphans"])
        self.ledger_unprotected.labels(*labels, symbol).set(counts["unprotected"])
        self.ledger_missing_closes.labels(*labels, symbol).set(counts["missing_closes"])

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _info_labels(symbol: str, timeframe: str, info: Any) -> tuple[str, ...]:
    return (symbol, timeframe, info.name, str(info.version), info.alias or "", info.run_id)


class MetricsServer:
    """``GET /metrics`` (Prometheus text), ``GET /healthz`` (JSON, 200 or 503), and the status
    page ``GET /status`` (HTML) / ``GET /status.json`` when a ``status`` callable is given."""

    def __init__(
        self,
        metrics: ServerMetrics,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        host: str,
        port: int,
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    outer._send(self, 200, outer.metrics.render(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok, doc = outer.health()
                    outer._send(self, 200 if ok else 503, orjson.dumps(doc), "application/json")
                elif path in ("/", "/status") and outer.status is not None:
                    from aibridge.server.status import render_html

                    page = render_html(outer.status())
                    outer._send(self, 200, page, "text/html; charset=utf-8")
                elif path == "/status.json" and outer.status is not None:
                    outer._send(self, 200, orjson.dumps(outer.status()), "application/json")
                else:
                    outer._send(self, 404, b"not found\n", "text/plain")

            def log_message(self, *args: object) -> None:  # keep scrapes out of stderr
                return

        self.metrics = metrics
        self.health = health
        self.status = status
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="metrics-http", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str) -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
