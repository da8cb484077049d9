"""The status page: served by the real server, rendered by a real headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import TrainedStore
from tests.server_fixtures import ReqClient, predict_payloads, real_models, running_server, wait_for

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def busy_server(trained_model_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory):
    """A real server on the champion that has answered decisions and one malformed request."""
    tmp = tmp_path_factory.mktemp("status")
    models = real_models(
        trained_model_store.tracking_uri, [trained_model_store.model_uri], tmp / "cache"
    )
    with running_server(tmp, models) as (server, ep):
        import zmq

        min_bars = ReqClient(ep).call({"type": "heartbeat"})["min_bars"]
        sock = zmq.Context.instance().socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(ep)
        for body, _, _ in predict_payloads(5, min_bars, "status"):
            sock.send(body)
            sock.recv()
        sock.send(b"{not json")
        sock.recv()
        sock.close()
        # an EA holding a position the server never saw filled, without a stop loss
        position = {"ticket": 999, "side": "SELL", "lots": 0.1, "open_price": 1.1, "sl": None,
                    "tp": None, "open_time": 1_497_574_800}  # fmt: skip
        hb = {"type": "heartbeat", "symbol": "EURUSD", "timeframe": "H1", "account": 12345,
              "magic": 20261125, "positions": [position]}  # fmt: skip
        assert ReqClient(ep).call(hb)["reconcile"] == {
            "orphans": 1,
            "unprotected": 1,
            "missing_closes": 0,
        }
        base = f"http://127.0.0.1:{server.http.port}"
        assert wait_for(lambda: len(_json(base)["last_decisions"]) == 5, timeout=10)
        yield server, base


def _json(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/status.json", timeout=5) as resp:
        return json.loads(resp.read())


def test_status_json_reports_model_traffic_and_errors(busy_server) -> None:
    _, base = busy_server
    doc = _json(base)
    assert doc["status"] == "ok"
    assert doc["models"][0]["name"] == "aibridge-EURUSD-H1" and doc["models"][0]["version"] == "1"
    assert {d["action"] for d in doc["last_decisions"]} <= {"BUY", "SELL", "HOLD"}
    assert [d["request_id"] for d in doc["last_decisions"]][-1] == "status-0"
    assert doc["last_errors"][0]["code"] == "bad_json"
    assert doc["latency"]["n"] >= 6 and doc["latency"]["p50_ms"] > 0
    assert doc["requests_per_s"]["predict"] > 0
    [ledger] = doc["ledger"]
    assert (ledger["account"], ledger["magic"], ledger["symbol"]) == (12345, 20261125, "EURUSD")
    assert ledger["detail"]["orphans"] == ledger["detail"]["unprotected"] == [999]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_status_page_renders_in_headless_chromium(busy_server, tmp_path: Path) -> None:
    _, base = busy_server
    assert CHROMIUM is not None
    dom = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom", f"{base}/status",
        ],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert '<span id="status" class="ok">ok</span>' in dom
    assert "aibridge-EURUSD-H1" in dom and "champion" in dom
    decisions = dom.split('id="decisions"')[1].split("</div>")[0]
    assert decisions.count("<tr>") == 6  # header + 5 decisions
    assert "status-4" in decisions
    errors = dom.split('id="errors"')[1].split("</div>")[0]
    assert "bad_json" in errors
    assert "p50" in dom.split('id="latency"')[1]
    assert '<span id="ledger-status" class="unhealthy">2 finding(s)</span>' in dom
    ledger = dom.split('id="ledger"')[1].split("</div>")[0]
    assert ledger.count("<tr>") == 2 and "<td>999</td>" in ledger and "20261125" in ledger
