"""MLflow Model Registry: register versions, move aliases, read what is served."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    aliases: list[str]
    run_id: str


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """Version number an alias points at, or ``None`` when the alias (or model) is unset."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def register_version(
    model_uri: str,
    name: str,
    run_id: str,
    tags: Mapping[str, Any],
    challenger_alias: str,
    champion_alias: str,
) -> Registration:
    """Register ``model_uri`` as a new version of ``name``, tag it and alias it.

    Every new version becomes the challenger; the very first version also becomes champion so
    that a fresh setup has something to serve. Later promotions go through the backtest gate.
    """
    import mlflow

    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="aibridge BUY/SELL/HOLD model")
    version = mlflow.register_model(
        model_uri=model_uri, name=name, tags={k: str(v) for k, v in tags.items()}
    )
    client.set_registered_model_alias(name, challenger_alias, version.version)
    aliases = [challenger_alias]
    if alias_version(client, name, champion_alias) is None:
        client.set_registered_model_alias(name, champion_alias, version.version)
        aliases.append(champion_alias)
    return Registration(name=name, version=str(version.version), aliases=aliases, run_id=run_id)
