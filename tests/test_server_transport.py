"""Transport, journal, metrics and security of the server, over real loopback sockets.

These need no trained model: they exercise what happens around the model.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from pathlib import Path

import orjson
import pytest
import zmq

from aibridge.protocol import ErrorReply, HeartbeatReply, TradeEventReply
from aibridge.server import journal as j
from aibridge.server.keys import generate_keys, load_public_key
from tests.protocol_fixtures import fixture_request_bytes, load_fixtures
from tests.server_fixtures import ReqClient, running_server, wait_for

FIXTURES = load_fixtures()


def _check_against_fixture(reply: dict, name: str) -> None:
    fx = FIXTURES[name]
    assert list(reply) == list(fx["reply"]), "reply keys/order differ from the golden fixture"
    for key in fx["compare"]:
        assert reply[key] == fx["reply"][key], key


@pytest.mark.parametrize(
    "name", ["error_bad_json", "error_schema", "error_payload_too_large", "error_bad_candles"]
)
def test_model_independent_error_fixtures(tmp_path: Path, name: str) -> None:
    with running_server(tmp_path) as (_, ep), ReqClient(ep) as c:
        reply = c.call(fixture_request_bytes(FIXTURES[name]))
    ErrorReply.model_validate(reply)
    _check_against_fixture(reply, name)


def test_trade_events_are_acked_and_journaled(tmp_path: Path) -> None:
    with running_server(tmp_path) as (server, ep), ReqClient(ep) as c:
        replies = [
            c.call(FIXTURES[n]["request"]) for n in ("trade_event_filled", "trade_event_rejected")
        ]
    for reply, name in zip(replies, ("trade_event_filled", "trade_event_rejected"), strict=True):
        TradeEventReply.model_validate(reply)
        _check_against_fixture(reply, name)
    assert replies[1]["event_id"] == replies[0]["event_id"] + 1
    rows = j.tail(server.journal.path, "trade_events")
    assert [r["event"] for r in rows] == ["filled", "rejected"]
    assert rows[0]["ticket"] == 123456 and rows[1]["error_code"] == 134
    assert [r["id"] for r in rows] == [replies[0]["event_id"], replies[1]["event_id"]]


def test_heartbeat_without_models_reports_none(tmp_path: Path) -> None:
    with running_server(tmp_path) as (_, ep), ReqClient(ep) as c:
        reply = c.call({"type": "heartbeat", "request_id": "h"})
        unknown = c.call({"type": "heartbeat", "symbol": "EURUSD", "timeframe": "H1"})
    hb = HeartbeatReply.model_validate(reply)
    assert (hb.model, hb.models, hb.request_id) == (None, [], "h")
    assert unknown["code"] == "unknown_model"


def test_every_request_is_journaled_with_its_outcome(tmp_path: Path) -> None:
    with running_server(tmp_path) as (server, ep), ReqClient(ep) as c:
        c.call({"type": "heartbeat", "request_id": "a"})
        c.raw(b"{oops")
        c.call({"type": "predict", "request_id": "b"})
    path = server.journal.path
    rows = j.tail(path, "requests", 10)
    assert [(r["request_id"], r["status"], r["code"]) for r in rows] == [
        ("a", "ok", None),
        (None, "error", "bad_json"),
        ("b", "error", "schema"),
    ]
    assert json.loads(rows[1]["summary"])["head"] == "{oops"
    assert json.loads(rows[2]["reply"])["code"] == "schema"
    assert all(r["latency_us"] >= 0 for r in rows)
    assert j.integrity_check(path) == "ok"
    assert len(list(j.iter_since(path, rows[1]["ts"]))) == 2


def test_multi_frame_and_dealer_clients_get_exactly_one_reply(tmp_path: Path) -> None:
    with running_server(tmp_path) as (_, ep):
        ctx = zmq.Context.instance()
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.RCVTIMEO, 5000)
        dealer.connect(ep)
        dealer.send_multipart([b"", b'{"type":"heartbeat"}', b"extra"])
        frames = dealer.recv_multipart()
        assert frames[0] == b""
        assert orjson.loads(frames[1])["code"] == "schema"
        dealer.send(b'{"type":"heartbeat","request_id":"d"}')  # no delimiter frame at all
        reply = orjson.loads(dealer.recv_multipart()[-1])
        assert (reply["status"], reply["request_id"]) == ("ok", "d")
        dealer.close()


def test_message_over_hard_limit_drops_peer_but_server_survives(tmp_path: Path) -> None:
    limit = 10_000
    with running_server(tmp_path, max_message_bytes=limit) as (_, ep):
        with ReqClient(ep, timeout_ms=500) as big:
            big.sock.send(b" " * (4 * limit + 1))
            with pytest.raises(zmq.Again):
                big.sock.recv()
        with ReqClient(ep) as c:
            over_soft = c.call(b'{"type":"heartbeat"}' + b" " * limit)
            ok = c.call({"type": "heartbeat", "request_id": "after"})
    assert over_soft["code"] == "payload_too_large"
    assert over_soft["details"] == {"size": limit + 20, "limit": limit}
    assert (ok["status"], ok["request_id"]) == ("ok", "after")


def test_metrics_and_healthz(tmp_path: Path) -> None:
    with running_server(tmp_path) as (server, ep), ReqClient(ep) as c:
        c.call({"type": "heartbeat"})
        c.raw(b"nope")
        base = f"http://127.0.0.1:{server.http.port}"
        text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=5)
            status = 200
        except urllib.error.HTTPError as exc:  # no models served → unhealthy
            status, body = exc.code, json.loads(exc.read())
    assert 'aibridge_requests_total{status="ok",type="heartbeat"} 1.0' in text
    assert 'aibridge_requests_total{status="bad_json",type="unknown"} 1.0' in text
    assert "aibridge_request_seconds_bucket" in text
    assert "aibridge_last_ea_heartbeat_timestamp_seconds" in text
    assert status == 503 and body["status"] == "unhealthy" and body["models"] == []


def test_non_loopback_bind_without_curve_warns_loudly(tmp_path: Path, caplog) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="aibridge.server"),
        running_server(tmp_path, host="0.0.0.0", metrics_port=None),
    ):
        pass
    assert any("WITHOUT CurveZMQ" in r.getMessage() for r in caplog.records)


def test_curve_server_talks_only_to_clients_with_its_key(tmp_path: Path, caplog) -> None:
    public_file, secret_file = generate_keys(tmp_path / "keys")
    server_public = load_public_key(public_file)
    with caplog.at_level(logging.WARNING, logger="aibridge.server"):
        ctx = running_server(
            tmp_path, host="0.0.0.0", curve_secret_key=secret_file, metrics_port=None
        )
        with ctx as (server, ep):
            assert server.curve
            pub, sec = zmq.curve_keypair()
            with ReqClient(
                ep, curve_serverkey=server_public, curve_publickey=pub, curve_secretkey=sec
            ) as c:
                assert c.call({"type": "heartbeat", "request_id": "enc"})["request_id"] == "enc"
            with ReqClient(ep, timeout_ms=500) as plain:
                plain.sock.send(b'{"type":"heartbeat"}')
                with pytest.raises(zmq.Again):
                    plain.sock.recv()
    assert not any("WITHOUT CurveZMQ" in r.getMessage() for r in caplog.records)


def test_journal_writer_flushes_on_close(tmp_path: Path) -> None:
    journal = j.Journal(tmp_path / "j.sqlite")
    for i in range(1000):
        journal.record_request(
            j.RequestRecord(
                float(i), "heartbeat", str(i), None, None, "ok", None, None, None, 1, None, b"{}"
            )
        )
    journal.record_model_event("EURUSD", "H1", "swapped", "3", "4", "models:/x@champion")
    journal.close()
    assert len(j.tail(tmp_path / "j.sqlite", "requests", 5000)) == 1000
    assert j.tail(tmp_path / "j.sqlite", "model_events")[0]["to_version"] == "4"
    assert wait_for(
        lambda: (
            not (tmp_path / "j.sqlite-wal").exists()
            or (tmp_path / "j.sqlite-wal").stat().st_size == 0
        )
    )


@pytest.mark.timeout(60)
def test_port_in_use_fails_fast_and_releases_everything(tmp_path: Path) -> None:
    from aibridge.server.app import SignalServer
    from aibridge.server.settings import ServeSettings
    from tests.server_fixtures import RISK, empty_models

    with running_server(tmp_path / "a") as (server, _):
        cfg = ServeSettings(
            port=server.port, journal_path=tmp_path / "b.sqlite", log_path=None, metrics_port=None
        )
        second = SignalServer(cfg, empty_models(), RISK)
        with pytest.raises(zmq.ZMQError, match="in use"):
            second.bind()
        second.close()  # must not hang on the half-made socket
        assert second.sock is None and second.ctx.closed
