"""The demo's second part: a planted-edge model, a real server, the EA emulator.

The model is what ``make demo`` trains (``dvc repro`` of this project in a temp dir, on the
synthetic series), served by a real ``aibridge serve`` process on loopback; what the tests
read back is the server's own SQLite journal and the emulator's summary, and the commands the
demo ends with are run against the real CLI.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from aibridge import demo
from aibridge.ingest.mt4_csv import read_mt4_csv
from aibridge.server import journal as j


def test_replay_csv_widens_the_rollover_spread(tmp_path: Path) -> None:
    from aibridge.mt4.synthetic import PlantedEdge, write_series

    source = write_series(tmp_path / "src", PlantedEdge(bars=60))
    path, n = demo.replay_csv(source, tmp_path / "replay" / "EURUSD60.csv")
    candles = read_mt4_csv(path).candles
    assert n == len(candles) == 60
    assert candles[["open", "high", "low", "close"]].equals(
        read_mt4_csv(source).candles[["open", "high", "low", "close"]]
    )
    midnight = candles["time"].dt.hour == 0
    assert midnight.any() and (~midnight).any()
    assert (candles.loc[midnight, "spread"] == demo.ROLLOVER_SPREAD).all()
    assert (candles.loc[~midnight, "spread"] == demo.DEFAULT_SPREAD).all()


@pytest.fixture(scope="module")
def trading(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    work = tmp_path_factory.mktemp("demo-work")
    root = tmp_path_factory.mktemp("demo-root")
    model = demo.train_planted_edge(work)
    return root, demo.trading_demo(root, work, model, bars=demo.TRADING_BARS)


@pytest.mark.slow  # dvc repro of the project on the synthetic series (~30 s) + a server
def test_the_planted_edge_model_shows_the_whole_protocol(trading) -> None:
    root, report = trading
    assert report["bars"] == demo.TRADING_BARS
    assert report["replies"]["BUY"] > 0 and report["replies"]["SELL"] > 0
    buy, sell = report["reply_examples"]["BUY"], report["reply_examples"]["SELL"]
    assert buy["sl"] < buy["tp"] and sell["sl"] > sell["tp"]  # stops on the right sides
    for reply in (buy, sell):
        assert reply["sl_points"] > 0 and reply["tp_points"] > 0
    # the EA's own checks: the 00:00 rollover spread and a signal while a position is open
    assert report["vetoes"].get("spread_too_wide", 0) >= 1
    assert report["vetoes"].get("exposure_limit", 0) >= 1
    events = report["trade_events"]
    assert events["filled"] >= 1 and events["closed"] >= 1
    assert set(report["closed_by"]) <= {"sl", "tp", "signal", "time"}
    assert sum(report["closed_by"].values()) == events["closed"]
    # ...and the journal the real server wrote says the same
    journal = root / demo.TRADING_JOURNAL
    assert Path(report["journal"]) == journal
    rows = j.tail(journal, "trade_events", 100_000)
    closed = [r for r in rows if r["event"] == "closed"]
    assert len(closed) == events["closed"] and all(r["reason"] for r in closed)
    predicts = [r for r in j.tail(journal, "requests", 100_000) if r["type"] == "predict"]
    assert {r["action"] for r in predicts} == {"BUY", "SELL", "HOLD"}


@pytest.mark.slow  # shares the trained model above
def test_the_commands_the_demo_suggests_run(trading) -> None:
    root = trading[0]
    (root / "journal" / "demo.sqlite").write_bytes((root / demo.TRADING_JOURNAL).read_bytes())
    for hint in demo.hints(root):
        argv = shlex.split(hint)
        assert argv[0] == "aibridge"  # no .venv in this root: the one on PATH
        res = subprocess.run(
            [sys.executable, "-m", "aibridge.cli", *argv[1:]],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, f"{hint}: {res.stderr}"
        if "--json" in argv:
            lines = res.stdout.splitlines()
            assert len(lines) == 5 and all(orjson.loads(line)["id"] for line in lines)
        elif "trade_events" in argv:
            assert "closed" in res.stdout


def test_without_part_2_the_hints_name_only_the_sample_journal(tmp_path: Path) -> None:
    assert demo.hints(tmp_path, trading=False) == [
        "aibridge journal tail --path journal/demo.sqlite"
    ]
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "aibridge").touch()
    assert all(h.startswith(".venv/bin/aibridge journal tail") for h in demo.hints(tmp_path))
