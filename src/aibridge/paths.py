"""Where the project lives on disk.

DVC runs queued experiments (``dvc exp run --queue``) in a throw-away copy of the repository
under ``.dvc/tmp/exps/``. Anything that must outlive the experiment -- above all the MLflow
store -- has to be anchored to the *real* project root, not to the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path

_DVC_TMP_MARKER = (".dvc", "tmp", "exps")


def is_project(path: Path) -> bool:
    """An aibridge project directory: ``dvc.yaml`` next to ``conf/``."""
    return (path / "dvc.yaml").is_file() and (path / "conf").is_dir()


def _find_repo_root(start: Path) -> Path | None:
    for candidate in (start, *start.parents):
        if is_project(candidate):
            return candidate
    return None


def checkout_root() -> Path | None:
    """The project this package is installed from (``pip install -e .``), if it is one."""
    candidate = Path(__file__).resolve().parents[2]
    return candidate if is_project(candidate) else None


def locate_project() -> tuple[Path | None, str]:
    """Where the CLI's project is and how it was found: ``AIBRIDGE_HOME``, the current
    directory (or a parent, or DVC's experiment copy), else the editable checkout."""
    env = os.environ.get("AIBRIDGE_HOME")
    if env:
        return Path(env).resolve(), "AIBRIDGE_HOME"
    root = project_root()
    if is_project(root):
        return root, "cwd"
    checkout = checkout_root()
    if checkout is not None:
        return checkout, "checkout"
    return None, "none"


def project_root() -> Path:
    """The aibridge project directory, seen through any DVC experiment temp copy.

    ``AIBRIDGE_HOME`` wins when set, so services and tests can point anywhere explicitly.
    """
    env = os.environ.get("AIBRIDGE_HOME")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd().resolve()
    parts = cwd.parts
    for i in range(len(parts) - len(_DVC_TMP_MARKER) + 1):
        if tuple(parts[i : i + len(_DVC_TMP_MARKER)]) == _DVC_TMP_MARKER:
            return Path(*parts[:i])
    return _find_repo_root(cwd) or cwd


def workspace_root() -> Path:
    """The directory the current DVC stage runs in (the temp copy for queued experiments)."""
    cwd = Path.cwd().resolve()
    return _find_repo_root(cwd) or cwd


def conf_dir() -> Path:
    """Hydra config directory of the workspace being reproduced."""
    env = os.environ.get("AIBRIDGE_CONF_DIR")
    if env:
        return Path(env).resolve()
    ws = workspace_root() / "conf"
    if ws.is_dir():
        return ws
    # Installed use outside a checkout: fall back to the project root's conf/.
    return project_root() / "conf"


def sample_data_path() -> Path:
    """The bundled real EURUSD H1 sample (MT4 History Center format)."""
    return Path(__file__).parent / "data" / "EURUSD60.csv"


VENV_PATH_HOOK = "aibridge-venv-path.pth"
_HOOK_LINE = (
    "import os, sys; _b = os.path.dirname(sys.executable); "
    "_p = os.environ.get('PATH', ''); "
    "os.environ['PATH'] = _p if _p.split(os.pathsep)[0] == _b else _b + os.pathsep + _p\n"
)


def install_venv_path_hook() -> Path:
    """Put the venv's ``bin`` (``Scripts`` on Windows) first on PATH for every process this
    venv's Python starts, so ``.venv/bin/dvc repro`` runs the stages' ``python ...`` with the
    venv's interpreter without activating it. A one-line ``.pth`` in site-packages; idempotent.
    """
    import sysconfig

    target = Path(sysconfig.get_paths()["purelib"]) / VENV_PATH_HOOK
    if not target.is_file() or target.read_text() != _HOOK_LINE:
        target.write_text(_HOOK_LINE)
    return target
