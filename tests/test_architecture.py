"""Architecture checks that keep the layout honest (fast, static: no stage runs).

* ``dvc.yaml`` deps equal the code each stage runs: every ``aibridge`` module a stage's
  ``pipelines/<stage>.py`` imports (transitively, function-local imports included) is covered
  by one of the stage's ``deps``, so editing it reruns the stage.
* One error root: every error a user can fix derives from ``aibridge.errors.AibridgeError``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def _module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _direct_imports(path: Path, module: str) -> set[str]:
    """``aibridge`` modules ``path`` imports anywhere in its body (packages on the way too:
    importing ``aibridge.ingest.errors`` runs ``aibridge/ingest/__init__.py``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != "aibridge":
            continue
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            if _module_file(candidate) is not None:
                found.add(candidate)
    return found


def stage_code(entry: Path) -> set[Path]:
    """The entry point and every ``aibridge`` module file it imports, transitively."""
    files = {entry}
    todo = list(_direct_imports(entry, "__main__"))
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module)
        assert path is not None
        files.add(path)
        todo.extend(_direct_imports(path, module))
    return files


def _stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _entry(stage: dict) -> Path:
    cmd = stage["cmd"].split()
    assert cmd[:2] == ["python", cmd[1]] and cmd[1].startswith("pipelines/"), stage["cmd"]
    return REPO / cmd[1]


@pytest.mark.parametrize("name", sorted(_stages()))
def test_dvc_deps_cover_the_code_each_stage_imports(name: str) -> None:
    stage = _stages()[name]
    deps = [REPO / str(d) for d in stage.get("deps", [])]

    def covered(path: Path) -> bool:
        return any(path == d or d in path.parents for d in deps)

    missing = sorted(str(p.relative_to(REPO)) for p in stage_code(_entry(stage)) if not covered(p))
    assert not missing, f"dvc.yaml stage {name!r} runs code it does not list in deps: {missing}"


def test_the_import_walk_sees_function_local_and_relative_imports() -> None:
    code = {p.relative_to(REPO).as_posix() for p in stage_code(REPO / "pipelines" / "evaluate.py")}
    assert "src/aibridge/decision.py" in code  # evaluate → decision (module level)
    assert "src/aibridge/tracking.py" in code
    assert "src/aibridge/errors.py" in code  # via stages.common


def test_user_errors_share_one_root() -> None:
    from aibridge.errors import AibridgeError, ConfigError
    from aibridge.ingest.errors import CandleFileError
    from aibridge.server.run import ServeError
    from aibridge.stages.common import StageError
    from aibridge.sweep import SweepError

    for cls in (ConfigError, CandleFileError, ServeError, StageError, SweepError):
        assert issubclass(cls, AibridgeError), cls


def test_run_stage_prints_any_user_error_as_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from aibridge.ingest.errors import CandleFileError
    from aibridge.stages import common

    monkeypatch.setattr(common, "load_params", lambda: None)
    monkeypatch.setattr(common, "pipeline_settings", lambda cfg: cfg)

    def body(cfg: object, paths: object) -> None:
        raise CandleFileError("data/x.csv", "bad row", line=3)

    with pytest.raises(SystemExit) as exit_info:
        common.run_stage("ingest", body)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "ingest failed:" in err and "data/x.csv:3: bad row" in err
    assert "Traceback" not in err


def test_a_misspelt_key_fails_at_the_door_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every stage validates params.yaml before its body runs; the message names the key."""
    from aibridge.config import compose_config
    from aibridge.stages import common

    cfg = compose_config(["+labels.horizn=3", "split.embargo=2"], config_dir=REPO / "conf")
    monkeypatch.setattr(common, "load_params", lambda: cfg)
    ran = []
    with pytest.raises(SystemExit) as exit_info:
        common.run_stage("labels", lambda settings, paths: ran.append(1), typed=True)
    assert exit_info.value.code == 1 and not ran
    err = capsys.readouterr().err
    assert "labels failed: invalid configuration" in err
    assert "labels.horizn: Extra inputs are not permitted" in err


def test_settings_carry_typed_values() -> None:
    from aibridge.config import compose_config
    from aibridge.settings import pipeline_settings

    settings = pipeline_settings(compose_config(config_dir=REPO / "conf"))
    assert isinstance(settings.labels.tp_atr_mult, float)
    assert settings.key == f"{settings.instrument.symbol}_{settings.timeframe}"
    assert pipeline_settings(settings) is settings  # validated once
    assert "decision" in settings.model.params()
