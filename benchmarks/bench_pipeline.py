"""Pipeline benchmarks (issue 2): feature throughput and `dvc repro` wall time on 1M bars.

Run: ``.venv/bin/python benchmarks/bench_pipeline.py [--bars 1000000] [--skip-repro]``
Writes ``benchmarks/results/pipeline.json`` and prints a Markdown table.

Baseline for the feature throughput, in the same run: the same feature families written the
usual pandas way (``Series.rolling``), which is what the seed design did per request.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aibridge import features  # noqa: E402


def synthetic_m1(n: int, seed: int = 7) -> pd.DataFrame:
    """Random-walk M1 Bid candles with volatility clustering, trading Monday to Friday only."""
    rng = np.random.default_rng(seed)
    minutes = pd.date_range("2015-01-05", periods=int(n * 1.45), freq="min")
    minutes = minutes[minutes.day_of_week < 5][:n]
    vol = 0.00008 * np.exp(np.convolve(rng.normal(0, 0.3, n), np.ones(60) / 60, mode="same"))
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 1, n) * vol))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) + np.abs(rng.normal(0, 1, n)) * vol * close
    low = np.minimum(open_, close) - np.abs(rng.normal(0, 1, n)) * vol * close
    volume = rng.integers(1, 300, n).astype(float)
    return pd.DataFrame(
        {"time": minutes, "open": open_, "high": high, "low": low, "close": close, "volume": volume}
    )


def pandas_baseline(c: pd.DataFrame, params: dict) -> pd.DataFrame:
    """The same feature families with pandas rolling windows (the conventional way)."""
    out = {}
    o, h, lo, cl, v = (c[k] for k in ("open", "high", "low", "close", "volume"))
    out["kmid"] = (cl - o) / o
    out["klen"] = (h - lo) / o
    out["ksft"] = (2 * cl - h - lo) / o
    logc = np.log(cl)
    for k in params["return_lags"]:
        out[f"ret_{k}"] = logc.diff(k)
    r = logc.diff()
    for w in params["windows"]:
        out[f"roc_{w}"] = cl.shift(w) / cl
        out[f"ma_{w}"] = cl.rolling(w).mean() / cl
        out[f"std_{w}"] = cl.rolling(w).std(ddof=0) / cl
        out[f"max_{w}"] = h.rolling(w).max() / cl
        out[f"min_{w}"] = lo.rolling(w).min() / cl
        out[f"rsv_{w}"] = (cl - lo.rolling(w).min()) / (h.rolling(w).max() - lo.rolling(w).min())
        out[f"vol_{w}"] = r.rolling(w).std(ddof=0)
        out[f"vma_{w}"] = v.rolling(w).mean() / (v + 1)
    tr = pd.concat([h, cl.shift()], axis=1).max(axis=1) - pd.concat([lo, cl.shift()], axis=1).min(
        axis=1
    )
    out["atr"] = tr.rolling(params["atr_window"]).mean() / cl
    d = cl.diff()
    up = d.clip(lower=0).rolling(params["rsi_window"]).sum()
    dn = (-d).clip(lower=0).rolling(params["rsi_window"]).sum()
    out["rsi"] = up / (up + dn)
    vw = params["volume_window"]
    out["volume_z"] = (v - v.rolling(vw).mean()) / v.rolling(vw).std(ddof=0)
    return pd.DataFrame(out)


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_features(candles: pd.DataFrame) -> dict:
    params = features.DEFAULT_PARAMS
    ours = best_of(lambda: features.compute_features(candles, params))
    baseline = best_of(lambda: pandas_baseline(candles, params))
    n = len(candles)
    return {
        "bars": n,
        "features": len(features.feature_names(params)),
        "aibridge_s": ours,
        "aibridge_bars_per_s": n / ours,
        "pandas_rolling_s": baseline,
        "pandas_rolling_bars_per_s": n / baseline,
        "ratio_vs_pandas": baseline / ours,
    }


def write_history_center(candles: pd.DataFrame, path: Path) -> None:
    t = candles["time"]
    text = (
        t.dt.strftime("%Y.%m.%d,%H:%M")
        + ","
        + candles["open"].map("{:.5f}".format)
        + ","
        + candles["high"].map("{:.5f}".format)
        + ","
        + candles["low"].map("{:.5f}".format)
        + ","
        + candles["close"].map("{:.5f}".format)
        + ","
        + candles["volume"].astype(int).astype(str)
    )
    path.write_text("\n".join(text) + "\n")


def bench_repro(candles: pd.DataFrame) -> dict:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MPLBACKEND": "Agg"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory(prefix="aibridge-bench-") as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        for item in (
            "conf",
            "pipelines",
            "src",
            "dvc.yaml",
            "params.yaml",
            "params.base.yaml",
            ".dvcignore",
        ):
            src = REPO / item
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / item)
        (root / ".dvc").mkdir()
        shutil.copy2(REPO / ".dvc" / "config", root / ".dvc" / "config")
        cfg = root / "conf" / "config.yaml"
        cfg.write_text(cfg.read_text().replace("timeframe: H1", "timeframe: M1"))
        (root / "data").mkdir()
        write_history_center(candles, root / "data" / "EURUSD1.csv")

        def sh(*cmd: str) -> None:
            done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(
                    f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
                )

        sh("git", "init", "-q")
        sh("dvc", "add", "-q", "data")
        t0 = time.perf_counter()
        sh("dvc", "repro")
        full = time.perf_counter() - t0
        t0 = time.perf_counter()
        sh("dvc", "repro")
        noop = time.perf_counter() - t0
    return {"bars": len(candles), "full_repro_s": full, "noop_repro_s": noop}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--skip-repro", action="store_true")
    args = parser.parse_args()
    candles = synthetic_m1(args.bars)
    results = {"features": bench_features(candles)}
    if not args.skip_repro:
        results["repro"] = bench_repro(candles)
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    out = REPO / "benchmarks" / "results" / "pipeline.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    f = results["features"]
    print("| benchmark | result | goal |")
    print("|---|---|---|")
    print(
        f"| features, {f['bars']:,} M1 bars × {f['features']} features | "
        f"{f['aibridge_bars_per_s'] / 1e6:.2f} M bars/s "
        f"({f['ratio_vs_pandas']:.1f}× pandas rolling, "
        f"{f['pandas_rolling_bars_per_s'] / 1e6:.2f} M bars/s) | ≥ 1 M bars/s |"
    )
    if "repro" in results:
        r = results["repro"]
        print(f"| full `dvc repro`, {r['bars']:,} bars | {r['full_repro_s']:.1f} s | ≤ 180 s |")
        print(f"| no-op `dvc repro` | {r['noop_repro_s']:.2f} s | ≤ 5 s |")


if __name__ == "__main__":
    main()
