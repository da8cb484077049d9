"""MLflow Model Registry: the one module that talks to it.

Everything about registered models lives here: the client bound to one store
(:func:`registry_client`), model URIs (:func:`parse_model_uri`, defined MLflow-free in
``aibridge.serving.types`` and re-exported), "which version is behind this alias"
(:func:`alias_version`, :func:`resolve_model_uri`), registering and aliasing versions
(:func:`register_version`), version tags and descriptions, finding a version by its content
(:func:`find_version_by_digest`) and downloading one (:func:`download_version`).

Nothing here changes MLflow's process-wide URIs: lookups and downloads go through a client
(or an explicit ``tracking_uri``) bound to one store, so loading a model in a process that
also logs runs cannot redirect those runs. (:func:`register_version` registers in the store
the stage configured with ``aibridge.tracking.configure_mlflow``.)

The server's lean data plane answers the same "which version" question without MLflow
(``aibridge.serving.resolve`` reads the SQLite store or the REST API directly); it shares
:func:`parse_model_uri`, :class:`ModelInfo` and :class:`ModelLoadError` with this module.

>>> client = registry_client("sqlite:///mlflow.db")  # doctest: +SKIP
>>> alias_version(client, "aibridge-EURUSD-H1", "champion")  # doctest: +SKIP
'3'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from aibridge.serving.types import ModelInfo, ModelLoadError, parse_model_uri

__all__ = [
    "DIGEST_TAG",
    "ModelInfo",
    "ModelLoadError",
    "Registration",
    "alias_version",
    "download_version",
    "find_version_by_digest",
    "model_info",
    "parse_model_uri",
    "register_version",
    "registry_client",
    "resolve_model_uri",
    "set_version_description",
    "set_version_tags",
]

# Version tag holding ``aibridge.model_bundle.bundle_digest`` of the version's bundle files.
DIGEST_TAG = "model_digest"


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    aliases: list[str]
    run_id: str


def registry_client(
    tracking_uri: str | None = None, registry_uri: str | None = None
) -> MlflowClient:
    """A client bound to one store: ``registry_uri`` defaults to ``tracking_uri``; both None:
    MLflow's configured defaults (``MLFLOW_TRACKING_URI``, ``mlflow.set_tracking_uri``)."""
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """Version number an alias points at, or ``None`` when the alias (or model) is unset."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def model_info(name: str, alias: str | None, mv: Any) -> ModelInfo:
    """The registry facts the server reports, from an MLflow ``ModelVersion``."""
    return ModelInfo.from_tags(name, mv.version, alias, mv.run_id, mv.tags or {})


def resolve_model_uri(model_uri: str, client: MlflowClient | None = None) -> ModelInfo:
    """Resolve ``models:/name@alias`` / ``models:/name/3`` / ``models:/name`` (the latest
    version) to a concrete registered version; :class:`ModelLoadError` saying why not."""
    client = client or MlflowClient()
    name, alias, version = parse_model_uri(model_uri)
    try:
        if alias:
            mv = client.get_model_version_by_alias(name, alias)
        elif version:
            mv = client.get_model_version(name, version)
        else:
            versions = client.search_model_versions(f"name='{name}'")
            if not versions:
                raise ModelLoadError(f"registered model {name!r} has no versions")
            mv = max(versions, key=lambda v: int(v.version))
    except MlflowException as exc:
        raise ModelLoadError(f"cannot resolve {model_uri}: {exc.message}") from None
    return model_info(name, alias, mv)


def download_version(
    name: str,
    version: str,
    dst: Path,
    tracking_uri: str | None = None,
    client: MlflowClient | None = None,
) -> Path:
    """Download version ``version`` of ``name`` into ``dst`` from the store at ``tracking_uri``
    (None: MLflow's configured default) without touching MLflow's process-wide URIs.

    The version's storage location is asked of a client bound to that store and copied from
    there, as MLflow's ``models:/`` repository does: ``mlflow.artifacts.download_artifacts(
    "models:/...")`` would look the name up in the *process-wide* registry, whatever
    ``registry_uri`` it is given (MLflow 3.x)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    client = client or registry_client(tracking_uri)
    try:
        source = client.get_model_version_download_uri(name, str(version))
        repo = get_artifact_repository(source, tracking_uri=tracking_uri)
        dst.mkdir(parents=True, exist_ok=True)
        repo.download_artifacts("", dst_path=str(dst))
    except (MlflowException, OSError) as exc:
        raise ModelLoadError(f"cannot download {name} v{version}: {exc}") from None
    return dst


def set_version_tags(
    client: MlflowClient, name: str, version: str, tags: Mapping[str, Any]
) -> None:
    """Tag one version (values as strings)."""
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


def set_version_description(client: MlflowClient, name: str, version: str, markdown: str) -> None:
    """The version's description (Markdown; the MLflow UI renders it on the version page)."""
    client.update_model_version(name, str(version), description=markdown)


def find_version_by_digest(client: MlflowClient, name: str, digest: str) -> str | None:
    """The newest version of ``name`` whose :data:`DIGEST_TAG` tag equals ``digest`` (a
    ``model_bundle.bundle_digest``), or ``None`` (also when the model does not exist):
    registering the same bundle twice can reuse that version instead."""
    try:
        found = client.search_model_versions(f"name='{name}' and tags.`{DIGEST_TAG}` = '{digest}'")
    except MlflowException:
        return None
    versions = [str(mv.version) for mv in found if (mv.tags or {}).get(DIGEST_TAG) == digest]
    return max(versions, key=int) if versions else None


def _link_logged_model(client: MlflowClient, model_id: str, name: str, version: str) -> None:
    import json

    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    try:
        existing = client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS)
        links = [*(json.loads(existing) if existing else []), {"name": name, "version": version}]
        client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(links)})
    except MlflowException:
        pass  # a logged model from another workspace: the version itself is registered


def register_version(
    model_uri: str,
    name: str,
    run_id: str,
    tags: Mapping[str, Any],
    challenger_alias: str,
    champion_alias: str | None = None,
    client: MlflowClient | None = None,
) -> Registration:
    """Register ``model_uri`` as a new version of ``name``, tag it and alias it as the
    challenger, in the store ``client`` is bound to (default: the store MLflow is configured
    for, ``aibridge.tracking.configure_mlflow``).

    With ``champion_alias`` the version also becomes champion when nothing is champion yet;
    the register stage passes none (the gate alone decides). The registered model is created
    when missing, and the version through the client: ``mlflow.register_model`` would print
    "Registered model ... already exists" on every call.
    """
    client = client or MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="aibridge BUY/SELL/HOLD model")
    # A logged model (MLflow 3: models:/m-<id>) is linked by its id, as register_model does,
    # with its storage location as the source: the store would otherwise resolve the
    # models:/ URI through MLflow's process-wide tracking URI, not this client's store.
    source, model_id = model_uri, None
    if model_uri.startswith("models:/m-"):
        model_id = model_uri.removeprefix("models:/")
        source = client.get_logged_model(model_id).artifact_location
    version = client.create_model_version(
        name,
        source=source,
        run_id=run_id,
        tags={k: str(v) for k, v in tags.items()},
        model_id=model_id,
    )
    if model_id:  # the logged model's link to its versions, as register_model keeps it
        _link_logged_model(client, model_id, name, str(version.version))
    client.set_registered_model_alias(name, challenger_alias, version.version)
    aliases = [challenger_alias]
    if champion_alias and alias_version(client, name, champion_alias) is None:
        client.set_registered_model_alias(name, champion_alias, version.version)
        aliases.append(champion_alias)
    return Registration(name=name, version=str(version.version), aliases=aliases, run_id=run_id)
