"""``aibridge journal tail``: JSON lines, and ``--follow`` on a journal a writer is filling.

A real journal (:class:`aibridge.server.journal.Journal`, the server's own writer thread) and
the real CLI in its own process, as a user runs them in two terminals.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from aibridge.server.journal import Journal


def closed_event(ticket: int, reason: str) -> dict:
    return {
        "ts": time.time(),
        "request_id": f"te-0-{ticket}-closed-1",
        "event": "closed",
        "symbol": "EURUSD",
        "timeframe": "H1",
        "ticket": ticket,
        "side": "BUY",
        "price": 1.1,
        "lots": 0.1,
        "profit": 12.5,
        "reason": reason,
    }


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aibridge.cli", "journal", "tail", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_json_is_one_object_per_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    try:
        for ticket, reason in ((1, "tp"), (2, "sl"), (3, "signal")):
            journal.record_trade_event(closed_event(ticket, reason))
    finally:
        journal.close()
    res = cli("--path", "j.sqlite", "--table", "trade_events", "--json", "-n", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 2
    rows = [orjson.loads(line) for line in lines]
    assert [(r["ticket"], r["reason"]) for r in rows] == [(2, "sl"), (3, "signal")]


def test_follow_prints_rows_written_after_it_started(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.record_trade_event(closed_event(1, "tp"))  # before: shown by -n 1
    proc = subprocess.Popen(
        [sys.executable, "-m", "aibridge.cli", "journal", "tail", "--path", str(path),
         "--table", "trade_events", "--json", "-n", "1", "--follow", "--for-seconds", "20",
         "--interval", "0.1"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[dict] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(orjson.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r["ticket"] for r in seen] == [1], proc.stderr
        journal.record_trade_event(closed_event(2, "sl"))  # while it follows
        journal.record_trade_event(closed_event(3, "time"))
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        journal.close()
        proc.terminate()  # what Ctrl-C does for a user: stop following
        proc.wait(timeout=10)
    assert [(r["ticket"], r["reason"]) for r in seen] == [(1, "tp"), (2, "sl"), (3, "time")]


@pytest.mark.slow  # two CLI processes (~4 s each on a loaded box)
def test_follow_stops_at_the_deadline_and_waits_for_a_missing_journal(tmp_path: Path) -> None:
    res = cli(
        "--path", "later.sqlite", "--follow", "--for-seconds", "1", "--interval", "0.1",
        cwd=tmp_path,
    )  # fmt: skip
    # it ends by itself: cli() gives it 60 s (subprocess timeout) for a 1 s deadline
    assert res.returncode == 0, res.stderr
    assert "no journal at later.sqlite yet" in res.stderr
    plain = cli("--path", "later.sqlite", cwd=tmp_path)
    assert plain.returncode == 1 and "no journal at later.sqlite" in plain.stderr
    assert "Traceback" not in plain.stderr


def test_a_missing_journal_names_the_ones_beside_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aibridge.server.commands import serve_app

    Journal(tmp_path / "demo-trading.sqlite").close()  # what make demo leaves in journal/
    res = CliRunner().invoke(
        serve_app, ["journal", "tail", "--path", str(tmp_path / "aibridge.sqlite")]
    )
    text = " ".join(res.output.split())
    assert res.exit_code == 1, text
    assert f"no journal at {tmp_path / 'aibridge.sqlite'}" in text
    assert f"pick one with --path {tmp_path / 'demo-trading.sqlite'}" in text, text
