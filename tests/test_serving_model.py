"""The server's fast path gives exactly the decisions of `pyfunc.predict`, on every bar, and
the served model knows its training instrument and broker clock."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pytest

from aibridge import features
from aibridge.ingest import read_mt4_csv
from aibridge.model_bundle import BundleSettings, bundle_digest, pyfunc_code_path, write_bundle
from aibridge.registry import DIGEST_TAG
from aibridge.serving_model import (
    ModelInfo,
    ModelLoadError,
    ServingModel,
    TooFewBarsError,
    load_serving_model,
    parse_model_uri,
)
from tests.conftest import REPO, TrainedStore, mlflow_client

INFO = ModelInfo("m", "1", None, "run", "", "", "XAUUSD", "H1")


def save_small_model(directory: Path, **settings) -> Path:
    """A real bundle (booster, feature and decision code, settings) saved as an MLflow pyfunc,
    with a booster of a few trees on the sample's features: what the server loads, quickly."""
    candles = read_mt4_csv(REPO / "src/aibridge/data/EURUSD60.csv").candles.iloc[:600]
    params = dict(features.DEFAULT_PARAMS)
    frame = features.compute_features(candles, params)
    ready = frame.notna().all(axis=1).to_numpy()
    X = frame.to_numpy()[ready]
    y = np.arange(len(X)) % 3
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
        lgb.Dataset(X, y),
        num_boost_round=3,
    )
    bundle = BundleSettings(
        **{
            "symbol": "XAUUSD",
            "timeframe": "H1",
            "digits": 2,
            "point": 0.01,
            "feature_params": params,
            "feature_names": list(frame.columns),
            "min_bars": features.min_bars(params),
            "min_confidence": 0.5,
            "tp_atr_mult": 2.0,
            "sl_atr_mult": 1.0,
        }
        | settings
    )
    artifacts = write_bundle(directory / "bundle", booster, bundle)
    mlflow.pyfunc.save_model(
        str(directory / "model"),
        python_model=pyfunc_code_path(),
        artifacts=artifacts,
        pip_requirements=["mlflow"],
    )
    return directory / "model"


def test_served_model_has_instrument_and_broker_clock(tmp_path: Path) -> None:
    model_dir = save_small_model(
        tmp_path,
        tick_size=0.01,
        contract_size=100.0,
        broker_utc_offset_s=7200,
        broker_dst="us",
        broker_clock={"source": "inferred"},
    )
    model = ServingModel(INFO, model_dir)
    assert (model.digits, model.point, model.tick_size, model.contract_size) == (
        2,
        0.01,
        0.01,
        100.0,
    )
    assert (model.broker_utc_offset_s, model.broker_dst) == (7200, "us")
    assert isinstance(model.broker_utc_offset_s, int) and isinstance(model.contract_size, float)
    # A GMT+2/+3 New York close broker reports 10800 all US summer.
    assert model.broker_utc_offset_at(datetime(2026, 12, 1, tzinfo=UTC).timestamp()) == 7200
    assert model.broker_utc_offset_at(datetime(2026, 7, 1, tzinfo=UTC).timestamp()) == 10800


def test_bundle_written_before_these_keys_still_loads(tmp_path: Path) -> None:
    model_dir = save_small_model(tmp_path)
    settings_path = model_dir / "artifacts" / "settings.json"
    settings = json.loads(settings_path.read_text())
    keys = ("tick_size", "contract_size", "broker_utc_offset_s", "broker_dst", "broker_clock")
    assert all(key in settings for key in keys)
    settings_path.write_text(json.dumps({k: v for k, v in settings.items() if k not in keys}))
    model = ServingModel(INFO, model_dir)
    assert (model.tick_size, model.contract_size, model.broker_utc_offset_s) == (None, None, None)
    assert model.broker_dst is None and model.broker_utc_offset_at(0) is None
    assert BundleSettings.load(settings_path).broker_utc_offset_s is None
    # The pyfunc loads the old settings as well and decides as the fast path does.
    candles = read_mt4_csv(REPO / "src/aibridge/data/EURUSD60.csv").candles.iloc[:200]
    candles = candles.drop(columns=["line"])
    expected = mlflow.pyfunc.load_model(str(model_dir)).predict(candles).iloc[-1]
    got = model.decide(
        *(candles[c].to_numpy() for c in ("time", "open", "high", "low", "close", "volume"))
    )
    assert (got.action, got.confidence) == (expected["action"], expected["confidence"])


@pytest.mark.slow
def test_trained_model_records_instrument_and_broker_clock(
    trained_model_store: TrainedStore, tmp_path
) -> None:
    """Through the pipeline: the sample is UTC (42 weekends), EURUSD's spec from conf/."""
    serving = load_serving_model(
        trained_model_store.model_uri, trained_model_store.tracking_uri, cache_dir=tmp_path
    )
    assert (serving.digits, serving.point, serving.tick_size, serving.contract_size) == (
        5,
        1e-05,
        1e-05,
        100000.0,
    )
    assert (serving.broker_utc_offset_s, serving.broker_dst) == (0, "none")
    assert serving.settings["broker_clock"]["evidence"] == (
        "inferred UTC+0, daylight saving none; 42/42 weekends agree"
    )
    client = mlflow_client(trained_model_store.tracking_uri)
    run = client.get_run(serving.info.run_id)
    assert run.data.params["broker_utc_offset_s"] == "0"
    assert run.data.tags["broker_clock.source"] == "inferred"
    assert run.data.tags["broker_clock.evidence"].endswith("42/42 weekends agree")
    version = client.get_model_version(trained_model_store.model_name, serving.info.version)
    # The version carries a few tags (the clock is on its run and in its bundle), among them
    # the digest of the bundle: the downloaded model (with provenance) equals the DVC output.
    assert (version.tags["symbol"], version.tags["timeframe"]) == ("EURUSD", "H1")
    assert version.tags[DIGEST_TAG] == bundle_digest(serving.model_dir)
    assert (
        bundle_digest(trained_model_store.root / "artifacts" / "model") == version.tags[DIGEST_TAG]
    )
    report = json.loads((trained_model_store.root / "reports" / "ingest.json").read_text())
    assert report["files"]["data/EURUSD60.csv"]["broker_clock"]["utc_offset_s"] == 0


def _same(got, row) -> bool:
    """The fast path's Decision equals the pyfunc's row, bit for bit."""
    ev = row.get("ev_r", np.nan)
    return bool(
        got.action == row["action"]
        and got.confidence == row["confidence"]
        and got.probabilities["BUY"] == row["p_buy"]
        and got.probabilities["SELL"] == row["p_sell"]
        and got.probabilities["HOLD"] == row["p_hold"]
        and got.reason == row["reason"]
        and (got.sl is None) == bool(np.isnan(row["sl"]))
        and (
            got.sl is None
            or (
                got.sl == row["sl"]
                and got.tp == row["tp"]
                and got.sl_points == row["sl_points"]
                and got.tp_points == row["tp_points"]
            )
        )
        and ((got.ev_r is None and np.isnan(ev)) or got.ev_r == ev)
    )


@pytest.mark.slow
@pytest.mark.parametrize("ev_margin", [None, -0.4])
def test_fast_path_equals_pyfunc_on_every_bar(
    trained_model_store: TrainedStore, tmp_path, ev_margin: float | None
) -> None:
    """As registered (the sample has no edge: the model never trades, reason no_edge), and
    with a margin low enough that it trades on the bars' own spreads, so SL/TP prices, the
    calibrated probabilities and the EV are compared too."""
    serving = load_serving_model(
        trained_model_store.model_uri, trained_model_store.tracking_uri, cache_dir=tmp_path
    )
    assert serving.info.version == "1" and serving.info.alias == "champion"
    assert serving.info.data_hash.endswith(".dir")
    candles = trained_model_store.candles
    if ev_margin is not None:
        model_dir = tmp_path / "low-margin"
        shutil.copytree(serving.model_dir, model_dir)
        settings_path = model_dir / "artifacts" / "settings.json"
        settings = json.loads(settings_path.read_text())
        settings["ev_margin"] = ev_margin
        settings_path.write_text(json.dumps(settings))
        serving = ServingModel(serving.info, model_dir)
        pyfunc = mlflow.pyfunc.load_model(str(model_dir)).unwrap_python_model()
        spreads = np.random.default_rng(0).integers(0, 30, len(candles)).astype(float)
        candles = candles.assign(spread=spreads)
    else:
        mlflow.set_tracking_uri(trained_model_store.tracking_uri)
        pyfunc = mlflow.pyfunc.load_model(trained_model_store.model_uri).unwrap_python_model()
        mlflow.set_tracking_uri(None)
        spreads = None
    expected = pyfunc.predict(None, candles)
    if ev_margin is not None:
        assert (expected["action"] != "HOLD").sum() > 100
    else:
        m = serving.min_bars
        assert set(expected["reason"].iloc[m - 1 :]) == {"no_edge"}
    arrays = [candles[c].to_numpy() for c in ("time", "open", "high", "low", "close", "volume")]
    m = serving.min_bars
    mismatches = []
    for t in range(m - 1, len(candles)):
        window = [a[t - m + 1 : t + 1] for a in arrays]
        got = serving.decide(*window, spread_points=None if spreads is None else spreads[t])
        if not _same(got, expected.iloc[t]):
            mismatches.append(t)
    assert mismatches == []
    assert len(candles) - m + 1 == 4960


@pytest.mark.slow
def test_too_few_bars_is_a_specific_error(trained_model_store: TrainedStore, tmp_path) -> None:
    serving = load_serving_model(
        trained_model_store.model_uri, trained_model_store.tracking_uri, cache_dir=tmp_path
    )
    arrays = [
        trained_model_store.candles[c].to_numpy()[:10]
        for c in ("time", "open", "high", "low", "close", "volume")
    ]
    with pytest.raises(TooFewBarsError, match="10 candles sent, the model needs 41"):
        serving.decide(*arrays)


@pytest.mark.slow
def test_missing_model_and_bad_uri_are_clear(trained_model_store: TrainedStore) -> None:
    with pytest.raises(ModelLoadError, match="cannot resolve models:/nope@champion"):
        load_serving_model("models:/nope@champion", trained_model_store.tracking_uri)
    with pytest.raises(ModelLoadError, match="is not a registry URI"):
        parse_model_uri("runs:/abc/model")


def _ev_bundle(tmp_path: Path, calibration: dict | None, **extra) -> Path:
    return save_small_model(
        tmp_path,
        decision_rule="ev",
        calibration=calibration,
        ev_margin=-0.2,
        cost_points=7.0,
        spread_ref_points=5.0,
        default_spread_points=12.0,
        min_confidence=0.0,
        symbol="EURUSD",
        digits=5,
        point=1e-5,
        **extra,
    )


ISOTONIC = {
    "method": "isotonic",
    "x": [[0.2, 0.3, 0.35, 0.5], [0.2, 0.4, 0.6], [0.1, 0.33, 0.34, 0.6]],
    "y": [[0.1, 0.2, 0.45, 0.5], [0.3, 0.35, 0.9], [0.05, 0.3, 0.5, 0.7]],
}
SIGMOID = {"method": "sigmoid", "a": [3.0, 1.0, 4.0], "b": [0.5, 0.0, -0.2]}


@pytest.mark.parametrize("calibration", [None, ISOTONIC, SIGMOID], ids=["none", "iso", "sig"])
def test_fast_path_equals_pyfunc_with_calibration_and_spreads(
    tmp_path: Path, calibration: dict | None
) -> None:
    """An expected-value bundle: calibrated probabilities, EV, reasons and SL/TP (BUY from the
    Ask) are the pyfunc's bits on every bar, with the request's spread or the default."""
    model_dir = _ev_bundle(tmp_path, calibration)
    model = ServingModel(INFO, model_dir)
    candles = read_mt4_csv(REPO / "src/aibridge/data/EURUSD60.csv").candles.iloc[:400]
    candles = candles.drop(columns=["line"]).reset_index(drop=True)
    spreads = np.random.default_rng(1).integers(0, 40, len(candles)).astype(float)
    pyfunc = mlflow.pyfunc.load_model(str(model_dir))
    arrays = [candles[c].to_numpy() for c in ("time", "open", "high", "low", "close", "volume")]
    m = model.min_bars
    for with_spread in (False, True):
        frame = candles.assign(spread=spreads) if with_spread else candles
        expected = pyfunc.unwrap_python_model().predict(None, frame)
        # the registry's pyfunc (schema enforcement) gives the same frame
        if not with_spread:
            via_mlflow = pyfunc.predict(frame)
            assert via_mlflow["action"].equals(expected["action"])
        reasons = set(expected["reason"].iloc[m - 1 :])
        assert "signal" in reasons, reasons
        for t in range(m - 1, len(candles)):
            window = [a[t - m + 1 : t + 1] for a in arrays]
            got = model.decide(*window, spread_points=spreads[t] if with_spread else None)
            assert _same(got, expected.iloc[t]), (t, got, expected.iloc[t].to_dict())
        p = expected[["p_sell", "p_hold", "p_buy"]].iloc[m - 1 :].to_numpy()
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
        close = candles["close"].to_numpy()
        for side, sign in (("BUY", 1), ("SELL", -1)):
            rows = expected[expected["action"] == side]
            assert len(rows) > 0
            entry = close[rows.index] + (
                (spreads[rows.index] if with_spread else 12.0) * 1e-5 if sign > 0 else 0.0
            )
            # levels measured from the expected fill: BUY at the Ask, SELL at the Bid
            np.testing.assert_allclose(
                rows["tp"], entry + sign * rows["tp_points"] * 1e-5, atol=1e-9
            )
            np.testing.assert_allclose(
                rows["sl"], entry - sign * rows["sl_points"] * 1e-5, atol=1e-9
            )


def test_no_margin_means_no_trade_and_says_so(tmp_path: Path) -> None:
    model = ServingModel(INFO, _ev_bundle(tmp_path, SIGMOID))
    import dataclasses

    model._decision_settings = dataclasses.replace(model._decision_settings, ev_margin=None)
    candles = read_mt4_csv(REPO / "src/aibridge/data/EURUSD60.csv").candles.iloc[:100]
    got = model.decide(
        *(candles[c].to_numpy() for c in ("time", "open", "high", "low", "close", "volume"))
    )
    assert (got.action, got.reason, got.sl) == ("HOLD", "no_edge", None)
    assert got.ev_r is not None
