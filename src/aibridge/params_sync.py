"""Keep ``params.yaml`` in step with ``conf/`` under plain ``dvc repro``.

DVC's Hydra integration composes ``conf/`` into ``params.yaml`` only for ``dvc exp run -S``;
plain ``dvc repro`` reads whatever ``params.yaml`` holds. The first pipeline stage (``params``,
depending on ``conf/``) runs this to recompose it, so editing ``conf/`` retrains.

Values that differ from the last composition of ``conf/`` -- written there by
``dvc exp run -S key=value`` (or by hand) -- are kept on top of the fresh composition, so both
ways of changing a parameter work and neither silently undoes the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from aibridge.config import compose_config, flatten, to_container

BASE_FILE = Path("artifacts") / "params" / "conf_composed.yaml"


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return tree


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    return yaml.safe_load(path.read_text()) or {}


def overrides_against(current: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """Leaves of ``current`` that are absent from or different in ``base``."""
    flat_base = flatten(base)
    return {k: v for k, v in flatten(current).items() if k not in flat_base or flat_base[k] != v}


def sync_params(root: Path) -> dict[str, Any]:
    """Recompose ``params.yaml`` from ``conf/``; return the overrides that were kept."""
    params_path = root / "params.yaml"
    base_path = root / BASE_FILE
    fresh = to_container(compose_config(config_dir=root / "conf"))
    current = _read(params_path)
    # Without a record of the previous composition (fresh clone, queued experiment copy),
    # compare against the fresh one: the committed params.yaml matches conf/ by construction.
    previous = _read(base_path) or fresh
    kept = overrides_against(current, previous) if current is not None else {}
    result = _merge(fresh, _unflatten(kept))
    base_path.parent.mkdir(parents=True, exist_ok=True)
    base_path.write_text(yaml.safe_dump(fresh, sort_keys=False))
    new_text = yaml.safe_dump(result, sort_keys=False)
    if not params_path.is_file() or params_path.read_text() != new_text:
        params_path.write_text(new_text)
    return kept
