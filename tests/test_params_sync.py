"""`params.yaml` follows `conf/` under plain `dvc repro`, and keeps `dvc exp run -S` overrides."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from aibridge.params_sync import BASE_FILE, current_overrides, reset_params, sync_params
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
    conf_model = yaml.safe_load((root / "conf" / "model" / "lightgbm.yaml").read_text())
    assert params(root)["model"]["num_leaves"] == conf_model["num_leaves"]


def test_reset_drops_overrides_and_says_which(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from aibridge.cli import app

    p = params(root)
    p["model"]["num_leaves"] = 63  # `dvc exp run -S model.num_leaves=63`
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    # The trap: a conf/ edit of the same key is ignored while the override is there.
    conf_model = root / "conf" / "model" / "lightgbm.yaml"
    text = re.sub(r"(?m)^num_leaves: *\d+", "num_leaves: 15", conf_model.read_text())
    conf_model.write_text(text)
    assert sync_params(root) == {"model.num_leaves": 63}
    assert params(root)["model"]["num_leaves"] == 63
    assert current_overrides(root) == {"model.num_leaves": (63, 15)}

    (root / "dvc.yaml").write_text("stages: {}\n")  # a project for the CLI
    monkeypatch.setenv("AIBRIDGE_HOME", str(root))
    shown = CliRunner().invoke(app, ["params", "show"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "model.num_leaves = 63 (conf/ says 15)" in shown.output
    reset = CliRunner().invoke(app, ["params", "reset"], env={"COLUMNS": "200"})
    assert reset.exit_code == 0, reset.output
    assert "dropped 1 override(s)" in reset.output
    assert "model.num_leaves = 63 (conf/ says 15)" in reset.output
    assert params(root)["model"]["num_leaves"] == 15
    assert sync_params(root) == {}  # the next `dvc repro` keeps nothing
    assert reset_params(root) == {}
    again = CliRunner().invoke(app, ["params", "reset"], env={"COLUMNS": "200"})
    assert "had no overrides" in again.output
