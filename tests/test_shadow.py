"""Shadow challenger on real sockets: the EA (ea-sim) only ever gets the champion's answer,
the challenger's decision on the same window is journaled off the hot path, and the forward
test compares them on the live bars."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
import pytest

from aibridge.bundle import ModelInfo
from aibridge.ea_sim import EaEmulator, SimConfig, build_predict, load_candles
from aibridge.loop.shadow import ShadowRunner, forward_report, shadow_uri
from aibridge.paths import sample_data_path
from aibridge.server.models import ModelSet
from tests.server_fixtures import ReqClient, running_server
from tests.test_reconcile_report import MomentumModel

NAME = "aibridge-EURUSD-H1"


def registry() -> tuple[dict[str, ModelInfo], dict[str, MomentumModel]]:
    """Champion v7 (signals on 0.7 ATR moves) and challenger v8 (0.3 ATR: trades more)."""
    v7 = ModelInfo(NAME, "7", "champion", "run7", "", "", "EURUSD", "H1")
    v8 = ModelInfo(NAME, "8", "challenger", "run8", "", "", "EURUSD", "H1")
    infos = {f"models:/{NAME}@champion": v7, f"models:/{NAME}@challenger": v8}
    models = {
        f"models:/{NAME}/7": MomentumModel(v7),
        f"models:/{NAME}/8": MomentumModel(v8, threshold=0.3),
    }
    return infos, models


def champions() -> tuple[ModelSet, tuple[dict[str, ModelInfo], dict[str, MomentumModel]]]:
    infos, models = registry()
    ms = ModelSet(
        [f"models:/{NAME}@champion"], resolver=infos.__getitem__, loader=models.__getitem__
    )
    return ms, (infos, models)


def test_shadow_uri() -> None:
    assert shadow_uri(f"models:/{NAME}@champion", "challenger") == f"models:/{NAME}@challenger"


@pytest.mark.slow
def test_shadow_challenger_on_live_requests(tmp_path: Path) -> None:
    ms, (infos, models) = champions()
    with running_server(tmp_path, ms) as (server, endpoint):
        runner = ShadowRunner.load(
            server.models, alias="challenger", uris=None, resolver=infos.__getitem__,
            loader=models.__getitem__, journal=server.journal, metrics=server.metrics,
        )  # fmt: skip
        server.attach_shadow(runner)
        sim = EaEmulator(SimConfig(endpoint=endpoint, bars=300, quiet=True, account=7))
        summary = sim.run()
        assert summary.predict_versions and set(summary.predict_versions) == {"7"}
        runner.flush()
        server.journal.flush()
        port = server.http.port
        status = orjson.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json").read())
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    snap = status["shadow"][0]
    assert snap["challenger"] == f"{NAME} v8" and snap["decisions"] == 300
    assert 0 < snap["agreement"] < 1 and snap["signals_challenger"] > snap["signals_champion"]
    assert 'aibridge_shadow_decisions_total{agreement="agree",challenger_version="8"' in metrics
    conn = sqlite3.connect(tmp_path / "journal.sqlite")
    conn.row_factory = sqlite3.Row
    preds = {
        r["request_id"]: json.loads(r["reply"])
        for r in conn.execute("SELECT * FROM requests WHERE type='predict' AND status='ok'")
    }
    rows = conn.execute("SELECT * FROM shadow ORDER BY id").fetchall()
    events = conn.execute("SELECT event FROM model_events").fetchall()
    conn.close()
    assert ("shadow_loaded",) in [tuple(e) for e in events]
    assert len(rows) == len(preds) == 300
    c = load_candles(sample_data_path())
    pos = {int(t): i for i, t in enumerate(c.time)}
    for r in rows:
        reply = preds[r["request_id"]]
        # the champion's answer, as sent; the challenger's, recomputed on the same window
        assert (r["champion_action"], r["champion_version"]) == (reply["action"], "7")
        i = pos[r["bar_time"]]
        w = slice(i - 29, i + 1)
        d = models[f"models:/{NAME}/8"].decide(
            c.time[w], c.open[w], c.high[w], c.low[w], c.close[w], c.volume[w]
        )
        assert (r["challenger_action"], r["challenger_version"]) == (d.action, "8")
        assert r["latency_us"] >= 0
    doc = forward_report(tmp_path / "journal.sqlite", "EURUSD", "H1")
    assert doc["decisions"] == 300 and doc["agreement"] == snap["agreement"]
    assert sum(sum(v.values()) for v in doc["confusion"].values()) == 300
    assert doc["challenger"]["signals"] == snap["signals_challenger"]
    assert doc["champion"]["trades"] > 0 and doc["challenger"]["trades"] > 0
    # the champion's replay equals what the emulator traded on the same bars
    assert doc["champion"]["trades"] == len(sim.trade_table())
    proc = subprocess.run(
        [sys.executable, "-m", "aibridge.loop", "shadow-report", "--symbol", "EURUSD",
         "--journal", str(tmp_path / "journal.sqlite")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "# Shadow forward test: EURUSD H1" in proc.stdout and "| trades |" in proc.stdout


def test_broken_challenger_never_hurts_the_champion(tmp_path: Path) -> None:
    ms, (infos, models) = champions()

    class Broken(MomentumModel):
        def decide(self, *a, **k):  # type: ignore[no-untyped-def]
            raise RuntimeError("challenger bug")

    models[f"models:/{NAME}/8"] = Broken(infos[f"models:/{NAME}@challenger"])
    c = load_candles(sample_data_path())
    with running_server(tmp_path, ms) as (server, endpoint):
        runner = ShadowRunner.load(
            server.models, alias="challenger", uris=None, resolver=infos.__getitem__,
            loader=models.__getitem__, journal=server.journal,
        )  # fmt: skip
        server.attach_shadow(runner)
        with ReqClient(endpoint) as client:
            for i in range(40, 50):
                reply = client.call(build_predict(c, i, 30, 5, "EURUSD", "H1", f"r{i}", 10))
                assert reply["status"] == "ok" and reply["model_version"] == "7"
        runner.flush()
        snap = runner.snapshot()[0]
    assert snap["decisions"] == 0 and snap["error"] == "RuntimeError: challenger bug"
    assert runner.stats[("EURUSD", "H1")].errors == 10


def test_missing_challenger_alias_is_skipped(tmp_path: Path) -> None:
    ms, (infos, models) = champions()
    del infos[f"models:/{NAME}@challenger"]
    ms.load_all()
    runner = ShadowRunner.load(
        ms, alias="challenger", uris=None, resolver=infos.__getitem__,
        loader=models.__getitem__, journal=None,
    )  # fmt: skip
    try:
        assert runner.sets == {}
    finally:
        runner.stop()
