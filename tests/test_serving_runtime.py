"""The lean serving runtime decides exactly as the pyfunc, on every bar, without MLflow,
pandas, scikit-learn, numba or the lightgbm package in the process."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pytest

from aibridge import decision, features
from aibridge.ingest import BrokerClock, read_mt4_csv
from aibridge.serving import clock
from aibridge.serving.decide import DecisionTwin
from aibridge.serving.features_row import LeanFeatures
from aibridge.serving.lgbm import NativeBooster
from aibridge.serving.runtime import MANIFEST, LeanModel
from aibridge.serving.types import ModelLoadError
from aibridge.serving_model import ServingModel
from tests.conftest import REPO, TrainedStore
from tests.test_serving_model import INFO, ISOTONIC, SIGMOID, _ev_bundle, _same, save_small_model

COLUMNS = ("time", "open", "high", "low", "close", "volume")
HEAVY = ("mlflow", "pandas", "sklearn", "scipy", "numba", "lightgbm")


def _sample(n: int | None = None):
    candles = read_mt4_csv(REPO / "src/aibridge/data/EURUSD60.csv").candles
    candles = candles.drop(columns=["line"]).reset_index(drop=True)
    return candles if n is None else candles.iloc[:n]


@pytest.mark.parametrize("calibration", [None, ISOTONIC, SIGMOID], ids=["none", "iso", "sig"])
def test_lean_model_equals_pyfunc_on_every_sample_bar(tmp_path: Path, calibration) -> None:
    """All 4,960 decidable bars of the sample, with the bars' own spreads and without."""
    model_dir = _ev_bundle(tmp_path, calibration)
    lean = LeanModel(INFO, model_dir)
    assert lean._twin is not None  # the bundle carries this checkout's decision.py
    candles = _sample()
    spreads = np.random.default_rng(2).integers(0, 40, len(candles)).astype(float)
    pyfunc = mlflow.pyfunc.load_model(str(model_dir)).unwrap_python_model()
    arrays = [candles[c].to_numpy() for c in COLUMNS]
    m = lean.min_bars
    for with_spread in (False, True):
        frame = candles.assign(spread=spreads) if with_spread else candles
        expected = pyfunc.predict(None, frame)
        assert {"signal", "ev_below_margin"} <= set(expected["reason"].iloc[m - 1 :])
        bad = []
        for t in range(m - 1, len(candles)):
            window = [a[t - m + 1 : t + 1] for a in arrays]
            got = lean.decide(*window, spread_points=spreads[t] if with_spread else None)
            if not _same(got, expected.iloc[t]):
                bad.append(t)
        assert bad == [] and len(candles) - m + 1 == 4960


@pytest.mark.slow
def test_lean_model_equals_serving_model_on_old_confidence_bundle(tmp_path: Path) -> None:
    """A bundle from before the EV rule (decision_rule "confidence"): same decisions too."""
    model_dir = save_small_model(tmp_path)
    full, lean = ServingModel(INFO, model_dir), LeanModel(INFO, model_dir)
    candles = _sample(300)
    arrays = [candles[c].to_numpy() for c in COLUMNS]
    m = lean.min_bars
    for t in range(m - 1, len(candles)):
        window = [a[t - m + 1 : t + 1] for a in arrays]
        assert lean.decide(*window) == full.decide(*window), t


def _twin_cases():
    rng = np.random.default_rng(5)
    n = 500
    raw = rng.dirichlet([1.0, 1.0, 1.0], n)
    raw[:50] = [1 / 3, 1 / 3, 1 / 3]  # ties
    raw[50:60] = [0.5, 0.0, 0.5]
    raw[60:65] = np.nan  # no history
    atr = rng.uniform(0.0, 0.003, n)
    atr[70:80] = np.nan
    atr[80:90] = 0.0  # zero stop distance
    close = 1.1 + rng.normal(0, 0.01, n)
    spread = rng.integers(0, 40, n).astype(float)
    return raw, close, atr, spread


BASE = decision.DecisionSettings(
    min_confidence=0.0,
    tp_atr_mult=2.0,
    sl_atr_mult=1.0,
    digits=5,
    point=1e-5,
    rule="ev",
    ev_margin=-0.3,
    cost_points=7.0,
    spread_ref_points=5.0,
    default_spread_points=12.0,
)


@pytest.mark.parametrize(
    "settings",
    [
        BASE,
        dataclasses.replace(BASE, ev_margin=None),
        dataclasses.replace(BASE, min_confidence=0.45, spread_cost="full"),
        dataclasses.replace(BASE, rule="confidence", min_confidence=0.4),
        dataclasses.replace(BASE, digits=2, point=0.01, sl_atr_mult=1.5, tp_atr_mult=3.0),
    ],
    ids=["ev", "no-margin", "min-conf-full-spread", "confidence-rule", "two-digits"],
)
@pytest.mark.parametrize("calibration", [None, ISOTONIC, SIGMOID], ids=["none", "iso", "sig"])
def test_decision_twin_equals_decide_rows(settings, calibration) -> None:
    """The scalar twin gives decide_rows' bits on each row (ties, NaN, zero stops included)."""
    raw, close, atr, spread = _twin_cases()
    if settings.digits == 2:
        close, atr = close * 1000, atr * 1000
    twin = DecisionTwin(settings, calibration)
    for use_spread in (True, False):
        for i in range(len(close)):
            s = spread[i] if use_spread else None
            out = decision.decide_rows(
                raw[i : i + 1], close[i : i + 1], atr[i : i + 1], s, settings, calibration
            )
            got = twin.decide(*raw[i], float(close[i]), float(atr[i]), s)
            want = (
                int(out["action"][0]),
                float(out["confidence"][0]),
                str(out["reason"][0]),
                tuple(float(x) for x in out["proba"][0]),
                float(out["ev_r"][0]),
                *(float(out[k][0]) for k in ("sl", "tp", "sl_points", "tp_points")),
            )
            assert _bits(got) == _bits(want), (i, got, want)


def _bits(values) -> list:
    flat = []
    for v in values:
        if isinstance(v, tuple):
            flat += _bits(v)
        elif isinstance(v, float):
            flat.append(np.float64(v).tobytes() if v == v else "nan")
        else:
            flat.append(v)
    return flat


@pytest.mark.parametrize(
    "params",
    [
        features.DEFAULT_PARAMS,
        {**features.DEFAULT_PARAMS, "atr_return_lags": [], "calendar": False},
        {**features.DEFAULT_PARAMS, "windows": [3, 7], "return_lags": [1, 4], "atr_window": 9},
    ],
    ids=["default", "set-1", "other-windows"],
)
def test_lean_features_equal_the_compiled_kernel(params) -> None:
    candles = _sample(1500)
    arrays = [candles[c].to_numpy() for c in COLUMNS]
    lean = LeanFeatures(params)
    assert lean.feature_names() == features.feature_names(params)
    assert lean.min_bars() == features.min_bars(params)
    want = features.feature_matrix(*arrays, params)
    got = lean.feature_matrix(*arrays, params)
    assert got.tobytes() == want.tobytes()
    first = 900
    assert (
        lean.feature_matrix(*arrays, first_row=first).tobytes()
        == features.feature_matrix(*arrays, params, first_row=first).tobytes()
    )


def test_native_booster_equals_lightgbm_predict(tmp_path: Path) -> None:
    candles = _sample(900)
    X = features.compute_features(candles).dropna().to_numpy()
    y = np.arange(len(X)) % 3
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
        lgb.Dataset(X, y),
        num_boost_round=40,
    )
    path = tmp_path / "booster.txt"
    booster.save_model(str(path))
    native = NativeBooster(path)
    assert (native.num_classes, native.num_features) == (3, X.shape[1])
    want = lgb.Booster(model_file=str(path)).predict(X)
    got = np.vstack([native.predict_row(row) for row in X])
    assert got.tobytes() == want.tobytes()
    with pytest.raises(RuntimeError, match="expects"):
        native.predict_row(X[0, :5])


def test_broker_clock_equals_ingest_rules() -> None:
    start = datetime(2004, 1, 1, tzinfo=UTC)
    for dst in ("us", "eu", "none", None):
        ref = BrokerClock(utc_offset_s=7200, source="inferred", dst=dst)
        for hours in range(0, 24 * 365 * 22, 13):
            at = (start + timedelta(hours=hours)).timestamp()
            assert clock.offset_at(7200, dst, at) == ref.offset_at(at)
    assert clock.offset_at(None, "us", 0) is None


def test_request_path_imports_nothing_heavy(tmp_path: Path) -> None:
    """In a fresh interpreter: load a model from a cache directory and decide -- none of
    MLflow, pandas, scikit-learn, SciPy, numba or the lightgbm package gets imported."""
    model_dir = _ev_bundle(tmp_path, SIGMOID)
    manifest = {
        "info": dataclasses.asdict(INFO),
        "artifacts": {k: f"artifacts/{f}" for k, f in _ARTIFACT_FILES.items()},
        "check": {"bars": 0, "differ": 0},
    }
    (model_dir / MANIFEST).write_text(json.dumps(manifest))
    candles = _sample(60)
    np.save(tmp_path / "window.npy", candles[list(COLUMNS[1:])].to_numpy())
    np.save(tmp_path / "time.npy", candles["time"].to_numpy().astype("datetime64[s]").astype(int))
    code = textwrap.dedent(
        f"""
        import sys, json
        from pathlib import Path
        import numpy as np
        from aibridge.serving.runtime import LeanModel
        model = LeanModel.from_dir(Path({str(model_dir)!r}))
        w = np.load({str(tmp_path / "window.npy")!r})
        t = np.load({str(tmp_path / "time.npy")!r})
        d = model.decide(t, w[:, 0], w[:, 1], w[:, 2], w[:, 3], w[:, 4], spread_points=9.0)
        heavy = [m for m in {HEAVY!r} if m in sys.modules]
        print(json.dumps({{"heavy": heavy, "action": d.action, "conf": d.confidence}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["heavy"] == []
    expected = ServingModel(INFO, model_dir).decide(
        candles["time"].to_numpy(),
        *(candles[c].to_numpy() for c in COLUMNS[1:]),
        spread_points=9.0,
    )
    assert (answer["action"], answer["conf"]) == (expected.action, expected.confidence)


_ARTIFACT_FILES = {
    "booster": "booster.txt",
    "settings": "settings.json",
    "features": "features.py",
    "decision": "decision.py",
}


def test_refusals_are_clear(tmp_path: Path) -> None:
    model_dir = _ev_bundle(tmp_path, None)
    manifest = {
        "info": dataclasses.asdict(INFO),
        "artifacts": {k: f"artifacts/{f}" for k, f in _ARTIFACT_FILES.items()},
        "check": {"bars": 1500, "differ": 3},
    }
    (model_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match=r"differently .* on 3 of 1500 check bars"):
        LeanModel.from_dir(model_dir)
    settings_path = model_dir / "artifacts" / "settings.json"
    settings = json.loads(settings_path.read_text())
    settings_path.write_text(json.dumps(settings | {"feature_set_version": "9"}))
    with pytest.raises(ModelLoadError, match="feature set 9 is not in the lean runtime"):
        LeanModel(INFO, model_dir)


@pytest.mark.slow
def test_fetch_and_registry_backend_on_the_trained_store(
    trained_model_store: TrainedStore, tmp_path: Path
) -> None:
    """The control step materialises and checks the champion; the SQLite resolver gives
    ``resolve_model_uri``'s answer; the lean model equals the pyfunc on every sample bar."""
    from mlflow import MlflowClient

    from aibridge.serving.resolve import lean_backend, resolve_sqlite
    from aibridge.serving_model import resolve_model_uri

    tracking = trained_model_store.tracking_uri
    name = trained_model_store.model_name
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    # An alias of this test's own: whether the gate made v1 champion is not the point here.
    client.set_registered_model_alias(name, "lean-test", "1")
    uri = f"models:/{name}@lean-test"
    db = Path(tracking[len("sqlite:///") :])
    for probe in (uri, f"models:/{name}/1", f"models:/{name}"):
        assert resolve_sqlite(db, probe) == resolve_model_uri(probe, client)
    with pytest.raises(ModelLoadError, match="alias nope not found"):
        resolve_sqlite(db, f"models:/{name}@nope")
    resolver, loader = lean_backend(tracking, tmp_path / "cache")
    info = resolver(uri)
    lean = loader(f"models:/{info.name}/{info.version}")  # runs the fetch subprocess
    manifest = json.loads((lean.model_dir / MANIFEST).read_text())
    assert manifest["check"] == {"bars": 1500, "differ": 0, "decision_twin": True}
    assert lean.info == dataclasses.replace(info, alias=None)
    mlflow.set_tracking_uri(tracking)
    pyfunc = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    mlflow.set_tracking_uri(None)
    candles = trained_model_store.candles
    spreads = np.random.default_rng(3).integers(0, 30, len(candles)).astype(float)
    expected = pyfunc.predict(None, candles.assign(spread=spreads))
    arrays = [candles[c].to_numpy() for c in COLUMNS]
    m = lean.min_bars
    bad = [
        t
        for t in range(m - 1, len(candles))
        if not _same(
            lean.decide(*[a[t - m + 1 : t + 1] for a in arrays], spread_points=spreads[t]),
            expected.iloc[t],
        )
    ]
    assert bad == []


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_real_server_on_the_lean_data_plane(trained_model_store: TrainedStore, tmp_path: Path):
    """``python -m aibridge.serving.serve serve``: the real server process answers predicts
    with the shipped loader's decisions, and never maps pandas, scikit-learn, SciPy, numba or
    the lightgbm package's extension modules."""
    import zmq

    from aibridge.ea_sim import build_predict, load_candles
    from aibridge.serving_model import load_serving_model

    tracking, name = trained_model_store.tracking_uri, trained_model_store.model_name
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=tracking, registry_uri=tracking).set_registered_model_alias(
        name, "lean-test", "1"
    )
    uri = f"models:/{name}@lean-test"
    port = _free_port()
    cmd = [sys.executable, "-m", "aibridge.serving.serve", "serve", "--model", uri]
    cmd += ["--tracking-uri", tracking, "--port", str(port), "--poll-interval", "0"]
    cmd += ["--journal", str(tmp_path / "j.sqlite"), "--log-path", str(tmp_path / "s.jsonl")]
    cmd += ["--metrics-port", str(_free_port())]
    env = {**os.environ, "AIBRIDGE_MODEL_CACHE": str(tmp_path / "cache")}
    with (tmp_path / "err").open("w") as err:
        server = subprocess.Popen(cmd, cwd=trained_model_store.root, env=env, stderr=err)
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 120_000)
    sock.connect(f"tcp://127.0.0.1:{port}")
    try:
        sock.send(b'{"type":"heartbeat","symbol":"EURUSD","timeframe":"H1"}')
        assert json.loads(sock.recv())["status"] == "ok", (tmp_path / "err").read_text()
        shipped = load_serving_model(uri, tracking, cache_dir=tmp_path / "full")
        c = load_candles(trained_model_store.root / "data" / "EURUSD60.csv")
        m = shipped.min_bars
        for end in range(m - 1, len(c.time), 97):
            sock.send(build_predict(c, end, m, 5, "EURUSD", "H1", f"r{end}", 7))
            reply = json.loads(sock.recv())
            sl = slice(end - m + 1, end + 1)
            want = shipped.decide(
                c.time[sl], c.open[sl], c.high[sl], c.low[sl], c.close[sl], c.volume[sl], 7.0
            )
            got = (reply["action"], reply["confidence"], reply["p_buy"], reply["reason"])
            assert got == (want.action, want.confidence, want.probabilities["BUY"], want.reason)
        maps = Path(f"/proc/{server.pid}/maps").read_text()
        for package in ("/pandas/", "/sklearn/", "/scipy/", "/numba/", "/lightgbm/basic"):
            assert package not in maps, package
        assert "lib_lightgbm" in maps  # the trees: LightGBM's own library, via ctypes
    finally:
        sock.close()
        server.terminate()
        server.wait(timeout=30)


def test_rest_resolver_reads_the_tracking_servers_api(monkeypatch) -> None:
    """Alias, version and latest lookups against a stub of MLflow's REST API, with a token."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from urllib.parse import parse_qs, urlparse

    from aibridge.serving.resolve import lean_backend, resolve_rest

    seen: list[tuple[str, dict, str | None]] = []
    version = {
        "name": "m",
        "version": "3",
        "run_id": "r3",
        "tags": [{"key": "symbol", "value": "EURUSD"}, {"key": "timeframe", "value": "H1"}],
    }

    class Stub(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            seen.append((url.path, query, self.headers.get("Authorization")))
            if url.path.endswith("/registered-models/alias") and query["alias"] == "nope":
                self.send_response(404)
                self.end_headers()
                self.wfile.write(b'{"error_code": "RESOURCE_DOES_NOT_EXIST"}')
                return
            if url.path.endswith("/model-versions/search"):
                body = {"model_versions": [version | {"version": "2"}, version]}
            else:
                body = {"model_version": version}
            self.send_response(200)
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0k")
    try:
        resolver, _ = lean_backend(base, None)
        info = resolver("models:/m@champion")
        assert (info.name, info.version, info.alias, info.run_id) == ("m", "3", "champion", "r3")
        assert (info.symbol, info.timeframe) == ("EURUSD", "H1")
        assert resolve_rest(base, "models:/m/3").version == "3"
        assert resolve_rest(base, "models:/m").version == "3"  # the highest of the search
        with pytest.raises(ModelLoadError, match="registry answered 404"):
            resolve_rest(base, "models:/m@nope")
    finally:
        server.shutdown()
    assert seen[0] == (
        "/api/2.0/mlflow/registered-models/alias",
        {"name": "m", "alias": "champion"},
        "Bearer t0k",
    )


@pytest.mark.slow
def test_hot_reload_through_the_control_step(trained_model_store: TrainedStore, tmp_path: Path):
    """``ModelSet`` on the lean backend: the alias moves to a new version, the poll resolves
    it from SQLite, the fetch subprocess materialises it, the slot swaps; the alias moving to a
    version that does not exist keeps the old model and reports the failure."""
    from mlflow import MlflowClient

    from aibridge.server.models import ModelSet
    from aibridge.serving.resolve import lean_backend

    tracking, name = trained_model_store.tracking_uri, trained_model_store.model_name
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    v1 = client.get_model_version(name, "1")
    stored = client.get_model_version_download_uri(name, "1")  # v1's files, as a new version
    v2 = client.create_model_version(name, stored, run_id=v1.run_id, tags=v1.tags)
    client.set_registered_model_alias(name, "lean-reload", "1")
    resolver, loader = lean_backend(tracking, tmp_path / "cache")
    models = ModelSet([f"models:/{name}@lean-reload"], resolver=resolver, loader=loader)
    models.load_all()
    slot = next(iter(models.slots.values()))
    assert type(slot.current.model).__name__ == "LeanModel"
    assert (slot.current.info.version, slot.current.info.alias) == ("1", "lean-reload")
    assert models.poll_once() == []
    client.set_registered_model_alias(name, "lean-reload", v2.version)
    assert models.poll_once() == [(name, "1", str(v2.version))]
    assert slot.current.info.version == str(v2.version)
    assert (tmp_path / "cache" / f"{name}-v{v2.version}" / MANIFEST).is_file()
    client.delete_model_version(name, v2.version)  # the alias goes with it
    assert models.poll_once() == []
    assert slot.current.info.version == str(v2.version) and "lean-reload" in (slot.error or "")
