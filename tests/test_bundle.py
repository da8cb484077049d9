"""The server's fast path gives exactly the decisions of `pyfunc.predict`, on every bar."""

from __future__ import annotations

import json
import shutil

import mlflow
import numpy as np
import pytest

from aibridge.bundle import (
    ModelLoadError,
    ServingModel,
    TooFewBarsError,
    load_serving_model,
    parse_model_uri,
)
from tests.conftest import TrainedStore

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("min_confidence", [None, 0.34])
def test_fast_path_equals_pyfunc_on_every_bar(
    trained_model_store: TrainedStore, tmp_path, min_confidence: float | None
) -> None:
    """As registered (the sample model says HOLD throughout), and with a confidence floor low
    enough that it trades, so SL/TP prices are compared too."""
    serving = load_serving_model(
        trained_model_store.model_uri, trained_model_store.tracking_uri, cache_dir=tmp_path
    )
    assert serving.info.version == "1" and serving.info.alias == "champion"
    assert serving.info.data_hash.endswith(".dir")
    if min_confidence is not None:
        model_dir = tmp_path / "low-confidence"
        shutil.copytree(serving.model_dir, model_dir)
        settings_path = model_dir / "artifacts" / "settings.json"
        settings = json.loads(settings_path.read_text())
        settings["min_confidence"] = min_confidence
        settings_path.write_text(json.dumps(settings))
        serving = ServingModel(serving.info, model_dir)
        pyfunc = mlflow.pyfunc.load_model(str(model_dir))
    else:
        mlflow.set_tracking_uri(trained_model_store.tracking_uri)
        pyfunc = mlflow.pyfunc.load_model(trained_model_store.model_uri)
        mlflow.set_tracking_uri(None)
    candles = trained_model_store.candles
    expected = pyfunc.predict(candles)
    if min_confidence is not None:
        assert (expected["action"] != "HOLD").sum() > 100
    arrays = [candles[c].to_numpy() for c in ("time", "open", "high", "low", "close", "volume")]
    m = serving.min_bars
    mismatches = []
    for t in range(m - 1, len(candles)):
        window = [a[t - m + 1 : t + 1] for a in arrays]
        got = serving.decide(*window)
        row = expected.iloc[t]
        same = (
            got.action == row["action"]
            and got.confidence == row["confidence"]
            and got.probabilities["BUY"] == row["p_buy"]
            and got.reason == row["reason"]
            and (got.sl is None) == bool(np.isnan(row["sl"]))
            and (got.sl is None or (got.sl == row["sl"] and got.tp == row["tp"]))
        )
        if not same:
            mismatches.append(t)
    assert mismatches == []
    assert len(candles) - m + 1 == 4960


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


def test_missing_model_and_bad_uri_are_clear(trained_model_store: TrainedStore) -> None:
    with pytest.raises(ModelLoadError, match="cannot resolve models:/nope@champion"):
        load_serving_model("models:/nope@champion", trained_model_store.tracking_uri)
    with pytest.raises(ModelLoadError, match="is not a registry URI"):
        parse_model_uri("runs:/abc/model")
