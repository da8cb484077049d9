"""The control step: resolve a registry URI, materialise that version, check the lean path.

Run in its own process so MLflow (and, for the check, pandas/numba/lightgbm) never enters the
server::

    python -m aibridge.serving.fetch models:/aibridge-EURUSD-H1@champion \
        --tracking-uri sqlite:///mlflow.db --cache-dir ~/.cache/aibridge/models

prints one JSON line ``{"info": {...}, "dir": ".../aibridge-EURUSD-H1-v3", "check": {...}}``
(exit 1 with ``{"error": ...}`` when it cannot). The version is downloaded once into
``<cache-dir>/<name>-v<version>/`` (a temporary folder renamed into place, so a half-written
version is never loaded) together with ``aibridge-serving.json``: the registry facts, the
artifact paths, and the result of the check -- the lean runtime's decisions against the
bundle's own code (``ServingModel``: compiled feature kernel, LightGBM's Python booster,
bundled ``decide_rows``) on ``CHECK_BARS`` synthetic bars with random spreads. A version whose
check found a difference is refused by ``LeanModel.from_dir`` with that count.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from aibridge.model_bundle import MANIFEST, artifact_paths
from aibridge.serving.runtime import LeanModel
from aibridge.serving.types import ModelInfo

CHECK_BARS = 1500


def check_windows(min_bars: int, digits: int, n: int = CHECK_BARS, seed: int = 0):
    """Random-walk Bid candles at the instrument's price scale, hourly, plus spreads (points)."""
    rng = np.random.default_rng(seed)
    total = n + min_bars
    base = 1.1 * 10.0 ** max(0, 5 - digits)
    close = base * np.exp(np.cumsum(rng.normal(0, 0.002, total)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    wick = np.abs(rng.normal(0, 0.001, (2, total))) * close
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    volume = rng.integers(1, 500, total).astype(np.float64)
    time = 1_500_000_000 + 3600 * np.arange(total, dtype=np.int64)
    spreads = rng.integers(0, 40, total).astype(np.float64)
    return (time, open_, high, low, close, volume), spreads


def check_lean(info: ModelInfo, model_dir: Path, n: int = CHECK_BARS) -> dict[str, Any]:
    """Decisions of the lean runtime vs the bundle's own code on ``n`` bars: equal or not."""
    from aibridge.serving_model import ServingModel  # full loader: allowed in this process

    full = ServingModel(info, model_dir)
    lean = LeanModel(info, model_dir)
    arrays, spreads = check_windows(lean.min_bars, lean.digits, n)
    m = lean.min_bars
    differ = 0
    for t in range(m - 1, m - 1 + n):
        ti, o, h, lo, c, v = (a[t - m + 1 : t + 1] for a in arrays)
        spread = None if t % 5 == 0 else float(spreads[t])
        if full.decide(ti, o, h, lo, c, v, spread) != lean.decide(ti, o, h, lo, c, v, spread):
            differ += 1
    return {"bars": n, "differ": differ, "decision_twin": lean._twin is not None}


def _write_manifest(info: ModelInfo, model_dir: Path, check: bool) -> dict[str, Any]:
    paths = artifact_paths(model_dir)
    result = check_lean(info, model_dir) if check else {"bars": 0, "differ": 0}
    manifest = {
        "info": asdict(info) | {"alias": None},
        "artifacts": {k: str(p.relative_to(model_dir)) for k, p in paths.items()},
        "check": result,
    }
    partial = model_dir / f".{MANIFEST}.{os.getpid()}"
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(partial, model_dir / MANIFEST)
    return result


def fetch(
    model_uri: str, tracking_uri: str | None, cache_dir: Path, check: bool = True
) -> tuple[ModelInfo, Path, dict[str, Any]]:
    """Resolve ``model_uri``, make sure ``<cache_dir>/<name>-v<version>`` holds it, checked."""
    from aibridge.registry import download_version, registry_client, resolve_model_uri

    info = resolve_model_uri(model_uri, registry_client(tracking_uri))
    cache_dir = Path(cache_dir).expanduser()
    target = cache_dir / f"{info.name}-v{info.version}"
    manifest_path = target / MANIFEST
    if manifest_path.is_file():
        return info, target, json.loads(manifest_path.read_text()).get("check", {})
    if (target / "MLmodel").is_file():
        # Downloaded by the full loader (aibridge.serving_model shares the cache layout): check
        # it in place and add the manifest, written whole or not at all.
        result = _write_manifest(info, target, check)
        return info, target, result
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{info.name}-v{info.version}-", dir=cache_dir))
    try:
        model_dir = work / "model"
        download_version(info.name, info.version, model_dir, tracking_uri)
        result = _write_manifest(info, model_dir, check)
        try:
            os.replace(model_dir, target)
        except OSError:
            if not manifest_path.is_file():  # not another fetch that won the race
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return info, target, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aibridge.serving.fetch", description=__doc__)
    parser.add_argument("model_uri")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--cache-dir", required=True, type=Path)
    parser.add_argument("--no-check", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        info, target, result = fetch(
            args.model_uri, args.tracking_uri, args.cache_dir, check=not args.no_check
        )
    except Exception as exc:  # one line for the caller, whatever went wrong
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps({"info": asdict(info), "dir": str(target), "check": result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
