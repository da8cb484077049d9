"""``aibridge.registry`` on a real MLflow SQLite store: alias lookups, version tags and
descriptions, finding a version by its bundle digest, and loading a model without moving
MLflow's process-wide URIs; ``apply_gate`` on any verdict; layering."""

from __future__ import annotations

import ast
import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest

from aibridge.errors import AibridgeError
from aibridge.model_bundle import bundle_digest
from aibridge.promotion import PromotionError, apply_gate, promote
from aibridge.registry import (
    DIGEST_TAG,
    ModelLoadError,
    alias_version,
    find_version_by_digest,
    parse_model_uri,
    registry_client,
    resolve_model_uri,
    set_version_description,
    set_version_tags,
)
from aibridge.serving_model import load_serving_model
from tests.test_serving_model import save_small_model

NAME = "aibridge-XAUUSD-H1"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A store holding two versions of one small model (v1 champion, v2 challenger)."""
    root = tmp_path_factory.mktemp("registry")
    model_dir = save_small_model(root)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = registry_client(uri)
    client.create_registered_model(NAME)
    digest = bundle_digest(root / "bundle")
    for alias in ("champion", "challenger"):
        mv = client.create_model_version(NAME, str(model_dir), tags={DIGEST_TAG: digest})
        client.set_registered_model_alias(NAME, alias, mv.version)
    return uri, root


def test_alias_lookup_and_resolve(store: tuple[str, Path]) -> None:
    uri, _ = store
    client = registry_client(uri)
    assert alias_version(client, NAME, "champion") == "1"
    assert alias_version(client, NAME, "challenger") == "2"
    assert alias_version(client, NAME, "nope") is None
    assert alias_version(client, "no-such-model", "champion") is None
    assert resolve_model_uri(f"models:/{NAME}@challenger", client).version == "2"
    assert resolve_model_uri(f"models:/{NAME}", client).version == "2"  # the latest
    assert resolve_model_uri(f"models:/{NAME}/1", client).alias is None
    with pytest.raises(ModelLoadError, match="cannot resolve models:/nope@champion"):
        resolve_model_uri("models:/nope@champion", client)


def test_one_uri_rule_everywhere() -> None:
    from aibridge.server import models as server_models
    from aibridge.serving import resolve, types

    assert parse_model_uri is types.parse_model_uri is server_models.parse_model_uri
    assert resolve.parse_model_uri is types.parse_model_uri
    assert server_models.ModelLoadError is types.ModelLoadError
    assert parse_model_uri(" models:/m/12 ") == ("m", None, "12")
    for bad in ("runs:/abc/model", "models:/m/latest", "models:/"):
        with pytest.raises(ModelLoadError, match="is not a registry URI"):
            parse_model_uri(bad)


def test_find_by_digest_tags_and_description(store: tuple[str, Path]) -> None:
    uri, root = store
    client = registry_client(uri)
    digest = bundle_digest(root / "bundle")
    assert find_version_by_digest(client, NAME, digest) == "2"  # the newest of the two
    assert find_version_by_digest(client, NAME, "0" * 64) is None
    assert find_version_by_digest(client, "no-such-model", digest) is None
    set_version_tags(client, NAME, "1", {"gate.promote": True, "n": 3})
    set_version_description(client, NAME, "1", "# v1\n\n**why**: first")
    mv = client.get_model_version(NAME, "1")
    assert (mv.tags["gate.promote"], mv.tags["n"]) == ("True", "3")
    assert mv.description == "# v1\n\n**why**: first"


def test_loading_a_model_leaves_mlflows_global_uris_alone(
    store: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, _ = store
    elsewhere = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    mlflow.set_tracking_uri(elsewhere)
    try:
        model = load_serving_model(f"models:/{NAME}@champion", uri, cache_dir=tmp_path / "cache")
        assert (model.info.version, model.info.symbol) == ("1", "XAUUSD")
        assert mlflow.get_tracking_uri() == elsewhere
        assert "MLFLOW_REGISTRY_URI" not in os.environ
    finally:
        mlflow.set_tracking_uri(None)


@dataclass(frozen=True)
class Verdict:
    """A gate verdict that is not ``backtest.gate.GateDecision``: apply_gate needs only this."""

    promote: bool
    reason: str

    def as_tags(self) -> dict[str, str]:
        return {"gate.promote": str(self.promote), "gate.reason": self.reason}


def test_apply_gate_takes_any_verdict(store: tuple[str, Path], tmp_path: Path) -> None:
    uri, root = store
    client = registry_client(uri)
    name = "gate-verdict"
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, str(root / "model"))
    client.set_registered_model_alias(name, "champion", "1")
    journal = tmp_path / "promotions.jsonl"
    assert apply_gate(name, "2", Verdict(False, "no edge"), journal=journal, client=client) is None
    assert alias_version(client, name, "champion") == "1"
    assert client.get_model_version(name, "2").tags["gate.reason"] == "no edge"
    move = apply_gate(name, "2", Verdict(True, "better"), journal=journal, client=client)
    assert move is not None and (move.from_version, move.to_version) == ("1", "2")
    assert alias_version(client, name, "champion") == "2"
    assert json.loads(journal.read_text().splitlines()[-1])["reason"] == "better"


def _imports(module: str) -> set[str]:
    path = Path(importlib.import_module(module).__file__ or "")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize(
    "module", ["aibridge.registry", "aibridge.promotion", "aibridge.model_bundle"]
)
def test_registry_and_bundle_modules_import_nothing_above_them(module: str) -> None:
    above = ("aibridge.backtest", "aibridge.stages", "aibridge.server", "aibridge.cli")
    assert not {m for m in _imports(module) if m.startswith(above)}


def test_promotion_errors_say_what_to_pass(store: tuple[str, Path]) -> None:
    uri, _ = store
    client = registry_client(uri)
    with pytest.raises(PromotionError, match="has no version 9; pass a registered version"):
        promote(NAME, "9", "typo", client=client)
    with pytest.raises(PromotionError, match="pass --reason"):
        promote(NAME, "1", "  ", client=client)
    assert issubclass(PromotionError, AibridgeError) and issubclass(PromotionError, ValueError)
    assert alias_version(client, NAME, "champion") == "1"


def test_register_version_is_silent_links_the_logged_model_and_loads(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A logged model (MLflow 3: ``models:/m-<id>``) registered twice into a fresh store: no
    "Registered model ... already exists" noise, challenger moves, no champion unless asked,
    the logged model links both versions, and the version downloads and predicts."""
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    from aibridge.registry import download_version, register_version

    model_dir = save_small_model(tmp_path)
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    client = registry_client(uri)
    experiment = client.create_experiment("reg", artifact_location=str(tmp_path / "art"))
    run = client.create_run(experiment)
    logged = client.create_logged_model(experiment, source_run_id=run.info.run_id)
    client.log_model_artifacts(logged.model_id, str(model_dir))
    client.finalize_logged_model(logged.model_id, "READY")
    capfd.readouterr()
    regs = [
        register_version(
            f"models:/{logged.model_id}",
            "aibridge-REG-H1",
            run.info.run_id,
            {"k": 1},
            "challenger",
            client=client,
        )
        for _ in range(2)
    ]
    out, err = capfd.readouterr()
    assert "already exists" not in out + err
    assert [r.version for r in regs] == ["1", "2"]
    assert regs[1].aliases == ["challenger"]
    assert alias_version(client, "aibridge-REG-H1", "challenger") == "2"
    assert alias_version(client, "aibridge-REG-H1", "champion") is None
    links = json.loads(client.get_logged_model(logged.model_id).tags[MLFLOW_MODEL_VERSIONS])
    assert [link["version"] for link in links] == ["1", "2"]
    assert client.get_model_version("aibridge-REG-H1", "2").tags["k"] == "1"
    local = download_version("aibridge-REG-H1", "2", tmp_path / "dl", uri, client)
    assert (local / "MLmodel").is_file()
    from aibridge.ingest import read_mt4_csv

    sample = Path(__file__).resolve().parents[1] / "src/aibridge/data/EURUSD60.csv"
    candles = read_mt4_csv(sample).candles.iloc[:120]
    decisions = mlflow.pyfunc.load_model(str(local)).predict(candles)
    assert len(decisions) == len(candles)
    assert set(decisions["action"]) <= {"BUY", "SELL", "HOLD"}
