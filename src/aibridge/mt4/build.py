"""Compile the unmodified EA (or pieces of it) against the MT4 stand-in with g++.

The MQL sources go through :mod:`aibridge.mt4.rewrite`, then g++ compiles three kinds of
translation units: the rewritten EA, the runtime (``mt4_ea/standin/mt4.cpp``) and one
``mt4_ea/standin/dll_<name>.cpp`` per ``#import``-ed DLL (``libzmq.dll`` -> the real libzmq
that pyzmq bundles). Everything is cached under a directory keyed by the content hash of all
inputs (sources, flags, compiler, libzmq), so a second test run links nothing and compiles
nothing: the object of the runtime is reused across EA edits, the binary across runs.

>>> exe = build_ea()                       # doctest: +SKIP
>>> exe.name
'AIBridge_EA'
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aibridge.mt4.rewrite import RewriteError, rewrite_tree

__all__ = ["BuildError", "Built", "build_ea", "build_parts", "cache_dir", "libzmq_path"]

ROOT = Path(__file__).resolve().parents[3]
EA_DIR = ROOT / "mt4_ea"
EA_SOURCE = EA_DIR / "Experts" / "AIBridge_EA.mq4"
INCLUDE_ROOT = EA_DIR / "Include"
STANDIN = EA_DIR / "standin"
CXXFLAGS = ("-std=c++17", "-O1", "-Wall", "-Werror=return-type", "-Wno-unused-variable")


class BuildError(RuntimeError):
    """The stand-in cannot be built (missing g++, libzmq, a DLL stand-in, or a compile error)."""


@dataclass(frozen=True)
class Built:
    """A compiled EA: the binary, the rewritten source tree, whether it came from the cache."""

    exe: Path
    source_dir: Path
    cached: bool
    seconds: float


def cache_dir() -> Path:
    """``$AIBRIDGE_MT4_CACHE``, else ``$XDG_CACHE_HOME/aibridge/mt4`` (``~/.cache/...``)."""
    env = os.environ.get("AIBRIDGE_MT4_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aibridge" / "mt4"


def _gxx() -> str:
    gxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("g++")
    if gxx is None:
        raise BuildError("g++ not found: install it (Debian/Ubuntu: apt-get install g++)")
    return gxx


def libzmq_path() -> Path:
    """The libzmq shared library bundled with pyzmq (no system package needed)."""
    import zmq

    base = Path(zmq.__file__).parent
    libs = sorted((base.parent / "pyzmq.libs").glob("libzmq*.so*")) + sorted(
        base.glob("libzmq*.so*")
    )
    if not libs:
        raise BuildError(f"no libzmq shared library next to pyzmq ({base})")
    return libs[0]


def _digest(paths: list[Path], extra: list[str]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths, key=str):
        h.update(str(p.name).encode())
        h.update(p.read_bytes())
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()[:24]


def _compile(gxx: str, src: Path, obj: Path, includes: list[Path], defines: list[str]) -> None:
    cmd = [gxx, *CXXFLAGS, *(f"-D{d}" for d in defines), *(f"-I{i}" for i in includes)]
    cmd += ["-c", str(src), "-o", str(obj) + ".tmp"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BuildError(f"g++ failed on {src.name}:\n{res.stderr[-6000:]}")
    os.replace(str(obj) + ".tmp", obj)


def _cached_object(gxx: str, src: Path, deps: list[Path], defines: list[str], cache: Path) -> Path:
    """Object file of a runtime / DLL translation unit, compiled once per content."""
    key = _digest([src, *deps], [gxx, *CXXFLAGS, *defines])
    obj = cache / "obj" / f"{src.stem}-{key}.o"
    if not obj.is_file():
        obj.parent.mkdir(parents=True, exist_ok=True)
        _compile(gxx, src, obj, [STANDIN], defines)
    return obj


def _dll_sources(dlls: tuple[str, ...]) -> list[Path]:
    out = []
    for ns in dlls:
        src = STANDIN / f"dll_{ns.removeprefix('mqldll_')}.cpp"
        if not src.is_file():
            raise BuildError(
                f"the EA #imports a DLL with no stand-in: expected {src.relative_to(ROOT)} "
                f"defining namespace {ns}"
            )
        out.append(src)
    return out


def build_ea(
    source: Path = EA_SOURCE,
    *,
    include_root: Path = INCLUDE_ROOT,
    overrides: dict[str, Path] | None = None,
    cache: Path | None = None,
) -> Built:
    """Rewrite and compile ``source`` (.mq4) with its includes; returns the cached binary."""
    import time

    started = time.perf_counter()
    gxx = _gxx()
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="src-", dir=cache))
    try:
        tree = rewrite_tree(source, include_root, work, overrides)
    except RewriteError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise BuildError(f"cannot rewrite the EA: {exc}") from None
    dll_srcs = _dll_sources(tree.dlls)
    lib = libzmq_path() if "mqldll_libzmq" in tree.dlls else None
    runtime = [STANDIN / "mt4.hpp", STANDIN / "mt4.cpp"]
    key = _digest(list(tree.files.values()) + runtime + dll_srcs, [gxx, *CXXFLAGS, str(lib or "")])
    final = cache / f"ea-{key}"
    exe = final / source.stem
    if exe.is_file():
        shutil.rmtree(work, ignore_errors=True)
        return Built(exe, final / "src", True, time.perf_counter() - started)
    try:
        objs = [_cached_object(gxx, STANDIN / "mt4.cpp", [STANDIN / "mt4.hpp"], [], cache)]
        objs += [_cached_object(gxx, s, [STANDIN / "mt4.hpp"], [], cache) for s in dll_srcs]
        ea_obj = work / "ea.o"
        _compile(gxx, tree.main, ea_obj, [STANDIN, tree.include_dir], [])
        tmp_exe = work / source.stem
        cmd = [gxx, "-o", str(tmp_exe), str(ea_obj), *map(str, objs)]
        if lib is not None:
            cmd += [str(lib), f"-Wl,-rpath,{lib.parent}"]
        res = subprocess.run([*cmd, "-lpthread"], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise BuildError(f"linking the EA failed:\n{res.stderr[-6000:]}")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    stage = cache / f"tmp-{key}-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    shutil.move(str(tmp_exe), stage / source.stem)
    shutil.copytree(work, stage / "src", ignore=shutil.ignore_patterns("*.o"))
    shutil.rmtree(work, ignore_errors=True)
    try:
        os.replace(stage, final)
    except OSError:  # another process won the race: use its build
        shutil.rmtree(stage, ignore_errors=True)
    _prune(cache)
    return Built(exe, final / "src", False, time.perf_counter() - started)


def _prune(cache: Path, keep: int = 12) -> None:
    """Keep the newest ``keep`` builds of each kind (every EA edit makes a new one)."""
    for pattern in ("ea-*", "parts-*", "obj/*.o"):
        entries = sorted(cache.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[keep:]:
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


def build_parts(
    includes: list[str],
    driver: Path,
    *,
    include_root: Path = INCLUDE_ROOT,
    cache: Path | None = None,
    link_zmq: bool = False,
) -> Path:
    """Compile a C++ ``driver`` against rewritten pieces of the EA (``AIBridge/Json.mqh``...).

    The driver ``#include``s the pieces by their MQL names; the runtime is linked without its
    ``main()`` (``-DMT4_NO_MAIN``). Used by the part tests (JSON, protocol, risk, lots, CSV).
    """
    gxx = _gxx()
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="parts-", dir=cache))
    try:
        stub = work / "stub.mq4"
        stub.write_text("".join(f"#include <{inc}>\n" for inc in includes), encoding="utf-8")
        tree = rewrite_tree(stub, include_root, work / "out")
        dll_srcs = _dll_sources(tree.dlls)
        lib = libzmq_path() if (link_zmq or "mqldll_libzmq" in tree.dlls) else None
        runtime = [STANDIN / "mt4.hpp", STANDIN / "mt4.cpp"]
        key = _digest(
            [*tree.files.values(), *runtime, *dll_srcs, driver], [gxx, *CXXFLAGS, str(lib or "")]
        )
        exe = cache / f"parts-{driver.stem}-{key}"
        if exe.is_file():
            return exe
        objs = [
            _cached_object(gxx, STANDIN / "mt4.cpp", [STANDIN / "mt4.hpp"], ["MT4_NO_MAIN"], cache)
        ]
        objs += [_cached_object(gxx, s, [STANDIN / "mt4.hpp"], [], cache) for s in dll_srcs]
        obj = work / "driver.o"
        _compile(gxx, driver, obj, [STANDIN, tree.include_dir], [])
        cmd = [gxx, "-o", str(work / "exe"), str(obj), *map(str, objs)]
        if lib is not None:
            cmd += [str(lib), f"-Wl,-rpath,{lib.parent}"]
        res = subprocess.run([*cmd, "-lpthread"], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise BuildError(f"linking {driver.name} failed:\n{res.stderr[-6000:]}")
        os.replace(work / "exe", exe)
        _prune(cache)
        return exe
    except RewriteError as exc:
        raise BuildError(f"cannot rewrite {includes}: {exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
