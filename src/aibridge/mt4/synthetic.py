"""Synthetic MT4 H1 series with a planted edge, and a registered model that trades on it.

Why: the bundled sample carries no edge, so the served model says HOLD on nearly every bar
and an EA-vs-backtest comparison on it compares two empty trade lists. A series where a
known candle pattern is followed by a drift with a known probability gives a model that
trades, so the parity harness (:mod:`aibridge.mt4.parity`) exercises entries, SL/TP, exits by
signal and by time, and lot sizing.

The series (``planted_edge_series``): a random walk of H1 Bid candles (weekdays only, like a
broker's export; noise bars have a range of about ``atr_points`` and a small body). At random
trigger bars (``trigger_rate``) a marubozu of ``trigger_body_atr`` ATR is planted, bullish or
bearish at random; with probability ``edge_probability`` the next ``drift_bars`` bars drift
``drift_atr`` ATR in the candle's direction, otherwise the same amount against it. The
control (``edge_probability=0.5``) has the same triggers but no information in them. Every
draw comes from ``numpy.random.default_rng(seed)``.

The model (``register_synthetic_model``): ``dvc repro`` of this project in a temp copy
(:func:`tests.conftest.make_project_copy`'s recipe, without the tests package) whose data is
the synthetic CSV: the project's own stages (ingest → features → labels → train → evaluate →
backtest → register) into that copy's ``mlflow.db``, ~28 s for 6000 bars here. The stages
and not a shortcut through ``aibridge.training``: the registered model is then exactly what
a user's ``dvc repro`` makes (broker clock, bundle, signature, gate tags), and no second
registration path can drift from the real one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

POINT = 1e-5
DIGITS = 5


@dataclass(frozen=True)
class PlantedEdge:
    """Parameters of a synthetic series (the defaults make an edge a model finds easily)."""

    bars: int = 6000
    seed: int = 7
    start: str = "2021-01-04 00:00"  # a Monday
    price: float = 1.10000
    atr_points: float = 100.0  # typical noise range per bar
    trigger_rate: float = 0.03  # share of bars that carry the pattern
    trigger_body_atr: float = 2.5
    edge_probability: float = 0.8  # P(drift in the candle's direction); 0.5 = control
    drift_bars: int = 8
    drift_atr: float = 3.5


def _weekday_hours(start: str, n: int) -> pd.DatetimeIndex:
    """``n`` hourly bar times from ``start``, Monday 00:00 to Friday 23:00 (broker time)."""
    out: list[pd.Timestamp] = []
    t = pd.Timestamp(start)
    step = pd.Timedelta(hours=1)
    while len(out) < n:
        if t.weekday() < 5:
            out.append(t)
        t += step
    return pd.DatetimeIndex(out)


def planted_edge_series(params: PlantedEdge | None = None) -> pd.DataFrame:
    """Candles (time, open, high, low, close, volume; Bid, 5 digits) and a ``trigger`` column
    (+1 bullish pattern, -1 bearish, 0 none) and ``drift`` (+1/-1 the direction that followed)."""
    p = params or PlantedEdge()
    rng = np.random.default_rng(p.seed)
    atr = p.atr_points * POINT
    n = p.bars
    o = np.empty(n)
    h = np.empty(n)
    lo = np.empty(n)
    c = np.empty(n)
    trigger = np.zeros(n, dtype=np.int8)
    drift = np.zeros(n, dtype=np.int8)
    price = p.price
    i = 0
    pending = 0  # bars of drift left
    step = 0.0
    while i < n:
        op = price
        if pending > 0:
            body = step + rng.normal(0.0, 0.15 * atr)
            pending -= 1
        elif i > 30 and i < n - p.drift_bars - 1 and rng.random() < p.trigger_rate:
            side = 1 if rng.random() < 0.5 else -1
            trigger[i] = side
            body = side * p.trigger_body_atr * atr * rng.uniform(0.9, 1.1)
            follow = side if rng.random() < p.edge_probability else -side
            drift[i] = follow
            pending = p.drift_bars
            step = follow * p.drift_atr * atr / p.drift_bars
        else:
            body = rng.normal(0.0, 0.3 * atr)
        cl = op + body
        if trigger[i]:
            hi, low = max(op, cl) + 0.05 * atr, min(op, cl) - 0.05 * atr  # marubozu
        else:
            wick = abs(rng.normal(0.0, 0.35 * atr, size=2))
            hi, low = max(op, cl) + wick[0], min(op, cl) - wick[1]
        o[i], h[i], lo[i], c[i] = op, hi, low, cl
        # mild mean reversion keeps a long series near its start price
        price = cl + 0.002 * (p.price - cl)
        i += 1
    rnd = np.round
    frame = pd.DataFrame(
        {
            "time": _weekday_hours(p.start, n),
            "open": rnd(o, DIGITS),
            "high": rnd(h, DIGITS),
            "low": rnd(lo, DIGITS),
            "close": rnd(c, DIGITS),
            "volume": rng.integers(50, 2000, size=n),
            "trigger": trigger,
            "drift": drift,
        }
    )
    # rounding can cross a wick over the body by a point: keep every candle valid
    frame["high"] = frame[["open", "high", "close"]].max(axis=1)
    frame["low"] = frame[["open", "low", "close"]].min(axis=1)
    return frame


def write_history_csv(frame: pd.DataFrame, path: Path) -> Path:
    """MT4 History Center form: ``2021.01.04,00:00,1.10000,1.10100,1.09900,1.10050,123``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = pd.DatetimeIndex(frame["time"])
    lines = [
        f"{d},{hm},{op:.5f},{hi:.5f},{low:.5f},{cl:.5f},{int(v)}"
        for d, hm, op, hi, low, cl, v in zip(
            t.strftime("%Y.%m.%d"),
            t.strftime("%H:%M"),
            frame["open"],
            frame["high"],
            frame["low"],
            frame["close"],
            frame["volume"],
            strict=True,
        )
    ]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def write_series(dest: Path, params: PlantedEdge | None = None, name: str = "EURUSD60.csv") -> Path:
    """Generate and write one series; returns the CSV path."""
    return write_history_csv(planted_edge_series(params), dest / name)


# --------------------------------------------------------------------------- model

REPO = Path(__file__).resolve().parents[3]
_COPY = [
    "conf",
    "pipelines",
    "src",
    "dvc.yaml",
    "params.yaml",
    "params.base.yaml",
    ".dvcignore",
    ".gitignore",
    "pyproject.toml",
]


@dataclass(frozen=True)
class RegisteredModel:
    """A model registered by the project's own pipeline on a synthetic series."""

    root: Path  # the temp project
    csv_path: Path
    tracking_uri: str
    model_name: str
    model_uri: str  # models:/<name>@champion
    seconds: float


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    # The copy is the project: no pointer to another one (AIBRIDGE_HOME would make its stages
    # read that project's conf/ and write to that project's MLflow store), no MLflow URIs.
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "AIBRIDGE_HOME", "AIBRIDGE_CONF_DIR"):
        env.pop(var, None)
    env["MPLBACKEND"] = "Agg"
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({result.returncode}) in {cwd}\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def repro_project(
    dest: Path,
    csv_source: Path,
    *,
    symbol: str = "EURUSD",
    walk_forward_folds: int = 2,
) -> RegisteredModel:
    """``dvc repro`` of this project in ``dest`` with ``csv_source`` as its only data file.

    The copy is this checkout's ``conf/``, ``pipelines/``, ``src/`` and ``dvc.yaml``;
    ``backtest.walk_forward.max_folds`` and the random baseline runs are capped (the
    walk-forward report is not what the parity needs, the registered model is) through the
    copy's ``params.yaml``, which is what a ``dvc exp run -S`` override writes too.
    """
    import yaml

    from aibridge.paths import is_project, project_root

    # This checkout (an editable install), else the project the CLI runs in (a wheel install
    # has no conf/, pipelines/ or dvc.yaml next to the package).
    source = REPO if is_project(REPO) else project_root()
    started = time.perf_counter()
    root = Path(dest)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for item in _COPY:
        src = source / item
        if src.is_dir():
            shutil.copytree(
                src, root / item, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        elif src.is_file():
            shutil.copy2(src, root / item)
    (root / ".dvc").mkdir()
    for f in ("config", ".gitignore"):
        if (source / ".dvc" / f).is_file():
            shutil.copy2(source / ".dvc" / f, root / ".dvc" / f)
    csv_path = root / "data" / f"{symbol}60.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(csv_source, csv_path)
    p = yaml.safe_load((root / "params.yaml").read_text())
    p["backtest"]["walk_forward"]["max_folds"] = int(walk_forward_folds)
    p["backtest"]["baselines"]["random_runs"] = 3
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    _run(["git", "init", "-q"], root)
    _run(["git", "config", "user.email", "parity@aibridge.local"], root)
    _run(["git", "config", "user.name", "aibridge parity"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-q", "-m", "parity project"], root)
    _run([str(Path(sys.executable).parent / "dvc"), "repro", "-q"], root)
    name = f"aibridge-{symbol}-H1"
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    return RegisteredModel(
        root=root,
        csv_path=csv_path,
        tracking_uri=tracking_uri,
        model_name=name,
        model_uri=f"models:/{name}@{served_alias(tracking_uri, name)}",
        seconds=time.perf_counter() - started,
    )


def served_alias(tracking_uri: str, name: str) -> str:
    """``champion`` when the gate promoted a version, else ``challenger``: a series without
    an edge (the bundled sample) registers its model as challenger only, and is then compared
    through that alias, explicitly."""
    from aibridge.registry import alias_version, registry_client

    champion = alias_version(registry_client(tracking_uri), name, "champion")
    return "challenger" if champion is None else "champion"


def register_synthetic_model(
    dest: Path, params: PlantedEdge | None = None, *, symbol: str = "EURUSD"
) -> RegisteredModel:
    """A planted-edge series (``dest.parent``) and ``dvc repro`` on it in ``dest`` → a
    champion in ``dest/mlflow.db`` (~30 s here; see :func:`repro_project`)."""
    dest = Path(dest)
    csv = write_series(dest.parent / f"{dest.name}-data", params, name=f"{symbol}60.csv")
    return repro_project(dest, csv, symbol=symbol)


def main(argv: list[str] | None = None) -> int:
    """``python -m aibridge.mt4.synthetic DEST [--seed N] [--control] [--register]``."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--seed", type=int, default=PlantedEdge.seed)
    ap.add_argument("--bars", type=int, default=PlantedEdge.bars)
    ap.add_argument("--edge-probability", type=float, default=PlantedEdge.edge_probability)
    ap.add_argument("--control", action="store_true", help="no edge (probability 0.5)")
    ap.add_argument("--register", action="store_true", help="also dvc repro → a champion")
    a = ap.parse_args(argv)
    params = PlantedEdge(
        bars=a.bars, seed=a.seed, edge_probability=0.5 if a.control else a.edge_probability
    )
    if a.register:
        model = register_synthetic_model(a.dest, params)
        print(f"{model.model_uri} in {model.tracking_uri} ({model.seconds:.1f} s)")
    else:
        print(write_series(a.dest, params))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
