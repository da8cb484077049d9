"""Feature drift: PSI of the live feature rows against the model's training distribution.

Reference: per feature, the interior quantiles of the training rows as bin edges (``bins``
bins, fewer where values tie) and the share of training rows in each bin
(:func:`reference_from_matrix`). It comes from the model when the bundle stores it
(``settings["drift_reference"]``, written at training time), else it is computed when the
model is loaded from a feature table (``serve.drift.reference_features``: the project's
``artifacts/features.parquet``), else drift is disabled for that model with a logged reason.

Live side: the server hands each answered predict's candle window to :meth:`DriftMonitor.submit`
(a deque append, ~1 µs); a background thread computes the newest feature row with the model's
own feature code, bins it (``searchsorted`` per feature) and keeps the bin counts of the last
``window`` rows per symbol × timeframe. Every ``interval_s`` it computes

    PSI = Σ_bins (live share − reference share) · ln(live share / reference share)

per feature (shares floored at 1e-4), exports ``aibridge_feature_psi{symbol,timeframe,feature}``,
``aibridge_drift_psi_max`` and ``aibridge_drift_psi_median`` (the median over features), and
sets the HOLD flag that the request path reads (one dict lookup) when the median exceeds
``hold_above``. Rule of thumb per feature: PSI < 0.1 stable, 0.1–0.25 moderate, > 0.25 shifted.

Why the median drives the alert and the HOLD, not the maximum: measured on the bundled sample
(reference = first 60 % of the rows, 500-row windows over the rest), the maximum PSI is 1.1 in
the median window (vol_40: raw volume levels, then std_40/atr: volatility regimes) while the
median over the 61 features is 0.046 (p90 0.075, max 0.099). Bars with twice the range give a
median of 0.16 (p90 0.22); three times the range and 20× the volume 0.38. One non-stationary
feature always "drifts"; a market the model has not seen moves most of them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("aibridge.drift")

PSI_FLOOR = 1e-4
REFERENCE_KEY = "drift_reference"


def reference_from_matrix(features: np.ndarray, names: list[str], bins: int = 10) -> dict[str, Any]:
    """The drift reference of a training feature matrix (rows × features), JSON-ready.

    Hook for training: ``settings["drift_reference"] = reference_from_matrix(X_train,
    feature_names)`` stores it in the bundle, so every served version carries its own."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"features have shape {x.shape}, names {len(names)}")
    qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges, expected = [], []
    for j in range(x.shape[1]):
        col = x[:, j][np.isfinite(x[:, j])]
        e = np.unique(np.quantile(col, qs)) if len(col) else np.array([])
        counts = np.bincount(np.searchsorted(e, col, side="right"), minlength=len(e) + 1)
        edges.append([float(v) for v in e])
        expected.append([float(v) for v in counts / max(len(col), 1)])
    return {
        "version": 1,
        "bins": bins,
        "rows": int(x.shape[0]),
        "features": list(names),
        "edges": edges,
        "expected": expected,
    }


def psi(expected: np.ndarray, counts: np.ndarray) -> float:
    """Population stability index of bin ``counts`` against the ``expected`` shares."""
    total = counts.sum()
    if total <= 0:
        return float("nan")
    a = np.maximum(counts / total, PSI_FLOOR)
    e = np.maximum(expected, PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass
class Reference:
    features: list[str]
    edges: list[np.ndarray]
    expected: list[np.ndarray]
    source: str
    rows: int

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str) -> Reference:
        return cls(
            list(doc["features"]),
            [np.asarray(e, dtype=np.float64) for e in doc["edges"]],
            [np.asarray(e, dtype=np.float64) for e in doc["expected"]],
            source,
            int(doc.get("rows", 0)),
        )

    def bin_row(self, row: np.ndarray) -> np.ndarray:
        return np.fromiter(
            (np.searchsorted(e, v, side="right") for e, v in zip(self.edges, row, strict=True)),
            dtype=np.int64,
            count=len(self.edges),
        )


@dataclass
class _SlotState:
    model_id: int
    model_label: str
    reference: Reference | None
    reason: str | None  # why drift is disabled
    window: deque[np.ndarray]
    counts: list[np.ndarray]
    psi: dict[str, float] = field(default_factory=dict)
    psi_max: float = float("nan")
    psi_median: float = float("nan")
    rows_seen: int = 0
    skipped: int = 0


def _feature_names(model: Any) -> list[str]:
    return list(model.features.feature_names(model.feature_params))


def load_reference(model: Any, reference_features: Path | None, bins: int) -> Reference:
    """The model's own reference, else one computed from ``reference_features``; raises
    ``LookupError`` with the reason when there is none."""
    settings = getattr(model, "settings", None) or {}
    info = getattr(model, "info", None)
    label = f"{info.name} v{info.version}" if info else "model"
    if not hasattr(model, "features") or not hasattr(model, "feature_params"):
        raise LookupError(f"{label} exposes no feature code")
    stored = settings.get(REFERENCE_KEY)
    if stored:
        ref = Reference.from_dict(stored, f"{label} bundle")
        if ref.features != _feature_names(model):
            raise LookupError(f"{label}: its {REFERENCE_KEY} lists other features than its code")
        return ref
    if reference_features is None:
        raise LookupError(
            f"{label} stores no {REFERENCE_KEY} and serve.drift.reference_features is not set"
        )
    if not Path(reference_features).is_file():
        raise LookupError(f"{label}: reference feature table {reference_features} not found")
    import pandas as pd

    names = _feature_names(model)
    table = pd.read_parquet(reference_features)
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise LookupError(f"{label}: {reference_features} lacks the model's features {missing[:5]}")
    doc = reference_from_matrix(table[names].to_numpy(np.float64), names, bins)
    return Reference.from_dict(doc, str(reference_features))


class DriftMonitor:
    """Per symbol × timeframe PSI of live feature rows; all work on its own thread."""

    def __init__(
        self,
        *,
        window: int = 500,
        min_rows: int = 100,
        bins: int = 10,
        interval_s: float = 5.0,
        hold_above: float | None = None,
        reference_features: Path | None = None,
        metrics: Any = None,
        queue_max: int = 10_000,
    ) -> None:
        self.window = window
        self.min_rows = min_rows
        self.bins = bins
        self.interval_s = interval_s
        self.hold_above = hold_above
        self.reference_features = reference_features
        self.metrics = metrics
        self._queue: deque[tuple[tuple[str, str], Any, np.ndarray]] = deque(maxlen=queue_max)
        self._states: dict[tuple[str, str], _SlotState] = {}
        self.holding: dict[tuple[str, str], bool] = {}  # read by the request path
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="drift-monitor", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ request path
    def submit(self, key: tuple[str, str], model: Any, window: np.ndarray) -> None:
        """Hand over an answered predict's window (columns time, o, h, l, c, v)."""
        self._queue.append((key, model, window))

    def hold(self, key: tuple[str, str]) -> bool:
        return self.holding.get(key, False)

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(min(self.interval_s, 0.05))
            self._wake.clear()
            while self._queue:
                self._idle.clear()
                key, model, w = self._queue.popleft()
                try:
                    self._add(key, model, w)
                except Exception as exc:  # drift must never take the server down
                    self._disable(key, f"feature row failed: {type(exc).__name__}: {exc}")
            if time.monotonic() - last >= self.interval_s:
                self.update()
                last = time.monotonic()
            self._idle.set()

    def _state(self, key: tuple[str, str], model: Any) -> _SlotState:
        st = self._states.get(key)
        if st is not None and st.model_id == id(model):
            return st
        info = getattr(model, "info", None)
        label = f"{info.name} v{info.version}" if info else "model"
        try:
            ref = load_reference(model, self.reference_features, self.bins)
            reason = None
            log.info(
                f"drift: {key[0]} {key[1]} {label}: reference from {ref.source} "
                f"({len(ref.features)} features, {ref.rows} rows)"
            )
        except (LookupError, OSError, ValueError) as exc:
            ref, reason = None, str(exc)
            log.warning(f"drift disabled for {key[0]} {key[1]}: {reason}")
        st = _SlotState(
            model_id=id(model),
            model_label=label,
            reference=ref,
            reason=reason,
            window=deque(),
            counts=[np.zeros(len(e) + 1, dtype=np.int64) for e in ref.edges] if ref else [],
        )
        with self._lock:
            self._states[key] = st
        self.holding[key] = False
        if self.metrics is not None:
            self.metrics.drift_enabled.labels(*key).set(0 if ref is None else 1)
            self.metrics.clear_drift(*key)
        return st

    def _disable(self, key: tuple[str, str], reason: str) -> None:
        """Stop scoring this model (until the slot serves another one); say why once."""
        st = self._states.get(key)
        if st is None or st.reference is None:
            return
        log.error(f"drift disabled for {key[0]} {key[1]} {st.model_label}: {reason}")
        st.reference, st.reason, st.counts = None, reason, []
        st.window.clear()
        self.holding[key] = False
        if self.metrics is not None:
            self.metrics.drift_enabled.labels(*key).set(0)
            self.metrics.clear_drift(*key)

    def _add(self, key: tuple[str, str], model: Any, w: np.ndarray) -> None:
        st = self._state(key, model)
        if st.reference is None:
            return
        m = int(model.min_bars)
        row = model.features.feature_matrix(
            w[:, 0], w[:, 1], w[:, 2], w[:, 3], w[:, 4], w[:, 5],
            model.feature_params, first_row=m - 1,
        )[-1]  # fmt: skip
        if not np.isfinite(row).all():
            st.skipped += 1
            return
        bins = st.reference.bin_row(row)
        for j, b in enumerate(bins):
            st.counts[j][b] += 1
        st.window.append(bins)
        if len(st.window) > self.window:
            old = st.window.popleft()
            for j, b in enumerate(old):
                st.counts[j][b] -= 1
        st.rows_seen += 1

    def update(self) -> None:
        """Recompute PSI per slot; export gauges; set the HOLD flags."""
        with self._lock:
            states = list(self._states.items())
        for key, st in states:
            if st.reference is None or len(st.window) < self.min_rows:
                continue
            values = {
                name: psi(exp, cnt)
                for name, exp, cnt in zip(
                    st.reference.features, st.reference.expected, st.counts, strict=True
                )
            }
            st.psi = values
            st.psi_max = max(values.values()) if values else float("nan")
            st.psi_median = float(np.median(list(values.values()))) if values else float("nan")
            if self.metrics is not None:
                for name, v in values.items():
                    self.metrics.feature_psi.labels(*key, name).set(v)
                self.metrics.drift_psi_max.labels(*key).set(st.psi_max)
                self.metrics.drift_psi_median.labels(*key).set(st.psi_median)
                self.metrics.drift_rows.labels(*key).set(len(st.window))
            if self.hold_above is not None:
                now = bool(st.psi_median > self.hold_above)
                if now != self.holding.get(key, False):
                    log.warning(
                        f"drift: {key[0]} {key[1]} median PSI {st.psi_median:.3f} "
                        + (f"> {self.hold_above}: decisions HOLD (reason drift)" if now
                           else f"back under {self.hold_above}: decisions resume")
                    )  # fmt: skip
                self.holding[key] = now

    # ------------------------------------------------------------------ reporting
    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything submitted is binned, then recompute (tests, status)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self._wake.set()
            if not self._queue and self._idle.wait(0.05) and not self._queue:
                break
        self.update()

    def snapshot(self, top: int = 5) -> list[dict[str, Any]]:
        """Per slot: enabled / reason, rows, PSI max and the most drifted features."""
        out = []
        with self._lock:
            states = list(self._states.items())
        for (symbol, timeframe), st in states:
            ranked = sorted(st.psi.items(), key=lambda kv: -kv[1])[:top]
            out.append(
                {
                    "symbol": symbol,
                    "timeframe": timeframe,
                    "model": st.model_label,
                    "enabled": st.reference is not None,
                    "reason": st.reason,
                    "reference": st.reference.source if st.reference else None,
                    "rows": len(st.window),
                    "psi_max": None if math.isnan(st.psi_max) else round(st.psi_max, 4),
                    "psi_median": None if math.isnan(st.psi_median) else round(st.psi_median, 4),
                    "top": [{"feature": k, "psi": round(v, 4)} for k, v in ranked],
                    "holding": self.holding.get((symbol, timeframe), False),
                }
            )
        return out

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5.0)
