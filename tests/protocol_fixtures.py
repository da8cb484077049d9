"""Golden protocol fixtures: load them for tests, or regenerate them.

Run ``python tests/protocol_fixtures.py [min_bars]`` to rewrite ``tests/fixtures/protocol/``.
Each fixture is ``{"name", "description", "request" | "request_text", "pad_to_bytes"?,
"reply", "compare"}``: ``reply`` is an example reply (valid against the reply model), and
``compare`` lists the keys whose values a live server's reply must match exactly; the
other keys must be present with values of the documented type.
"""

from __future__ import annotations

import calendar
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "protocol"
SAMPLE_CSV = Path(__file__).parents[1] / "src" / "aibridge" / "data" / "EURUSD60.csv"
#: The example EA: its account, magic, broker clock (a UTC+2 broker) and one position.
ACCOUNT = 12345
MAGIC = 20261125
UTC_OFFSET_S = 7200
TICKET = 123456


def load_fixtures() -> dict[str, dict[str, Any]]:
    """All golden fixtures by name."""
    return {
        p.stem: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(FIXTURE_DIR.glob("*.json"))
    }


def fixture_request_bytes(fx: dict[str, Any]) -> bytes:
    """The exact bytes to send for a fixture (padding included)."""
    if "request_text" in fx:
        raw = fx["request_text"].encode()
    else:
        raw = json.dumps(fx["request"], separators=(",", ":")).encode()
    pad = fx.get("pad_to_bytes")
    if pad:
        raw = raw + b" " * (pad - len(raw))
    return raw


def sample_candles(n: int, end: int = 1000) -> list[list[float]]:
    """``n`` closed candles of the bundled sample ending at row ``end`` (exclusive)."""
    rows = []
    for line in SAMPLE_CSV.read_text().splitlines()[end - n : end]:
        d, hm, o, h, lo, c, v = line.split(",")
        ts = calendar.timegm(time.strptime(f"{d} {hm}", "%Y.%m.%d %H:%M"))
        rows.append([ts, float(o), float(h), float(lo), float(c), int(v)])
    return rows


def _model_meta(version: str = "3") -> dict[str, Any]:
    return {
        "name": "aibridge-EURUSD-H1",
        "version": version,
        "alias": "champion",
        "run_id": "4f2a9c0e7d3b4b7a9a51c3e2d1f0a9b8",
        "trained_at": "2026-11-25T11:00:00+00:00",
        "data_hash": "md5:3b5d5c3712955042212316173ccf37be",
        "symbol": "EURUSD",
        "timeframe": "H1",
    }


def _error(rtype: str | None, rid: str | None, code: str, message: str, details: Any) -> dict:
    return {
        "protocol_version": 1,
        "request_id": rid,
        "status": "error",
        "type": rtype,
        "code": code,
        "message": message,
        "details": details,
    }


def build_fixtures(min_bars: int) -> dict[str, dict[str, Any]]:
    """Every message and every error code, with real sample candles."""
    candles = sample_candles(min_bars)
    last = candles[-1]
    heartbeat_req = {
        "protocol_version": 1,
        "type": "heartbeat",
        "request_id": "hb-1",
        "symbol": "EURUSD",
        "timeframe": "H1",
        "client": "AIBridge_EA 1.0 acct=12345 magic=20261125",
        "account": ACCOUNT,
        "magic": MAGIC,
        "utc_offset_s": UTC_OFFSET_S,
        "positions": [
            {
                "ticket": TICKET,
                "side": "BUY",
                "lots": 0.12,
                "open_price": 1.07245,
                "sl": 1.06912,
                "tp": 1.07718,
                "open_time": last[0] + 3600,
            }
        ],
    }
    predict_req = {
        "protocol_version": 1,
        "type": "predict",
        "request_id": f"EURUSD-H1-{last[0]}",
        "symbol": "EURUSD",
        "timeframe": "H1",
        "spread_points": 12,
        "utc_offset_s": UTC_OFFSET_S,
        "candles": candles,
    }
    fx: dict[str, dict[str, Any]] = {}
    fx["heartbeat"] = {
        "description": "EA heartbeat for its chart's symbol/timeframe (on init and on a timer), "
        "with its account, magic, broker UTC offset (TimeCurrent()-TimeGMT()) and open "
        "positions, which the server reconciles with its ledger.",
        "request": heartbeat_req,
        "reply": {
            "protocol_version": 1,
            "request_id": "hb-1",
            "status": "ok",
            "type": "heartbeat",
            "server_version": "0.1.0",
            "uptime_s": 12.5,
            "server_time": 1764068400,
            "model": _model_meta(),
            "min_bars": min_bars,
            "digits": 5,
            "point": 0.00001,
            "sl_atr_mult": 1.5,
            "tp_atr_mult": 2.0,
            "risk": {
                "risk_per_trade_pct": 1.0,
                "max_spread_points": 30.0,
                "max_daily_drawdown_pct": 3.0,
                "max_open_positions": 1,
                "max_total_lots": 5.0,
                "min_confidence": 0.45,
                "trading_start_hour": 0,
                "trading_end_hour": 24,
                "min_lot_policy": "skip",
                "close_on_opposite": True,
                "max_hold_bars": 24,
                "exposure_policy": "shrink",
            },
            "instrument": {
                "digits": 5,
                "point": 0.00001,
                "tick_size": 0.00001,
                "contract_size": 100000.0,
            },
            "utc_offset_s": UTC_OFFSET_S,
            "clock_check": "ok",
            "reconcile": {"orphans": 0, "unprotected": 0, "missing_closes": 0},
            "model_status": "ok",
            "model_error": None,
            "models": [
                {
                    "symbol": "EURUSD",
                    "timeframe": "H1",
                    "name": "aibridge-EURUSD-H1",
                    "version": "3",
                    "alias": "champion",
                    "min_bars": min_bars,
                    "model_status": "ok",
                    "model_error": None,
                }
            ],
        },
        "compare": ["protocol_version", "request_id", "status", "type", "min_bars"],
    }
    fx["predict"] = {
        "description": f"Decision request with the last {min_bars} closed candles, oldest first.",
        "request": predict_req,
        "reply": {
            "protocol_version": 1,
            "request_id": predict_req["request_id"],
            "status": "ok",
            "type": "predict",
            "symbol": "EURUSD",
            "timeframe": "H1",
            "bar_time": last[0],
            "action": "BUY",
            "confidence": 0.5731,
            "p_buy": 0.5731,
            "p_sell": 0.1822,
            "p_hold": 0.2447,
            "sl": 1.06912,
            "tp": 1.07718,
            "sl_points": 161.0,
            "tp_points": 645.0,
            "reason": "signal",
            "model": "aibridge-EURUSD-H1",
            "model_version": "3",
        },
        "compare": [
            "protocol_version",
            "request_id",
            "status",
            "type",
            "symbol",
            "timeframe",
            "bar_time",
            "model",
        ],
    }
    fx["trade_event_filled"] = {
        "description": "EA reports a filled market order (ticket from OrderSend).",
        "request": {
            "protocol_version": 1,
            "type": "trade_event",
            "request_id": f"te-{ACCOUNT}-{TICKET}-filled-1",
            "event": "filled",
            "symbol": "EURUSD",
            "timeframe": "H1",
            "ticket": TICKET,
            "side": "BUY",
            "price": 1.07245,
            "lots": 0.12,
            "sl": 1.06912,
            "tp": 1.07718,
            "error_code": 0,
            "magic": MAGIC,
            "time": last[0] + 3600,
            "model_version": "3",
            "comment": "aibridge v3",
            "account": ACCOUNT,
            "reason": "signal",
            "seq": 1,
        },
        "reply": {
            "protocol_version": 1,
            "request_id": f"te-{ACCOUNT}-{TICKET}-filled-1",
            "status": "ok",
            "type": "trade_event",
            "event": "filled",
            "event_id": 1,
        },
        "compare": ["protocol_version", "request_id", "status", "type", "event"],
    }
    fx["trade_event_rejected"] = {
        "description": "EA reports a rejected order with its MT4 error code "
        "(134 = not enough money).",
        "request": {
            "protocol_version": 1,
            "type": "trade_event",
            "request_id": f"te-{ACCOUNT}-{MAGIC}-{last[0] + 3600}-rejected-1",
            "event": "rejected",
            "symbol": "EURUSD",
            "side": "SELL",
            "price": 1.07240,
            "lots": 0.12,
            "error_code": 134,
            "magic": MAGIC,
            "time": last[0] + 3600,
            "model_version": "3",
            "account": ACCOUNT,
            "reason": "signal",
            "seq": 1,
        },
        "reply": {
            "protocol_version": 1,
            "request_id": f"te-{ACCOUNT}-{MAGIC}-{last[0] + 3600}-rejected-1",
            "status": "ok",
            "type": "trade_event",
            "event": "rejected",
            "event_id": 2,
        },
        "compare": ["protocol_version", "request_id", "status", "type", "event"],
    }
    fx["trade_event_closed"] = {
        "description": "EA closed a position by the exit policy (reason signal | time; also "
        "sl | tp | unprotected | external); remainder_ticket only after a partial close.",
        "request": {
            "protocol_version": 1,
            "type": "trade_event",
            "request_id": f"te-{ACCOUNT}-{TICKET}-closed-1",
            "event": "closed",
            "symbol": "EURUSD",
            "timeframe": "H1",
            "ticket": TICKET,
            "side": "BUY",
            "price": 1.07391,
            "lots": 0.12,
            "profit": 17.52,
            "error_code": 0,
            "magic": MAGIC,
            "time": last[0] + 5 * 3600,
            "model_version": "3",
            "comment": "aibridge v3",
            "account": ACCOUNT,
            "reason": "signal",
            "seq": 1,
        },
        "reply": {
            "protocol_version": 1,
            "request_id": f"te-{ACCOUNT}-{TICKET}-closed-1",
            "status": "ok",
            "type": "trade_event",
            "event": "closed",
            "event_id": 3,
        },
        "compare": ["protocol_version", "request_id", "status", "type", "event"],
    }
    fx["error_bad_json"] = {
        "description": "Truncated JSON: the server still answers, with code bad_json.",
        "request_text": '{"protocol_version":1,"type":"heartbeat","request_id":"hb-2"',
        "reply": _error(None, None, "bad_json", "invalid JSON: unexpected end of data", None),
        "compare": ["protocol_version", "request_id", "status", "type", "code"],
    }
    fx["error_schema"] = {
        "description": "A predict without candles (also: unknown type, wrong types, extra keys).",
        "request": {
            "protocol_version": 1,
            "type": "predict",
            "request_id": "p-schema",
            "symbol": "EURUSD",
            "timeframe": "H1",
        },
        "reply": _error(
            "predict",
            "p-schema",
            "schema",
            "candles: Field required",
            {"errors": [{"loc": "candles", "msg": "Field required"}]},
        ),
        "compare": ["protocol_version", "request_id", "status", "type", "code", "details"],
    }
    fx["error_too_few_bars"] = {
        "description": "Fewer candles than the heartbeat's min_bars.",
        "request": {**predict_req, "request_id": "p-few", "candles": candles[-5:]},
        "reply": _error(
            "predict",
            "p-few",
            "too_few_bars",
            f"got 5 candles, model aibridge-EURUSD-H1 v3 needs {min_bars}",
            {"got": 5, "min_bars": min_bars},
        ),
        "compare": ["protocol_version", "request_id", "status", "type", "code", "details"],
    }
    bad = [list(c) for c in candles]
    bad[-2][2] = bad[-2][3] - 0.001  # high below low
    fx["error_bad_candles"] = {
        "description": "Impossible OHLC on one candle "
        "(also: NaN/inf, unsorted or duplicate times).",
        "request": {**predict_req, "request_id": "p-bad", "candles": bad},
        "reply": _error(
            "predict",
            "p-bad",
            "bad_candles",
            f"candle {len(bad) - 2}: impossible OHLC (high < max(open, close) or "
            "low > min(open, close))",
            {
                "index": len(bad) - 2,
                "reason": "impossible OHLC (high < max(open, close) or low > min(open, close))",
            },
        ),
        "compare": [
            "protocol_version",
            "request_id",
            "status",
            "type",
            "code",
            "message",
            "details",
        ],
    }
    absurd = [list(c) for c in candles]
    absurd[-3][2] = 1e308  # a corrupt high: every rule above passes, the model would decide
    median = statistics.median(c[4] for c in candles)
    absurd_reason = (
        f"high 1e+308 is outside {median / 100:.6g} .. {median * 100:.6g} "
        f"(the median close {median:.6g} divided and multiplied by 100)"
    )
    fx["error_bad_candles_absurd"] = {
        "description": "A price far outside the window's range (here a high of 1e308): every "
        "open/high/low/close must lie within a factor of 100 of the median close sent.",
        "request": {**predict_req, "request_id": "p-absurd", "candles": absurd},
        "reply": _error(
            "predict",
            "p-absurd",
            "bad_candles",
            f"candle {len(absurd) - 3}: {absurd_reason}",
            {"index": len(absurd) - 3, "reason": absurd_reason},
        ),
        "compare": [
            "protocol_version",
            "request_id",
            "status",
            "type",
            "code",
            "message",
            "details",
        ],
    }
    fx["error_clock_mismatch"] = {
        "description": "The broker's UTC offset (utc_offset_s) differs from the model's training "
        "data and the server runs with serve.clock_mismatch: refuse (default warn: "
        "it logs, counts and answers).",
        "request": {**predict_req, "request_id": "p-clock", "utc_offset_s": UTC_OFFSET_S + 3600},
        "reply": _error(
            "predict",
            "p-clock",
            "clock_mismatch",
            f"broker UTC offset {UTC_OFFSET_S + 3600} s differs from the {UTC_OFFSET_S} s of "
            "model aibridge-EURUSD-H1 v3's training data: hour and weekday features would be "
            "shifted (serve.clock_mismatch: refuse)",
            {"utc_offset_s": UTC_OFFSET_S + 3600, "model_utc_offset_s": UTC_OFFSET_S},
        ),
        "compare": ["protocol_version", "request_id", "status", "type", "code", "details"],
    }
    fx["error_unknown_model"] = {
        "description": "A symbol/timeframe this server does not serve.",
        "request": {**predict_req, "request_id": "p-unk", "symbol": "GBPJPY"},
        "reply": _error(
            "predict",
            "p-unk",
            "unknown_model",
            "no model served for GBPJPY H1 (served: EURUSD H1)",
            {"symbol": "GBPJPY", "timeframe": "H1", "served": ["EURUSD H1"]},
        ),
        "compare": ["protocol_version", "request_id", "status", "type", "code", "details"],
    }
    fx["error_payload_too_large"] = {
        "description": "Request over max_message_bytes (default 1 MiB), padded with spaces. "
        "Above the hard ZMQ_MAXMSGSIZE cap ZeroMQ drops the connection instead "
        "and the EA sees a timeout.",
        "request": heartbeat_req | {"request_id": "hb-big"},
        "pad_to_bytes": 1_048_577,
        "reply": _error(
            None,
            None,
            "payload_too_large",
            "message is 1048577 bytes, limit is 1048576",
            {"size": 1_048_577, "limit": 1_048_576},
        ),
        "compare": ["protocol_version", "request_id", "status", "type", "code", "details"],
    }
    fx["error_internal"] = {
        "description": "An unexpected server-side failure (tests inject one); "
        "the EA skips the bar.",
        "request": {**predict_req, "request_id": "p-int"},
        "reply": _error("predict", "p-int", "internal", "internal error: RuntimeError", None),
        "compare": ["protocol_version", "request_id", "status", "type", "code"],
    }
    for name, f in fx.items():
        f["name"] = name
    return fx


def write_fixtures(min_bars: int) -> None:
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    for name, f in build_fixtures(min_bars).items():
        (FIXTURE_DIR / f"{name}.json").write_text(_pretty(f), encoding="utf-8")


def _pretty(f: dict[str, Any]) -> str:
    """Indented JSON with one candle per line, so a human (or the EA author) can read it."""
    doc = {"name": f["name"], **{k: v for k, v in f.items() if k != "name"}}
    req = doc.get("request")
    compact: list[str] = []
    if isinstance(req, dict) and "candles" in req:
        compact = [json.dumps(c, separators=(",", ":")) for c in req["candles"]]
        doc["request"] = {**req, "candles": [f"@@{i}@@" for i in range(len(compact))]}
    text = json.dumps(doc, indent=1)
    for i, c in enumerate(compact):
        text = text.replace(f'"@@{i}@@"', c, 1)
    return text + "\n"


if __name__ == "__main__":
    write_fixtures(int(sys.argv[1]) if len(sys.argv) > 1 else 41)
