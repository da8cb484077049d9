"""Protocol v1 between the MT4 Expert Advisor and the signal server.

One JSON object per ZeroMQ message, UTF-8, REQ/REP: every request gets exactly one reply.
The models here are the single source of truth: the server validates with them, the docs'
JSON Schema is generated from them (``python -m aibridge.protocol``) and the golden fixtures
in ``tests/fixtures/protocol/`` are checked against them.

Candles travel as compact arrays ``[time, open, high, low, close, volume]`` (oldest first),
because an MQL4 EA builds them cheaply with string concatenation and the server turns them
into one numpy array without per-field object overhead.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from itertools import chain
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.json_schema import models_json_schema
from pydantic_core import PydanticCustomError

PROTOCOL_VERSION = 1
#: Default ceiling for one request; larger ones get ``payload_too_large``.
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576
#: Hard cap on candles per predict request (a 10k-candle request is ~700 kB of JSON).
MAX_CANDLES = 10_000

TIMEFRAMES: tuple[str, ...] = ("M1", "M5", "M15", "M30", "H1", "H4", "D1", "W1", "MN1")
#: MT4 ``Period()`` minutes → protocol timeframe name (what the EA sends).
MT4_PERIOD_MINUTES: dict[int, str] = {
    1: "M1",
    5: "M5",
    15: "M15",
    30: "M30",
    60: "H1",
    240: "H4",
    1440: "D1",
    10080: "W1",
    43200: "MN1",
}


class ErrorCode(StrEnum):
    """Stable error codes: the EA branches on these, so never rename one."""

    BAD_JSON = "bad_json"
    SCHEMA = "schema"
    TOO_FEW_BARS = "too_few_bars"
    BAD_CANDLES = "bad_candles"
    UNKNOWN_MODEL = "unknown_model"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    CLOCK_MISMATCH = "clock_mismatch"
    INTERNAL = "internal"


class ProtocolError(Exception):
    """A request that must be answered with an error reply (never a dropped request)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        request_type: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.request_type = request_type
        self.request_id = request_id


Symbol = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._#+\-]{1,32}$")]
Timeframe = Literal["M1", "M5", "M15", "M30", "H1", "H4", "D1", "W1", "MN1"]
RequestId = Annotated[str, StringConstraints(max_length=64)]
Candle = Annotated[list[float], Field(min_length=6, max_length=6)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
#: ``TimeCurrent() - TimeGMT()`` in seconds. Wide bounds on purpose: at the weekend MT4's
#: ``TimeCurrent()`` is Friday's last quote, so the EA's value can be days off; the server
#: treats anything beyond ±14 h as unknown (see :func:`clock_check`) instead of rejecting it.
UtcOffset = Annotated[int, Field(ge=-(10**7), le=10**7)]
#: Most open positions one heartbeat may carry (the EA's positions for its magic and symbol).
MAX_POSITIONS = 200
#: Absurd-price bound: every open/high/low/close of a predict request must lie within this
#: factor of the median close of the candles sent (see docs/protocol.md, ``bad_candles``).
PRICE_RANGE_FACTOR = 100.0
#: Largest believable broker UTC offset (UTC+14, Kiribati); offsets are compared rounded to
#: :data:`UTC_OFFSET_STEP_S` because ``TimeCurrent()`` lags the broker clock by up to one quote.
MAX_UTC_OFFSET_S = 14 * 3600
UTC_OFFSET_STEP_S = 900


# --------------------------------------------------------------------------- requests


class _Request(BaseModel):
    """Common request envelope: strict types, unknown fields rejected to catch EA typos."""

    model_config = ConfigDict(strict=True, extra="forbid")

    protocol_version: Literal[1] = 1
    request_id: RequestId | None = None


class Position(BaseModel):
    """One open position of the EA (its magic, its symbol), as MT4's order pool shows it."""

    model_config = ConfigDict(strict=True, extra="forbid")

    ticket: int
    side: Literal["BUY", "SELL"]
    lots: Annotated[FiniteFloat, Field(gt=0)]
    open_price: Annotated[FiniteFloat, Field(gt=0)]
    sl: FiniteFloat | None = Field(default=None, description="null or 0 = no stop loss")
    tp: FiniteFloat | None = Field(default=None, description="null or 0 = no take profit")
    open_time: int = Field(description="OrderOpenTime(), broker seconds")


class HeartbeatRequest(_Request):
    """Liveness + configuration pull; the EA sends it on init and on a timer.

    With ``positions`` it is also the EA's side of the ledger reconciliation.
    """

    type: Literal["heartbeat"]
    symbol: Symbol | None = None
    timeframe: Timeframe | None = None
    client: Annotated[str, StringConstraints(max_length=128)] | None = None
    account: int | None = None
    magic: int | None = None
    utc_offset_s: UtcOffset | None = None
    positions: Annotated[list[Position], Field(max_length=MAX_POSITIONS)] | None = None


class PredictRequest(_Request):
    """Decision request for the last closed bar of ``candles``."""

    type: Literal["predict"]
    symbol: Symbol
    timeframe: Timeframe
    candles: Annotated[list[Candle], Field(min_length=1, max_length=MAX_CANDLES)]
    spread_points: Annotated[FiniteFloat, Field(ge=0)] | None = None
    utc_offset_s: UtcOffset | None = None

    _array: np.ndarray = PrivateAttr()

    @model_validator(mode="after")
    def _check_candles(self) -> PredictRequest:
        self._array = validate_candles(self.candles)
        return self

    @property
    def array(self) -> np.ndarray:
        """Validated candles, float64 ``(n, 6)``: time, open, high, low, close, volume."""
        return self._array


TradeEventKind = Literal["order_sent", "filled", "rejected", "modified", "closed"]


class TradeEventRequest(_Request):
    """What the EA did with a decision; persisted in the journal, acknowledged."""

    type: Literal["trade_event"]
    event: TradeEventKind
    symbol: Symbol
    timeframe: Timeframe | None = None
    ticket: int | None = None
    side: Literal["BUY", "SELL"] | None = None
    price: FiniteFloat | None = None
    lots: Annotated[FiniteFloat, Field(ge=0)] | None = None
    sl: FiniteFloat | None = None
    tp: FiniteFloat | None = None
    profit: FiniteFloat | None = None
    error_code: int = 0
    magic: int | None = None
    time: int | None = None
    model_version: Annotated[str, StringConstraints(max_length=32)] | None = None
    comment: Annotated[str, StringConstraints(max_length=256)] | None = None
    account: int | None = None
    reason: Annotated[str, StringConstraints(max_length=32)] | None = Field(
        default=None,
        description="closed: signal | time | sl | tp | unprotected | external; else free text",
    )
    seq: Annotated[int, Field(ge=0)] | None = None
    remainder_ticket: int | None = Field(
        default=None, description="partial close: the ticket MT4 gave the remaining lots"
    )


Request = Annotated[
    HeartbeatRequest | PredictRequest | TradeEventRequest, Field(discriminator="type")
]
REQUEST_TYPES: tuple[str, ...] = ("heartbeat", "predict", "trade_event")
_REQUEST_ADAPTER: TypeAdapter[HeartbeatRequest | PredictRequest | TradeEventRequest] = TypeAdapter(
    Request
)


def validate_candles(rows: list[list[float]]) -> np.ndarray:
    """Turn candle rows into an array, rejecting what no real chart can produce.

    One cheap vectorised pass for the common valid case; the slower per-rule pass only
    runs to name the first offending candle.
    """
    arr = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=6 * len(rows))
    arr = arr.reshape(-1, 6)
    t, o, h, lo, c, v = arr.T
    ok = (
        bool(np.isfinite(arr).all())
        and t[0] > 0
        and bool((np.diff(t) > 0).all())
        and bool((t == np.floor(t)).all())
        and bool((lo > 0).all())
        and bool((h >= np.maximum(o, c)).all())
        and bool((lo <= np.minimum(o, c)).all())
        and bool((v >= 0).all())
    )
    if ok:
        lo_ok, hi_ok = price_bounds(c)
        ok = bool(lo.min() >= lo_ok) and bool(h.max() <= hi_ok)
    if not ok:
        _explain_bad_candles(arr)
    return arr


def price_bounds(close: np.ndarray) -> tuple[float, float]:
    """The believable price range of a request: a factor of 100 around its median close.

    The median ignores a few corrupt values, and a factor of 100 keeps every real chart
    (a 10 % weekend gap, a currency peg breaking, a decade of a trending index) while a high
    of 1e308 or a price 1000x the others is refused.

    >>> price_bounds(np.array([2.0, 1.0, 3.0]))
    (0.02, 200.0)
    """
    ref = float(np.median(close))
    return ref / PRICE_RANGE_FACTOR, ref * PRICE_RANGE_FACTOR


def _explain_bad_candles(arr: np.ndarray) -> None:
    """Raise naming the first candle that breaks the first violated rule."""
    t, o, h, lo, c, v = arr.T
    checks: list[tuple[np.ndarray, str]] = [
        (~np.isfinite(arr).all(axis=1), "non-finite value"),
        ((t <= 0) | (t != np.floor(t)), "time must be a positive whole number of seconds"),
        (
            np.concatenate([[False], np.diff(t) <= 0]),
            "time not after previous candle (unsorted or duplicate)",
        ),
        ((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0), "prices must be positive"),
        (
            (h < np.maximum(o, c)) | (lo > np.minimum(o, c)),
            "impossible OHLC (high < max(open, close) or low > min(open, close))",
        ),
        (v < 0, "volume must be >= 0"),
    ]
    for bad, reason in checks:
        if bad.any():
            _bad_candle(int(np.argmax(bad)), reason)
    lo_ok, hi_ok = price_bounds(c)
    outside = (lo < lo_ok) | (h > hi_ok)
    if outside.any():
        i = int(np.argmax(outside))
        name, value = ("low", lo[i]) if lo[i] < lo_ok else ("high", h[i])
        _bad_candle(
            i,
            f"{name} {value:.6g} is outside {lo_ok:.6g} .. {hi_ok:.6g} (the median close "
            f"{float(np.median(c)):.6g} divided and multiplied by {PRICE_RANGE_FACTOR:g})",
        )
    _bad_candle(0, "invalid candle")  # unreachable unless the fast pass and rules disagree


def _bad_candle(index: int, reason: str) -> None:
    raise PydanticCustomError(
        "bad_candles", "candle {index}: {reason}", {"index": index, "reason": reason}
    )


def parse_request(
    raw: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> HeartbeatRequest | PredictRequest | TradeEventRequest:
    """Decode and validate one request; any failure becomes a :class:`ProtocolError`."""
    if len(raw) > max_bytes:
        raise ProtocolError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"message is {len(raw)} bytes, limit is {max_bytes}",
            details={"size": len(raw), "limit": max_bytes},
        )
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.SCHEMA, "a request must be a JSON object")
    rtype = obj.get("type")
    rtype = rtype if isinstance(rtype, str) and rtype in REQUEST_TYPES else None
    rid = obj.get("request_id")
    rid = rid if isinstance(rid, str) and len(rid) <= 64 else None
    try:
        return _REQUEST_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise _from_validation_error(exc, rtype, rid) from None


def _from_validation_error(
    exc: ValidationError, rtype: str | None, rid: str | None
) -> ProtocolError:
    errors = exc.errors(include_url=False, include_input=False)
    candle = [e for e in errors if e["type"] == "bad_candles"]
    if candle:
        ctx = candle[0].get("ctx", {})
        return ProtocolError(
            ErrorCode.BAD_CANDLES,
            candle[0]["msg"],
            details={"index": ctx.get("index"), "reason": ctx.get("reason")},
            request_type=rtype,
            request_id=rid,
        )
    shown = [
        {"loc": ".".join(str(p) for p in e["loc"][1:]) or "type", "msg": e["msg"]}
        for e in errors[:5]
    ]
    first = shown[0]
    return ProtocolError(
        ErrorCode.SCHEMA,
        f"{first['loc']}: {first['msg']}"
        + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""),
        details={"errors": shown},
        request_type=rtype,
        request_id=rid,
    )


# --------------------------------------------------------------------------- replies


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protocol_version: int = PROTOCOL_VERSION
    request_id: str | None = None

    def to_bytes(self) -> bytes:
        """Serialise in Rust (pydantic-core); ~µs, and never emits NaN."""
        return self.model_dump_json().encode()


class ModelMeta(BaseModel):
    """Which registered model version answers; mirrored in every heartbeat."""

    name: str
    version: str
    alias: str | None = None
    run_id: str
    trained_at: str
    data_hash: str
    symbol: str
    timeframe: str


class RiskBlock(BaseModel):
    """Risk rules from ``conf/risk``: one source for the EA, emulator and backtest."""

    risk_per_trade_pct: float
    max_spread_points: float
    max_daily_drawdown_pct: float
    max_open_positions: int
    max_total_lots: float
    min_confidence: float = Field(description="the served model's threshold")
    trading_start_hour: int = Field(default=0, description="server time, inclusive")
    trading_end_hour: int = Field(default=24, description="server time, exclusive; wraps")
    min_lot_policy: Literal["skip", "use_min"] = "skip"
    close_on_opposite: bool = Field(
        default=True, description="an opposite signal closes the position at the next open"
    )
    max_hold_bars: int = Field(
        default=24, description="close at the open this many bars after entry; 0 = never"
    )
    exposure_policy: Literal["shrink", "skip"] = Field(
        default="shrink", description="an order past max_total_lots: shrink it to fit, or skip it"
    )


class InstrumentBlock(BaseModel):
    """The served model's training instrument; the EA refuses to trade when its broker differs."""

    digits: int
    point: float
    tick_size: float | None = Field(description="null when the model does not record it")
    contract_size: float | None = Field(description="null when the model does not record it")


class ReconcileBlock(BaseModel):
    """Ledger reconciliation of the heartbeat's ``positions`` (details in the journal)."""

    orphans: int = Field(description="EA positions without a filled event on the server")
    unprotected: int = Field(description="EA positions without a stop loss")
    missing_closes: int = Field(
        description="ledger-open tickets absent from two consecutive heartbeats"
    )


class ServedModel(BaseModel):
    """One entry of the heartbeat's ``models`` list (a process may serve several)."""

    symbol: str
    timeframe: str
    name: str
    version: str
    alias: str | None = None
    min_bars: int
    model_status: Literal["ok", "reload_failed", "no_champion"] = "ok"
    model_error: str | None = None


class HeartbeatReply(_Reply):
    """Server liveness, the model for the EA's symbol/timeframe, and the risk rules."""

    status: Literal["ok"] = "ok"
    type: Literal["heartbeat"] = "heartbeat"
    server_version: str
    uptime_s: float
    server_time: int = Field(description="server clock, unix seconds (UTC)")
    model: ModelMeta | None = Field(
        description="null only if no symbol/timeframe was sent and several models are served"
    )
    min_bars: int | None = Field(description="candles the EA must send with predict")
    digits: int | None = None
    point: float | None = None
    sl_atr_mult: float | None = None
    tp_atr_mult: float | None = None
    risk: RiskBlock | None = None
    instrument: InstrumentBlock | None = None
    utc_offset_s: int | None = Field(
        default=None, description="broker UTC offset of the model's training data; null = unknown"
    )
    clock_check: Literal["ok", "mismatch", "unknown"] = "unknown"
    reconcile: ReconcileBlock | None = Field(
        default=None, description="null unless the request carried positions"
    )
    model_status: Literal["ok", "reload_failed", "no_champion"] = "ok"
    model_error: str | None = Field(
        default=None,
        description="last failed reload (the old version keeps serving), or why there is no "
        "champion",
    )
    models: list[ServedModel]


class PredictReply(_Reply):
    """Decision for the last candle sent; SL/TP as prices and as point distances."""

    status: Literal["ok"] = "ok"
    type: Literal["predict"] = "predict"
    symbol: str
    timeframe: str
    bar_time: int = Field(description="time of the last candle the decision is for")
    action: Literal["BUY", "SELL", "HOLD"]
    confidence: float
    p_buy: float
    p_sell: float
    p_hold: float
    sl: float | None = Field(description="stop-loss price rounded to digits; null for HOLD")
    tp: float | None = Field(description="take-profit price rounded to digits; null for HOLD")
    sl_points: float | None
    tp_points: float | None
    reason: str = Field(description="signal | below_min_confidence | ...")
    model: str
    model_version: str


class TradeEventReply(_Reply):
    """Acknowledges a persisted trade event."""

    status: Literal["ok"] = "ok"
    type: Literal["trade_event"] = "trade_event"
    event: str
    event_id: int = Field(description="journal row id")


class ErrorReply(_Reply):
    """Every failure, with a stable ``code`` the EA can branch on."""

    status: Literal["error"] = "error"
    type: str | None = Field(description="request type if it could be read, else null")
    code: ErrorCode
    message: str
    details: dict[str, Any] | None = None

    @classmethod
    def from_error(cls, err: ProtocolError) -> ErrorReply:
        return cls(
            type=err.request_type,
            request_id=err.request_id,
            code=err.code,
            message=err.message,
            details=err.details,
        )


def clock_check(ea_offset_s: int | None, model_offset_s: int | None) -> str:
    """Compare the EA's broker UTC offset with the model's: ``ok``, ``mismatch`` or ``unknown``.

    The EA sends ``TimeCurrent() - TimeGMT()``; ``TimeCurrent()`` is the last quote's time, so
    the value lags by seconds to minutes and is compared rounded to 15 minutes (every real
    time zone is a multiple of that). Beyond ±14 h it is a stale quote (the weekend), not a
    clock: ``unknown``, as is a model that does not record its offset.

    >>> clock_check(7205, 7200), clock_check(10800, 7200), clock_check(7200, None)
    ('ok', 'mismatch', 'unknown')
    >>> clock_check(7200 + 2 * 86400, 7200)  # Saturday: TimeCurrent() is Friday's close
    'unknown'
    """
    if ea_offset_s is None or model_offset_s is None:
        return "unknown"
    step = UTC_OFFSET_STEP_S
    ea = round(ea_offset_s / step) * step
    if abs(ea) > MAX_UTC_OFFSET_S:
        return "unknown"
    return "ok" if ea == round(model_offset_s / step) * step else "mismatch"


REPLY_MODELS: dict[str, type[HeartbeatReply] | type[PredictReply] | type[TradeEventReply]] = {
    "heartbeat": HeartbeatReply,
    "predict": PredictReply,
    "trade_event": TradeEventReply,
}


def parse_reply(raw: bytes) -> HeartbeatReply | PredictReply | TradeEventReply | ErrorReply:
    """Client side (emulator, tests): decode a reply into its model."""
    obj = orjson.loads(raw)
    if obj.get("status") == "error":
        return ErrorReply.model_validate(obj)
    return REPLY_MODELS[obj["type"]].model_validate(obj)


# --------------------------------------------------------------------------- schema


def protocol_json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of every request and reply, for docs and non-Python clients."""
    models: list[type[BaseModel]] = [
        HeartbeatRequest,
        PredictRequest,
        TradeEventRequest,
        HeartbeatReply,
        PredictReply,
        TradeEventReply,
        ErrorReply,
    ]
    _, defs = models_json_schema([(m, "serialization") for m in models[3:]])
    _, req_defs = models_json_schema([(m, "validation") for m in models[:3]])
    all_defs = {**defs.get("$defs", {}), **req_defs.get("$defs", {})}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://aibridge/protocol/v1",
        "title": f"aibridge protocol v{PROTOCOL_VERSION}",
        "description": "Requests (EA → server) and replies (server → EA). See docs/protocol.md.",
        "$defs": all_defs,
        "properties": {
            "request": {"oneOf": [{"$ref": f"#/$defs/{m.__name__}"} for m in models[:3]]},
            "reply": {"oneOf": [{"$ref": f"#/$defs/{m.__name__}"} for m in models[3:]]},
        },
    }


def main(argv: list[str] | None = None) -> None:
    """Write the JSON Schema: ``python -m aibridge.protocol docs/protocol.schema.json``."""
    args = sys.argv[1:] if argv is None else argv
    text = json.dumps(protocol_json_schema(), indent=2, sort_keys=True) + "\n"
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
