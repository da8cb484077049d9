"""LightGBM's own C library through ctypes: the booster's bits without ``import lightgbm``.

``import lightgbm`` imports pandas, scikit-learn and SciPy when they are installed (its
``compat`` module), ~150 MB of resident memory for a server that evaluates one row. The
shared library inside the wheel (``lightgbm/lib/lib_lightgbm.so``, ``.dll`` on Windows) is the
code ``Booster.predict`` itself calls, so calling it directly gives the same probabilities,
bit for bit (``tests/test_serving_runtime.py``). ``LGBM_BoosterPredictForMatSingleRowFast``
keeps the parsed prediction config between calls: one row costs a few microseconds.

>>> booster = NativeBooster("booster.txt")
>>> booster.predict_row(np.zeros(booster.num_features))
array([0.31, 0.38, 0.31])
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import sys
import threading
from pathlib import Path

import numpy as np

_C_API_DTYPE_FLOAT64 = 1
_C_API_PREDICT_NORMAL = 0
_LIB: ctypes.CDLL | None = None
_LIB_LOCK = threading.Lock()


class NativeBoosterError(RuntimeError):
    """LightGBM's library is missing or refused the model; the message says which."""


def lib_path() -> Path:
    """The ``lib_lightgbm`` shipped in the installed lightgbm wheel, found without importing it."""
    spec = importlib.util.find_spec("lightgbm")
    if spec is None or not spec.submodule_search_locations:
        raise NativeBoosterError("lightgbm is not installed (pip install lightgbm)")
    base = Path(next(iter(spec.submodule_search_locations)))
    names = {"win32": "lib_lightgbm.dll", "darwin": "lib_lightgbm.dylib"}
    name = names.get(sys.platform, "lib_lightgbm.so")
    for folder in (base / "lib", base / "bin", base, base.parent / "lightgbm.libs"):
        if (folder / name).is_file():
            return folder / name
    raise NativeBoosterError(f"{name} not found under {base}")


def _lib() -> ctypes.CDLL:
    global _LIB
    with _LIB_LOCK:
        if _LIB is None:
            lib = ctypes.cdll.LoadLibrary(str(lib_path()))
            lib.LGBM_GetLastError.restype = ctypes.c_char_p
            _LIB = lib
    return _LIB


def _check(code: int) -> None:
    if code != 0:
        raise NativeBoosterError(_lib().LGBM_GetLastError().decode(errors="replace"))


class NativeBooster:
    """One LightGBM model file, predicting class probabilities one row at a time."""

    def __init__(self, model_file: str | Path) -> None:
        lib = _lib()
        self._handle = ctypes.c_void_p()
        iterations = ctypes.c_int(0)
        _check(
            lib.LGBM_BoosterCreateFromModelfile(
                str(model_file).encode(), ctypes.byref(iterations), ctypes.byref(self._handle)
            )
        )
        n_classes = ctypes.c_int(0)
        n_features = ctypes.c_int(0)
        _check(lib.LGBM_BoosterGetNumClasses(self._handle, ctypes.byref(n_classes)))
        _check(lib.LGBM_BoosterGetNumFeature(self._handle, ctypes.byref(n_features)))
        self.num_iterations = int(iterations.value)
        self.num_classes = int(n_classes.value)
        self.num_features = int(n_features.value)
        # As Booster.predict(row, num_threads=1): all iterations (a model file's booster has
        # best_iteration -1), normal (probability) output, one thread.
        self._fast = ctypes.c_void_p()
        _check(
            lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                self._handle,
                ctypes.c_int(_C_API_PREDICT_NORMAL),
                ctypes.c_int(0),
                ctypes.c_int(-1),
                ctypes.c_int(_C_API_DTYPE_FLOAT64),
                ctypes.c_int32(self.num_features),
                b"num_threads=1",
                ctypes.byref(self._fast),
            )
        )
        self._out = np.zeros(max(self.num_classes, 1), dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.c_int64(0)
        self._predict = lib.LGBM_BoosterPredictForMatSingleRowFast
        self._lock = threading.Lock()  # the fast config holds one row's buffers

    def predict_row(self, row: np.ndarray) -> np.ndarray:
        """Class probabilities of one float64 feature row (a fresh array, shape (n_classes,))."""
        row = np.ascontiguousarray(row, dtype=np.float64).reshape(-1)
        if row.shape[0] != self.num_features:
            raise NativeBoosterError(
                f"the model expects {self.num_features} features, the row has {row.shape[0]}"
            )
        with self._lock:
            _check(
                self._predict(
                    self._fast,
                    row.ctypes.data_as(ctypes.c_void_p),
                    ctypes.byref(self._out_len),
                    self._out_ptr,
                )
            )
            return self._out.copy()

    def close(self) -> None:
        lib = _lib()
        if self._fast:
            lib.LGBM_FastConfigFree(self._fast)
            self._fast = ctypes.c_void_p()
        if self._handle:
            lib.LGBM_BoosterFree(self._handle)
            self._handle = ctypes.c_void_p()

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        with contextlib.suppress(Exception):
            self.close()
