"""`params.yaml` follows `conf/` under plain `dvc repro`, and keeps `dvc exp run -S` overrides."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from aibridge.params_sync import BASE_FILE, sync_params
from tests.conftest import REPO


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    shutil.copy2(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copy2(REPO / BASE_FILE, tmp_path / BASE_FILE)
    return tmp_path


def params(root: Path) -> dict:
    return yaml.safe_load((root / "params.yaml").read_text())


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_committed_params_match_conf(root: Path) -> None:
    before = (root / "params.yaml").read_text()
    assert sync_params(root) == {}
    assert (root / "params.yaml").read_text() == before


def test_conf_edit_wins_in_a_fresh_clone(root: Path) -> None:
    edit(root / "conf" / "config.yaml", "timeframe: H1", "timeframe: M15")
    assert sync_params(root) == {}
    assert params(root)["timeframe"] == "M15"
    assert params(root)["registry"]["model_name"] == "aibridge-EURUSD-M15"


def test_set_param_override_survives_recompose(root: Path) -> None:
    p = params(root)
    p["model"]["num_leaves"] = 63  # what `dvc exp run -S model.num_leaves=63` writes
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    edit(root / "conf" / "model" / "lightgbm.yaml", "learning_rate: 0.05", "learning_rate: 0.1")
    assert sync_params(root) == {"model.num_leaves": 63}
    assert params(root)["model"]["num_leaves"] == 63
    assert params(root)["model"]["learning_rate"] == 0.1


def test_missing_params_file_is_regenerated(root: Path) -> None:
    (root / "params.yaml").unlink()
    (root / BASE_FILE).unlink()
    assert sync_params(root) == {}
    assert params(root)["model"]["num_leaves"] == 31
