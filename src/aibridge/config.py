"""Hydra configuration: one composed tree from ``conf/`` for every stage and command.

Stages never parse YAML themselves; they ask for the composed config. DVC's Hydra integration
composes the same tree into ``params.yaml`` for ``dvc exp run -S``; see ``aibridge.params_sync``
for how plain ``dvc repro`` stays in step with ``conf/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from aibridge.paths import conf_dir, workspace_root

CONFIG_NAME = "config"
PARAMS_FILE = "params.yaml"


def compose_config(overrides: Sequence[str] = (), config_dir: Path | None = None) -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra overrides (``model.num_leaves=63``)."""
    directory = (config_dir or conf_dir()).resolve()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(directory), version_base=None):
        cfg = compose(config_name=CONFIG_NAME, overrides=list(overrides))
    return cfg


def to_container(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def load_params(path: Path | None = None) -> DictConfig:
    """The parameters a DVC stage runs with: ``params.yaml`` as DVC last composed it.

    Stages read this file (not ``conf/`` directly) so that what DVC records in ``dvc.lock``
    is exactly what the stage used, including ``dvc exp run -S`` overrides.
    """
    params_path = path or workspace_root() / PARAMS_FILE
    if not params_path.is_file():
        return compose_config()
    with params_path.open() as fh:
        return OmegaConf.create(yaml.safe_load(fh) or {})


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"num_leaves": 31}}`` → ``{"model.num_leaves": 31}`` (for MLflow params)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
