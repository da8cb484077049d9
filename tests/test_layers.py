"""Imports point one way: core -> io -> services -> entry points (docs/architecture.md).

Each ``aibridge`` module belongs to one layer (the longest matching prefix below); a module may
import its own layer and the layers beneath it, never one above. And no module imports a private
(``_name``) from another package. Both are derived from the source's imports (function-local ones
included), so a new import that climbs the layers fails here with the offending line.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

CORE, IO, SERVICES, ENTRY = 0, 1, 2, 3
LAYER_NAMES = ("core", "io", "services", "entry")
# Longest prefix wins. Core: pure rules and values (no outside system). IO: one module per
# outside system (MLflow tracking + registry, the model bundle on disk / as an MLflow model).
# Services: the backtest, the servers, the closed loop, the EA stand-in. Entry: DVC stages,
# the CLI and the commands behind it.
LAYERS: dict[str, int] = {
    "aibridge": CORE,
    "aibridge.errors": CORE,
    "aibridge.paths": CORE,
    "aibridge.config": CORE,
    "aibridge.settings": CORE,
    "aibridge.instruments": CORE,
    "aibridge.decision": CORE,
    "aibridge.features": CORE,
    "aibridge.labels": CORE,
    "aibridge.training": CORE,
    "aibridge.risk": CORE,
    "aibridge.protocol": CORE,
    "aibridge.dataset": CORE,
    "aibridge.plots": CORE,
    "aibridge.params_sync": CORE,
    "aibridge.ingest": CORE,
    "aibridge.serving.types": CORE,
    "aibridge.tracking": IO,
    "aibridge.registry": IO,
    "aibridge.model_bundle": IO,
    "aibridge.pyfunc_model": IO,
    "aibridge.promotion": IO,
    "aibridge.backtest": SERVICES,
    "aibridge.serving": SERVICES,
    "aibridge.serving_model": SERVICES,
    "aibridge.server": SERVICES,
    "aibridge.loop": SERVICES,
    "aibridge.mt4": SERVICES,
    "aibridge.ea_sim": SERVICES,
    "aibridge.sweep": SERVICES,
    "aibridge.stages": ENTRY,
    "aibridge.cli": ENTRY,
    "aibridge.demo": ENTRY,
    "aibridge.doctor": ENTRY,
    "aibridge.server.commands": ENTRY,
    "aibridge.server.__main__": ENTRY,
    "aibridge.loop.commands": ENTRY,
    "aibridge.loop.__main__": ENTRY,
    "aibridge.serving.serve": ENTRY,
}


def layer(module: str) -> int:
    """>>> layer("aibridge.server.commands"), layer("aibridge.server.handler")
    (3, 2)
    """
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(f"{module} has no layer: add it to LAYERS in tests/test_layers.py")


def _module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, src: Path = SRC) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) for every ``aibridge`` import in ``path``."""
    module = _module_name(path, src)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.startswith("aibridge")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "aibridge" or target.startswith("aibridge."):
                out.append((node.lineno, target, [a.name for a in node.names]))
    return out


def _modules(src: Path = SRC) -> list[Path]:
    return sorted((src / "aibridge").rglob("*.py"))


def climbing_imports(src: Path = SRC) -> list[str]:
    """``file:line: module (layer) imports target (higher layer)`` for every climbing import."""
    climbing = []
    for path in _modules(src):
        module = _module_name(path, src)
        for line, target, names in _imports(path, src):
            # `from aibridge import features` imports the submodule, not the package.
            targets = [f"{target}.{n}" for n in names] if target == "aibridge" else [target]
            for t in targets:
                if layer(t) > layer(module):
                    climbing.append(
                        f"{path.relative_to(src.parent)}:{line}: {module} "
                        f"({LAYER_NAMES[layer(module)]}) imports {t} ({LAYER_NAMES[layer(t)]})"
                    )
    return climbing


def test_every_module_has_a_layer() -> None:
    for path in _modules():
        layer(_module_name(path))


def test_imports_never_climb_the_layers() -> None:
    climbing = climbing_imports()
    assert climbing == [], "imports that point up the layers:\n" + "\n".join(climbing)


def test_no_private_name_is_imported_across_packages() -> None:
    crossing = []
    for path in _modules():
        module = _module_name(path)
        home = module.rpartition(".")[0] if path.name != "__init__.py" else module
        for line, target, names in _imports(path):
            target_home = target.rpartition(".")[0]
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target_home != home and target != home:
                crossing.append(f"{path.relative_to(SRC.parent)}:{line}: {target}.{private}")
    assert crossing == [], "private names imported from another package:\n" + "\n".join(crossing)


def test_the_layer_check_catches_a_climbing_import(tmp_path: Path) -> None:
    # A made-up tree: a core module importing a stage (function-local, relative) is a climb.
    pkg = tmp_path / "src" / "aibridge"
    (pkg / "stages").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "stages" / "__init__.py").write_text("")
    (pkg / "stages" / "train.py").write_text("from aibridge import features\n")
    (pkg / "features.py").write_text("def f():\n    from .stages import train\n")
    assert climbing_imports(tmp_path / "src") == [
        "src/aibridge/features.py:2: aibridge.features (core) imports aibridge.stages (entry)"
    ]
