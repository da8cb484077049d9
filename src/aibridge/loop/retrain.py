"""Scheduled retraining: newest MT4 export(s) → ``data/`` → ``dvc add`` → ``dvc repro`` → gate.

One run (``aibridge retrain --inbox DIR``), started by a systemd timer or a Windows scheduled
task:

1. take the lock file (``.aibridge-retrain.lock`` in the project): never two runs at once;
   a second run exits with code 2 and says who holds the lock since when;
2. per symbol × timeframe, the newest CSV in the inbox (older than ``settle_s``: MT4 may still
   be writing it) replaces the project's export for that pair when its bytes differ; nothing
   new → status ``no_change``, no repro;
3. ``dvc add data`` records the data version (``data.dvc`` + the DVC cache), ``dvc repro``
   trains, evaluates, backtests and registers; the register stage's backtest gate decides
   whether the new version becomes champion (running servers pick it up by their alias poll);
4. ``git commit`` of ``data.dvc`` and ``dvc.lock`` when the project is a git checkout, so each
   retrain is a restorable version (``git checkout <commit> && dvc checkout``);
5. one log line, a JSON line in ``reports/retrain.jsonl`` and, with ``textfile_dir``, the
   Prometheus textfile-collector file ``aibridge_retrain.prom`` (last run / success / failure
   timestamps, status, duration, registered version, promoted) that the alert rules watch.

``dry_run`` reports what would be copied and which stages ``dvc status`` says are stale,
and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("aibridge.retrain")

LOCK_NAME = ".aibridge-retrain.lock"
PROM_NAME = "aibridge_retrain.prom"
STATUSES = ("promoted", "not_promoted", "no_change", "failed")


class RetrainError(RuntimeError):
    """A run failed for a reason worth one line (the message says what and where to look)."""


class RetrainLocked(RetrainError):
    """Another run holds the lock."""


@dataclass
class Export:
    """One inbox CSV chosen for a symbol × timeframe, and where it goes in ``data/``."""

    source: Path
    target: Path
    pair: str
    changed: bool
    sha256: str


@dataclass
class RetrainResult:
    status: str  # promoted | not_promoted | no_change | failed (| dry_run)
    started_at: float
    seconds: float
    exports: list[Export] = field(default_factory=list)
    data_md5: str | None = None
    model_name: str | None = None
    version: str | None = None
    gate_reason: str | None = None
    stale_stages: list[str] = field(default_factory=list)
    log_path: Path | None = None
    git_commit: str | None = None
    error: str | None = None

    def line(self) -> str:
        """The one log line of a run."""
        copied = [e.pair for e in self.exports if e.changed]
        parts = [f"retrain {self.status} in {self.seconds:.1f} s"]
        parts.append(f"new data: {', '.join(copied) or 'none'}")
        if self.data_md5:
            parts.append(f"data {self.data_md5}")
        if self.version:
            parts.append(f"{self.model_name} v{self.version}")
        if self.gate_reason:
            parts.append(f"gate: {self.gate_reason}")
        if self.stale_stages:
            parts.append(f"stale stages: {', '.join(self.stale_stages)}")
        if self.error:
            parts.append(f"error: {self.error}")
        return "; ".join(parts)

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["exports"] = [
            {**asdict(e), "source": str(e.source), "target": str(e.target)} for e in self.exports
        ]
        doc["log_path"] = None if self.log_path is None else str(self.log_path)
        doc["started_at_iso"] = datetime.fromtimestamp(self.started_at, UTC).isoformat(
            timespec="seconds"
        )
        return doc


# --------------------------------------------------------------------------- lock


@contextmanager
def retrain_lock(path: Path) -> Iterator[IO[str]]:
    """Exclusive, non-blocking lock on ``path`` (an OS lock: released if the process dies).

    Raises :class:`RetrainLocked` naming the holder (pid, host, start time) when taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
    try:
        try:
            _lock(fh)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown process"
            raise RetrainLocked(
                f"another retrain is running ({holder}); lock file {path}. "
                "Wait for it to finish; the lock goes away with its process."
            ) from None
        fh.seek(0)
        fh.truncate()
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n")
        fh.flush()
        yield fh
    finally:
        fh.close()


def _lock(fh: IO[str]) -> None:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


# --------------------------------------------------------------------------- exports


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pair(path: Path) -> str:
    from aibridge.ingest.naming import parse_symbol_timeframe

    parsed = parse_symbol_timeframe(path)
    return f"{parsed[0]} {parsed[1]}" if parsed else path.stem


def newest_exports(inbox: Path, data_dir: Path, settle_s: float = 60.0) -> list[Export]:
    """Per symbol × timeframe the newest settled CSV of ``inbox``; its target in ``data_dir``
    is the existing file of that pair (same name kept), else the export's own name."""
    if not inbox.is_dir():
        raise RetrainError(f"inbox {inbox} is not a directory")
    now = time.time()
    newest: dict[str, Path] = {}
    for path in inbox.iterdir():
        if not path.is_file() or path.suffix.lower() != ".csv":
            continue
        if now - path.stat().st_mtime < settle_s:
            log.info(f"{path.name}: modified {now - path.stat().st_mtime:.0f} s ago; next run")
            continue
        pair = _pair(path)
        if pair not in newest or path.stat().st_mtime > newest[pair].stat().st_mtime:
            newest[pair] = path
    existing = {}
    if data_dir.is_dir():
        existing = {_pair(p): p for p in data_dir.iterdir() if p.suffix.lower() == ".csv"}
    out = []
    for pair, src in sorted(newest.items()):
        target = existing.get(pair, data_dir / src.name)
        digest = _sha256(src)
        changed = not target.is_file() or _sha256(target) != digest
        out.append(Export(src, target, pair, changed, digest))
    return out


# --------------------------------------------------------------------------- commands


def _env() -> dict[str, str]:
    """The pipeline's ``python`` must be this interpreter (its venv), whatever PATH says."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MPLBACKEND", "Agg")
    return env


def _run(cmd: list[str], cwd: Path, log_fh: IO[str] | None = None) -> subprocess.CompletedProcess:
    if log_fh is not None:
        log_fh.write(f"$ {' '.join(cmd)}\n")
        log_fh.flush()
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    if log_fh is not None:
        log_fh.write(proc.stdout + proc.stderr + f"[exit {proc.returncode}]\n")
        log_fh.flush()
    return proc


def _dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def stale_stages(project: Path) -> list[str]:
    """Stages ``dvc status`` reports as changed (what a repro would run first)."""
    proc = _run(_dvc("status", "--json"), project)
    if proc.returncode != 0:
        raise RetrainError(f"dvc status failed: {_tail(proc.stderr or proc.stdout)}")
    text = proc.stdout.strip()
    try:
        doc = json.loads(text[text.index("{") :]) if "{" in text else {}
    except ValueError:
        return []
    return [k.split(":")[-1] for k in doc if not k.endswith(".dvc")]


def _data_md5(project: Path) -> str | None:
    import yaml

    path = project / "data.dvc"
    if not path.is_file():
        return None
    outs = (yaml.safe_load(path.read_text()) or {}).get("outs") or [{}]
    return outs[0].get("md5")


def _is_git(project: Path) -> bool:
    return (project / ".git").exists()


# --------------------------------------------------------------------------- metrics


def _previous_metrics(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(path.read_text()):
            for sample in family.samples:
                if "status" not in sample.labels:
                    values[sample.name] = sample.value
    except ValueError:
        return {}
    return values


def write_textfile(result: RetrainResult, textfile_dir: Path, project: Path) -> Path:
    """``aibridge_retrain.prom`` for node_exporter's textfile collector (atomic rename).

    Success/failure timestamps carry over from the previous file, so a failure keeps the time
    of the last success (what ``AibridgeRetrainStale`` measures)."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    textfile_dir.mkdir(parents=True, exist_ok=True)
    path = textfile_dir / PROM_NAME
    prev = _previous_metrics(path)
    r = CollectorRegistry()
    labels = {"project": str(project)}
    finished = result.started_at + result.seconds

    def gauge(name: str, doc: str, value: float | None) -> None:
        if value is None:
            return
        g = Gauge(name, doc, list(labels), registry=r)
        g.labels(**labels).set(value)

    ok = result.status != "failed"
    gauge("aibridge_retrain_last_run_timestamp_seconds", "End of the last retrain run", finished)
    gauge(
        "aibridge_retrain_last_success_timestamp_seconds",
        "End of the last retrain run that did not fail (no_change counts)",
        finished if ok else prev.get("aibridge_retrain_last_success_timestamp_seconds"),
    )
    gauge(
        "aibridge_retrain_last_failure_timestamp_seconds",
        "End of the last failed retrain run (0: none yet)",
        prev.get("aibridge_retrain_last_failure_timestamp_seconds", 0.0) if ok else finished,
    )
    gauge(
        "aibridge_retrain_last_new_data_timestamp_seconds",
        "End of the last run that found a new export",
        finished
        if any(e.changed for e in result.exports) and ok
        else prev.get("aibridge_retrain_last_new_data_timestamp_seconds"),
    )
    gauge("aibridge_retrain_duration_seconds", "Duration of the last run", result.seconds)
    gauge(
        "aibridge_retrain_registered_version",
        "Version the last pipeline run registered",
        float(result.version)
        if result.version and result.version.isdigit()
        else prev.get("aibridge_retrain_registered_version"),
    )
    status = Gauge(
        "aibridge_retrain_last_status",
        "1 for the status of the last run",
        [*labels, "status"],
        registry=r,
    )
    for s in STATUSES:
        status.labels(**labels, status=s).set(1.0 if s == result.status else 0.0)
    write_to_textfile(str(path), r)
    return path


# --------------------------------------------------------------------------- the run


def retrain(
    project: Path,
    inbox: Path,
    *,
    dry_run: bool = False,
    settle_s: float = 60.0,
    force: bool = False,
    git_commit: bool = True,
    textfile_dir: Path | None = None,
    lock_path: Path | None = None,
) -> RetrainResult:
    """One scheduled run (see the module docstring). Never raises for pipeline failures: the
    result says ``failed`` with the reason; :class:`RetrainLocked` and bad arguments raise."""
    project = project.resolve()
    lock_path = lock_path or project / LOCK_NAME
    started = time.time()
    with retrain_lock(lock_path):
        result = RetrainResult(status="failed", started_at=started, seconds=0.0)
        try:
            _run_locked(project, inbox, result, dry_run, settle_s, force, git_commit)
        except RetrainError as exc:
            result.status, result.error = "failed", str(exc)
        except Exception as exc:  # a scheduled job must report, not just die
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("retrain crashed")
        result.seconds = time.time() - started
        if dry_run:
            return result
        (log.error if result.status == "failed" else log.info)(
            result.line(), extra={"retrain": result.as_json()}
        )
        history = project / "reports" / "retrain.jsonl"
        history.parent.mkdir(parents=True, exist_ok=True)
        with history.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(result.as_json(), sort_keys=True) + "\n")
        if textfile_dir is not None:
            write_textfile(result, textfile_dir, project)
        return result


def _run_locked(
    project: Path,
    inbox: Path,
    result: RetrainResult,
    dry_run: bool,
    settle_s: float,
    force: bool,
    git_commit: bool,
) -> None:
    if not (project / "dvc.yaml").is_file():
        raise RetrainError(f"{project} has no dvc.yaml: not an aibridge project")
    data_dir = project / "data"
    result.exports = newest_exports(inbox, data_dir, settle_s)
    changed = [e for e in result.exports if e.changed]
    result.data_md5 = _data_md5(project)
    if dry_run:
        result.status = "dry_run"
        result.stale_stages = stale_stages(project) if (changed or force) else []
        if changed:  # everything downstream of the data is stale once it is copied
            result.stale_stages = sorted(set(result.stale_stages) | {"ingest"})
        return
    if not changed and not force:
        result.status = "no_change"
        return
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log_dir = project / "logs" / "retrain"
    log_dir.mkdir(parents=True, exist_ok=True)
    result.log_path = log_dir / f"{stamp}.log"
    before = _registration(project)
    with result.log_path.open("w", encoding="utf-8") as lf:
        for e in changed:
            tmp = e.target.with_name(e.target.name + ".part")
            data_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(e.source, tmp)
            os.replace(tmp, e.target)  # the pipeline never sees a half-copied file
            lf.write(f"copied {e.source} -> {e.target} ({e.sha256[:12]})\n")
        proc = _run(_dvc("add", "data"), project, lf)
        if proc.returncode != 0:
            raise RetrainError(f"dvc add data failed: {_tail(proc.stderr or proc.stdout)}")
        result.data_md5 = _data_md5(project)
        proc = _run(_dvc("repro"), project, lf)
        if proc.returncode != 0:
            raise RetrainError(
                f"dvc repro failed (exit {proc.returncode}; log {result.log_path}): "
                f"{_tail(proc.stderr or proc.stdout)}"
            )
        reg = _registration(project)
        if not reg or reg == before:
            raise RetrainError(f"dvc repro registered no new version (log {result.log_path})")
        result.model_name = str(reg["model_name"])
        result.version = str(reg["version"])
        gate = reg.get("gate") or {}
        result.gate_reason = gate.get("reason")
        # The very first version is champion without winning the gate: count the alias.
        promoted = bool(gate.get("promote")) or "champion" in (reg.get("aliases") or [])
        result.status = "promoted" if promoted else "not_promoted"
        if git_commit and _is_git(project):
            result.git_commit = _commit(project, result, lf)


def _registration(project: Path) -> dict[str, Any] | None:
    path = project / "reports" / "registration.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _commit(project: Path, result: RetrainResult, lf: IO[str]) -> str | None:
    paths = [p for p in ("data.dvc", "dvc.lock") if (project / p).is_file()]
    _run(["git", "add", "--", *paths], project, lf)
    message = (
        f"retrain: data {result.data_md5}, {result.model_name} v{result.version} "
        f"({result.status}: {result.gate_reason})"
    )
    proc = _run(["git", "commit", "-q", "-m", message, "--", *paths], project, lf)
    if proc.returncode != 0:
        log.warning(f"git commit of the data version failed: {_tail(proc.stderr)}")
        return None
    head = _run(["git", "rev-parse", "HEAD"], project)
    return head.stdout.strip() or None
