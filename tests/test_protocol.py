"""Protocol v1 models: fixtures, schema file, and every validation rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aibridge.protocol import (
    REPLY_MODELS,
    ErrorCode,
    ErrorReply,
    HeartbeatRequest,
    PredictRequest,
    ProtocolError,
    TradeEventRequest,
    parse_reply,
    parse_request,
    protocol_json_schema,
)
from tests.protocol_fixtures import fixture_request_bytes, load_fixtures, sample_candles

FIXTURES = load_fixtures()
SCHEMA_FILE = Path(__file__).parents[1] / "docs" / "protocol.schema.json"


def _predict(candles: list[list[float]], **extra: object) -> bytes:
    msg = {"type": "predict", "symbol": "EURUSD", "timeframe": "H1", "candles": candles}
    return orjson.dumps(msg | extra)


def _code(raw: bytes) -> ErrorCode:
    with pytest.raises(ProtocolError) as info:
        parse_request(raw)
    return info.value.code


def test_every_error_code_has_a_fixture() -> None:
    codes = {f["reply"].get("code") for f in FIXTURES.values()}
    assert {c.value for c in ErrorCode} <= codes


def test_every_message_type_has_a_fixture() -> None:
    types = {f["reply"]["type"] for f in FIXTURES.values() if f["reply"]["status"] == "ok"}
    assert types == set(REPLY_MODELS)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_reply_is_valid(name: str) -> None:
    fx = FIXTURES[name]
    reply = parse_reply(orjson.dumps(fx["reply"]))
    assert reply.model_dump(mode="json") == fx["reply"]
    assert set(fx["compare"]) <= set(fx["reply"])


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_request_parses_to_its_reply_code(name: str) -> None:
    """Errors decidable without a model are raised by the parser with the fixture's code."""
    fx = FIXTURES[name]
    raw = fixture_request_bytes(fx)
    code = fx["reply"].get("code")
    if code in {"bad_json", "schema", "bad_candles", "payload_too_large"}:
        with pytest.raises(ProtocolError) as info:
            parse_request(raw)
        err = ErrorReply.from_error(info.value).model_dump(mode="json")
        for key in fx["compare"]:
            assert err[key] == fx["reply"][key], key
    else:
        req = parse_request(raw)
        assert req.type == fx["request"]["type"]
        assert req.request_id == fx["request"]["request_id"]


def test_schema_file_is_current() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == protocol_json_schema()


def test_predict_array_matches_candles() -> None:
    rows = sample_candles(50)
    req = parse_request(_predict(rows))
    assert isinstance(req, PredictRequest)
    assert req.array.shape == (50, 6)
    assert req.array[:, 0].tolist() == [r[0] for r in rows]
    assert req.array[-1].tolist() == [float(x) for x in rows[-1]]


def test_heartbeat_and_trade_event_defaults() -> None:
    hb = parse_request(b'{"type":"heartbeat"}')
    assert isinstance(hb, HeartbeatRequest)
    assert (hb.protocol_version, hb.symbol, hb.request_id) == (1, None, None)
    te = parse_request(b'{"type":"trade_event","event":"closed","symbol":"EURUSD","profit":-3.5}')
    assert isinstance(te, TradeEventRequest)
    assert (te.error_code, te.profit) == (0, -3.5)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r[3].__setitem__(0, r[2][0]), "unsorted or duplicate"),
        (lambda r: r[3].__setitem__(0, r[2][0] - 60), "unsorted or duplicate"),
        (lambda r: r[3].__setitem__(0, r[3][0] + 0.5), "whole number"),
        (lambda r: r[0].__setitem__(0, -3600), "whole number"),
        (lambda r: r[3].__setitem__(2, r[3][1] - 0.01), "impossible OHLC"),
        (lambda r: r[3].__setitem__(3, r[3][4] + 0.01), "impossible OHLC"),
        (lambda r: r[3].__setitem__(1, 0.0), "positive"),
        (lambda r: r[3].__setitem__(5, -1), "volume"),
    ],
)
def test_bad_candles_rules(mutate, reason: str) -> None:
    rows = sample_candles(10)
    mutate(rows)
    with pytest.raises(ProtocolError) as info:
        parse_request(_predict(rows))
    assert info.value.code is ErrorCode.BAD_CANDLES
    assert reason in info.value.message
    assert info.value.details is not None and info.value.details["index"] in (0, 3)


def test_non_finite_values_never_get_through() -> None:
    rows = sample_candles(5)
    text = _predict(rows).replace(str(rows[2][4]).encode(), b"NaN", 1)
    assert _code(text) is ErrorCode.BAD_JSON
    text = _predict(rows).replace(str(rows[2][4]).encode(), b"1e999", 1)
    assert _code(text) is ErrorCode.BAD_JSON
    # a validator call with Python floats (not via JSON) still rejects them
    from aibridge.protocol import validate_candles

    rows[2][4] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        validate_candles(rows)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"heartbeat","protocol_version":2}',
        b'{"type":"heartbeat","extra":1}',
        b'{"type":"heartbeat","symbol":"EUR USD"}',
        b'{"type":"heartbeat","timeframe":"H2"}',
        b'{"type":"ping"}',
        b'{"request_id":"x"}',
        b"[1,2]",
        b'"heartbeat"',
        b'{"type":"trade_event","event":"filled","symbol":"EURUSD","ticket":1.5}',
        b'{"type":"trade_event","event":"exploded","symbol":"EURUSD"}',
        b'{"type":"predict","symbol":"EURUSD","timeframe":"H1","candles":[]}',
        b'{"type":"predict","symbol":"EURUSD","timeframe":"H1","candles":[[1,1,1,1,1]]}',
        b'{"type":"predict","symbol":"EURUSD","timeframe":"H1","candles":[[1,1,1,1,1,"1"]]}',
        b'{"type":"predict","symbol":"EURUSD","timeframe":"H1","candles":[[1,true,1,1,1,1]]}',
        b'{"type":"predict","symbol":"EURUSD","timeframe":"H1","candles":[[1,1,1,1,1,1]],'
        b'"spread_points":-1}',
        b'{"type":"heartbeat","request_id":1}',
    ],
)
def test_schema_errors(raw: bytes) -> None:
    assert _code(raw) is ErrorCode.SCHEMA


def test_error_reply_echoes_readable_request_id() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(b'{"type":"predict","request_id":"abc"}')
    reply = ErrorReply.from_error(info.value)
    assert (reply.request_id, reply.type, reply.code) == ("abc", "predict", ErrorCode.SCHEMA)


def test_payload_limit_is_configurable() -> None:
    raw = b'{"type":"heartbeat"}'
    assert parse_request(raw, max_bytes=len(raw)).type == "heartbeat"
    with pytest.raises(ProtocolError) as info:
        parse_request(raw, max_bytes=len(raw) - 1)
    assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE


def _dumps(value: object) -> bytes:
    """stdlib JSON: also emits what orjson refuses (huge ints, Infinity) to probe the parser."""
    return json.dumps(value).encode()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=64),
        _json_values.map(_dumps),
        st.dictionaries(
            st.sampled_from(["type", "symbol", "timeframe", "candles", "request_id", "event"]),
            _json_values,
        ).map(_dumps),
    )
)
def test_parser_only_ever_raises_protocol_errors(raw: bytes) -> None:
    """Whatever arrives, the outcome is a request or a ProtocolError with a stable code."""
    try:
        parse_request(raw)
    except ProtocolError as exc:
        assert exc.code in set(ErrorCode)
        assert ErrorReply.from_error(exc).to_bytes().startswith(b"{")


def _sample_array() -> np.ndarray:
    from aibridge.ea_sim import load_candles
    from aibridge.paths import sample_data_path

    c = load_candles(sample_data_path())
    cols = [c.time, c.open, c.high, c.low, c.close, c.volume]
    return np.column_stack([np.asarray(x, dtype=np.float64) for x in cols])


@pytest.mark.parametrize(
    ("row", "col", "value", "name"),
    [
        (30, 2, 1e308, "high"),  # a corrupt high: finite, high >= max(open, close)
        (7, 2, None, "high"),  # one candle 1000x the others (all four prices)
        (0, 3, 1e-300, "low"),  # a low of almost nothing
    ],
)
def test_absurd_prices_are_bad_candles(row: int, col: int, value: float | None, name: str) -> None:
    rows = sample_candles(41)
    if value is None:
        rows[row][1:5] = [x * 1000 for x in rows[row][1:5]]
    else:
        rows[row][col] = value
    with pytest.raises(ProtocolError) as info:
        parse_request(_predict(rows))
    assert info.value.code is ErrorCode.BAD_CANDLES
    assert info.value.details == {"index": row, "reason": info.value.details["reason"]}
    median = float(np.median([r[4] for r in rows]))
    assert info.value.message.startswith(f"candle {row}: {name} ")
    assert f"{median / 100:.6g} .. {median * 100:.6g}" in info.value.message


def test_price_bound_accepts_every_window_of_the_sample() -> None:
    """Each min_bars window (and the whole file as one request) of the bundled sample passes."""
    from aibridge.protocol import validate_candles

    arr = _sample_array()
    assert len(arr) > 4000
    for n in (41, 300):
        for end in range(n, len(arr) + 1):
            validate_candles(arr[end - n : end].tolist())
    validate_candles(arr.tolist())


def test_price_bound_accepts_weekend_gaps_and_long_trends() -> None:
    from aibridge.protocol import validate_candles

    arr = _sample_array()[:200].copy()
    arr[120:, 1:5] *= 1.10  # Monday opens 10 % above Friday's close
    validate_candles(arr.tolist())
    arr[120:, 1:5] /= 1.10 * 1.10  # ... or 10 % below
    validate_candles(arr.tolist())
    # 10 000 daily bars of an index that rose 80-fold (1985 -> 2025) in one request
    n = 10_000
    close = 250.0 * 80.0 ** (np.arange(n) / (n - 1))
    t = 473_385_600 + 86_400 * np.arange(n)
    trend = np.column_stack([t, close, close * 1.01, close * 0.99, close, np.ones(n)])
    validate_candles(trend.tolist())


def test_new_optional_fields_are_validated() -> None:
    hb = b'{"type":"heartbeat","symbol":"EURUSD","timeframe":"H1","account":1,"magic":2,'
    assert parse_request(hb + b'"utc_offset_s":7200,"positions":[]}').type == "heartbeat"
    for bad in (
        b'"utc_offset_s":7200.0}',
        b'"utc_offset_s":"7200"}',
        b'"positions":[{"ticket":1}]}',
        b'"positions":[{"ticket":1,"side":"BUY","lots":0.1,"open_price":1.1,"open_time":1,'
        b'"sl":"x"}]}',
    ):
        assert _code(hb + bad) is ErrorCode.SCHEMA, bad
    te = b'{"type":"trade_event","event":"closed","symbol":"EURUSD",'
    ok = parse_request(te + b'"reason":"time","seq":2,"account":5,"remainder_ticket":9}')
    assert isinstance(ok, TradeEventRequest)
    assert (ok.reason, ok.seq, ok.account, ok.remainder_ticket) == ("time", 2, 5, 9)
    assert _code(te + b'"reason":"' + b"x" * 33 + b'"}') is ErrorCode.SCHEMA
    assert _code(te + b'"seq":-1}') is ErrorCode.SCHEMA


def test_docs_describe_every_error_code_and_field() -> None:
    text = (Path(__file__).parents[1] / "docs" / "protocol.md").read_text(encoding="utf-8")
    for code in ErrorCode:
        assert f"| `{code.value}` |" in text, code
    models = (HeartbeatRequest, PredictRequest, TradeEventRequest, *REPLY_MODELS.values())
    for model in models:
        for name in model.model_fields:
            assert f"`{name}`" in text, (model.__name__, name)
    from aibridge.protocol import InstrumentBlock, Position, ReconcileBlock, RiskBlock

    for model in (Position, RiskBlock, InstrumentBlock, ReconcileBlock):
        for name in model.model_fields:
            assert f"{name}" in text, (model.__name__, name)
