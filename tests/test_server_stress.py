"""Load and abuse: many concurrent clients, and ≥10,000 malformed messages."""

from __future__ import annotations

import json
import threading

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aibridge.protocol import ErrorCode, ErrorReply, parse_reply
from tests.conftest import TrainedStore
from tests.protocol_fixtures import sample_candles
from tests.server_fixtures import ReqClient, predict_payloads, real_models, running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(trained_model_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("stress")
    models = real_models(
        trained_model_store.tracking_uri, [trained_model_store.model_uri], tmp / "cache"
    )
    with running_server(tmp, models) as (server, ep):
        yield server, ep


def test_16_clients_x_1000_requests_none_lost_or_mismatched(served) -> None:
    server, ep = served
    with ReqClient(ep) as c:
        min_bars = c.call({"type": "heartbeat"})["min_bars"]
    clients, per_client = 16, 1000
    payloads = predict_payloads(200, min_bars)
    problems: list[str] = []
    ok_counts = [0] * clients

    def worker(k: int) -> None:
        with ReqClient(ep, timeout_ms=30_000) as c:
            for i in range(per_client):
                body, _, bar_time = payloads[(k * 31 + i) % len(payloads)]
                rid = f"c{k}-{i}"
                body = body.replace(b'"request_id":"', f'"request_id":"{rid}'.encode() + b"|", 1)
                reply = c.call(body)
                want = body.split(b'"request_id":"', 1)[1].split(b'"', 1)[0].decode()
                if reply.get("request_id") != want or reply.get("bar_time") != bar_time:
                    problems.append(f"{rid}: {reply}")
                elif reply["status"] == "ok":
                    ok_counts[k] += 1

    before = server.served
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []
    assert ok_counts == [per_client] * clients
    assert server.served - before == clients * per_client


# ---------------------------------------------------------------- fuzzing

_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_json = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=15,
)
_good = sample_candles(60)


def _candles():
    """Mostly-valid candle arrays with one corruption, so validation paths are exercised."""
    number = st.integers(-(10**20), 10**20) | st.floats(allow_nan=False)

    def corrupt(args):
        n, i, j, value, how = args
        rows = [list(r) for r in _good[-n:]]
        i %= n
        if how == "set":
            rows[i][j] = value
        elif how == "swap" and n > 1:
            rows[i], rows[i - 1] = rows[i - 1], rows[i]
        elif how == "dup":
            rows.insert(i, list(rows[i]))
        elif how == "short":
            rows[i] = rows[i][:j]
        elif how == "scale":
            rows = [
                [r[0], *(x * (value if isinstance(value, int | float) else 2) for x in r[1:])]
                for r in rows
            ]
        return rows

    return st.tuples(
        st.integers(1, 60),
        st.integers(0, 59),
        st.integers(0, 5),
        number | _scalar,
        st.sampled_from(["set", "swap", "dup", "short", "scale", "none"]),
    ).map(corrupt)


def _dumps(value) -> bytes:
    try:
        return json.dumps(value, allow_nan=True).encode()
    except (ValueError, OverflowError):
        return b"{"


_messages = st.one_of(
    st.binary(max_size=200),
    _json.map(_dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["predict", "heartbeat", "trade_event", "nope"])},
        optional={
            "symbol": st.sampled_from(["EURUSD", "eurusd", "GBPJPY", "", "EUR USD"]) | _scalar,
            "timeframe": st.sampled_from(["H1", "h1", "M5", "H2"]) | _scalar,
            "candles": _candles() | _json,
            "request_id": st.text(max_size=80) | _scalar,
            "spread_points": _scalar,
            "protocol_version": st.sampled_from([1, 2, "1"]),
            "event": st.sampled_from(["filled", "closed", "boom"]),
            "extra": _scalar,
        },
    ).map(_dumps),
    st.binary(min_size=1, max_size=40).map(lambda b: b'{"type":"predict","candles":[' + b),
    st.fixed_dictionaries(  # well-formed predicts with corrupted candles or an unknown pair
        {
            "type": st.just("predict"),
            "request_id": st.text(max_size=64),
            "symbol": st.sampled_from(["EURUSD", "EURUSD", "EURUSD", "GBPJPY"]),
            "timeframe": st.sampled_from(["H1", "H1", "H1", "M15"]),
            "candles": _candles(),
        }
    ).map(_dumps),
)


def test_10000_malformed_messages_all_answered(served) -> None:
    _, ep = served
    client = ReqClient(ep, timeout_ms=10_000)
    codes: set[str] = set()
    count = [0]

    @settings(
        max_examples=10_000,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(_messages)
    def one(raw: bytes) -> None:
        reply_raw = client.raw(raw)  # a missing reply raises zmq.Again here
        reply = parse_reply(reply_raw)
        count[0] += 1
        if isinstance(reply, ErrorReply):
            assert reply.code is not ErrorCode.INTERNAL, (raw[:300], reply.message)
            codes.add(reply.code.value)
            sent = orjson.loads(raw) if _is_json_obj(raw) else None
            rid = sent.get("request_id") if isinstance(sent, dict) else None
            if isinstance(rid, str) and len(rid) <= 64:
                assert reply.request_id == rid

    try:
        one()
        assert count[0] >= 10_000
        assert {"bad_json", "schema", "bad_candles", "unknown_model"} <= codes
        ok = client.call({"type": "heartbeat", "request_id": "still-alive"})
        assert ok["status"] == "ok" and ok["request_id"] == "still-alive"
        assert ok["model"]["version"] == "1"
    finally:
        client.close()


def _is_json_obj(raw: bytes) -> bool:
    try:
        return isinstance(orjson.loads(raw), dict)
    except orjson.JSONDecodeError:
        return False
