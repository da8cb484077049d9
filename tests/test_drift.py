"""Feature drift: PSI of live feature rows against a training reference, through a real
server on real sockets; the metrics move when the EA sends shifted data, and with
``drift.hold_above`` the decisions turn to HOLD with reason ``drift``."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from aibridge import features
from aibridge.ea_sim import Candles, build_predict, load_candles
from aibridge.loop.drift import load_reference, psi, reference_from_matrix
from aibridge.paths import sample_data_path
from aibridge.server.models import ModelSet
from aibridge.serving_model import Decision, ModelInfo
from tests.server_fixtures import ReqClient, running_server, wait_for

PARAMS = dict(features.DEFAULT_PARAMS)


def test_psi_of_same_and_shifted_samples() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(5000, 2))
    ref = reference_from_matrix(train, ["a", "b"], bins=10)
    assert [len(e) for e in ref["edges"]] == [9, 9]
    assert np.allclose([sum(x) for x in ref["expected"]], 1.0)
    from aibridge.loop.drift import Reference

    r = Reference.from_dict(ref, "test")

    def live_psi(x: np.ndarray) -> list[float]:
        counts = [np.zeros(10, dtype=np.int64) for _ in range(2)]
        for row in x:
            for j, b in enumerate(r.bin_row(row)):
                counts[j][b] += 1
        return [psi(e, c) for e, c in zip(r.expected, counts, strict=True)]

    same = live_psi(rng.normal(size=(2000, 2)))
    assert max(same) < 0.02
    shifted = live_psi(np.column_stack([rng.normal(size=2000), rng.normal(1.0, 1, 2000)]))
    assert shifted[0] < 0.02 and shifted[1] > 0.25  # only the shifted feature moves


@dataclass
class FeatureModel:
    """A served model with the real feature code (aibridge.features) and a trivial rule:
    always BUY (so a drift HOLD is visible)."""

    info: ModelInfo
    settings: dict[str, Any] = field(default_factory=dict)
    feature_params: dict[str, Any] = field(default_factory=lambda: dict(PARAMS))
    min_bars: int = features.min_bars(PARAMS)
    digits: int = 5
    point: float = 1e-5
    sl_atr_mult: float = 1.5
    tp_atr_mult: float = 2.0
    min_confidence: float = 0.0
    broker_utc_offset_s: int | None = None
    features: Any = features

    def decide(self, t, o, h, lo, c, v, spread_points=None) -> Decision:
        probs = {"BUY": 0.6, "SELL": 0.2, "HOLD": 0.2}
        return Decision("BUY", 0.6, probs, c[-1] - 0.001, c[-1] + 0.002, 100.0, 200.0, "signal")


def serving(model: FeatureModel) -> ModelSet:
    return ModelSet(
        ["models:/aibridge-EURUSD-H1@champion"],
        resolver=lambda uri: model.info,
        loader=lambda uri: model,
    )


def sample_reference(tmp_path: Path) -> Path:
    """The sample's feature table (as the features stage writes it) for a computed reference."""
    c = load_candles(sample_data_path())
    x = features.feature_matrix(c.time, c.open, c.high, c.low, c.close, c.volume, PARAMS)
    path = tmp_path / "features.parquet"
    pd.DataFrame(x, columns=features.feature_names(PARAMS)).dropna().to_parquet(path)
    return path


def shifted(c: Candles) -> Candles:
    """Three times the bar ranges and 20x the volume: a different market regime."""
    mid = c.open
    return Candles(
        c.time, mid, mid + 3 * (c.high - mid), mid + 3 * (c.low - mid), mid + 3 * (c.close - mid),
        c.volume * 20,
    )  # fmt: skip


def metric(port: int, name: str) -> float | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def send(client: ReqClient, c: Candles, ends: range, m: int) -> list[dict[str, Any]]:
    return [client.call(build_predict(c, i, m, 5, "EURUSD", "H1", f"r{i}", 10)) for i in ends]


def test_drift_metrics_move_with_shifted_data_and_hold(tmp_path: Path) -> None:
    info = ModelInfo("aibridge-EURUSD-H1", "3", "champion", "run3", "", "", "EURUSD", "H1")
    model = FeatureModel(info)
    drift = {
        "window": 300, "min_rows": 150, "interval_s": 0.05, "hold_above": 0.25,
        "reference_features": sample_reference(tmp_path),
    }  # fmt: skip
    c = load_candles(sample_data_path())
    m = model.min_bars
    with running_server(tmp_path, serving(model), drift=drift) as (server, endpoint):
        port = server.http.port
        mon = server.drift
        with ReqClient(endpoint) as client:
            replies = send(client, c, range(m, m + 300), m)
            assert {r["action"] for r in replies} == {"BUY"}
            mon.flush()
            calm = metric(port, "aibridge_drift_psi_median")
            assert calm is not None and calm < 0.1, calm
            assert metric(port, "aibridge_drift_psi_max") > calm  # some feature always moves
            assert metric(port, "aibridge_drift_enabled") == 1.0
            assert metric(port, "aibridge_drift_rows") == 300.0
            # the same EA now sends a different regime
            s = shifted(c)
            send(client, s, range(m + 300, m + 600), m)
            mon.flush()
            hot = metric(port, "aibridge_drift_psi_median")
            assert hot is not None and hot > 0.25 > calm, hot
            status = orjson.loads(
                urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json").read()
            )
            d = status["drift"][0]
            assert d["enabled"] and d["holding"] and d["psi_median"] > 0.25
            assert d["reference"].endswith("features.parquet") and len(d["top"]) == 5
            # hold_above 0.25 exceeded: BUY turns to HOLD with reason drift, no stops
            r = send(client, s, range(m + 600, m + 601), m)[0]
            assert (r["action"], r["reason"], r["sl"], r["sl_points"]) == (
                "HOLD", "drift", None, None,
            )  # fmt: skip
            page = urllib.request.urlopen(f"http://127.0.0.1:{port}/status").read().decode()
            assert "Feature drift" in page and d["top"][0]["feature"] in page
            # back to the old regime: the window refills and decisions resume
            send(client, c, range(m + 700, m + 1000), m)
            mon.flush()
            assert wait_for(lambda: not mon.hold(("EURUSD", "H1")), timeout=5)
            assert send(client, c, range(m + 1000, m + 1001), m)[0]["action"] == "BUY"


def test_drift_disabled_with_a_reason(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    info = ModelInfo("aibridge-EURUSD-H1", "4", "champion", "run4", "", "", "EURUSD", "H1")
    model = FeatureModel(info)
    with pytest.raises(LookupError, match=r"stores no drift_reference and serve\.drift"):
        load_reference(model, None, 10)
    c = load_candles(sample_data_path())
    with running_server(tmp_path, serving(model)) as (server, endpoint):
        with ReqClient(endpoint) as client:
            send(client, c, range(model.min_bars, model.min_bars + 5), model.min_bars)
        server.drift.flush()
        snap = server.drift.snapshot()
        assert snap[0]["enabled"] is False
        assert "stores no drift_reference" in snap[0]["reason"]
        assert metric(server.http.port, "aibridge_drift_enabled") == 0.0


def test_reference_stored_in_the_model_wins(tmp_path: Path) -> None:
    c = load_candles(sample_data_path())
    x = features.feature_matrix(c.time, c.open, c.high, c.low, c.close, c.volume, PARAMS)
    names = features.feature_names(PARAMS)
    x = x[np.isfinite(x).all(axis=1)]
    info = ModelInfo("aibridge-EURUSD-H1", "5", "champion", "run5", "", "", "EURUSD", "H1")
    model = FeatureModel(info, settings={"drift_reference": reference_from_matrix(x, names)})
    ref = load_reference(model, tmp_path / "absent.parquet", 10)
    assert ref.source == "aibridge-EURUSD-H1 v5 bundle" and ref.features == names


def test_stored_reference_must_match_the_feature_code() -> None:
    info = ModelInfo("aibridge-EURUSD-H1", "6", "champion", "run6", "", "", "EURUSD", "H1")
    names = features.feature_names(PARAMS)
    ref = reference_from_matrix(np.zeros((10, len(names))), names[::-1])
    model = FeatureModel(info, settings={"drift_reference": ref})
    with pytest.raises(LookupError, match="other features than its code"):
        load_reference(model, None, 10)


def test_a_failing_feature_row_disables_drift_once(tmp_path: Path) -> None:
    info = ModelInfo("aibridge-EURUSD-H1", "9", "champion", "run9", "", "", "EURUSD", "H1")
    model = FeatureModel(info)
    drift = {"reference_features": sample_reference(tmp_path), "interval_s": 0.05}
    c = load_candles(sample_data_path())
    m = model.min_bars
    with running_server(tmp_path, serving(model), drift=drift) as (server, endpoint):
        with ReqClient(endpoint) as client:
            send(client, c, range(m, m + 5), m)
            server.drift.flush()
            assert server.drift.snapshot()[0]["enabled"]

            class Broken:
                def feature_matrix(self, *a, **k):  # type: ignore[no-untyped-def]
                    raise RuntimeError("kernel bug")

                feature_names = staticmethod(features.feature_names)

            model.features = Broken()
            replies = send(client, c, range(m + 5, m + 15), m)
            assert {r["action"] for r in replies} == {"BUY"}  # serving is unaffected
            server.drift.flush()
        snap = server.drift.snapshot()[0]
        assert (
            not snap["enabled"] and snap["reason"] == "feature row failed: RuntimeError: kernel bug"
        )
        assert metric(server.http.port, "aibridge_drift_enabled") == 0.0
