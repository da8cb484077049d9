"""Shadow challenger: a second model answers every live predict beside the champion, off the
hot path, and only the journal hears it.

The server loads, per served champion ``models:/<name>@champion``, the same name at the
shadow alias (``serve.shadow.alias``, e.g. ``challenger``; or explicit ``serve.shadow.models``
URIs) in its own :class:`~aibridge.server.models.ModelSet`, polled for alias moves like the
champion. The request path hands the candle window and the champion's action to
:meth:`ShadowRunner.submit` (a deque append); a background thread lets the challenger decide
on the same window and writes a ``shadow`` journal row (champion and challenger version and
action, the challenger's confidence, reason, SL/TP points and its decision time). The EA only
ever sees the champion's answer.

:func:`forward_report` compares them on the live bars: agreement, the action confusion
matrix, signals, and the trades each would have made through the backtest engine on the bars
the EA sent (``aibridge shadow-report``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("aibridge.shadow")


def shadow_uri(champion_uri: str, alias: str) -> str:
    """``models:/aibridge-EURUSD-H1@champion`` → ``models:/aibridge-EURUSD-H1@<alias>``."""
    from aibridge.server.models import parse_model_uri

    name, _, _ = parse_model_uri(champion_uri)
    return f"models:/{name}@{alias}"


@dataclass
class _Stats:
    decisions: int = 0
    agree: int = 0
    champion_signals: int = 0
    challenger_signals: int = 0
    errors: int = 0
    last_error: str | None = None


class ShadowRunner:
    """Challenger decisions on live requests, computed and journaled on a worker thread."""

    def __init__(
        self,
        sets: dict[tuple[str, str], Any],
        journal: Any,
        metrics: Any = None,
        queue_max: int = 10_000,
    ) -> None:
        self.sets = sets  # (symbol, timeframe) -> ModelSet holding the one challenger slot
        self.journal = journal
        self.metrics = metrics
        self._queue: deque[tuple[Any, ...]] = deque()
        self._queue_max = queue_max
        self.dropped = 0
        self.stats: dict[tuple[str, str], _Stats] = {k: _Stats() for k in sets}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shadow-challenger", daemon=True)
        self._thread.start()

    @classmethod
    def load(
        cls,
        champions: Any,
        *,
        alias: str | None,
        uris: list[str] | None,
        resolver: Any,
        loader: Any,
        journal: Any,
        metrics: Any = None,
        queue_max: int = 10_000,
    ) -> ShadowRunner:
        """One challenger per champion slot; a challenger that does not load is logged and
        skipped (the champion serves regardless)."""
        from aibridge.server.models import ModelLoadError, ModelSet

        wanted = list(uris or [])
        if alias:
            wanted += [shadow_uri(slot.uri, alias) for slot in champions.slots.values()]
        sets: dict[tuple[str, str], Any] = {}
        for uri in wanted:
            ms = ModelSet([uri], resolver=resolver, loader=loader)
            try:
                ms.load_all()
            except ModelLoadError as exc:
                log.warning(f"shadow: {exc}; no shadow for it")
                continue
            key, slot = next(iter(ms.slots.items()))
            if key not in champions.slots:
                log.warning(f"shadow: {uri} serves {' '.join(key)}, which no champion serves")
                continue
            sets[key] = ms
            info = slot.current.info
            champ = champions.slots[key].current.info
            log.info(
                f"shadow: {info.name} v{info.version} ({uri}) beside champion v{champ.version}"
                + (" (the same version)" if str(info.version) == str(champ.version) else "")
            )
            if journal is not None:
                journal.record_model_event(*key, "shadow_loaded", None, str(info.version), uri)
        return cls(sets, journal, metrics, queue_max)

    # ------------------------------------------------------------------ request path
    def submit(
        self, key: tuple[str, str], window: np.ndarray, req: Any, action: str, version: str
    ) -> None:
        if key not in self.sets:
            return
        if len(self._queue) >= self._queue_max:
            self.dropped += 1
            if self.metrics is not None:
                self.metrics.shadow_dropped.inc()
            return
        self._queue.append((key, window, req.request_id, action, version, time.time()))
        self._wake.set()

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            while self._queue:
                self._idle.clear()
                item = self._queue.popleft()
                try:
                    self._decide(*item)
                except Exception as exc:  # a broken challenger must not hurt serving
                    st = self.stats[item[0]]
                    st.errors += 1
                    message = f"{type(exc).__name__}: {exc}"
                    if message != st.last_error:  # once per distinct failure, not per request
                        log.warning(f"shadow decision failed: {message}")
                    st.last_error = message
            if self.metrics is not None:
                self.metrics.shadow_lag.set(len(self._queue))
            self._idle.set()

    def _decide(
        self, key: tuple[str, str], w: np.ndarray, rid: str, action: str, version: str, ts: float
    ) -> None:
        slot = next(iter(self.sets[key].slots.values()))
        served = slot.current
        model, info = served.model, served.info
        need = int(model.min_bars)
        if len(w) < need:
            raise ValueError(f"challenger v{info.version} needs {need} candles, got {len(w)}")
        w = w[-need:]
        t0 = time.perf_counter()
        with np.errstate(all="ignore"):
            d = model.decide(w[:, 0], w[:, 1], w[:, 2], w[:, 3], w[:, 4], w[:, 5])
        us = int((time.perf_counter() - t0) * 1e6)
        agree = d.action == action
        st = self.stats[key]
        st.decisions += 1
        st.agree += agree
        st.champion_signals += action != "HOLD"
        st.challenger_signals += d.action != "HOLD"
        if self.metrics is not None:
            self.metrics.shadow_decisions.labels(
                *key, str(info.version), "agree" if agree else "disagree"
            ).inc()
        if self.journal is not None:
            self.journal.record_shadow(
                {
                    "ts": ts,
                    "request_id": rid,
                    "symbol": key[0],
                    "timeframe": key[1],
                    "bar_time": int(w[-1, 0]),
                    "champion_version": version,
                    "champion_action": action,
                    "challenger_version": str(info.version),
                    "challenger_action": d.action,
                    "challenger_confidence": float(d.confidence),
                    "challenger_reason": d.reason,
                    "sl_points": None if d.sl_points is None else float(d.sl_points),
                    "tp_points": None if d.tp_points is None else float(d.tp_points),
                    "latency_us": us,
                }
            )

    # ------------------------------------------------------------------ lifecycle
    def start_polling(self, interval_s: float) -> None:
        for ms in self.sets.values():
            ms.start_polling(interval_s)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every submitted request has its challenger decision (tests)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self._wake.set()
            if not self._queue and self._idle.wait(0.05) and not self._queue:
                return

    def snapshot(self) -> list[dict[str, Any]]:
        out = []
        for key, ms in self.sets.items():
            slot = next(iter(ms.slots.values()))
            st = self.stats[key]
            out.append(
                {
                    "symbol": key[0],
                    "timeframe": key[1],
                    "challenger": f"{slot.current.info.name} v{slot.current.info.version}",
                    "decisions": st.decisions,
                    "agreement": round(st.agree / st.decisions, 4) if st.decisions else None,
                    "signals_champion": st.champion_signals,
                    "signals_challenger": st.challenger_signals,
                    "error": st.last_error or slot.error,
                }
            )
        return out

    def stop(self) -> None:
        for ms in self.sets.values():
            ms.stop()
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5.0)


# --------------------------------------------------------------------------- forward test


def forward_report(
    journal: Path,
    symbol: str,
    timeframe: str,
    *,
    since: float | None = None,
    until: float | None = None,
    csv: Path | None = None,
) -> dict[str, Any]:
    """Champion vs shadow challenger on the live bars: agreement, confusion, signals, and the
    trades each would have made through the backtest engine (served risk settings)."""
    import sqlite3

    import pandas as pd

    from aibridge.backtest.engine import run_backtest
    from aibridge.backtest.metrics import compute_metrics, json_safe
    from aibridge.backtest.settings import EngineSettings
    from aibridge.instruments import load_instrument
    from aibridge.loop.reconcile import ACTION_SIGN, ReconcileError, bars_from_csv, load_journal
    from aibridge.risk import RiskSettings, load_risk_settings

    data = load_journal(journal, symbol, timeframe, since=since, until=until)
    lo, hi = since if since is not None else -1e18, until if until is not None else 1e18
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        sh = pd.read_sql_query(
            "SELECT * FROM shadow WHERE symbol = ? AND timeframe = ? AND ts >= ? AND ts <= ?"
            " ORDER BY id",
            conn,
            params=(symbol.upper(), timeframe.upper(), lo, hi),
        )
    finally:
        conn.close()
    if sh.empty:
        raise ReconcileError(f"no shadow decisions for {symbol} {timeframe} in {journal}")
    sh = sh.drop_duplicates("bar_time", keep="last")
    agree = float((sh["champion_action"] == sh["challenger_action"]).mean())
    confusion = (
        pd.crosstab(sh["champion_action"], sh["challenger_action"])
        .reindex(index=["BUY", "SELL", "HOLD"], columns=["BUY", "SELL", "HOLD"], fill_value=0)
        .astype(int)
    )
    bars = data.bars
    if csv is not None:
        bars = bars_from_csv(csv, int(sh["bar_time"].min()), int(sh["bar_time"].max()) + 86400)
    spec = load_instrument(symbol)
    risk_doc = data.served.get("risk")
    fields = set(RiskSettings.model_fields)
    risk = (
        RiskSettings.model_validate({k: v for k, v in risk_doc.items() if k in fields})
        if risk_doc
        else load_risk_settings()
    )
    point = float(data.served.get("point") or spec.point)
    bars = bars.assign(spread=bars["spread"].fillna(float(spec.default_spread_points)))
    secs = bars["time"].to_numpy().astype("datetime64[s]").astype(np.int64)
    index = {int(t): i for i, t in enumerate(secs)}
    out: dict[str, Any] = {}
    champion_rows = data.decisions.rename(columns={"action": "a"})
    challenger_rows = sh.rename(columns={"challenger_action": "a"})
    for name, rows in (("champion", champion_rows), ("challenger", challenger_rows)):
        n = len(bars)
        sig, sl, tp = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
        for r in rows.itertuples(index=False):
            i = index.get(int(r.bar_time))
            if i is None:
                continue
            sig[i] = ACTION_SIGN.get(str(r.a), 0)
            sl[i] = float(r.sl_points or 0.0) * point
            tp[i] = float(r.tp_points or 0.0) * point
        res = run_backtest(bars, sig, sl, tp, spec, risk, EngineSettings())
        metrics = compute_metrics(res)  # the numbers the backtest gate decides on
        t = res.trades
        out[name] = {
            "signals": int(np.count_nonzero(sig)),
            "trades": len(t),
            "net_profit": round(float(metrics["net_profit"]), 2),
            "win_rate": round(float((t["net_pnl"] > 0).mean()), 4) if len(t) else None,
            "max_drawdown_pct": round(float(metrics["max_drawdown_pct"]), 3),
            "metrics": json_safe(metrics),
        }
    versions = sorted(set(sh["challenger_version"].astype(str)))
    return {
        "model_name": (data.served.get("model") or {}).get("name"),
        "symbol": symbol.upper(),
        "timeframe": timeframe.upper(),
        "bars": len(bars),
        "decisions": len(sh),
        "champion_versions": sorted(set(sh["champion_version"].astype(str))),
        "challenger_versions": versions,
        "agreement": round(agree, 4),
        "confusion": {a: confusion.loc[a].to_dict() for a in confusion.index},
        "challenger_latency_us_p50": int(sh["latency_us"].median()),
        **out,
    }


def render_forward_markdown(doc: dict[str, Any]) -> str:
    c = doc["confusion"]
    lines = [
        f"# Shadow forward test: {doc['symbol']} {doc['timeframe']}",
        "",
        f"{doc['decisions']} live decisions on {doc['bars']} bars; champion "
        f"v{', v'.join(doc['champion_versions'])}, challenger "
        f"v{', v'.join(doc['challenger_versions'])}; agreement {doc['agreement']:.1%}.",
        "",
        "| champion \\ challenger | BUY | SELL | HOLD |",
        "|---|---|---|---|",
        *(f"| {a} | {c[a]['BUY']} | {c[a]['SELL']} | {c[a]['HOLD']} |" for a in c),
        "",
        "| on the EA's bars (backtest engine) | champion | challenger |",
        "|---|---|---|",
    ]
    for k in ("signals", "trades", "net_profit", "win_rate", "max_drawdown_pct"):
        lines.append(f"| {k} | {doc['champion'][k]} | {doc['challenger'][k]} |")
    return "\n".join(lines) + "\n"


def forward_gate(doc: dict[str, Any], rule: Any = None, min_decisions: int = 500) -> Any:
    """The backtest gate (:func:`aibridge.backtest.gate.decide`, the same rule and metrics:
    min trades, drawdown bound, the absolute floor, metric + improvement) applied to the
    forward test: both models' trades on the live bars. Fewer than ``min_decisions`` live
    decisions, or a challenger version that changed during the period, never promotes."""
    from aibridge.backtest.gate import GateDecision, decide
    from aibridge.backtest.settings import GateSettings

    rule = rule or GateSettings(metric="net_profit")

    def side(d: dict[str, Any]) -> dict[str, float]:
        m = d.get("metrics") or {
            "trade_count": d["trades"],
            "max_drawdown_pct": d["max_drawdown_pct"],
            "net_profit": d["net_profit"],
        }
        return {k: float("nan") if v is None else float(v) for k, v in m.items()}

    ch, cp = side(doc["challenger"]), side(doc["champion"])
    if doc["decisions"] < min_decisions:
        reason = f"forward test has {doc['decisions']} live decisions < {min_decisions}"
        return GateDecision(False, reason, rule.metric, ch, cp, rule.model_dump())
    if len(doc["challenger_versions"]) != 1:
        reason = f"challenger changed during the period ({', '.join(doc['challenger_versions'])})"
        return GateDecision(False, reason, rule.metric, ch, cp, rule.model_dump())
    d = decide(ch, cp, rule)
    return GateDecision(d.promote, f"forward test: {d.reason}", d.metric, d.challenger, cp, d.rule)


def apply_forward_gate(
    name: str,
    version: str,
    decision: Any,
    alias: str = "champion",
    journal: Path | None = None,
    *,
    require_backtest_gate: bool = False,
    client: Any = None,
) -> str:
    """Tag the challenger version with the forward decision (``forward_gate.*``) and move
    ``alias`` to it when it won (and, with ``require_backtest_gate``, when its backtest gate
    tag ``gate.decision`` says promote too: both rules). Returns one line for the log."""
    from mlflow import MlflowClient

    from aibridge.promotion import promote

    client = client or MlflowClient()
    for key, value in decision.as_tags(prefix="forward_gate.").items():
        client.set_model_version_tag(name, version, key, value)
    if not decision.promote:
        return f"{name} v{version}: champion kept; {decision.reason}"
    if require_backtest_gate:
        tag = client.get_model_version(name, version).tags.get("gate.decision")
        if tag != "promote":
            return f"{name} v{version}: champion kept; backtest gate says {tag or 'nothing'}"
    move = promote(name, version, decision.reason, alias, journal, client=client)
    return f"{name}: {alias} v{move.from_version} → v{move.to_version} ({decision.reason})"
