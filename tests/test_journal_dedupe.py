"""A trade event re-sent after a lost ack (same request_id) is stored once, same event_id."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from aibridge.server.journal import Journal


def event(request_id: str | None, ticket: int) -> dict:
    return {
        "ts": 1.0,
        "request_id": request_id,
        "event": "filled",
        "symbol": "EURUSD",
        "timeframe": "H1",
        "ticket": ticket,
        "side": "BUY",
        "price": 1.1,
        "lots": 0.1,
    }


def test_resent_trade_event_is_stored_once(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    try:
        first = journal.record_trade_event(event("te-1", 11))
        again = journal.record_trade_event(event("te-1", 11))
        other = journal.record_trade_event(event("te-2", 12))
        anonymous = [journal.record_trade_event(event(None, 13)) for _ in range(2)]
    finally:
        journal.close()
    assert again == first and other != first
    assert anonymous[0] != anonymous[1]  # without an id there is nothing to de-duplicate on
    with sqlite3.connect(tmp_path / "j.sqlite") as conn:
        rows = conn.execute("SELECT request_id, ticket FROM trade_events ORDER BY id").fetchall()
    assert rows == [("te-1", 11), ("te-2", 12), (None, 13), (None, 13)]
