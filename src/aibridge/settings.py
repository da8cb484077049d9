"""The pipeline's configuration as typed, frozen objects, validated once at the door.

Hydra composes ``conf/`` (or DVC's ``params.yaml``) into one tree; :func:`pipeline_settings`
turns it into a :class:`PipelineSettings` at the start of each stage (``run_stage``) and
command, so a misspelt key or a bad value fails there with a message naming the key, and stage
bodies read ``settings.labels.tp_atr_mult`` (a float already), not ``float(cfg.labels...)``.

Every group is ``extra="forbid"``: an unknown key is an error, not silently ignored.
``instrument`` reuses :class:`aibridge.instruments.InstrumentSpec`. ``risk``, ``backtest``,
``serve`` and ``sweep`` are carried as plain mappings for their own models to validate
(``aibridge.risk.RiskSettings``, ``aibridge.backtest.settings``, ``aibridge.server.settings``):
importing them here would make every DVC stage depend on the risk and backtest code.

>>> LabelSettings(tp_atr_mult=2, sl_atr_mult=1, horizon=24).tp_atr_mult
2.0
>>> try:
...     validated(LabelSettings, {"tp_atr_mult": 2, "sl_atr_mult": 1, "horizn": 24}, "labels")
... except ConfigError as exc:
...     print(exc)
invalid configuration in labels: horizon: Field required; horizn: Extra inputs are not permitted
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aibridge.errors import ConfigError
from aibridge.instruments import InstrumentSpec

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class FeatureSettings(BaseModel):
    """``conf/features``: which causal features ``aibridge.features`` computes (bars)."""

    model_config = _FROZEN

    return_lags: list[int] = Field(min_length=1)
    windows: list[int] = Field(min_length=1)
    atr_window: int = Field(gt=0)
    rsi_window: int = Field(gt=0)
    volume_window: int = Field(gt=0)
    atr_return_lags: list[int] = Field(default_factory=list)
    calendar: bool = True

    def params(self) -> dict[str, Any]:
        """The mapping ``aibridge.features`` and the model bundle take."""
        return self.model_dump()


class LabelSettings(BaseModel):
    """``conf/labels``: triple-barrier take-profit / stop-loss in ATRs, horizon in bars."""

    model_config = _FROZEN

    tp_atr_mult: float = Field(gt=0)
    sl_atr_mult: float = Field(gt=0)
    horizon: int = Field(gt=0)


class SplitSettings(BaseModel):
    """``conf/split``: chronological train / validation / test shares and the embargo (bars)."""

    model_config = _FROZEN

    validation_fraction: float = Field(gt=0, lt=1)
    test_fraction: float = Field(gt=0, lt=1)
    embargo: int = Field(ge=0)


class DecisionParams(BaseModel):
    """``conf/model`` ``decision:``: the expected-value rule (``aibridge.decision``)."""

    model_config = _FROZEN

    ev_margin: float | Literal["auto"] = "auto"
    ev_margin_grid: list[float] = Field(default_factory=lambda: [0.0])
    min_validation_trades: int = Field(default=30, ge=0)
    min_validation_t: float = 0.0
    benchmark: Literal["side_mean", "none"] = "side_mean"
    slippage_points: float = Field(default=0.0, ge=0)
    spread_cost: Literal["excess", "full"] = "excess"
    min_confidence: float = Field(default=0.0, ge=0, le=1)


class ModelSettings(BaseModel):
    """``conf/model``: LightGBM parameters, calibration and the decision rule.

    LightGBM parameters are listed (not passed through blindly) so a typo fails here; add a
    field to use another LightGBM parameter (``None`` = LightGBM's default, not passed).
    """

    model_config = _FROZEN

    name: Literal["lightgbm"] = "lightgbm"
    learning_rate: float = Field(gt=0)
    num_leaves: int = Field(ge=2)
    min_data_in_leaf: int = Field(default=20, ge=1)
    feature_fraction: float = Field(default=1.0, gt=0, le=1)
    bagging_fraction: float = Field(default=1.0, gt=0, le=1)
    bagging_freq: int = Field(default=0, ge=0)
    lambda_l1: float | None = Field(default=None, ge=0)
    lambda_l2: float = Field(default=0.0, ge=0)
    max_depth: int | None = None
    min_gain_to_split: float | None = Field(default=None, ge=0)
    num_threads: int = Field(default=0, ge=0)
    max_bin: int | None = Field(default=None, ge=2)
    # Laid over the parameters from ``min_rows`` training rows (``training.LONG_DATA`` when
    # unset; ``{}`` turns it off).
    long_data: dict[str, int | float] | None = None
    num_boost_round: int = Field(default=500, gt=0)
    early_stopping_rounds: int = Field(default=50, gt=0)
    class_weight: Literal["balanced", "none"] | None = None
    calibration: Literal["sigmoid", "isotonic", "none"] = "sigmoid"
    calibration_min_bin: int = Field(default=50, gt=0)
    decision: DecisionParams = Field(default_factory=DecisionParams)

    def params(self) -> dict[str, Any]:
        """The mapping ``aibridge.training`` takes (unset LightGBM parameters left out)."""
        return self.model_dump(exclude_none=True)

    def decision_params(self) -> dict[str, Any]:
        """``decision:`` plus ``calibration_min_bin``, as ``training.fit_decision`` takes them."""
        return self.decision.model_dump() | {"calibration_min_bin": self.calibration_min_bin}


class RegistrySettings(BaseModel):
    """Top-level ``registry``: the MLflow registered model and its aliases."""

    model_config = _FROZEN

    model_name: str = Field(min_length=1)
    challenger_alias: str = Field(default="challenger", min_length=1)
    champion_alias: str = Field(default="champion", min_length=1)


class TrackingSettings(BaseModel):
    """``conf/tracking``: MLflow store (``None`` = ``./mlflow.db``) and experiment."""

    model_config = _FROZEN

    uri: str | None = None
    artifact_location: str | None = None
    experiment: str = Field(min_length=1)


class PolicySettings(BaseModel):
    model_config = _FROZEN

    structural: Literal["fail", "drop", "warn"] = "fail"
    gaps: Literal["fail", "warn"] = "warn"


class DataSettings(BaseModel):
    """``conf/data``: where the MT4 exports are and how strictly ``ingest`` reads them."""

    model_config = _FROZEN

    dir: str = "data"
    pattern: str = "*.csv"
    symbol: str | None = None
    timeframe: str | None = None
    symbol_map: dict[str, str] = Field(default_factory=dict)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    max_gap_bars: int = Field(default=0, ge=0)
    broker_utc_offset_hours: float | None = None

    @field_validator("broker_utc_offset_hours", mode="before")
    @classmethod
    def _offset_in_hours(cls, value: Any) -> Any:
        if value is None:
            return None
        try:
            hours = float(value)
        except (TypeError, ValueError):
            hours = float("nan")
        if not -12 <= hours <= 14:
            raise ValueError(
                f"data.broker_utc_offset_hours is {value!r}; give the broker's standard-time UTC "
                "offset in hours (-12..14, e.g. 2 for GMT+2), or null to infer it from the export"
            )
        return hours


class PipelineSettings(BaseModel):
    """The whole composed tree: what every stage runs with."""

    model_config = _FROZEN

    data: DataSettings = Field(default_factory=DataSettings)
    instrument: InstrumentSpec
    features: FeatureSettings
    labels: LabelSettings
    split: SplitSettings
    model: ModelSettings
    risk: dict[str, Any] | None = Field(default=None, description="validated by aibridge.risk")
    tracking: TrackingSettings
    registry: RegistrySettings
    timeframe: str = Field(min_length=1)
    seed: int = 0
    backtest: dict[str, Any] | None = Field(
        default=None, description="validated by aibridge.backtest.settings"
    )
    serve: dict[str, Any] | None = Field(
        default=None, description="validated by aibridge.server.settings"
    )
    sweep: dict[str, Any] | None = Field(default=None, description="validated by aibridge.sweep")

    @model_validator(mode="after")
    def _embargo_covers_the_labels(self) -> PipelineSettings:
        if self.split.embargo < self.labels.horizon:
            raise ValueError(
                f"split.embargo ({self.split.embargo}) must be at least labels.horizon "
                f"({self.labels.horizon}) or training labels would see validation bars"
            )
        return self

    @property
    def key(self) -> str:
        """``SYMBOL_TIMEFRAME``, the name of this instrument's candles and broker clock."""
        return f"{self.instrument.symbol}_{self.timeframe}"

    @property
    def tracking_mapping(self) -> dict[str, Any]:
        """``tracking`` as the mapping ``aibridge.tracking`` takes."""
        return self.tracking.model_dump()


def _plain(cfg: Any) -> dict[str, Any]:
    """A Hydra ``DictConfig`` (interpolations resolved) or a mapping, as a plain dict."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def describe(exc: ValidationError, prefix: str = "") -> str:
    """A pydantic error as ``key.path: message; ...`` (what the user must change)."""
    return "; ".join(
        f"{prefix}{'.'.join(str(p) for p in e['loc']) or '(top level)'}: "
        + str(e["msg"]).removeprefix("Value error, ")
        for e in exc.errors()
    )


def validated(model: type[BaseModel], data: Mapping[str, Any], where: str) -> Any:
    """``model.model_validate(data)`` or a :class:`ConfigError` naming each bad key."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration in {where}: {describe(exc)}") from None


def pipeline_settings(cfg: PipelineSettings | Mapping[str, Any] | Any) -> PipelineSettings:
    """Validate the composed config once (a no-op for settings already validated)."""
    if isinstance(cfg, PipelineSettings):
        return cfg
    settings: PipelineSettings = validated(PipelineSettings, _plain(cfg), "params.yaml / conf/")
    return settings


def config_group(name: str, config_dir: Path | None = None) -> dict[str, Any]:
    """One group of the composed config (``serve``, ``risk``, ``tracking``, ...) as a dict.

    The one way commands outside DVC read config: Hydra's composition of ``conf/`` when it
    includes the group, else ``conf/<name>/default.yaml``, else ``{}``. A broken ``conf/``
    (bad YAML, unknown override) is *not* swallowed: it raises :class:`ConfigError`.
    """
    from aibridge.config import compose_config
    from aibridge.paths import conf_dir

    directory = config_dir or conf_dir()
    if (directory / "config.yaml").is_file():
        try:
            cfg = compose_config(config_dir=directory)
        except Exception as exc:  # Hydra's own errors: unknown group, bad YAML
            raise ConfigError(f"cannot compose {directory}: {exc}".replace("\n", " ")) from None
        if name in cfg:
            node = cfg[name]
            return _plain(node) if node is not None else {}
    path = directory / name / "default.yaml"
    if path.is_file():
        try:
            return dict(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return {}
