"""End to end on planted edges: `dvc repro` of this project on synthetic MT4 series.

* a moderate planted edge (a marubozu followed, with probability 0.7, by an 8-bar drift of
  2 ATR in its direction; :mod:`aibridge.mt4.synthetic`) must be found by the walk-forward
  (Sharpe > 1, positive expectancy after costs, trades in >= 75 % of the folds, better than
  >= 95 % of the random runs) and promoted by the gate's floor;
* the lookahead control (the same triggers with probability 0.5 and the whole move in the
  *next* bar: only a model that saw the future could profit) must never be promoted, and its
  report says "no edge".

Both projects run their `dvc repro` at once (each a chain of subprocesses): ~60-80 s here.
"""

from __future__ import annotations

import json
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from aibridge.mt4 import synthetic
from aibridge.mt4.synthetic import PlantedEdge, write_series
from tests.conftest import mlflow_client

pytestmark = pytest.mark.slow

MODERATE = PlantedEdge(edge_probability=0.7, drift_atr=2.0)
LOOKAHEAD_CONTROL = PlantedEdge(bars=4000, edge_probability=0.5, drift_bars=1, drift_atr=2.0)
NAME = "aibridge-EURUSD-H1"


def repro(dest: Path, params: PlantedEdge, max_folds: int = 0, random_runs: int = 20) -> Path:
    """The project in ``dest`` with the series as its data, the walk-forward (all folds by
    default) and ``random_runs`` random runs (``dvc exp run -S``-style edits of the copy's
    params.yaml), then ``dvc repro``."""
    root = dest
    root.mkdir(parents=True)
    for item in synthetic._COPY:
        src = synthetic.REPO / item
        if src.is_dir():
            shutil.copytree(
                src, root / item, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        elif src.is_file():
            shutil.copy2(src, root / item)
    (root / ".dvc").mkdir()
    for f in ("config", ".gitignore"):
        if (synthetic.REPO / ".dvc" / f).is_file():
            shutil.copy2(synthetic.REPO / ".dvc" / f, root / ".dvc" / f)
    write_series(root / "data", params, name="EURUSD60.csv")
    p = yaml.safe_load((root / "params.yaml").read_text())
    p["backtest"]["walk_forward"]["max_folds"] = max_folds
    p["backtest"]["baselines"]["random_runs"] = random_runs
    p["model"]["num_threads"] = 1
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "ci@aibridge.local"],
        ["git", "config", "user.name", "aibridge ci"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "planted edge"],
        [str(Path(sys.executable).parent / "dvc"), "repro", "-q"],
    ):
        synthetic._run(cmd, root)
    return root


@pytest.fixture(scope="module")
def projects(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("planted")
    with ThreadPoolExecutor(2) as pool:
        edge = pool.submit(repro, base / "edge", MODERATE)
        # the control only has to be refused: 3 folds keep it off the edge run's cores
        control = pool.submit(repro, base / "control", LOOKAHEAD_CONTROL, 3, 5)
        return {"edge": edge.result(), "control": control.result()}


def outputs(root: Path) -> tuple[dict, dict, dict]:
    reports = root / "reports"
    registration = json.loads((reports / "registration.json").read_text())
    return (
        json.loads((reports / "backtest" / "metrics.json").read_text()),
        registration["gate"],  # the register stage's decision (untracked, per store)
        registration,
    )


def test_moderate_planted_edge_is_found_and_promoted(projects) -> None:
    metrics, gate, reg = outputs(projects["edge"])
    m = metrics["model"]
    print("planted edge walk-forward:", {k: m[k] for k in sorted(m)}, metrics["edge"])
    print("planted edge gate:", gate["reason"])
    assert m["sharpe"] > 1.0
    assert m["expectancy_r"] > 0 and m["net_profit"] > 0  # R and money after all costs
    assert m["folds_trading_pct"] >= 75.0
    assert m["random_runs_beaten_pct"] >= 95.0
    assert metrics["edge"].startswith("edge:")
    assert gate["promote"] is True, gate["reason"]
    assert "champion" in reg["aliases"]
    client = mlflow_client(f"sqlite:///{projects['edge'] / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == reg["version"]


def test_lookahead_control_is_never_promoted(projects) -> None:
    metrics, gate, reg = outputs(projects["control"])
    m = metrics["model"]
    print("control walk-forward:", {k: m[k] for k in sorted(m)}, metrics["edge"])
    print("control gate:", gate["reason"])
    assert gate["promote"] is False
    assert metrics["edge"].startswith("no edge")
    assert "champion" not in reg["aliases"]
    client = mlflow_client(f"sqlite:///{projects['control'] / 'mlflow.db'}")
    assert {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()} == {
        "challenger": "1"
    }
    report = (projects["control"] / "reports" / "backtest" / "report.md").read_text()
    assert "**No edge.**" in report
