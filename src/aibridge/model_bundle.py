"""The model as a self-contained bundle: booster, feature code, decision code and settings.

Written by ``train`` into ``artifacts/model/`` and logged to MLflow as a pyfunc; read back by
the signal server from the registry. The bundled ``features.py``/``decision.py`` are the copies
the booster was trained with.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb

from aibridge import decision, features, pyfunc_model

BOOSTER_FILE = "booster.txt"
SETTINGS_FILE = "settings.json"
FEATURES_FILE = "features.py"
DECISION_FILE = "decision.py"


@dataclass(frozen=True)
class BundleSettings:
    """Everything besides the trees that the decision depends on, plus provenance."""

    symbol: str
    timeframe: str
    digits: int
    point: float
    feature_params: dict[str, Any]
    feature_names: list[str]
    min_bars: int
    min_confidence: float
    tp_atr_mult: float
    sl_atr_mult: float
    # The training instrument's contract (MT4 MODE_TICKSIZE, MODE_LOTSIZE) and the broker clock
    # of the training data (server time - UTC in standard time, seconds; ``broker_dst``: "none",
    # "us", "eu" or None = unknown; see ``aibridge.ingest.broker_clock``). None in bundles
    # written before they were recorded.
    tick_size: float | None = None
    contract_size: float | None = None
    broker_utc_offset_s: int | None = None
    broker_dst: str | None = None
    broker_clock: dict[str, Any] = field(default_factory=dict)
    # The decision rule (see ``aibridge.decision``): "ev" since the expected-value rule,
    # "confidence" for bundles written before it. Calibration (fitted on the validation
    # window), the EV margin in R chosen there (None: no margin paid → never trades), the
    # round-trip costs besides the spread in points, the spread the labels already paid
    # (training median, points), the spread assumed when a request carries none, and the
    # validation table the margin was chosen from.
    decision_rule: str = "confidence"
    calibration: dict[str, Any] | None = None
    ev_margin: float | None = None
    cost_points: float = 0.0
    cost_detail: dict[str, float] = field(default_factory=dict)
    spread_ref_points: float = 0.0
    default_spread_points: float = 0.0
    spread_cost: str = "excess"
    decision_validation: dict[str, Any] = field(default_factory=dict)
    # Quantile bins of the training feature rows (aibridge.loop.drift.reference_from_matrix):
    # the server's drift detector compares live feature rows with it. None: no reference.
    drift_reference: dict[str, Any] | None = None
    classes: list[str] = field(default_factory=lambda: list(decision.CLASSES))
    feature_set_version: str = features.FEATURE_SET_VERSION
    data_hash: str = "unknown"
    git_commit: str = "unknown"
    trained_at: str = ""

    @classmethod
    def load(cls, path: Path) -> BundleSettings:
        return cls(**json.loads(path.read_text()))


def write_bundle(directory: Path, booster: lgb.Booster, settings: BundleSettings) -> dict[str, str]:
    """Write the bundle files; returns the MLflow ``artifacts`` mapping for ``log_model``."""
    directory.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(directory / BOOSTER_FILE))
    (directory / SETTINGS_FILE).write_text(json.dumps(asdict(settings), indent=2, sort_keys=True))
    shutil.copyfile(features.__file__, directory / FEATURES_FILE)
    shutil.copyfile(decision.__file__, directory / DECISION_FILE)
    return bundle_artifacts(directory)


def bundle_artifacts(directory: Path) -> dict[str, str]:
    """The MLflow ``artifacts`` mapping (artifact key → file) of a bundle directory."""
    return {
        pyfunc_model.ARTIFACT_BOOSTER: str(directory / BOOSTER_FILE),
        pyfunc_model.ARTIFACT_SETTINGS: str(directory / SETTINGS_FILE),
        pyfunc_model.ARTIFACT_FEATURES: str(directory / FEATURES_FILE),
        pyfunc_model.ARTIFACT_DECISION: str(directory / DECISION_FILE),
    }


def load_local_bundle(directory: Path) -> pyfunc_model.CandleDecisionModel:
    """The pyfunc model loaded from a bundle directory, through MLflow's own ``load_context``."""
    from types import SimpleNamespace

    model = pyfunc_model.CandleDecisionModel()
    model.load_context(SimpleNamespace(artifacts=bundle_artifacts(directory)))
    return model


def pyfunc_code_path() -> str:
    return pyfunc_model.__file__
