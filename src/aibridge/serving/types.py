"""What a served model reports and answers, and the registry URI rule: shared by the lean
runtime, the full one (``aibridge.serving_model``), the server (``aibridge.server.models``) and
the registry module (``aibridge.registry``). Kept free of MLflow, pandas and LightGBM imports,
so this is the one home of :func:`parse_model_uri` and :class:`ModelLoadError`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aibridge.errors import AibridgeError

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))?$")


class ModelLoadError(AibridgeError, RuntimeError):
    """The model cannot be resolved or loaded; the message says which and why."""


class TooFewBarsError(ValueError):
    """The request carries fewer candles than the model's ``min_bars``."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    alias: str | None
    run_id: str
    trained_at: str
    data_hash: str
    symbol: str
    timeframe: str

    @classmethod
    def from_tags(
        cls, name: str, version: str | int, alias: str | None, run_id: str | None, tags: dict
    ) -> ModelInfo:
        """The facts of one registered version, from its version tags (written by ``train``).

        >>> ModelInfo.from_tags("m", 3, "champion", None, {"symbol": "EURUSD"}).version
        '3'
        """
        return cls(
            name=name,
            version=str(version),
            alias=alias,
            run_id=run_id or "",
            trained_at=tags.get("trained_at", ""),
            data_hash=tags.get("data_hash", ""),
            symbol=tags.get("symbol", ""),
            timeframe=tags.get("timeframe", ""),
        )


@dataclass(frozen=True)
class Decision:
    action: str  # "BUY" | "SELL" | "HOLD"
    confidence: float
    probabilities: dict[str, float]
    sl: float | None
    tp: float | None
    sl_points: float | None
    tp_points: float | None
    reason: str
    # The candidate side's expected R after costs (expected-value models; None otherwise).
    ev_r: float | None = None


def parse_model_uri(model_uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` / ``models:/name/3`` / ``models:/name`` → (name, alias, version).

    >>> parse_model_uri("models:/aibridge-EURUSD-H1@champion")
    ('aibridge-EURUSD-H1', 'champion', None)
    """
    match = _MODELS_URI.match(model_uri.strip())
    if not match:
        raise ModelLoadError(
            f"{model_uri!r} is not a registry URI; "
            "use models:/<name>@<alias> or models:/<name>/<version>"
        )
    return match.group("name"), match.group("alias"), match.group("version")
