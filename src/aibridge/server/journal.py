"""SQLite journal (WAL): every request summary, reply, error, trade event and model swap.

Writes go through one background thread so the request path only enqueues (~1 µs) and
SQLite batches many rows per commit. WAL mode means a ``kill -9`` loses at most the rows
still queued, never the file's integrity. Trade events are the exception: the reply carries
the row id, so the handler waits for that row to be committed before acknowledging it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("aibridge.server.journal")

#: Bumped whenever :data:`DDL` changes; ``PRAGMA user_version`` of a journal says which
#: schema wrote it (0 = before versioning: the first two releases).
SCHEMA_VERSION = 2

#: Current tables. ``CREATE ... IF NOT EXISTS`` leaves an older journal's tables as they are;
#: :func:`_upgrade` then adds what they lack, so an old file opens without losing a row.
DDL = (
    """CREATE TABLE IF NOT EXISTS requests (
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
)""",
    """CREATE TABLE IF NOT EXISTS trade_events (
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
    comment TEXT,
    account INTEGER,
    reason TEXT,
    seq INTEGER,
    remainder_ticket INTEGER
)""",
    """CREATE TABLE IF NOT EXISTS model_events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    symbol TEXT,
    timeframe TEXT,
    event TEXT NOT NULL,
    from_version TEXT,
    to_version TEXT,
    detail TEXT
)""",
    # One row per change of an EA's reconciliation result (not per heartbeat).
    """CREATE TABLE IF NOT EXISTS reconcile (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    account INTEGER,
    magic INTEGER,
    symbol TEXT,
    positions INTEGER,
    ledger_open INTEGER,
    orphans INTEGER,
    unprotected INTEGER,
    missing_closes INTEGER,
    detail TEXT
)""",
    # The shadow challenger's decision on each live predict (never sent to the EA).
    """CREATE TABLE IF NOT EXISTS shadow (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    request_id TEXT,
    symbol TEXT,
    timeframe TEXT,
    bar_time INTEGER,
    champion_version TEXT,
    champion_action TEXT,
    challenger_version TEXT,
    challenger_action TEXT,
    challenger_confidence REAL,
    challenger_reason TEXT,
    sl_points REAL,
    tp_points REAL,
    latency_us INTEGER
)""",
)
#: Columns added to ``trade_events`` after the first release (schema 0/1 journals lack them).
ADDED_TRADE_COLUMNS = (
    ("account", "INTEGER"),
    ("reason", "TEXT"),
    ("seq", "INTEGER"),
    ("remainder_ticket", "INTEGER"),
)
INDEXES = (
    "CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts)",
    "CREATE INDEX IF NOT EXISTS trade_events_ts ON trade_events(ts)",
    # The EA re-sends a trade event whose ack it never saw, with the same request_id: store it
    # once. Built after _upgrade renamed duplicates that an older journal may hold.
    "CREATE UNIQUE INDEX IF NOT EXISTS trade_events_request_id ON trade_events(request_id)"
    " WHERE request_id IS NOT NULL",
    # The ledger: open positions per (symbol, magic, account).
    "CREATE INDEX IF NOT EXISTS trade_events_ledger ON trade_events(symbol, magic, ticket)",
)

TABLES = ("requests", "trade_events", "model_events", "reconcile", "shadow")
TRADE_COLUMNS = (
    "ts",
    "request_id",
    "event",
    "symbol",
    "timeframe",
    "ticket",
    "side",
    "price",
    "lots",
    "sl",
    "tp",
    "profit",
    "error_code",
    "magic",
    "time",
    "model_version",
    "comment",
    "account",
    "reason",
    "seq",
    "remainder_ticket",
)
RECONCILE_COLUMNS = (
    "ts",
    "account",
    "magic",
    "symbol",
    "positions",
    "ledger_open",
    "orphans",
    "unprotected",
    "missing_closes",
    "detail",
)
SHADOW_COLUMNS = (
    "ts",
    "request_id",
    "symbol",
    "timeframe",
    "bar_time",
    "champion_version",
    "champion_action",
    "challenger_version",
    "challenger_action",
    "challenger_confidence",
    "challenger_reason",
    "sl_points",
    "tp_points",
    "latency_us",
)
_REQUEST_SQL = (
    "INSERT INTO requests (ts, type, request_id, symbol, timeframe, status, code, action,"
    " model_version, latency_us, summary, reply) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)
_TRADE_SQL = (
    f"INSERT OR IGNORE INTO trade_events ({', '.join(TRADE_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(TRADE_COLUMNS))})"
)
_MODEL_SQL = (
    "INSERT INTO model_events (ts, symbol, timeframe, event, from_version, to_version, detail)"
    " VALUES (?,?,?,?,?,?,?)"
)
_RECONCILE_SQL = (
    f"INSERT INTO reconcile ({', '.join(RECONCILE_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(RECONCILE_COLUMNS))})"
)


_SHADOW_SQL = (
    f"INSERT INTO shadow ({', '.join(SHADOW_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(SHADOW_COLUMNS))})"
)


def connect(path: Path) -> sqlite3.Connection:
    """Open the journal; WAL + NORMAL sync survives process kills without an fsync per row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=5.0, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    migrate(conn, path)
    conn.isolation_level = "DEFERRED"  # the writer's batches use implicit transactions again
    conn.row_factory = sqlite3.Row
    return conn


def migrate(conn: sqlite3.Connection, path: Path | str = "journal") -> None:
    """Create the tables, or upgrade an older journal in place, in one transaction.

    Nothing is dropped: missing columns are added (NULL in old rows), and trade events that
    share a request_id (stored before the unique index existed) are kept under a renamed id
    ``<request_id>#dup<row id>`` so the index can be built; each rename is logged.
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in DDL:
            conn.execute(statement)
        if version < SCHEMA_VERSION:
            _upgrade(conn, version, str(path))
        for statement in INDEXES:
            conn.execute(statement)
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _upgrade(conn: sqlite3.Connection, version: int, path: str) -> None:
    have = {row[1] for row in conn.execute("PRAGMA table_info(trade_events)")}
    added = [name for name, _ in ADDED_TRADE_COLUMNS if name not in have]
    for name, sql_type in ADDED_TRADE_COLUMNS:
        if name in added:
            conn.execute(f"ALTER TABLE trade_events ADD COLUMN {name} {sql_type}")
    dups = conn.execute(
        "SELECT id, request_id FROM trade_events AS t WHERE request_id IS NOT NULL"
        " AND id > (SELECT MIN(id) FROM trade_events AS u WHERE u.request_id = t.request_id)"
        " ORDER BY id"
    ).fetchall()
    renamed = [(f"{rid}#dup{rowid}", rowid) for rowid, rid in dups]
    conn.executemany("UPDATE trade_events SET request_id = ? WHERE id = ?", renamed)
    if added or renamed:
        log.warning(
            f"journal {path}: upgraded schema {version} -> {SCHEMA_VERSION}"
            + (f", added trade_events columns {', '.join(added)}" if added else "")
            + (
                f", kept {len(renamed)} duplicate trade events under renamed request_ids "
                f"({', '.join(r for r, _ in renamed[:10])}{', ...' if len(renamed) > 10 else ''})"
                if renamed
                else ""
            ),
            extra={"journal": path, "added_columns": added, "renamed": len(renamed)},
        )


def ledger_events(
    conn: sqlite3.Connection, account: int | None, magic: int | None, symbol: str
) -> list[tuple[str, int | None, int | None]]:
    """``(event, ticket, remainder_ticket)`` of the filled/closed events of one EA's ledger."""
    rows = conn.execute(
        "SELECT event, ticket, remainder_ticket FROM trade_events"
        " WHERE symbol = ? AND magic IS ? AND account IS ? AND event IN ('filled', 'closed')"
        " ORDER BY id",
        (symbol, magic, account),
    )
    return [(str(e), t, r) for e, t, r in rows.fetchall()]


@dataclass
class RequestRecord:
    """One line of the ``requests`` table (built on the hot path, written later)."""

    ts: float
    type: str | None
    request_id: str | None
    symbol: str | None
    timeframe: str | None
    status: str
    code: str | None
    action: str | None
    model_version: str | None
    latency_us: int
    summary: dict[str, Any] | None
    reply: bytes

    def row(self) -> tuple[Any, ...]:
        return (
            self.ts,
            self.type,
            self.request_id,
            self.symbol,
            self.timeframe,
            self.status,
            self.code,
            self.action,
            self.model_version,
            self.latency_us,
            orjson.dumps(self.summary).decode() if self.summary is not None else None,
            self.reply.decode("utf-8", "replace"),
        )


class Journal:
    """Append-only journal with a single writer thread.

    Request records go into a deque (an append is ~0.1 µs and wakes nobody); the writer
    drains it every ``interval_s`` or as soon as something urgent (a trade event, a flush,
    shutdown) sets the wake-up event. Waking the writer on every request would cost the
    request loop a GIL hand-off each time.
    """

    def __init__(self, path: Path, interval_s: float = 0.05, batch_max: int = 2000) -> None:
        self.path = Path(path)
        self._conn = connect(self.path)
        self._items: deque[tuple[str, Any]] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._interval = interval_s
        self._batch_max = batch_max
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self.dropped = 0
        self._thread.start()

    def record_request(self, rec: RequestRecord) -> None:
        self._items.append(("req", rec))

    def record_model_event(
        self,
        symbol: str | None,
        timeframe: str | None,
        event: str,
        from_version: str | None,
        to_version: str | None,
        detail: str | None = None,
    ) -> None:
        row = (time.time(), symbol, timeframe, event, from_version, to_version, detail)
        self._items.append(("model", row))
        self._wake.set()

    def record_reconcile(self, values: dict[str, Any]) -> None:
        """Queue one ``reconcile`` row (``detail`` may be a dict: stored as JSON)."""
        detail = values.get("detail")
        if detail is not None and not isinstance(detail, str):
            values = {**values, "detail": orjson.dumps(detail).decode()}
        self._items.append(("reconcile", tuple(values.get(c) for c in RECONCILE_COLUMNS)))
        self._wake.set()

    def record_shadow(self, values: dict[str, Any]) -> None:
        """Queue one ``shadow`` row (written with the next batch; nobody waits for it)."""
        self._items.append(("shadow", tuple(values.get(c) for c in SHADOW_COLUMNS)))

    def record_trade_event(self, values: dict[str, Any], timeout: float = 5.0) -> int:
        """Persist a trade event and return its row id once committed."""
        fut: Future[int] = Future()
        row = tuple(values.get(c) for c in TRADE_COLUMNS)
        self._items.append(("trade", (row, fut)))
        self._wake.set()
        return fut.result(timeout=timeout)

    def flush(self, timeout: float = 5.0) -> None:
        """Block until everything queued so far is committed."""
        fut: Future[int] = Future()
        self._items.append(("flush", fut))
        self._wake.set()
        fut.result(timeout=timeout)

    def close(self) -> None:
        """Flush, stop the writer and checkpoint the WAL into the main file."""
        if not self._thread.is_alive():
            return
        self._closing = True
        self._wake.set()
        self._thread.join(timeout=10.0)
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._conn.close()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            closing = self._closing
            while self._items:
                batch: list[tuple[str, Any]] = []
                while self._items and len(batch) < self._batch_max:
                    batch.append(self._items.popleft())
                self._write(batch)
            if closing:
                return

    def _write(self, items: list[Any]) -> None:
        reqs = [it[1].row() for it in items if it[0] == "req"]
        models = [it[1] for it in items if it[0] == "model"]
        reconciles = [it[1] for it in items if it[0] == "reconcile"]
        shadows = [it[1] for it in items if it[0] == "shadow"]
        trades = [it[1] for it in items if it[0] == "trade"]
        flushes = [it[1] for it in items if it[0] == "flush"]
        done: list[tuple[Future[int], int]] = []
        try:
            with self._conn:
                if reqs:
                    self._conn.executemany(_REQUEST_SQL, reqs)
                if models:
                    self._conn.executemany(_MODEL_SQL, models)
                if reconciles:
                    self._conn.executemany(_RECONCILE_SQL, reconciles)
                if shadows:
                    self._conn.executemany(_SHADOW_SQL, shadows)
                for row, fut in trades:
                    cur = self._conn.execute(_TRADE_SQL, row)
                    rowid = int(cur.lastrowid or 0) if cur.rowcount else 0
                    if not rowid:  # a re-sent event: answer with the id stored the first time
                        request_id = row[TRADE_COLUMNS.index("request_id")]
                        found = self._conn.execute(
                            "SELECT id FROM trade_events WHERE request_id = ?", (request_id,)
                        ).fetchone()
                        rowid = int(found[0]) if found else 0
                    done.append((fut, rowid))
        except sqlite3.Error as exc:
            self.dropped += len(reqs) + len(models) + len(reconciles) + len(shadows)
            log.error("journal write failed", extra={"error": str(exc), "rows": len(items)})
            for _, fut in trades:
                fut.set_exception(exc)
        else:
            for fut, rowid in done:
                fut.set_result(rowid)
        for fut in flushes:
            fut.set_result(0)


def tail(path: Path, table: str = "requests", limit: int = 20) -> list[dict[str, Any]]:
    """Last ``limit`` rows, oldest first (what ``aibridge journal tail`` prints)."""
    _check_table(table)
    with _readonly(path) as conn:
        rows = conn.execute(f"SELECT * FROM {table} ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(r) for r in reversed(rows.fetchall())]


def rows_after(
    path: Path, table: str = "requests", after_id: int = 0, limit: int = 10_000
) -> list[dict[str, Any]]:
    """Rows with ``id > after_id``, oldest first, at most ``limit`` (``journal tail --follow``
    polls this with the last id it printed; a reader never blocks the server's writer: WAL)."""
    _check_table(table)
    with _readonly(path) as conn:
        rows = conn.execute(
            f"SELECT * FROM {table} WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
        )
        return [dict(r) for r in rows.fetchall()]


def iter_since(path: Path, since_ts: float, table: str = "requests") -> Iterator[dict[str, Any]]:
    """Rows with ``ts >= since_ts`` in order (for ``aibridge journal export --since``)."""
    _check_table(table)
    with _readonly(path) as conn:
        for r in conn.execute(f"SELECT * FROM {table} WHERE ts >= ? ORDER BY id", (since_ts,)):
            yield dict(r)


def integrity_check(path: Path) -> str:
    """SQLite's own verdict (``"ok"`` when intact)."""
    with _readonly(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise ValueError(f"unknown journal table {table!r}; choose from {', '.join(TABLES)}")


class _readonly:
    def __init__(self, path: Path) -> None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no journal at {path}")
        self.conn = sqlite3.connect(Path(path), timeout=5.0)
        self.conn.row_factory = sqlite3.Row

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()
