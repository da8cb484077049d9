"""A newcomer's first run: the README's *First run* commands, from a fresh clone, in a fresh shell.

The commands are parsed from the README (the fenced ``bash`` blocks between the
``newcomer:start`` / ``newcomer:end`` markers), so the README and this test cannot drift: a
command added there runs here, unless it is listed in ``SKIPPED`` with the reason.

Rig, not README: the clone reuses this checkout's installed venv through a ``.venv`` symlink
(no 1.5 GB reinstall; the test checks first that ``make`` sees it as up to date, so nothing is
installed into it), and ``PYTHONPATH=<clone>/src`` so the commands run the clone's code rather
than the editable install's. Each command runs in ``bash -c`` with a minimal environment: no
activated venv, ``PATH`` without ``.venv/bin``, no MLflow variables.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

# Commands of the README's first-run blocks this test does not run, and why.
SKIPPED = {
    "make test": "the suite this test belongs to (CI runs it through .ci/run)",
    ".venv/bin/dvc exp run": "a second full training (~1 min); tests/test_pipeline.py runs "
    "`dvc exp run -S` and tests/test_params_sync.py the reset of its override",
    "make ui": "a web server that runs until Ctrl+C",
    ".venv/bin/aibridge serve": "a server that runs until Ctrl+C (make demo started and "
    "stopped one)",
}
WIDTH = 100  # the terminal the `dvc exp show` view must fit


def readme_commands(text: str) -> list[str]:
    start, end = text.index("<!-- newcomer:start"), text.index("<!-- newcomer:end")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text[start:end], re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()  # trailing comment
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def skip_reason(command: str) -> str | None:
    for prefix, reason in SKIPPED.items():
        if command == prefix or command.startswith(prefix + " "):
            return reason
    return None


def port_busy(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def test_readme_first_run_block_is_parsed() -> None:
    commands = readme_commands(README.read_text())
    assert commands[:2] == ["make demo", "make test"]
    for command in commands:  # one entry point: make, or the venv's executables
        assert command.startswith(("make ", ".venv/bin/")), command
    assert any(c.startswith(".venv/bin/aibridge params reset") for c in commands)
    assert any(c.startswith(".venv/bin/dvc exp show") for c in commands)


@pytest.mark.slow
def test_readme_first_run_from_a_fresh_clone(tmp_path: Path) -> None:
    clone, env = fresh_clone(tmp_path)
    # A clone's files are newer than the venv's stamp; date the pins back so make reuses it.
    for name in ("pyproject.toml", "constraints.txt"):
        os.utime(clone / name, (946684800, 946684800))
    if shutil.which("make", path=env["PATH"]) is None:
        pytest.skip("make is not installed")
    uptodate = subprocess.run(["make", "-q", "setup"], cwd=clone, env=env)
    if uptodate.returncode != 0:
        pytest.skip("this checkout's venv is not up to date for `make` (run `make setup`)")

    commands = readme_commands((clone / "README.md").read_text())
    outputs: dict[str, str] = {}
    timings: dict[str, float] = {}
    for command in commands:
        if skip_reason(command):
            continue
        started = time.monotonic()
        res = subprocess.run(
            ["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
            timeout=400,
        )  # fmt: skip
        timings[command] = time.monotonic() - started
        out = res.stdout + res.stderr
        outputs[command] = out
        if command.startswith(".venv/bin/aibridge doctor") and res.returncode != 0:
            # Another process on this shared machine may hold the default ports.
            busy = [p for p in (5555, 9108) if port_busy(p)]
            assert busy, f"{command} failed ({res.returncode}):\n{out}"
            assert "port" in out and "stale data" in out, out
            continue
        assert res.returncode == 0, f"`{command}` failed ({res.returncode}):\n{out[-4000:]}"
    print({c: round(t, 1) for c, t in timings.items()})

    demo = outputs["make demo"]
    assert "register: aibridge-EURUSD-H1 v1" in demo
    assert "stopped on SIGTERM with exit code 0" in demo
    doctor = next(o for c, o in outputs.items() if c.startswith(".venv/bin/aibridge doctor"))
    assert "stale data: the newest H1 candle (2018-02-07 15:00)" in doctor
    repro = next(o for c, o in outputs.items() if c == ".venv/bin/dvc repro")
    assert "up to date" in repro  # make demo already ran the pipeline
    exp_show = next(o for c, o in outputs.items() if c.startswith(".venv/bin/dvc exp show"))
    assert "model.num_leaves" in exp_show and "model.sharpe" in exp_show
    assert max(len(line) for line in exp_show.splitlines()) <= WIDTH, exp_show
    assert "…" not in exp_show, exp_show  # no column squeezed out
    reset = next(o for c, o in outputs.items() if c.startswith(".venv/bin/aibridge params"))
    assert "no overrides" in reset or "dropped" in reset

    # Part 2 of the demo: a model that trades, from the real server's journal; the project's
    # tracked files untouched (its store, DVC cache and model cache were in a temp dir).
    flat = " ".join(demo.split())  # rich wraps lines at the terminal's width
    for shown in ("first BUY reply", "first SELL reply", "spread_too_wide", "closed by", "tp "):
        assert shown in flat, demo[-3000:]
    assert "planted edge" in flat and "Not investment advice" in flat, demo[-3000:]
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True
    )
    assert status.stdout == "", status.stdout

    # The journal commands make demo suggests must work as printed.
    suggested = re.findall(r"`((?:\.venv/bin/)?aibridge journal tail[^`]*)`", demo)
    assert len(suggested) >= 2, demo[-2000:]
    for command in suggested:
        res = subprocess.run(
            ["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert res.returncode == 0, f"{command}: {res.stdout + res.stderr}"


def fresh_clone(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A clone of this repository on the installed venv, and a minimal shell environment."""
    venv = REPO / ".venv"
    if not (venv / ".installed").is_file():
        pytest.skip("no installed venv in this checkout (run `make setup` first)")
    clone = tmp_path / "aibridge"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    (clone / ".venv").symlink_to(venv)
    env = {
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "COLUMNS": str(WIDTH),
        "TERM": "dumb",
        "PYTHONPATH": str(clone / "src"),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    return clone, env


@pytest.mark.slow
def test_quickstart_is_make_demo_without_make(tmp_path: Path) -> None:
    """`aibridge quickstart` (the Windows path) from a fresh clone, with no venv on PATH."""
    clone, env = fresh_clone(tmp_path)
    res = subprocess.run(
        [str(clone / ".venv" / "bin" / "aibridge"), "quickstart", "--no-serve"], cwd=clone,
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "==> [1/3] data" in out and "wrote" in out
    assert "register: aibridge-EURUSD-H1 v1" in out
    assert "aibridge pipeline" in out  # the summary table
    assert (clone / "mlflow.db").is_file()


def test_venv_python_puts_its_bin_first_on_path() -> None:
    """`.venv/bin/dvc repro` unactivated: the stages' `python` must be the venv's."""
    import sysconfig

    from aibridge.paths import VENV_PATH_HOOK

    python = REPO / ".venv" / "bin" / "python"
    hook = Path(sysconfig.get_paths()["purelib"]) / VENV_PATH_HOOK
    if not python.is_file() or not hook.is_file():
        pytest.skip("the venv's PATH hook is not installed (`make setup` installs it)")
    res = subprocess.run(
        [str(python), "-c", "import subprocess; subprocess.run('python -c \"import sys; "
         "print(sys.prefix)\"', shell=True)"],
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.stdout.strip() == str(REPO / ".venv"), res.stdout + res.stderr


def make_clean_dir(tmp_path: Path) -> Path:
    shutil.copy2(REPO / "Makefile", tmp_path / "Makefile")
    (tmp_path / "mlflow.db").write_text("store")
    (tmp_path / "mlartifacts").mkdir()
    (tmp_path / "artifacts" / "model").mkdir(parents=True)
    (tmp_path / "reports" / "plots").mkdir(parents=True)
    (tmp_path / "reports" / "promotions.jsonl").write_text("{}\n")
    return tmp_path


def test_make_clean_keeps_the_registry(tmp_path: Path) -> None:
    root = make_clean_dir(tmp_path)
    res = subprocess.run(["make", "clean"], cwd=root, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert not (root / "artifacts").exists() and not (root / "reports" / "plots").exists()
    assert (root / "mlflow.db").is_file() and (root / "mlartifacts").is_dir()
    assert "kept the MLflow store" in res.stdout


def test_make_clean_registry_says_what_and_asks(tmp_path: Path) -> None:
    root = make_clean_dir(tmp_path)
    res = subprocess.run(
        ["make", "clean-registry"], cwd=root, capture_output=True, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert res.returncode != 0
    assert f"{root}/mlflow.db" in res.stdout and f"{root}/mlartifacts" in res.stdout
    assert "make clean-registry CONFIRM=1" in res.stdout
    assert (root / "mlflow.db").is_file()  # nothing deleted without the confirmation
    res = subprocess.run(
        ["make", "clean-registry", "CONFIRM=1"], cwd=root, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert not (root / "mlflow.db").exists() and not (root / "mlartifacts").exists()
    assert not (root / "reports" / "promotions.jsonl").exists()


def stamp_dir(tmp_path: Path) -> Path:
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy2(REPO / name, tmp_path / name)
        os.utime(tmp_path / name, (946684800, 946684800))
    return tmp_path


def dry_run(root: Path, target: str) -> str:
    res = subprocess.run(
        ["make", "-n", target, "VENV=fakevenv"], cwd=root, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_make_demo_installs_runtime_only_and_test_adds_the_dev_extra(tmp_path: Path) -> None:
    root = stamp_dir(tmp_path)
    fresh = dry_run(root, "setup")  # what `make demo` installs on a fresh machine
    assert "pip install -c constraints.txt -e .\n" in fresh
    assert "[dev]" not in fresh and " -q " not in fresh  # pip shows its progress
    assert "==> [1/3]" in fresh and "==> [3/3]" in fresh
    fresh_test = dry_run(root, "setup-dev")  # `make test` on a fresh machine: both
    assert "-e .\n" in fresh_test and '-e ".[dev]"' in fresh_test
    # Demo first, then test: only the [dev] extra is added.
    (root / "fakevenv").mkdir()
    (root / "fakevenv" / ".installed").touch()
    after_demo = dry_run(root, "setup-dev")
    assert '-e ".[dev]"' in after_demo and "-e .\n" not in after_demo
    assert "-m venv" not in after_demo


def test_cli_outside_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import aibridge.paths
    from aibridge.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIBRIDGE_HOME", raising=False)
    res = CliRunner().invoke(app, ["params", "show"], env={"COLUMNS": "200"})
    # Installed editable from this checkout: it is used, and the CLI says so.
    assert res.exit_code == 0, res.output
    assert f"is not an aibridge project; using {REPO}" in res.output
    monkeypatch.delenv("AIBRIDGE_HOME", raising=False)  # the callback exported it
    monkeypatch.setattr(aibridge.paths, "checkout_root", lambda: None)
    res = CliRunner().invoke(app, ["version"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "not an aibridge project" not in res.output
    res = CliRunner().invoke(app, ["params", "show"], env={"COLUMNS": "200"})
    assert "set AIBRIDGE_HOME=/path/to/aibridge" in res.output
    res = CliRunner().invoke(
        app, ["params", "show"], env={"COLUMNS": "200", "AIBRIDGE_HOME": str(tmp_path)}
    )
    assert f"AIBRIDGE_HOME={tmp_path} has no conf/ and AIBRIDGE_CONF_DIR is not set" in res.output
    # A service's setup: state in AIBRIDGE_HOME, conf/ from AIBRIDGE_CONF_DIR: no complaint.
    env = {"COLUMNS": "200", "AIBRIDGE_HOME": str(tmp_path)}
    env["AIBRIDGE_CONF_DIR"] = str(REPO / "conf")
    res = CliRunner().invoke(app, ["params", "show"], env=env)
    assert "aibridge:" not in res.output


def test_telemetry_is_off_in_the_projects_config() -> None:
    code = (
        "import aibridge, os; from mlflow.telemetry.utils import is_telemetry_disabled; "
        "print(os.environ['MLFLOW_DISABLE_TELEMETRY'], is_telemetry_disabled())"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    res = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-c", code], env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert res.stdout.split() == ["true", "True"], res.stdout + res.stderr
    assert "analytics = false" in (REPO / ".dvc" / "config").read_text()
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "/dvc_plots/" in ignored and "/reports/promotions.jsonl" in ignored


def test_windows_quickstart_script_uses_the_pins_and_the_command() -> None:
    """No PowerShell here: check the script's install line and the command it hands over to."""
    script = (REPO / "deploy" / "windows" / "quickstart.ps1").read_text()
    assert "pip install -c constraints.txt -e $target" in script
    assert '"quickstart"' in script and ".venv\\Scripts\\aibridge.exe" in script
    assert "MLFLOW_DISABLE_TELEMETRY" in script
    readme = README.read_text()
    assert "deploy\\windows\\quickstart.ps1" in readme
    from typer.testing import CliRunner

    from aibridge.cli import app

    res = CliRunner().invoke(app, ["quickstart", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "--no-serve" in res.output
