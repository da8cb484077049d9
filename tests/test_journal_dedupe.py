"""Trade events stored once per request_id, and older journals upgraded in place."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from aibridge.server.journal import SCHEMA_VERSION, TABLES, TRADE_COLUMNS, Journal


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


# The journal DDL exactly as released before schema versioning: HEAD before session 8
# (commit 6abab15) and, before it, without the unique request_id index (commit a45b265).
DDL_V1 = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    type TEXT,
    request_id TEXT,
    symbol TEXT,
    timeframe TEXT,
    status TEXT NOT NULL,
    code TEXT,
    action TEXT,
    model_version TEXT,
    latency_us INTEGER,
    summary TEXT,
    reply TEXT
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts);
CREATE TABLE IF NOT EXISTS trade_events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    request_id TEXT,
    event TEXT NOT NULL,
    symbol TEXT,
    timeframe TEXT,
    ticket INTEGER,
    side TEXT,
    price REAL,
    lots REAL,
    sl REAL,
    tp REAL,
    profit REAL,
    error_code INTEGER,
    magic INTEGER,
    time INTEGER,
    model_version TEXT,
    comment TEXT
);
CREATE INDEX IF NOT EXISTS trade_events_ts ON trade_events(ts);
-- The EA re-sends a trade event whose ack it never saw, with the same request_id: store it once.
CREATE UNIQUE INDEX IF NOT EXISTS trade_events_request_id ON trade_events(request_id)
    WHERE request_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS model_events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    symbol TEXT,
    timeframe TEXT,
    event TEXT NOT NULL,
    from_version TEXT,
    to_version TEXT,
    detail TEXT
);
"""
UNIQUE_INDEX = (
    "-- The EA re-sends a trade event whose ack it never saw, with the same request_id: "
    "store it once.\n"
    """CREATE UNIQUE INDEX IF NOT EXISTS trade_events_request_id ON trade_events(request_id)
    WHERE request_id IS NOT NULL;
"""
)
DDL_V0 = DDL_V1.replace(UNIQUE_INDEX, "")

_OLD_ROW = (
    "INSERT INTO trade_events (ts, request_id, event, symbol, ticket, magic) VALUES (?,?,?,?,?,?)"
)


def _old_journal(path: Path, ddl: str, request_ids: list[str | None]) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(ddl)
        conn.executemany(
            _OLD_ROW,
            [(float(i), rid, "filled", "EURUSD", 100 + i, 7) for i, rid in enumerate(request_ids)],
        )
        conn.execute(
            "INSERT INTO requests (ts, type, status, reply) VALUES (1.0, 'heartbeat', 'ok', '{}')"
        )
        conn.execute("INSERT INTO model_events (ts, event) VALUES (1.0, 'loaded')")
    conn.close()


def _rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()
    return rows


def test_released_schema_upgrades_in_place(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    _old_journal(db, DDL_V1, ["te-1", "te-2", None])
    before = _rows(db, "SELECT id, ts, request_id, event, symbol, ticket, magic FROM trade_events")
    journal = Journal(db)
    try:
        again = journal.record_trade_event({"ts": 9.0, "request_id": "te-2", "event": "filled"})
        new = journal.record_trade_event(
            {"ts": 9.0, "request_id": "te-12345-200-closed-1", "event": "closed", "ticket": 200,
             "account": 12345, "reason": "time", "seq": 1, "remainder_ticket": 201}
        )  # fmt: skip
    finally:
        journal.close()
    assert again == 2 and new == 4
    after = _rows(db, "SELECT id, ts, request_id, event, symbol, ticket, magic FROM trade_events")
    assert after[:3] == before
    assert _rows(db, "SELECT account, reason, seq, remainder_ticket FROM trade_events") == [
        (None, None, None, None),
        (None, None, None, None),
        (None, None, None, None),
        (12345, "time", 1, 201),
    ]
    assert _rows(db, "SELECT count(*) FROM requests") == [(1,)]
    assert _rows(db, "SELECT count(*) FROM model_events") == [(1,)]
    assert _rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def test_duplicates_from_before_the_unique_index_are_kept_renamed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Such a journal made the server fail to start (the unique index could not be built)."""
    db = tmp_path / "older.sqlite"
    ids = ["te-1", "te-1", "te-2", None, "te-1", None, "te-2"]
    _old_journal(db, DDL_V0, ids)
    caplog.set_level(logging.WARNING, logger="aibridge.server.journal")
    Journal(db).close()
    rows = _rows(db, "SELECT id, request_id, ticket FROM trade_events ORDER BY id")
    assert rows == [
        (1, "te-1", 100),
        (2, "te-1#dup2", 101),
        (3, "te-2", 102),
        (4, None, 103),
        (5, "te-1#dup5", 104),
        (6, None, 105),
        (7, "te-2#dup7", 106),
    ]
    messages = [r.getMessage() for r in caplog.records]
    [warning] = [m for m in messages if "upgraded schema 0 -> " in m]
    assert "kept 3 duplicate trade events" in warning and "te-1#dup2" in warning
    indexes = {r[0] for r in _rows(db, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "trade_events_request_id" in indexes
    caplog.clear()
    journal = Journal(db)  # the second open is a no-op
    try:
        assert journal.record_trade_event({"ts": 1.0, "request_id": "te-1", "event": "x"}) == 1
    finally:
        journal.close()
    assert not [r for r in caplog.records if "upgraded" in r.getMessage()]
    assert _rows(db, "SELECT count(*) FROM trade_events") == [(7,)]


def test_new_journal_has_the_current_schema(tmp_path: Path) -> None:
    Journal(tmp_path / "new.sqlite").close()
    columns = [r[1] for r in _rows(tmp_path / "new.sqlite", "PRAGMA table_info(trade_events)")]
    assert columns[1:] == list(TRADE_COLUMNS)
    tables = {r[0] for r in _rows(tmp_path / "new.sqlite", "SELECT name FROM sqlite_master")}
    assert set(TABLES) <= tables
