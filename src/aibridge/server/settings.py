"""Server settings: ``conf/serve/default.yaml`` (via Hydra when wired) plus CLI overrides."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aibridge.protocol import DEFAULT_MAX_MESSAGE_BYTES


class ClientSettings(BaseModel):
    """Emulator/EA transport defaults: one place so both time out the same way."""

    model_config = ConfigDict(extra="forbid")

    timeout_ms: int = Field(default=1500, gt=0)
    retries: int = Field(default=2, ge=0)
    heartbeat_s: float = Field(default=5.0, gt=0)


class DriftSettings(BaseModel):
    """Feature drift (PSI) of live requests against the model's training distribution."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    window: int = Field(default=500, gt=0, description="live rows per symbol x timeframe")
    min_rows: int = Field(default=100, gt=0, description="rows before PSI is reported")
    bins: int = Field(default=10, ge=2, description="quantile bins of a computed reference")
    interval_s: float = Field(default=5.0, gt=0, description="PSI recomputation period")
    hold_above: float | None = Field(
        default=None,
        gt=0,
        description="median feature PSI above this: decisions HOLD, reason drift",
    )
    reference_features: Path | None = Field(
        default=None,
        description="feature table (parquet) to compute a reference from when the model "
        "stores none, e.g. artifacts/features.parquet",
    )


class ShadowSettings(BaseModel):
    """A challenger answered beside each champion, off the hot path, journaled only."""

    model_config = ConfigDict(extra="forbid")

    alias: str | None = Field(
        default=None, description="registry alias of the shadow model (e.g. challenger)"
    )
    models: list[str] = Field(
        default_factory=list, description="explicit shadow URIs (one per symbol x timeframe)"
    )
    queue_max: int = Field(default=10_000, gt=0)


class ServeSettings(BaseModel):
    """Everything ``aibridge serve`` needs; validated so a typo fails at startup, not later."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=5555, ge=0, le=65535)
    models: list[str] = Field(default_factory=lambda: ["models:/aibridge-EURUSD-H1@champion"])
    tracking_uri: str | None = None
    poll_interval_s: float = Field(default=30.0, ge=0)
    max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE_BYTES, gt=0)
    journal_path: Path = Path("journal/aibridge.sqlite")
    model_cache_dir: Path = Path("artifacts/serve-models")
    runtime: Literal["lean", "full"] = Field(
        default="lean",
        description="lean: the request path without MLflow/pandas/sklearn (aibridge.serving); "
        "full: the MLflow-loaded bundle (aibridge.bundle)",
    )
    log_path: Path | None = Path("logs/aibridge-serve.jsonl")
    log_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    log_backups: int = Field(default=5, ge=0)
    log_level: str = "INFO"
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=9108, ge=0, le=65535, description="0 = random")
    curve_secret_key: Path | None = None
    shutdown_grace_s: float = Field(default=2.0, ge=0)
    clock_mismatch: Literal["warn", "refuse"] = Field(
        default="warn",
        description="EA broker UTC offset differs from the model's: warn (log, metric) and "
        "answer, or refuse predicts with error code clock_mismatch",
    )
    client: ClientSettings = Field(default_factory=ClientSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    shadow: ShadowSettings = Field(default_factory=ShadowSettings)

    @property
    def hard_max_message_bytes(self) -> int:
        """ZMQ_MAXMSGSIZE: past this ZeroMQ drops the peer instead of us answering."""
        return 4 * self.max_message_bytes

    def resolve_paths(self, root: Path) -> ServeSettings:
        """Relative paths are relative to the project root, not the shell's cwd."""

        def fix(p: Path | None) -> Path | None:
            return p if p is None or p.is_absolute() else root / p

        return self.model_copy(
            update={
                "journal_path": fix(self.journal_path),
                "model_cache_dir": fix(self.model_cache_dir),
                "log_path": fix(self.log_path),
                "curve_secret_key": fix(self.curve_secret_key),
                "drift": self.drift.model_copy(
                    update={"reference_features": fix(self.drift.reference_features)}
                ),
            }
        )


def load_serve_settings(overrides: Mapping[str, Any] | None = None) -> ServeSettings:
    """Composed ``serve`` node if Hydra's config includes it, else ``conf/serve/default.yaml``
    (:func:`aibridge.settings.config_group`), then the CLI's overrides."""
    from aibridge.settings import config_group

    data = config_group("serve")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return ServeSettings.model_validate(data)


def journal_path(path: Path | None = None) -> Path:
    """``path`` when given, else the journal the project's serve settings name (relative to
    the project root): where ``journal tail``, ``reconcile`` and ``shadow-report`` read."""
    from aibridge.paths import project_root

    if path is not None:
        return path
    return load_serve_settings().resolve_paths(project_root()).journal_path
