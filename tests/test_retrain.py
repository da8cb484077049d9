"""``aibridge retrain`` on a real temp project: new export → dvc add → dvc repro → gate; the
lock, --dry-run, the textfile metrics and the failure path."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aibridge.loop.retrain import (
    PROM_NAME,
    RetrainLocked,
    newest_exports,
    retrain,
    retrain_lock,
)
from aibridge.paths import sample_data_path
from tests.conftest import make_project_copy

# the installed `aibridge` (python -m aibridge.loop is the same command; the units use it)
AIBRIDGE = [str(Path(sys.executable).parent / "aibridge")]


def metrics(path: Path) -> dict[str, float]:
    values = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            key = s.name + (f"[{s.labels['status']}]" if "status" in s.labels else "")
            values[key] = s.value
    return values


def write_export(inbox: Path, name: str, lines: list[str], age_s: float = 600) -> Path:
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    path.write_text("".join(lines))
    old = time.time() - age_s
    os.utime(path, (old, old))
    return path


def test_newest_export_per_pair_and_settling(tmp_path: Path) -> None:
    inbox, data = tmp_path / "inbox", tmp_path / "data"
    data.mkdir()
    lines = sample_data_path().read_text().splitlines(keepends=True)
    (data / "EURUSD60.csv").write_text("".join(lines))
    write_export(inbox, "EURUSD60.csv", lines[:100], age_s=900)
    newer = write_export(inbox, "EURUSD_H1.csv", lines[:200], age_s=600)  # same pair, newer
    write_export(inbox, "USDJPY60.csv", lines[:50], age_s=5)  # still being written
    (inbox / "notes.txt").write_text("x")
    found = newest_exports(inbox, data, settle_s=60)
    assert [(e.pair, e.source, e.target.name, e.changed) for e in found] == [
        ("EURUSD H1", newer, "EURUSD60.csv", True)  # replaces the pair's file, keeps its name
    ]
    write_export(inbox, "EURUSD_H1.csv", lines, age_s=300)  # now identical to data/
    assert [e.changed for e in newest_exports(inbox, data, settle_s=60)] == [False]


def test_lock_refuses_a_second_run(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "inbox").mkdir()
    with retrain_lock(tmp_path / ".aibridge-retrain.lock"):
        with pytest.raises(RetrainLocked, match=rf"pid {os.getpid()} on .* since "):
            retrain(tmp_path, tmp_path / "inbox")
        cli = subprocess.run(
            [*AIBRIDGE, "retrain", "--inbox", str(tmp_path / "inbox"), "--project", str(tmp_path)],
            capture_output=True,
            text=True,
        )
        assert cli.returncode == 2, cli.stdout + cli.stderr
        assert "another retrain is running" in cli.stderr
    # released with the holder: a run goes through (nothing new in an empty inbox)
    assert retrain(tmp_path, tmp_path / "inbox", git_commit=False).status == "no_change"


@pytest.mark.slow
def test_retrain_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The project's own store: an MLflow URI another test left in the environment would win
    # (as MLFLOW_TRACKING_URI rightly does in production).
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    root = make_project_copy(tmp_path / "project")
    inbox, textfiles = tmp_path / "inbox", tmp_path / "textfile"
    lines = sample_data_path().read_text().splitlines(keepends=True)
    before_md5 = (root / "data.dvc").read_text()
    export = write_export(inbox, "EURUSD60.csv", lines[:-300])  # the "new" export: shorter

    # --dry-run: reports, writes nothing
    dry = subprocess.run(
        [*AIBRIDGE, "retrain", "--inbox", str(inbox), "--project", str(root), "--dry-run",
         "--textfile-dir", str(textfiles)],
        capture_output=True, text=True, cwd=root,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"EURUSD H1: would copy {export}" in dry.stdout
    assert "dvc repro would run:" in dry.stdout and "ingest" in dry.stdout
    assert (root / "data.dvc").read_text() == before_md5
    assert (root / "data" / "EURUSD60.csv").read_text() == "".join(lines)
    assert not textfiles.exists() and not (root / "reports" / "retrain.jsonl").exists()

    # the real run: copy, dvc add, dvc repro, the gate decides, git commit
    t0 = time.time()
    res = retrain(root, inbox, textfile_dir=textfiles)
    reg = json.loads((root / "reports" / "registration.json").read_text())
    won = reg["gate"]["promote"] or "champion" in reg["aliases"]
    assert res.status == ("promoted" if won else "not_promoted"), res.line()
    assert res.version == "1" == str(reg["version"]) and res.model_name == "aibridge-EURUSD-H1"
    assert res.gate_reason == reg["gate"]["reason"]
    assert (root / "data" / "EURUSD60.csv").read_text() == "".join(lines[:-300])
    assert (root / "data.dvc").read_text() != before_md5 and res.data_md5 in (
        root / "data.dvc"
    ).read_text()
    log = subprocess.run(
        ["git", "log", "-1", "--format=%s"], cwd=root, capture_output=True, text=True
    ).stdout
    assert log.startswith(f"retrain: data {res.data_md5}, aibridge-EURUSD-H1 v1 ({res.status}")
    m = metrics(textfiles / PROM_NAME)
    assert m[f"aibridge_retrain_last_status[{res.status}]"] == 1.0
    assert m["aibridge_retrain_last_success_timestamp_seconds"] >= t0
    assert m["aibridge_retrain_last_failure_timestamp_seconds"] == 0.0
    assert m["aibridge_retrain_registered_version"] == 1.0
    new_data_ts = m["aibridge_retrain_last_new_data_timestamp_seconds"]

    # same export again: no new data, no repro; a success, but not new data
    again = retrain(root, inbox, textfile_dir=textfiles)
    assert again.status == "no_change" and again.seconds < 30
    m = metrics(textfiles / PROM_NAME)
    assert m["aibridge_retrain_last_status[no_change]"] == 1.0
    assert m["aibridge_retrain_last_new_data_timestamp_seconds"] == new_data_ts
    success_ts = m["aibridge_retrain_last_success_timestamp_seconds"]
    assert success_ts > new_data_ts

    # a broken export: dvc repro fails; the failure is timestamped, the success kept
    write_export(inbox, "EURUSD60.csv", ["this is not an MT4 export\n", "1,2,3\n"], age_s=120)
    cli = subprocess.run(
        [*AIBRIDGE, "retrain", "--inbox", str(inbox), "--project", str(root),
         "--textfile-dir", str(textfiles)],
        capture_output=True, text=True, cwd=root,
    )  # fmt: skip
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "retrain failed" in cli.stdout and "dvc repro failed" in cli.stdout
    m = metrics(textfiles / PROM_NAME)
    assert m["aibridge_retrain_last_status[failed]"] == 1.0
    assert m["aibridge_retrain_last_success_timestamp_seconds"] == success_ts
    assert m["aibridge_retrain_last_failure_timestamp_seconds"] > success_ts
    history = [json.loads(x) for x in (root / "reports" / "retrain.jsonl").read_text().splitlines()]
    assert [h["status"] for h in history] == [res.status, "no_change", "failed"]


# --------------------------------------------------------------------------- scheduling files

REPO = Path(__file__).resolve().parents[1]
SYSTEMD = REPO / "deploy" / "systemd"
WINDOWS = REPO / "deploy" / "windows"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _retrain_command_accepts(args: list[str]) -> None:
    """Parse ``retrain <args>`` with the real click command (nothing runs)."""
    import typer

    from aibridge.loop.__main__ import app

    group = typer.main.get_command(app)
    with group.make_context("aibridge", ["retrain", *args]) as ctx:
        cmd = group.get_command(ctx, "retrain")
        assert cmd is not None
        cmd.make_context("retrain", list(args), parent=ctx)


def _installable(tmp_path: Path) -> Path:
    """The units with the interpreter and EnvironmentFile pointed at this checkout."""
    for name in ("aibridge-retrain.service", "aibridge-retrain.timer"):
        text = (SYSTEMD / name).read_text()
        text = text.replace("/opt/aibridge/.venv/bin/python", sys.executable)
        text = text.replace("/etc/aibridge/aibridge.env", str(SYSTEMD / "aibridge.env.example"))
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
def test_systemd_timer_and_service_verify(tmp_path: Path) -> None:
    d = _installable(tmp_path)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(d / "aibridge-retrain.service"),
         str(d / "aibridge-retrain.timer")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr
    # the schedule parses and fires on weekdays only
    cal = subprocess.run(
        [SYSTEMD_ANALYZE, "calendar", "--iterations=7", "Mon..Fri 22:30 UTC"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cal.returncode == 0, cal.stderr
    days = re.findall(r"(?:Next elapse|Iter\. #\d+): (\w{3}) ", cal.stdout)
    assert len(days) == 7 and not {"Sat", "Sun"} & set(days), cal.stdout
    # a typo is caught (the check is real)
    bad = d / "aibridge-retrain.timer"
    bad.write_text(bad.read_text().replace("Persistent=true", "Persistant=true"))
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(d / "aibridge-retrain.service"), str(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Persistant" in result.stderr


def test_systemd_service_runs_a_valid_retrain_command() -> None:
    text = (SYSTEMD / "aibridge-retrain.service").read_text()
    assert "[Timer]" in (SYSTEMD / "aibridge-retrain.timer").read_text()
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    args = shlex.split(exec_start.removeprefix("ExecStart="))
    assert args[1:4] == ["-m", "aibridge.loop", "retrain"]
    env = dict(
        line.split("=", 1)
        for line in (SYSTEMD / "aibridge.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    args = [env.get(a[2:-1], a) if a.startswith("${") else a for a in args[4:]]
    assert "/srv/mt4-exports" in args
    _retrain_command_accepts(args)
    assert "Type=oneshot" in text and "SuccessExitStatus=2" in text
    assert "AIBRIDGE_TEXTFILE_DIR" in env


def test_windows_task_xml() -> None:
    import xml.etree.ElementTree as ET

    ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
    root = ET.parse(WINDOWS / "aibridge-retrain-task.xml").getroot()
    assert root.tag == f"{{{ns['t']}}}Task"
    settings = root.find("t:Settings", ns)
    assert settings is not None
    assert settings.findtext("t:MultipleInstancesPolicy", namespaces=ns) == "IgnoreNew"
    assert settings.findtext("t:StartWhenAvailable", namespaces=ns) == "true"
    assert settings.findtext("t:ExecutionTimeLimit", namespaces=ns) == "PT2H"
    days = root.find("t:Triggers/t:CalendarTrigger/t:ScheduleByWeek/t:DaysOfWeek", ns)
    assert days is not None
    assert [d.tag.split("}")[1] for d in days] == [
        "Monday", "Tuesday", "Wednesday", "Thursday", "Friday"
    ]  # fmt: skip
    start = root.findtext("t:Triggers/t:CalendarTrigger/t:StartBoundary", namespaces=ns)
    assert start is not None and start.endswith("22:30:00Z")
    exe = root.find("t:Actions/t:Exec", ns)
    assert exe is not None
    assert exe.findtext("t:Command", namespaces=ns).endswith(r"\.venv\Scripts\python.exe")
    args = shlex.split(exe.findtext("t:Arguments", namespaces=ns))
    assert args[:3] == ["-m", "aibridge.loop", "retrain"]
    _retrain_command_accepts(args[3:])
    ps1 = (WINDOWS / "register-retrain-task.ps1").read_text()
    placeholders = set(
        re.findall(r"__[A-Z]+__", (WINDOWS / "aibridge-retrain-task.xml").read_text())
    )
    assert placeholders == {"__PROJECT__", "__INBOX__", "__USER__"}
    for p in placeholders:
        assert f'Replace("{p}"' in ps1, p
    assert "Register-ScheduledTask" in ps1 and "--dry-run" in ps1
