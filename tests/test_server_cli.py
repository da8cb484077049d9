"""CLI commands around the server: journal tail/export, keys, settings, startup errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from aibridge.server import journal as j
from aibridge.server.commands import parse_since, serve_app
from aibridge.server.settings import ServeSettings, load_serve_settings

runner = CliRunner()


def _journal(path: Path) -> None:
    jr = j.Journal(path)
    for i, ts in enumerate([1_000.0, 2_000.0, 3_000.0]):
        jr.record_request(
            j.RequestRecord(ts, "predict", f"r{i}", "EURUSD", "H1", "ok", None, "HOLD", "1",
                            250, {"n": 41}, b'{"status":"ok"}')
        )  # fmt: skip
    jr.record_trade_event({"ts": 2_500.0, "event": "filled", "symbol": "EURUSD", "ticket": 7})
    jr.close()


def test_journal_tail_table_and_json(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    _journal(db)
    res = runner.invoke(serve_app, ["journal", "tail", "--path", str(db), "-n", "2"])
    assert res.exit_code == 0, res.output
    assert "r1" in res.output and "r2" in res.output and "r0" not in res.output
    res = runner.invoke(
        serve_app, ["journal", "tail", "--path", str(db), "--table", "trade_events", "--json"]
    )
    assert res.exit_code == 0
    assert json.loads(res.stdout)["ticket"] == 7


def test_journal_export_since_jsonl_and_csv(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    _journal(db)
    res = runner.invoke(
        serve_app, ["journal", "export", "--path", str(db), "--since", "1970-01-01T00:30:00"]
    )
    assert res.exit_code == 0, res.output
    lines = [orjson.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert [x["request_id"] for x in lines] == ["r1", "r2"]
    out = tmp_path / "x.csv"
    res = runner.invoke(
        serve_app,
        ["journal", "export", "--path", str(db), "--since", "1970-01-01", "--format", "csv",
         "-o", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0 and "exported 3 requests rows" in res.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["request_id"] for r in rows] == ["r0", "r1", "r2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["journal", "tail", "--path", "/nonexistent/j.sqlite"], "no journal at"),
        (["journal", "tail", "--path", "{db}", "--table", "bogus"], "unknown journal table"),
        (["journal", "export", "--path", "{db}", "--since", "yesterday"], "--since 'yesterday'"),
        (
            ["journal", "export", "--path", "{db}", "--since", "1h", "--format", "xml"],
            "jsonl or csv",
        ),
    ],
)
def test_journal_user_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    db = tmp_path / "j.sqlite"
    _journal(db)
    res = runner.invoke(serve_app, [a.replace("{db}", str(db)) for a in args])
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output


def test_parse_since_forms() -> None:
    assert parse_since("90m", now=10_000.0) == 10_000.0 - 5_400
    assert parse_since("2d", now=200_000.0) == 200_000.0 - 172_800
    assert parse_since("1970-01-02") == 86_400.0
    assert parse_since("1970-01-01T01:00:00+01:00") == 0.0


def test_keys_generate_writes_a_usable_pair(tmp_path: Path) -> None:
    res = runner.invoke(serve_app, ["keys", "generate", "--dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    secret = tmp_path / "server.key_secret"
    assert (secret.stat().st_mode & 0o777) == 0o600
    public_text = (tmp_path / "server.key").read_text()
    assert "public-key" in public_text and "secret-key" not in public_text
    assert "secret-key" in secret.read_text()
    again = runner.invoke(serve_app, ["keys", "generate", "--dir", str(tmp_path)])
    assert again.exit_code == 1 and "already exists" in again.output


def test_serve_settings_defaults_and_paths(tmp_path: Path) -> None:
    s = load_serve_settings({"port": 6000, "models": ["models:/m@a", "models:/n/2"]})
    assert (s.host, s.port, s.models) == ("127.0.0.1", 6000, ["models:/m@a", "models:/n/2"])
    assert s.hard_max_message_bytes == 4 * s.max_message_bytes
    r = ServeSettings(log_path=Path("/abs/log.jsonl")).resolve_paths(tmp_path)
    assert r.log_path == Path("/abs/log.jsonl")
    assert r.journal_path == tmp_path / "journal" / "aibridge.sqlite"
    with pytest.raises(ValueError, match="port"):
        load_serve_settings({"port": 70_000})


def test_serve_with_unknown_model_fails_cleanly(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    res = runner.invoke(
        serve_app,
        ["serve", "--model", "models:/nope@champion", "--tracking-uri", uri, "--port", "0",
         "--journal", str(tmp_path / "j.sqlite"), "--log-path", str(tmp_path / "l.jsonl"),
         "--no-metrics"],
    )  # fmt: skip
    assert res.exit_code == 1
    assert "cannot load models:/nope@champion" in res.output
    assert "Traceback" not in res.output
