"""The model as a self-contained bundle: booster, feature code, decision code and settings.

Written by ``train`` into ``artifacts/model/`` and logged to MLflow as a pyfunc; read back by
the signal server from the registry. The bundled ``features.py``/``decision.py`` are the copies
the booster was trained with.

This module is the one place that knows the bundle's layout: its file names, the MLflow
artifact keys they are logged under, where they sit in a downloaded model directory
(:func:`artifact_paths`) and its content digest (:func:`bundle_digest`). It imports only the
standard library and ``aibridge.decision`` (numpy) at module level, so the lean serving
runtime uses it too. ``pyfunc_model.py`` repeats the four artifact keys because MLflow copies
that file into the model, where this package may not be installed
(``tests/test_model_bundle.py`` checks they agree).

>>> sorted(bundle_artifacts(Path("artifacts/model")))
['booster', 'decision', 'features', 'settings']
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aibridge import decision

if TYPE_CHECKING:
    import lightgbm as lgb

    from aibridge.pyfunc_model import CandleDecisionModel

BOOSTER_FILE = "booster.txt"
SETTINGS_FILE = "settings.json"
FEATURES_FILE = "features.py"
DECISION_FILE = "decision.py"

# MLflow artifact keys (``pyfunc_model.ARTIFACT_*``) and the bundle file each one holds.
ARTIFACT_BOOSTER = "booster"
ARTIFACT_SETTINGS = "settings"
ARTIFACT_FEATURES = "features"
ARTIFACT_DECISION = "decision"
ARTIFACT_FILES = {
    ARTIFACT_BOOSTER: BOOSTER_FILE,
    ARTIFACT_SETTINGS: SETTINGS_FILE,
    ARTIFACT_FEATURES: FEATURES_FILE,
    ARTIFACT_DECISION: DECISION_FILE,
}

# Written by ``aibridge.serving.fetch`` next to a downloaded model in the server's cache:
# registry facts, the artifact paths and the lean runtime's check.
MANIFEST = "aibridge-serving.json"

# settings.json keys that say when and from which commit a bundle was logged, not what it
# decides: left out of :func:`bundle_digest`, so the DVC output and the logged copy agree.
PROVENANCE_KEYS = ("git_commit", "trained_at")


def _feature_set_version() -> str:
    from aibridge import features  # numba, pandas: only where a bundle is written

    return features.FEATURE_SET_VERSION


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
    feature_set_version: str = field(default_factory=_feature_set_version)
    data_hash: str = "unknown"
    git_commit: str = "unknown"
    trained_at: str = ""

    @classmethod
    def load(cls, path: Path) -> BundleSettings:
        return cls(**json.loads(path.read_text()))


def write_bundle(directory: Path, booster: lgb.Booster, settings: BundleSettings) -> dict[str, str]:
    """Write the bundle files; returns the MLflow ``artifacts`` mapping for ``log_model``."""
    from aibridge import features

    directory.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(directory / BOOSTER_FILE))
    (directory / SETTINGS_FILE).write_text(json.dumps(asdict(settings), indent=2, sort_keys=True))
    shutil.copyfile(features.__file__, directory / FEATURES_FILE)
    shutil.copyfile(decision.__file__, directory / DECISION_FILE)
    return bundle_artifacts(directory)


def bundle_artifacts(directory: Path) -> dict[str, str]:
    """The MLflow ``artifacts`` mapping (artifact key → file) of a bundle directory."""
    return {key: str(directory / name) for key, name in ARTIFACT_FILES.items()}


def artifact_paths(model_dir: Path) -> dict[str, Path]:
    """Artifact key → file of a bundle: a bundle directory (``write_bundle``), a downloaded
    MLflow model directory (from its :data:`MANIFEST`, else ``MLmodel``)."""
    if (model_dir / SETTINGS_FILE).is_file() and not (model_dir / "MLmodel").is_file():
        return {key: Path(path) for key, path in bundle_artifacts(model_dir).items()}
    manifest = model_dir / MANIFEST
    if manifest.is_file():
        declared = json.loads(manifest.read_text())["artifacts"]
        return {key: model_dir / rel for key, rel in declared.items()}
    import yaml  # small; only for directories the fetch step did not write

    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    listed = mlmodel["flavors"]["python_function"].get("artifacts", {})
    return {key: model_dir / entry["path"] for key, entry in listed.items()}


def missing_artifacts(paths: dict[str, Path]) -> list[str]:
    """The bundle artifact keys a model directory lacks (empty: it is an aibridge model)."""
    return sorted(set(ARTIFACT_FILES) - set(paths))


def read_settings(paths: dict[str, Path]) -> dict[str, Any]:
    """The bundle's ``settings.json`` as written (plain JSON values)."""
    settings: dict[str, Any] = json.loads(paths[ARTIFACT_SETTINGS].read_text())
    return settings


def bundle_digest(directory: Path) -> str:
    """sha256 of what a bundle decides with: its four files (by artifact key, in sorted order),
    ``settings.json`` canonicalised without :data:`PROVENANCE_KEYS`. Equal for the DVC output
    ``artifacts/model`` and the same bundle downloaded from the registry (the registry tag
    ``aibridge.registry.DIGEST_TAG``), different as soon as a tree, a setting or the code
    differs."""
    paths = artifact_paths(directory)
    missing = missing_artifacts(paths) + sorted(k for k, p in paths.items() if not p.is_file())
    if missing:
        raise FileNotFoundError(f"{directory} is not a model bundle (missing {missing})")
    digest = hashlib.sha256()
    for key in sorted(ARTIFACT_FILES):
        if key == ARTIFACT_SETTINGS:
            settings = read_settings(paths)
            content = json.dumps(
                {k: v for k, v in settings.items() if k not in PROVENANCE_KEYS},
                sort_keys=True,
                separators=(",", ":"),
            ).encode()
        else:
            content = paths[key].read_bytes()
        digest.update(key.encode() + b"\0" + str(len(content)).encode() + b"\0")
        digest.update(content)
    return digest.hexdigest()


def load_local_bundle(directory: Path) -> CandleDecisionModel:
    """The pyfunc model loaded from a bundle directory, through MLflow's own ``load_context``."""
    from types import SimpleNamespace

    from aibridge.pyfunc_model import CandleDecisionModel

    model = CandleDecisionModel()
    model.load_context(SimpleNamespace(artifacts=bundle_artifacts(directory)))
    return model


def pyfunc_code_path() -> str:
    """The MLflow model's code file (``aibridge/pyfunc_model.py``; logged as model from code)."""
    return str(Path(__file__).with_name("pyfunc_model.py"))
