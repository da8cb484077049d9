"""``aibridge.model_bundle``: the bundle's layout known in one place, and its content digest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from aibridge import model_bundle, pyfunc_model
from aibridge.model_bundle import bundle_digest
from tests.test_serving_model import save_small_model


def test_bundle_digest_is_the_content_without_provenance(tmp_path: Path) -> None:
    save_small_model(tmp_path)
    bundle = tmp_path / "bundle"
    digest = bundle_digest(bundle)
    assert len(digest) == 64
    # The MLflow model directory holds the same files under artifacts/: same digest.
    assert bundle_digest(tmp_path / "model") == digest
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    settings_path = copy / model_bundle.SETTINGS_FILE
    settings = json.loads(settings_path.read_text())
    settings_path.write_text(
        json.dumps(settings | {"trained_at": "2026-01-01T00:00:00+00:00", "git_commit": "abc"})
    )
    assert bundle_digest(copy) == digest  # provenance and formatting do not count
    settings_path.write_text(json.dumps(settings | {"min_confidence": 0.51}))
    assert bundle_digest(copy) != digest
    settings_path.write_text(json.dumps(settings))
    (copy / model_bundle.DECISION_FILE).write_text("# other code\n")
    assert bundle_digest(copy) != digest
    (copy / model_bundle.BOOSTER_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        bundle_digest(copy)


def test_pyfunc_artifact_keys_are_the_bundle_layouts() -> None:
    assert {
        pyfunc_model.ARTIFACT_BOOSTER,
        pyfunc_model.ARTIFACT_SETTINGS,
        pyfunc_model.ARTIFACT_FEATURES,
        pyfunc_model.ARTIFACT_DECISION,
    } == set(model_bundle.ARTIFACT_FILES)
    assert model_bundle.ARTIFACT_BOOSTER == pyfunc_model.ARTIFACT_BOOSTER
    assert model_bundle.ARTIFACT_SETTINGS == pyfunc_model.ARTIFACT_SETTINGS
    assert model_bundle.ARTIFACT_FEATURES == pyfunc_model.ARTIFACT_FEATURES
    assert model_bundle.ARTIFACT_DECISION == pyfunc_model.ARTIFACT_DECISION
    assert model_bundle.pyfunc_code_path() == pyfunc_model.__file__


def test_artifact_paths_of_a_bundle_and_of_its_mlflow_model(tmp_path: Path) -> None:
    save_small_model(tmp_path)
    in_bundle = model_bundle.artifact_paths(tmp_path / "bundle")
    in_model = model_bundle.artifact_paths(tmp_path / "model")
    assert set(in_bundle) == set(in_model) == set(model_bundle.ARTIFACT_FILES)
    for key, name in model_bundle.ARTIFACT_FILES.items():
        assert in_bundle[key] == tmp_path / "bundle" / name
        assert in_model[key].parent.name == "artifacts"
        assert in_model[key].read_bytes() == in_bundle[key].read_bytes()
    assert model_bundle.missing_artifacts({}) == sorted(model_bundle.ARTIFACT_FILES)
