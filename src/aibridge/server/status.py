"""The server's status page: what an operator wants at a glance, no Grafana required.

Served next to ``/metrics`` on the metrics port: ``/status`` (HTML that refreshes itself every
5 s) and ``/status.json``. Everything comes from the live model slots and the SQLite journal,
so the page shows exactly what the EA was told.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aibridge.server import journal as journal_db

RECENT_ROWS = 500
LEDGER_TICKETS = ("orphans", "unprotected", "missing_closes")
RATE_WINDOW_S = 60.0
SHOWN = 10


def status_document(
    health: Callable[[], tuple[bool, dict[str, Any]]],
    journal_path: Path | None,
    ledger: list[dict[str, Any]] | None = None,
    drift: list[dict[str, Any]] | None = None,
    shadow: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Model, version, uptime, request rates, latency percentiles, last decisions and errors,
    and each EA's latest ledger reconciliation (``ledger``, from :meth:`Ledger.snapshot`)."""
    ok, doc = health()
    rows: list[dict[str, Any]] = []
    if journal_path is not None and Path(journal_path).is_file():
        rows = journal_db.tail(Path(journal_path), "requests", RECENT_ROWS)
    now = time.time()
    recent = [r for r in rows if r["ts"] >= now - RATE_WINDOW_S]
    latencies = np.array([r["latency_us"] for r in rows if r.get("latency_us")], dtype=float)
    percentiles = (
        {f"p{q}_ms": round(float(np.percentile(latencies, q)) / 1000, 3) for q in (50, 90, 99)}
        if len(latencies)
        else {}
    )
    rates: dict[str, float] = {}
    for r in recent:
        kind = r["type"] or "unparsed"  # bad_json requests have no type
        rates[kind] = rates.get(kind, 0.0) + 1.0 / RATE_WINDOW_S
    decisions = [r for r in rows if r["type"] == "predict" and r["status"] == "ok"]
    errors = [r for r in rows if r["status"] != "ok"]
    pick = ("ts", "symbol", "timeframe", "action", "model_version", "request_id", "latency_us")
    return {
        "status": doc.get("status", "ok" if ok else "unhealthy"),
        "uptime_s": doc.get("uptime_s"),
        "models": doc.get("models", []),
        "requests_per_s": {k: round(v, 3) for k, v in sorted(rates.items())},
        "latency": percentiles | {"n": len(latencies)},
        "last_decisions": [{k: r.get(k) for k in pick} for r in decisions[-SHOWN:][::-1]],
        "last_errors": [
            {k: r.get(k) for k in ("ts", "type", "code", "request_id", "summary")}
            for r in errors[-SHOWN:][::-1]
        ],
        "ledger": ledger or [],
        "drift": drift or [],
        "shadow": shadow or [],
    }


def _table(rows: list[dict[str, Any]], columns: list[str], empty: str) -> str:
    if not rows:
        return f"<p class='empty'>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c, r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(column: str, value: Any) -> str:
    if value is None:
        return "–"
    if column == "ts":
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(value)))
    return str(value)


def render_html(doc: dict[str, Any]) -> bytes:
    models = _table(
        doc["models"],
        ["symbol", "timeframe", "name", "version", "alias", "model_status", "model_error"],
        "no model loaded",
    )
    latency = doc["latency"]
    lat = (
        f"p50 {latency['p50_ms']} ms · p90 {latency['p90_ms']} ms · p99 {latency['p99_ms']} ms "
        f"(last {latency['n']} requests)"
        if latency.get("n")
        else "no requests yet"
    )
    rates = ", ".join(f"{k} {v:.2f}/s" for k, v in doc["requests_per_s"].items()) or "idle"
    decisions = _table(
        doc["last_decisions"],
        ["ts", "symbol", "timeframe", "action", "model_version", "latency_us", "request_id"],
        "no decisions yet",
    )
    errors = _table(
        doc["last_errors"], ["ts", "type", "code", "request_id", "summary"], "no errors"
    )
    ledger_rows = [
        r | {k: ", ".join(map(str, r["detail"][k])) or "–" for k in LEDGER_TICKETS}
        for r in doc.get("ledger", [])
    ]
    ledger = _table(
        ledger_rows,
        ["ts", "account", "magic", "symbol", "positions", "ledger_open", *LEDGER_TICKETS],
        "no EA has reported its positions yet",
    )
    problems = sum(r[k] for r in doc.get("ledger", []) for k in LEDGER_TICKETS)
    ledger_class = "unhealthy" if problems else "ok"
    ledger_title = f"{problems} finding(s)" if problems else "in agreement"
    drift_rows = [
        r | {"top": ", ".join(f"{t['feature']} {t['psi']}" for t in r["top"]) or "–"}
        for r in doc.get("drift", [])
    ]
    drift = _table(
        drift_rows,
        [
            "symbol",
            "timeframe",
            "model",
            "enabled",
            "rows",
            "psi_median",
            "psi_max",
            "top",
            "holding",
            "reason",
        ],
        "drift monitoring off",
    )
    shadow = _table(
        doc.get("shadow", []),
        ["symbol", "timeframe", "challenger", "decisions", "agreement", "signals_champion",
         "signals_challenger", "error"],
        "no shadow challenger",
    )  # fmt: skip
    status = html.escape(str(doc["status"]))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>aibridge serve: {status}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}
td,th{{border:1px solid #ccc;padding:.25em .6em}}
th{{background:#f3f3f3}}.ok{{color:#1a7f37}}.unhealthy{{color:#b42318}}.empty{{color:#777}}</style>
</head><body>
<h1>aibridge signal server <span id="status" class="{status}">{status}</span></h1>
<p id="uptime">uptime {doc["uptime_s"]} s · requests: {html.escape(rates)}</p>
<h2>Models</h2><div id="models">{models}</div>
<h2>Latency (server side)</h2><p id="latency">{html.escape(lat)}</p>
<h2>Last decisions</h2><div id="decisions">{decisions}</div>
<h2>Last errors</h2><div id="errors">{errors}</div>
<h2>Ledger <span id="ledger-status" class="{ledger_class}">{ledger_title}</span></h2>
<p class="empty">EA positions vs. the server's trade events, per account, magic and symbol
(columns list tickets): orphans (no filled event), unprotected (no stop loss), missing closes
(gone from two heartbeats without a closed event).</p>
<div id="ledger">{ledger}</div>
<h2>Feature drift</h2>
<p class="empty">PSI of the live feature rows against the training distribution
(&lt; 0.1 stable, 0.1–0.25 moderate, &gt; 0.25 shifted).</p>
<div id="drift">{drift}</div>
<h2>Shadow challenger</h2><div id="shadow">{shadow}</div>
<p class="empty">Not investment advice. Also as JSON: <a href="/status.json">/status.json</a>,
metrics: <a href="/metrics">/metrics</a>.</p>
</body></html>
"""
    return page.encode()
