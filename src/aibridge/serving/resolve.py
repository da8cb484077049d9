"""The server's resolver and loader on the lean runtime: no MLflow in the serving process.

``aibridge.registry`` is the project's MLflow registry module; this one answers the server's
one registry question ("which version is behind this URI") *without* MLflow, because the lean
server must not import it (~330 MB, seconds of start-up). It shares ``parse_model_uri``,
``ModelInfo`` and ``ModelLoadError`` with ``aibridge.registry`` (``aibridge.serving.types``),
and reads MLflow's own store only where its layout is stable and small.

``ModelSet`` (``aibridge.server.models``) asks a resolver "which version is behind this URI"
on start and on every poll, and a loader for ``models:/<name>/<version>`` when it moved.

* resolve: an SQLite store is read directly (read-only, three small queries on MLflow's
  registry tables); an ``http(s)://`` tracking server through its REST API (``urllib``, with
  ``MLFLOW_TRACKING_TOKEN`` or ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``). Any other store, or
  a schema this code does not know, goes through the control step in a subprocess.
* load: ``<cache_dir>/<name>-v<version>`` when the control step already materialised and
  checked it, else ``python -m aibridge.serving.fetch`` in a subprocess first (downloading
  and checking happen there, off the request path, once per version).

>>> cache = Path("~/.cache/aibridge/models")  # doctest: +SKIP
>>> resolver, loader = lean_backend("sqlite:///mlflow.db", cache)  # doctest: +SKIP
>>> info = resolver("models:/aibridge-EURUSD-H1@champion")  # doctest: +SKIP
>>> model = loader(f"models:/{info.name}/{info.version}")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from aibridge.model_bundle import MANIFEST
from aibridge.serving.runtime import LeanModel
from aibridge.serving.types import ModelInfo, ModelLoadError, parse_model_uri

FETCH_TIMEOUT_S = 600.0


def _sqlite_path(tracking_uri: str) -> Path | None:
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri[len("sqlite:///") :])


def resolve_sqlite(db: Path, model_uri: str) -> ModelInfo:
    """``resolve_model_uri`` on an MLflow SQLite store, without MLflow."""
    name, alias, version = parse_model_uri(model_uri)
    if not db.is_file():
        raise ModelLoadError(f"cannot resolve {model_uri}: no MLflow store at {db}")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10.0)
    try:
        if alias:
            row = con.execute(
                "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                (name, alias),
            ).fetchone()
            if row is None:
                raise ModelLoadError(
                    f"cannot resolve {model_uri}: Registered model alias {alias} not found."
                )
            version = str(row[0])
        elif not version:
            row = con.execute(
                "SELECT MAX(version) FROM model_versions WHERE name = ?"
                " AND current_stage != 'Deleted_Internal'",
                (name,),
            ).fetchone()
            if row is None or row[0] is None:
                raise ModelLoadError(f"registered model {name!r} has no versions")
            version = str(row[0])
        row = con.execute(
            "SELECT run_id FROM model_versions WHERE name = ? AND version = ?"
            " AND current_stage != 'Deleted_Internal'",
            (name, int(version)),
        ).fetchone()
        if row is None:
            raise ModelLoadError(f"cannot resolve {model_uri}: no version {version} of {name}")
        tags = dict(
            con.execute(
                'SELECT "key", value FROM model_version_tags WHERE name = ? AND version = ?',
                (name, int(version)),
            ).fetchall()
        )
    finally:
        con.close()
    return ModelInfo.from_tags(name, version, alias, row[0], tags)


def _rest(base: str, path: str, params: dict[str, str]) -> dict:
    url = f"{base.rstrip('/')}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url)
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    elif user:
        secret = f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
        request.add_header("Authorization", f"Basic {base64.b64encode(secret).decode()}")
    try:
        with urllib.request.urlopen(request, timeout=10.0) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise ModelLoadError(f"registry answered {exc.code} for {path}: {detail}") from None
    except OSError as exc:
        raise ModelLoadError(f"registry unreachable at {base}: {exc}") from None


def resolve_rest(base: str, model_uri: str) -> ModelInfo:
    """``resolve_model_uri`` against an MLflow tracking server's REST API."""
    name, alias, version = parse_model_uri(model_uri)
    if alias:
        mv = _rest(base, "registered-models/alias", {"name": name, "alias": alias})
    elif version:
        mv = _rest(base, "model-versions/get", {"name": name, "version": version})
    else:
        found = _rest(base, "model-versions/search", {"filter": f"name='{name}'"})
        versions = found.get("model_versions", [])
        if not versions:
            raise ModelLoadError(f"registered model {name!r} has no versions")
        mv = {"model_version": max(versions, key=lambda v: int(v["version"]))}
    v = mv["model_version"]
    tags = {t["key"]: t.get("value", "") for t in v.get("tags", [])}
    return ModelInfo.from_tags(name, v["version"], alias, v.get("run_id", ""), tags)


def run_fetch(
    model_uri: str, tracking_uri: str | None, cache_dir: Path, check: bool = True
) -> tuple[ModelInfo, Path]:
    """The control step in a subprocess; its one JSON line back."""
    cmd = [sys.executable, "-m", "aibridge.serving.fetch", model_uri, "--cache-dir", str(cache_dir)]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    if not check:
        cmd.append("--no-check")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise ModelLoadError(f"fetching {model_uri} took over {FETCH_TIMEOUT_S:.0f} s") from None
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelLoadError(f"fetching {model_uri} failed: {tail}")
    answer = json.loads(lines[-1])
    if "error" in answer:
        raise ModelLoadError(answer["error"])
    return ModelInfo(**answer["info"]), Path(answer["dir"])


def lean_backend(
    tracking_uri: str | None, cache_dir: Path | None
) -> tuple[Callable[[str], ModelInfo], Callable[[str], LeanModel]]:
    """(resolver, loader) for ``ModelSet``, on the lean runtime. ``cache_dir`` None: the user
    cache (``~/.cache/aibridge/models``, or ``AIBRIDGE_MODEL_CACHE``)."""
    cache = Path(
        cache_dir or os.environ.get("AIBRIDGE_MODEL_CACHE") or "~/.cache/aibridge/models"
    ).expanduser()
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    db = _sqlite_path(uri)

    def resolver(model_uri: str) -> ModelInfo:
        if db is not None:
            try:
                return resolve_sqlite(db, model_uri)
            except sqlite3.Error:
                pass  # a schema this code does not know: ask MLflow itself
        elif uri.startswith(("http://", "https://")):
            return resolve_rest(uri, model_uri)
        return run_fetch(model_uri, tracking_uri, cache)[0]

    def loader(model_uri: str) -> LeanModel:
        name, _, version = parse_model_uri(model_uri)
        target = cache / f"{name}-v{version}"
        if not (version and (target / MANIFEST).is_file()):
            _, target = run_fetch(model_uri, tracking_uri, cache)
        return LeanModel.from_dir(target)

    return resolver, loader
