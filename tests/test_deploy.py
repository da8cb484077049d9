"""Service definitions: the systemd unit (systemd-analyze), the env file, the NSSM installer.

PowerShell is not available on Linux CI, so the Windows script is checked for what can go
wrong silently: NSSM parameter names that do not exist in NSSM 2.24, missing restart or
rotation settings, and `aibridge serve` options that the real CLI would reject.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from aibridge.server.commands import serve_app

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "systemd" / "aibridge-serve.service"
ENV_EXAMPLE = REPO / "deploy" / "systemd" / "aibridge.env.example"
PS1 = REPO / "deploy" / "windows" / "install-service.ps1"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

# Service parameters `nssm set` accepts in NSSM 2.24 (settings.cpp of the 2.24 release).
NSSM_PARAMETERS = {
    "Application", "AppDirectory", "AppParameters", "AppAffinity", "AppEnvironment",
    "AppEnvironmentExtra", "AppExit", "AppNoConsole", "AppPriority", "AppRestartDelay",
    "AppStdin", "AppStdinShareMode", "AppStdinCreationDisposition",
    "AppStdinFlagsAndAttributes", "AppStdout", "AppStdoutShareMode",
    "AppStdoutCreationDisposition", "AppStdoutFlagsAndAttributes", "AppStderr",
    "AppStderrShareMode", "AppStderrCreationDisposition", "AppStderrFlagsAndAttributes",
    "AppStopMethodSkip", "AppStopMethodConsole", "AppStopMethodWindow",
    "AppStopMethodThreads", "AppThrottle", "AppRotateFiles", "AppRotateOnline",
    "AppRotateSeconds", "AppRotateBytes", "AppRotateBytesHigh", "DependOnGroup",
    "DependOnService", "Description", "DisplayName", "ImagePath", "ObjectName", "Name",
    "Start", "Type",
}  # fmt: skip
NSSM_COMMANDS = {
    "install", "remove", "edit", "get", "set", "reset", "unset", "start", "stop", "restart",
    "status", "pause", "continue", "rotate",
}  # fmt: skip


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd unit syntax: sections, repeatable keys, comments; no interpolation."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"line {lineno}: key outside a section"
        assert "=" in line, f"line {lineno}: not KEY=value: {line!r}"
        key, value = (part.strip() for part in line.split("=", 1))
        current.setdefault(key, []).append(value)
    return sections


def parse_env_file(text: str) -> dict[str, str]:
    env = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), key
            env[key] = value
    return env


def serve_command_accepts(args: list[str]) -> None:
    """Parse ``aibridge serve <args>`` with the real click command (nothing is started)."""
    group = typer.main.get_command(serve_app)
    with group.make_context("aibridge", ["serve", *args], resilient_parsing=False) as ctx:
        serve = group.get_command(ctx, "serve")
        assert serve is not None
        serve.make_context("serve", list(args), parent=ctx)


def test_unit_file_settings() -> None:
    unit = parse_unit(UNIT.read_text())
    service, install = unit["Service"], unit["Install"]
    assert service["Restart"] == ["always"]
    assert service["EnvironmentFile"] == ["/etc/aibridge/aibridge.env"]
    exec_start = shlex.split(service["ExecStart"][0])
    assert exec_start[0].endswith("/aibridge") and exec_start[1] == "serve"
    assert service["User"] == ["aibridge"]
    assert service["KillSignal"] == ["SIGTERM"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == [value], key
    assert install["WantedBy"] == ["multi-user.target"]
    assert unit["Unit"]["StartLimitIntervalSec"] == ["0"]


def test_env_example_drives_a_valid_serve_command() -> None:
    env = parse_env_file(ENV_EXAMPLE.read_text())
    assert {"AIBRIDGE_HOME", "AIBRIDGE_CONF_DIR", "MLFLOW_TRACKING_URI"} <= set(env)
    args = env["AIBRIDGE_SERVE_ARGS"].split()
    serve_command_accepts(args)
    # The writable paths must be inside what the unit makes writable.
    unit = parse_unit(UNIT.read_text())["Service"]
    writable = {
        f"/var/lib/{unit['StateDirectory'][0]}",
        f"/var/log/{unit['LogsDirectory'][0]}",
        f"/var/cache/{unit['CacheDirectory'][0]}",
    }
    for flag in ("--journal", "--log-path", "--model-cache-dir"):
        path = Path(args[args.index(flag) + 1])
        assert any(path.is_relative_to(w) for w in writable), f"{flag} {path} is read-only"


def test_serve_command_rejects_unknown_options() -> None:
    """The check above can fail: a misspelt option is refused by the real parser."""
    with pytest.raises(Exception, match="No such option: --modle"):
        serve_command_accepts(["--modle", "models:/x@champion"])


def _installable_unit(tmp_path: Path) -> Path:
    """The unit with its binary and EnvironmentFile pointed at this checkout."""
    text = UNIT.read_text().replace(
        "/opt/aibridge/.venv/bin/aibridge", str(REPO / ".venv" / "bin" / "aibridge")
    )
    text = text.replace("/etc/aibridge/aibridge.env", str(ENV_EXAMPLE))
    path = tmp_path / UNIT.name
    path.write_text(text)
    return path


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    assert (REPO / ".venv" / "bin" / "aibridge").is_file()
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(_installable_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 on unknown keys/values but prints them: treat any output as a failure.
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
def test_systemd_analyze_catches_a_typo(tmp_path: Path) -> None:
    path = _installable_unit(tmp_path)
    path.write_text(path.read_text().replace("Restart=always", "Restart=alwayz"))
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert "alwayz" in result.stderr


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
def test_systemd_security_exposure_is_low(tmp_path: Path) -> None:
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", str(_installable_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("systemd-analyze security --offline needs systemd >= 250")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def _nssm_calls(text: str) -> list[list[str]]:
    calls = []
    for line in text.splitlines():
        stripped = line.strip()
        m = re.match(r"^(?:Invoke-Nssm|&\s*\$Nssm)\s+(.*)$", stripped)
        if m and not m.group(1).startswith("@"):
            calls.append(m.group(1).split())
    return calls


def test_nssm_script_uses_real_nssm_commands_and_parameters() -> None:
    calls = _nssm_calls(PS1.read_text())
    assert len(calls) >= 20
    for call in calls:
        assert call[0] in NSSM_COMMANDS, call
        if call[0] in ("set", "get", "reset"):
            assert call[1] == "$ServiceName", call
            assert call[2] in NSSM_PARAMETERS, f"nssm has no parameter {call[2]!r}"
    settings = {call[2]: call[3:] for call in calls if call[0] == "set"}
    assert settings["AppExit"] == ["Default", "Restart"]
    assert settings["AppRotateFiles"] == ["1"] and settings["AppRotateOnline"] == ["1"]
    assert settings["AppRotateBytes"] == ["$RotateBytes"]
    assert settings["AppRotateSeconds"] == ["$RotateSeconds"]
    assert {"AppStdout", "AppStderr", "AppStopMethodConsole", "AppRestartDelay"} <= set(settings)
    assert any(call[0] == "install" for call in calls)
    assert any(call[:1] == ["remove"] and call[-1] == "confirm" for call in calls)


def test_nssm_script_serve_options_exist() -> None:
    text = PS1.read_text()
    flags = set(re.findall(r'"(--[a-z-]+)"', text))
    assert {"--model", "--port", "--metrics-port", "--journal", "--log-path"} <= flags
    args: list[str] = []
    for flag in sorted(flags):
        args += [flag, "1" if "port" in flag else "x"]
    serve_command_accepts(args)


def test_nssm_script_is_balanced() -> None:
    """Cheap structural check in place of a PowerShell parser (none on Linux CI)."""
    text = re.sub(r"<#.*?#>", "", PS1.read_text(), flags=re.S)
    text = re.sub(r"(?m)#.*$", "", text)
    text = re.sub(r'"(?:[^"`]|`.)*"', '""', text)
    for open_, close in ("()", "{}", "[]"):
        assert text.count(open_) == text.count(close), f"unbalanced {open_}{close}"
    assert "[CmdletBinding()]" in PS1.read_text()
