"""Assemble and run a server from settings: config → logging → journal → models → loop."""

from __future__ import annotations

import gc
import logging
from typing import Any

import zmq
from pydantic import ValidationError

from aibridge.errors import AibridgeError
from aibridge.protocol import RiskBlock
from aibridge.server.app import SignalServer, install_signal_handlers
from aibridge.server.journal import Journal
from aibridge.server.keys import CurveKeyError
from aibridge.server.logs import setup_logging
from aibridge.server.metrics import ServerMetrics
from aibridge.server.models import ModelLoadError, ModelSet, registry_backend
from aibridge.server.settings import ServeSettings, load_serve_settings

log = logging.getLogger("aibridge.server")


class ServeError(AibridgeError):
    """Startup failed for a reason the user can fix (bad URI, port in use, bad key...)."""


def risk_block() -> dict[str, Any]:
    """Risk rules from the composed config (``cfg.risk``) or ``conf/risk/default.yaml``."""
    from aibridge.risk import load_risk_settings, risk_settings_from_mapping
    from aibridge.settings import config_group

    data = config_group("risk")
    settings = risk_settings_from_mapping(data) if data else load_risk_settings()
    fields = set(RiskBlock.model_fields)
    return {k: v for k, v in settings.model_dump().items() if k in fields}


def tracking_uri_for(settings: ServeSettings) -> str:
    """Explicit setting, else the project's resolution (env → conf/tracking → ./mlflow.db)."""
    if settings.tracking_uri:
        return settings.tracking_uri
    from aibridge.settings import config_group
    from aibridge.tracking import resolve_tracking_uri

    return resolve_tracking_uri(config_group("tracking") or None)


def port_holder(port: int) -> str | None:
    """``pid 1234 (aibridge serve --port 5555)`` listening on TCP ``port``, when the OS says
    (psutil; None when it cannot tell, e.g. another user's process)."""
    import psutil  # type: ignore[import-untyped]

    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    return None
                cmd = " ".join(psutil.Process(conn.pid).cmdline()[:8])
                return f"pid {conn.pid} ({cmd})" if cmd else f"pid {conn.pid}"
    except (psutil.Error, OSError):
        return None
    return None


def _bind(server: SignalServer, settings: ServeSettings) -> None:
    """Bind the ZeroMQ socket and the metrics port, or raise :class:`ServeError` saying who
    holds the port; called before any model is loaded, so a busy port fails in a second."""
    try:
        server.bind()
    except zmq.ZMQError as exc:
        server.close()
        holder = port_holder(settings.port) if exc.errno == zmq.EADDRINUSE else None
        raise ServeError(
            f"cannot bind tcp://{settings.host}:{settings.port}: {exc.strerror}"
            + (f" (held by {holder})" if holder else "")
            + "; stop that process or choose another port (--port, conf/serve port). "
            "No model was loaded."
        ) from None
    except CurveKeyError as exc:
        server.close()
        raise ServeError(str(exc)) from None
    except OSError as exc:  # metrics port in use
        server.close()
        holder = port_holder(settings.metrics_port) if settings.metrics_port else None
        raise ServeError(
            f"cannot start metrics on port {settings.metrics_port}: {exc.strerror or exc}"
            + (f" (held by {holder})" if holder else "")
            + "; choose another with --metrics-port, or --no-metrics. No model was loaded."
        ) from None


def build_server(settings: ServeSettings) -> SignalServer:
    """Everything but the loop; raises :class:`ServeError` for user-fixable problems.

    Bind first, then load: a second server on a busy port fails before it spends seconds
    (and memory) loading models it could never serve.
    """
    journal = Journal(settings.journal_path)
    metrics = ServerMetrics()
    tracking = tracking_uri_for(settings)
    resolver, loader = registry_backend(tracking, settings.model_cache_dir, settings.runtime)
    models = ModelSet(
        settings.models, resolver=resolver, loader=loader, journal=journal, metrics=metrics
    )
    server = SignalServer(settings, models, risk_block(), journal=journal, metrics=metrics)
    _bind(server, settings)
    try:
        models.load_all()
    except ModelLoadError as exc:
        server.close()
        raise ServeError(f"{exc} (tracking URI {tracking})") from None
    shadow = settings.shadow
    if shadow.alias or shadow.models:
        from aibridge.loop.shadow import ShadowRunner

        server.attach_shadow(
            ShadowRunner.load(
                models,
                alias=shadow.alias,
                uris=shadow.models,
                resolver=resolver,
                loader=loader,
                journal=journal,
                metrics=metrics,
                queue_max=shadow.queue_max,
            )
        )
    return server


def run_server(overrides: dict[str, Any], *, no_metrics: bool = False) -> None:
    """``aibridge serve``: returns normally (exit 0) after SIGINT/SIGTERM."""
    import os

    from aibridge.paths import project_root

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep logs clean
    try:
        settings = load_serve_settings(overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ServeError(f"invalid serve settings: {problems}") from None
    if no_metrics:
        settings = settings.model_copy(update={"metrics_port": None})
    settings = settings.resolve_paths(project_root())
    setup_logging(
        settings.log_path,
        level=settings.log_level,
        max_bytes=settings.log_max_bytes,
        backups=settings.log_backups,
    )
    if not settings.models:
        raise ServeError("no models configured (conf/serve models: or --model)")
    server = build_server(settings)
    gc.freeze()  # models and imports are long-lived: keep them out of every GC pass
    install_signal_handlers(server)
    server.models.start_polling(settings.poll_interval_s)
    if server.shadow is not None:
        server.shadow.start_polling(settings.poll_interval_s)
    server.serve_forever()
