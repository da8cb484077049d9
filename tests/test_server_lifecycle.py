"""Model lifecycle on a real registry: alias moves under load, failed loads keep the old model."""

from __future__ import annotations

import logging
import threading
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from aibridge.server import journal as j
from tests.conftest import TrainedStore
from tests.server_fixtures import (
    ReqClient,
    predict_payloads,
    private_store,
    real_models,
    running_server,
    wait_for,
)

NAME = "aibridge-EURUSD-H1"


def _new_version(client: MlflowClient, source: str | None = None) -> str:
    v1 = client.get_model_version(NAME, "1")
    # v1's plain artifact location: its source (models:/m-...) MLflow would look up in the
    # process-wide tracking store, which loading a model no longer points at this store.
    source = source or client.get_model_version_download_uri(NAME, "1")
    mv = client.create_model_version(NAME, source, run_id=v1.run_id, tags=v1.tags)
    return str(mv.version)


class _Load:
    """Background EA-like clients hammering predict + heartbeat until stopped."""

    def __init__(self, ep: str, min_bars: int, clients: int = 3) -> None:
        self.payloads = predict_payloads(50, min_bars, "load")
        self.stop = threading.Event()
        self.errors: list[dict] = []
        self.versions: list[str] = []
        self.count = 0
        self.threads = [threading.Thread(target=self._run, args=(ep,)) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self, ep: str) -> None:
        with ReqClient(ep, timeout_ms=10_000) as c:
            i = 0
            while not self.stop.is_set():
                body, _, _ = self.payloads[i % len(self.payloads)]
                reply = c.call(body)
                if reply["status"] != "ok":
                    self.errors.append(reply)
                else:
                    self.versions.append(reply["model_version"])
                self.count += 1
                i += 1

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


@pytest.mark.slow
def test_alias_move_under_load_swaps_without_failed_requests(
    trained_model_store: TrainedStore, tmp_path: Path, caplog
) -> None:
    uri = private_store(trained_model_store, tmp_path)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    models = real_models(uri, [trained_model_store.model_uri], tmp_path / "cache")
    with (
        caplog.at_level(logging.INFO, logger="aibridge.server.models"),
        running_server(tmp_path, models) as (server, ep),
        ReqClient(ep) as probe,
    ):
        hb = probe.call({"type": "heartbeat", "symbol": "EURUSD", "timeframe": "H1"})
        assert hb["model"]["version"] == "1"
        models.start_polling(0.2)
        load = _Load(ep, hb["min_bars"])
        try:
            assert wait_for(lambda: load.count > 50)
            v2 = _new_version(client)
            client.set_registered_model_alias(NAME, "champion", v2)
            swapped = wait_for(
                lambda: probe.call({"type": "heartbeat"})["model"]["version"] == v2, timeout=30
            )
            n_at_swap = load.count
            assert wait_for(lambda: load.count > n_at_swap + 50)
        finally:
            load.finish()
        hb2 = probe.call({"type": "heartbeat", "symbol": "EURUSD", "timeframe": "H1"})
        metrics = (
            urllib.request.urlopen(f"http://127.0.0.1:{server.http.port}/metrics", timeout=5)
            .read()
            .decode()
        )
    assert swapped
    assert load.errors == []
    assert set(load.versions) == {"1", v2}
    assert load.versions[-1] == v2
    assert (hb2["model"]["version"], hb2["model"]["alias"], hb2["model_status"]) == (
        v2,
        "champion",
        "ok",
    )
    assert any(f"{NAME} v1 → v{v2}" in r.getMessage() for r in caplog.records)
    assert f'aibridge_model_reloads_total{{model="{NAME}"}} 1.0' in metrics
    assert f'version="{v2}"' in metrics and 'version="1"' not in metrics
    events = j.tail(tmp_path / "journal.sqlite", "model_events")
    assert [(e["event"], e["from_version"], e["to_version"]) for e in events] == [
        ("loaded", None, "1"),
        ("swapped", "1", v2),
    ]


@pytest.mark.slow
def test_failed_load_keeps_old_model_and_reports_it(
    trained_model_store: TrainedStore, tmp_path: Path
) -> None:
    uri = private_store(trained_model_store, tmp_path)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    models = real_models(uri, [trained_model_store.model_uri], tmp_path / "cache")
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors: {}\n")
    with running_server(tmp_path, models) as (server, ep), ReqClient(ep) as c:
        bad = _new_version(client, source=str(broken))
        client.set_registered_model_alias(NAME, "champion", bad)
        swaps = models.poll_once()
        hb = c.call({"type": "heartbeat", "symbol": "EURUSD", "timeframe": "H1"})
        payload = predict_payloads(1, hb["min_bars"])[0][0]
        pred = c.call(payload)
        metrics = (
            urllib.request.urlopen(f"http://127.0.0.1:{server.http.port}/metrics", timeout=5)
            .read()
            .decode()
        )
        client.set_registered_model_alias(NAME, "champion", "1")
        models.poll_once()
        hb_back = c.call({"type": "heartbeat"})
    assert swaps == []
    assert hb["model"]["version"] == "1"
    assert hb["model_status"] == "reload_failed"
    assert hb["model_error"] and "cannot load" in hb["model_error"]
    assert hb["models"][0]["model_status"] == "reload_failed"
    assert pred["status"] == "ok" and pred["model_version"] == "1"
    assert f'aibridge_model_reload_failures_total{{model="{NAME}"}} 1.0' in metrics
    assert f'aibridge_model_reload_failing{{model="{NAME}"}} 1.0' in metrics
    assert (hb_back["model_status"], hb_back["model_error"]) == ("ok", None)
    events = j.tail(tmp_path / "journal.sqlite", "model_events")
    assert events[-1]["event"] == "reload_failed" and events[-1]["to_version"] == bad


def test_several_models_in_one_process_route_by_symbol_and_timeframe(
    trained_model_store: TrainedStore, tmp_path: Path
) -> None:
    """A second registered model (tagged GBPJPY M15) is served next to EURUSD H1."""
    from aibridge.server.models import ModelLoadError

    uri = private_store(trained_model_store, tmp_path)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    v1 = client.get_model_version(NAME, "1")
    other = "aibridge-GBPJPY-M15"
    client.create_registered_model(other)
    tags = {**v1.tags, "symbol": "GBPJPY", "timeframe": "M15"}
    source = client.get_model_version_download_uri(NAME, "1")  # plain artifact location
    mv = client.create_model_version(other, source, run_id=v1.run_id, tags=tags)
    client.set_registered_model_alias(other, "champion", mv.version)
    uris = [trained_model_store.model_uri, f"models:/{other}@champion"]
    models = real_models(uri, uris, tmp_path / "cache")
    with running_server(tmp_path, models) as (_, ep), ReqClient(ep) as c:
        both = c.call({"type": "heartbeat"})
        hb = c.call({"type": "heartbeat", "symbol": "GBPJPY", "timeframe": "M15"})
        body, _, _ = predict_payloads(1, hb["min_bars"])[0]
        eur = c.call(body)
        gbp = c.call(body.replace(b'"EURUSD"', b'"GBPJPY"').replace(b'"H1"', b'"M15"'))
        half = c.call({"type": "heartbeat", "symbol": "GBPJPY"})
    assert both["model"] is None and both["min_bars"] is None
    assert sorted((m["symbol"], m["timeframe"]) for m in both["models"]) == [
        ("EURUSD", "H1"),
        ("GBPJPY", "M15"),
    ]
    assert (hb["model"]["name"], hb["model"]["symbol"]) == (other, "GBPJPY")
    assert (eur["model"], eur["symbol"]) == (NAME, "EURUSD")
    assert (gbp["model"], gbp["symbol"], gbp["timeframe"]) == (other, "GBPJPY", "M15")
    assert half["code"] == "schema"
    dup = real_models(uri, [uris[0], f"models:/{NAME}/1"], tmp_path / "cache2")
    with pytest.raises(ModelLoadError, match="both serve EURUSD H1"):
        dup.load_all()
