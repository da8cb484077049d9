"""The server's trade ledger, reconciled with the positions each EA says it holds.

The journal's trade events are the ledger: per (account, magic, symbol) a ticket is open from
its ``filled`` event (or from being the ``remainder_ticket`` of a partial close) until its
``closed`` event. A heartbeat that carries the EA's ``positions`` is checked against it:

* **orphan**: a position the EA holds that the ledger does not hold open (no ``filled`` event
  ever arrived, or the ledger already saw it closed): a lost event, an unknown outcome the EA
  resolved without reporting, a manual trade under the EA's magic;
* **unprotected**: a position without a stop loss (``sl`` null or 0: the after-fill stop failed);
* **missing close**: a ticket the ledger holds open that is absent from **two consecutive**
  heartbeats (one absence is normal: the ``closed`` event may still be on its way).

Why the journal and not a dict: it survives restarts, and re-sent events are already stored
once there. Results go to the heartbeat reply (counts), the journal (a ``reconcile`` row
whenever an EA's result changes), Prometheus gauges and the status page.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aibridge.server import journal as journal_db

if TYPE_CHECKING:
    from aibridge.protocol import Position
    from aibridge.server.journal import Journal
    from aibridge.server.metrics import ServerMetrics

log = logging.getLogger("aibridge.server.ledger")

LedgerKey = tuple[int | None, int | None, str]


@dataclass(frozen=True)
class Reconciliation:
    """One EA's reconciliation at one heartbeat (ticket lists sorted)."""

    account: int | None
    magic: int | None
    symbol: str
    ts: float
    positions: int
    ledger_open: tuple[int, ...]
    orphans: tuple[int, ...] = ()
    unprotected: tuple[int, ...] = ()
    missing_closes: tuple[int, ...] = ()
    heartbeats: int = field(default=1, compare=False)

    def counts(self) -> dict[str, int]:
        """The heartbeat reply's ``reconcile`` block."""
        return {
            "orphans": len(self.orphans),
            "unprotected": len(self.unprotected),
            "missing_closes": len(self.missing_closes),
        }

    def findings(self) -> tuple[tuple[int, ...], ...]:
        return (self.orphans, self.unprotected, self.missing_closes)

    def row(self) -> dict[str, Any]:
        """A ``reconcile`` journal row / status page entry."""
        return {
            "ts": self.ts,
            "account": self.account,
            "magic": self.magic,
            "symbol": self.symbol,
            "positions": self.positions,
            "ledger_open": len(self.ledger_open),
            **self.counts(),
            "detail": {
                "orphans": list(self.orphans),
                "unprotected": list(self.unprotected),
                "missing_closes": list(self.missing_closes),
                "ledger_open": list(self.ledger_open),
            },
        }


def open_tickets(events: Sequence[tuple[str, int | None, int | None]]) -> tuple[set[int], set[int]]:
    """(tickets ever opened, tickets closed) from ``(event, ticket, remainder_ticket)`` rows.

    >>> sorted(map(sorted, open_tickets([("filled", 1, None), ("closed", 1, 2)])))
    [[1], [1, 2]]
    """
    opened: set[int] = set()
    closed: set[int] = set()
    for event, ticket, remainder in events:
        if event == "filled" and ticket is not None:
            opened.add(int(ticket))
        elif event == "closed":
            if ticket is not None:
                closed.add(int(ticket))
            if remainder is not None:  # partial close: MT4 gives the rest a new ticket
                opened.add(int(remainder))
    return opened, closed


class Ledger:
    """Reconciles heartbeats; keeps the previous absences and the latest result per EA."""

    def __init__(self, journal: Journal, metrics: ServerMetrics | None = None) -> None:
        self.journal = journal
        self.metrics = metrics
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._absent: dict[LedgerKey, set[int]] = {}
        self._latest: dict[LedgerKey, Reconciliation] = {}
        self._written: dict[LedgerKey, tuple[tuple[int, ...], ...]] = {}

    def reconcile(
        self,
        account: int | None,
        magic: int | None,
        symbol: str,
        positions: Sequence[Position],
        now: float | None = None,
    ) -> Reconciliation:
        """Compare one heartbeat's positions with the ledger; record and export the result."""
        key: LedgerKey = (account, magic, symbol)
        with self._lock:
            opened, closed = open_tickets(
                journal_db.ledger_events(self._reader(), account, magic, symbol)
            )
            ledger_open = opened - closed
            held = {p.ticket for p in positions}
            absent = ledger_open - held
            previous = self._latest.get(key)
            result = Reconciliation(
                account=account,
                magic=magic,
                symbol=symbol,
                ts=time.time() if now is None else now,
                positions=len(positions),
                ledger_open=tuple(sorted(ledger_open)),
                orphans=tuple(sorted(held - ledger_open)),
                unprotected=tuple(sorted(p.ticket for p in positions if not (p.sl or 0) > 0)),
                missing_closes=tuple(sorted(absent & self._absent.get(key, set()))),
                heartbeats=(previous.heartbeats + 1) if previous else 1,
            )
            self._absent[key] = absent
            self._latest[key] = result
            changed = self._written.get(key) != result.findings()
            self._written[key] = result.findings()
        if changed:
            self._record(result)
        if self.metrics is not None:
            self.metrics.set_ledger(account, magic, symbol, result.counts())
        return result

    def _record(self, result: Reconciliation) -> None:
        self.journal.record_reconcile(result.row())
        if any(result.findings()):
            log.warning(
                f"ledger {result.symbol} account {result.account} magic {result.magic}: "
                f"orphans {list(result.orphans)}, unprotected {list(result.unprotected)}, "
                f"missing closes {list(result.missing_closes)}",
                extra={k: v for k, v in result.row().items() if k != "detail"},
            )
        else:
            log.info(
                f"ledger {result.symbol} account {result.account} magic {result.magic}: "
                f"{result.positions} positions, in agreement"
            )

    def snapshot(self) -> list[dict[str, Any]]:
        """Latest result per EA, for ``/status`` (most problems first)."""
        with self._lock:
            latest = list(self._latest.values())
        rows = [r.row() | {"heartbeats": r.heartbeats} for r in latest]
        return sorted(
            rows,
            key=lambda r: (-(r["orphans"] + r["unprotected"] + r["missing_closes"]), -r["ts"]),
        )

    def _reader(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.journal.path, timeout=5.0, check_same_thread=False)
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
