"""One request in, exactly one reply out: the transport-free core of the server.

:meth:`RequestHandler.handle` never raises: every failure becomes an error reply with a
stable code, because a REQ client that gets no answer is wedged until it times out.
Replies are built as plain dicts in the documented key order and encoded with orjson (a few
µs); the tests validate them against the pydantic reply models in :mod:`aibridge.protocol`.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import orjson

import aibridge
from aibridge.protocol import (
    PROTOCOL_VERSION,
    UTC_OFFSET_STEP_S,
    ErrorCode,
    HeartbeatRequest,
    PredictRequest,
    ProtocolError,
    TradeEventRequest,
    clock_check,
    parse_request,
)
from aibridge.server.journal import Journal, RequestRecord
from aibridge.server.ledger import Ledger
from aibridge.server.metrics import ServerMetrics
from aibridge.server.models import NO_CHAMPION, ModelSet, slot_status

log = logging.getLogger("aibridge.server.handler")


def _num(x: Any) -> float | None:
    """Floats for JSON; NaN/inf/None become null (orjson would do it silently, we say so)."""
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


class RequestHandler:
    """Decodes, dispatches, journals and meters one request."""

    def __init__(
        self,
        models: ModelSet,
        risk: dict[str, Any],
        journal: Journal,
        metrics: ServerMetrics,
        max_message_bytes: int,
        clock_mismatch: str = "warn",
        ledger: Ledger | None = None,
        drift: Any = None,
        shadow: Any = None,
    ) -> None:
        self.models = models
        self.risk = risk
        self.journal = journal
        self.metrics = metrics
        self.max_message_bytes = max_message_bytes
        self.clock_mismatch = clock_mismatch  # "warn" | "refuse" (serve.clock_mismatch)
        self.ledger = ledger or Ledger(journal, metrics)
        self.drift = drift  # aibridge.loop.drift.DriftMonitor (off the hot path) or None
        self.shadow = shadow  # aibridge.loop.shadow.ShadowRunner or None
        self._clock_warned: set[tuple[str, str, int | None, int | None]] = set()
        self.started = time.monotonic()
        self.fault: Exception | None = None  # tests inject failures to exercise `internal`
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._decision_children: dict[tuple[str, str], Any] = {}

    # ------------------------------------------------------------------ entry point
    def handle(self, raw: bytes) -> bytes:
        t0 = time.perf_counter()
        rtype: str | None = None
        try:
            req = parse_request(raw, self.max_message_bytes)
            rtype = req.type
            if isinstance(req, PredictRequest):
                reply, rec = self._predict(req)
            elif isinstance(req, HeartbeatRequest):
                reply, rec = self._heartbeat(req)
            else:
                reply, rec = self._trade_event(req)
        except ProtocolError as err:
            reply, rec = self._error(err, raw)
        except Exception as exc:
            log.exception("internal error", extra={"type": rtype})
            internal = ProtocolError(
                ErrorCode.INTERNAL,
                f"internal error: {type(exc).__name__}",
                request_type=rtype,
                request_id=_peek_request_id(raw),
            )
            reply, rec = self._error(internal, raw)
        body = orjson.dumps(reply)
        elapsed = time.perf_counter() - t0
        rec.latency_us = int(elapsed * 1e6)
        rec.reply = body
        self.journal.record_request(rec)
        key = (rtype or "unknown", reply.get("code") or "ok")
        children = self._children.get(key)
        if children is None:  # label lookups cost µs; resolve each combination once
            children = (
                self.metrics.requests.labels(*key),
                self.metrics.latency.labels(key[0]),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)
        return body

    def internal_error_reply(self, raw: bytes, exc: BaseException) -> bytes:
        """Last resort for the transport loop if :meth:`handle` itself broke."""
        return orjson.dumps(
            _error_dict(
                ProtocolError(
                    ErrorCode.INTERNAL,
                    f"internal error: {type(exc).__name__}",
                    request_id=_peek_request_id(raw),
                )
            )
        )

    # ------------------------------------------------------------------ messages
    def _predict(self, req: PredictRequest) -> tuple[dict[str, Any], RequestRecord]:
        slot = self.models.get(req.symbol, req.timeframe)
        if slot is None:
            raise self._unknown(req.symbol, req.timeframe, "predict", req.request_id)
        served = slot.current  # one read: the swap can't split this request across versions
        model, info = served.model, served.info
        if slot.no_champion:
            return self._no_champion(req, info)
        clock = self._check_clock("predict", info, model, req.utc_offset_s)
        if clock == "mismatch" and self.clock_mismatch == "refuse":
            model_offset = _model_utc_offset(model)
            raise ProtocolError(
                ErrorCode.CLOCK_MISMATCH,
                f"broker UTC offset {req.utc_offset_s} s differs from the {model_offset} s of "
                f"model {info.name} v{info.version}'s training data: hour and weekday features "
                "would be shifted (serve.clock_mismatch: refuse)",
                details={"utc_offset_s": req.utc_offset_s, "model_utc_offset_s": model_offset},
                request_type="predict",
                request_id=req.request_id,
            )
        arr = req.array
        need = int(model.min_bars)
        if len(arr) < need:
            raise ProtocolError(
                ErrorCode.TOO_FEW_BARS,
                f"got {len(arr)} candles, model {info.name} v{info.version} needs {need}",
                details={"got": len(arr), "min_bars": need},
                request_type="predict",
                request_id=req.request_id,
            )
        if self.fault is not None:
            raise self.fault
        w = arr[-need:]
        try:
            with np.errstate(all="ignore"):  # absurd inputs: answer bad_candles, not stderr spam
                d = model.decide(
                    w[:, 0],
                    w[:, 1],
                    w[:, 2],
                    w[:, 3],
                    w[:, 4],
                    w[:, 5],
                    spread_points=req.spread_points,
                )
        except ValueError as exc:  # the model refuses these numbers (non-finite features)
            raise ProtocolError(
                ErrorCode.BAD_CANDLES,
                f"model cannot use these candles: {exc}",
                details={"index": None, "reason": str(exc)},
                request_type="predict",
                request_id=req.request_id,
            ) from None
        digits = int(model.digits)
        sl, tp = _num(d.sl), _num(d.tp)
        sl_points, tp_points = _num(d.sl_points), _num(d.tp_points)
        action, reason = d.action, d.reason
        probs = d.probabilities
        bar_time = int(arr[-1, 0])
        drift = self.drift
        if drift is not None:
            key = slot.key
            drift.submit(key, model, w)  # binned and scored on the drift thread
            if action != "HOLD" and drift.holding.get(key, False):
                action, reason = "HOLD", "drift"  # serve.drift.hold_above exceeded
                sl = tp = sl_points = tp_points = None
        reply = {
            "protocol_version": PROTOCOL_VERSION,
            "request_id": req.request_id,
            "status": "ok",
            "type": "predict",
            "symbol": info.symbol,
            "timeframe": info.timeframe,
            "bar_time": bar_time,
            "action": action,
            "confidence": float(d.confidence),
            "p_buy": float(probs["BUY"]),
            "p_sell": float(probs["SELL"]),
            "p_hold": float(probs["HOLD"]),
            "sl": None if sl is None else round(sl, digits),
            "tp": None if tp is None else round(tp, digits),
            "sl_points": sl_points,
            "tp_points": tp_points,
            "reason": reason,
            "model": info.name,
            "model_version": str(info.version),
        }
        dkey = (info.name, action)
        counter = self._decision_children.get(dkey)
        if counter is None:
            counter = self._decision_children[dkey] = self.metrics.decisions.labels(*dkey)
        counter.inc()
        if self.shadow is not None:  # the challenger answers on its own thread
            self.shadow.submit(slot.key, w, req, action, str(info.version))
        summary = {
            "n": len(arr),
            "bar_time": bar_time,
            "spread_points": req.spread_points,
            "confidence": round(float(d.confidence), 4),
            # The newest closed bar as the EA sent it [time, o, h, l, c, v]: consecutive
            # predicts rebuild the EA's bars for `aibridge reconcile`.
            "bar": arr[-1].tolist(),
        }
        if clock == "mismatch":
            summary["clock_check"] = clock
            summary["utc_offset_s"] = req.utc_offset_s
        rec = _record("predict", req.request_id, info.symbol, info.timeframe, "ok")
        rec.action = action
        rec.model_version = str(info.version)
        rec.summary = summary
        return reply, rec

    def _no_champion(self, req: PredictRequest, info: Any) -> tuple[dict[str, Any], RequestRecord]:
        """HOLD while the configured champion alias does not exist (nothing passed the
        gate): never the challenger's decision."""
        arr = req.array
        bar_time = int(arr[-1, 0]) if len(arr) else 0
        reply = {
            "protocol_version": PROTOCOL_VERSION,
            "request_id": req.request_id,
            "status": "ok",
            "type": "predict",
            "symbol": info.symbol,
            "timeframe": info.timeframe,
            "bar_time": bar_time,
            "action": "HOLD",
            "confidence": 0.0,
            "p_buy": 0.0,
            "p_sell": 0.0,
            "p_hold": 0.0,
            "sl": None,
            "tp": None,
            "sl_points": None,
            "tp_points": None,
            "reason": NO_CHAMPION,
            "model": info.name,
            "model_version": "none",
        }
        dkey = (info.name, "HOLD")
        counter = self._decision_children.get(dkey)
        if counter is None:
            counter = self._decision_children[dkey] = self.metrics.decisions.labels(*dkey)
        counter.inc()
        rec = _record("predict", req.request_id, info.symbol, info.timeframe, "ok")
        rec.action = "HOLD"
        rec.summary = {"n": len(arr), "bar_time": bar_time, "reason": NO_CHAMPION}
        return reply, rec

    def _heartbeat(self, req: HeartbeatRequest) -> tuple[dict[str, Any], RequestRecord]:
        now = time.time()
        self.metrics.last_heartbeat.set(now)
        slot = None
        if req.symbol is not None or req.timeframe is not None:
            if req.symbol is None or req.timeframe is None:
                raise ProtocolError(
                    ErrorCode.SCHEMA,
                    "heartbeat needs both symbol and timeframe, or neither",
                    request_type="heartbeat",
                    request_id=req.request_id,
                )
            slot = self.models.get(req.symbol, req.timeframe)
            if slot is None:
                raise self._unknown(req.symbol, req.timeframe, "heartbeat", req.request_id)
        elif len(self.models.slots) == 1:
            slot = next(iter(self.models.slots.values()))
        reply: dict[str, Any] = {
            "protocol_version": PROTOCOL_VERSION,
            "request_id": req.request_id,
            "status": "ok",
            "type": "heartbeat",
            "server_version": aibridge.__version__,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "server_time": int(now),
            "model": None,
            "min_bars": None,
            "digits": None,
            "point": None,
            "sl_atr_mult": None,
            "tp_atr_mult": None,
            "risk": None,
            "instrument": None,
            "utc_offset_s": None,
            "clock_check": "unknown",
            "reconcile": None,
            "model_status": "ok",
            "model_error": None,
            "models": self.models.describe(),
        }
        version = None
        if req.positions is not None:
            if req.symbol is None:
                raise ProtocolError(
                    ErrorCode.SCHEMA,
                    "positions need the heartbeat's symbol and timeframe (the ledger key)",
                    request_type="heartbeat",
                    request_id=req.request_id,
                )
            result = self.ledger.reconcile(req.account, req.magic, req.symbol, req.positions)
            reply["reconcile"] = result.counts()
        if slot is not None:
            served = slot.current
            model, info = served.model, served.info
            version = str(info.version)
            model_offset = _model_utc_offset(model)
            reply.update(
                model={
                    "name": info.name,
                    "version": version,
                    "alias": info.alias,
                    "run_id": info.run_id,
                    "trained_at": info.trained_at,
                    "data_hash": info.data_hash,
                    "symbol": info.symbol,
                    "timeframe": info.timeframe,
                },
                min_bars=int(model.min_bars),
                digits=int(model.digits),
                point=float(model.point),
                sl_atr_mult=float(model.sl_atr_mult),
                tp_atr_mult=float(model.tp_atr_mult),
                risk={**self.risk, "min_confidence": float(model.min_confidence)},
                instrument={
                    "digits": int(model.digits),
                    "point": float(model.point),
                    "tick_size": _num(getattr(model, "tick_size", None)),
                    "contract_size": _num(getattr(model, "contract_size", None)),
                },
                utc_offset_s=model_offset,
                clock_check=self._check_clock("heartbeat", info, model, req.utc_offset_s),
                model_status=slot_status(slot),
                model_error=slot.no_champion or slot.error,
            )
        rec = _record("heartbeat", req.request_id, req.symbol, req.timeframe, "ok")
        rec.model_version = version
        summary = {
            "client": req.client,
            "account": req.account,
            "magic": req.magic,
            "utc_offset_s": req.utc_offset_s,
            "clock_check": reply["clock_check"] if req.utc_offset_s is not None else None,
            "positions": None if req.positions is None else len(req.positions),
            "reconcile": reply["reconcile"],
        }
        rec.summary = {k: v for k, v in summary.items() if v is not None} or None
        return reply, rec

    def _check_clock(self, rtype: str, info: Any, model: Any, ea_offset: int | None) -> str:
        """``ok`` / ``mismatch`` / ``unknown``; a mismatch counts and is logged once per pair."""
        model_offset = _model_utc_offset(model)
        result = clock_check(ea_offset, model_offset)
        if result == "mismatch":
            assert ea_offset is not None and model_offset is not None
            self.metrics.clock_mismatches.labels(rtype, info.symbol, info.timeframe).inc()
            ea_zone = round(ea_offset / UTC_OFFSET_STEP_S) * UTC_OFFSET_STEP_S  # lag varies
            seen = (info.symbol, info.timeframe, ea_zone, model_offset)
            if seen not in self._clock_warned:
                self._clock_warned.add(seen)
                log.warning(
                    f"{info.symbol} {info.timeframe}: the EA's broker is at UTC{ea_zone:+d} s, "
                    f"model {info.name} v{info.version} was trained on UTC{model_offset:+d} s "
                    f"data; hour/weekday features are shifted "
                    f"({'refusing decisions' if self.clock_mismatch == 'refuse' else 'answering'})",
                    extra={
                        "symbol": info.symbol,
                        "utc_offset_s": ea_offset,
                        "model_utc_offset_s": model_offset,
                    },
                )
        return result

    def _trade_event(self, req: TradeEventRequest) -> tuple[dict[str, Any], RequestRecord]:
        values = req.model_dump(exclude={"type", "protocol_version"})
        values["ts"] = time.time()
        event_id = self.journal.record_trade_event(values)
        reply = {
            "protocol_version": PROTOCOL_VERSION,
            "request_id": req.request_id,
            "status": "ok",
            "type": "trade_event",
            "event": req.event,
            "event_id": event_id,
        }
        rec = _record("trade_event", req.request_id, req.symbol, req.timeframe, "ok")
        rec.model_version = req.model_version
        rec.summary = {"event": req.event, "ticket": req.ticket, "event_id": event_id}
        if req.reason is not None:
            rec.summary["reason"] = req.reason
        return reply, rec

    # ------------------------------------------------------------------ errors
    def _unknown(self, symbol: str, timeframe: str, rtype: str, rid: str | None) -> ProtocolError:
        served = self.models.served_names()
        return ProtocolError(
            ErrorCode.UNKNOWN_MODEL,
            f"no model served for {symbol} {timeframe} (served: {', '.join(served) or 'none'})",
            details={"symbol": symbol, "timeframe": timeframe, "served": served},
            request_type=rtype,
            request_id=rid,
        )

    def _error(self, err: ProtocolError, raw: bytes) -> tuple[dict[str, Any], RequestRecord]:
        rec = _record(err.request_type, err.request_id, None, None, "error")
        rec.code = err.code.value
        rec.summary = {"size": len(raw), "head": raw[:160].decode("utf-8", "replace")}
        return _error_dict(err), rec


def _model_utc_offset(model: Any, at: float | None = None) -> int | None:
    """The UTC offset the model's training broker has at ``at`` (default now; its DST rule
    applied when the model records one), ``None`` when the model does not record it."""
    offset_at = getattr(model, "broker_utc_offset_at", None)
    if callable(offset_at):
        value = offset_at(time.time() if at is None else at)
    else:
        value = getattr(model, "broker_utc_offset_s", None)
    return None if value is None else int(value)


def _error_dict(err: ProtocolError) -> dict[str, Any]:
    return {
        "protocol_version": PROTOCOL_VERSION,
        "request_id": err.request_id,
        "status": "error",
        "type": err.request_type,
        "code": err.code.value,
        "message": err.message,
        "details": err.details,
    }


def _record(
    rtype: str | None, rid: str | None, symbol: str | None, timeframe: str | None, status: str
) -> RequestRecord:
    return RequestRecord(
        ts=time.time(),
        type=rtype,
        request_id=rid,
        symbol=symbol,
        timeframe=timeframe,
        status=status,
        code=None,
        action=None,
        model_version=None,
        latency_us=0,
        summary=None,
        reply=b"",
    )


def _peek_request_id(raw: bytes) -> str | None:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    rid = obj.get("request_id") if isinstance(obj, dict) else None
    return rid if isinstance(rid, str) and len(rid) <= 64 else None
