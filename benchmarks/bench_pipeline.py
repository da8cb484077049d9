"""Pipeline benchmarks (issues 2, 12): feature throughput, and full `dvc repro` at several sizes.

Run: ``.venv/bin/python benchmarks/bench_pipeline.py [--sizes 100000,1000000,3000000]
[--max-folds 20] [--skip-features]``. Writes ``benchmarks/results/pipeline.json`` and prints
Markdown tables: per-stage seconds and peak RSS per size, the growth factor between sizes, and
the goals (1 M bars <= 3 min, 1 M -> 3 M <= 3.3x, peak RSS <= 4 GB) met or not.

Each size is a fresh copy of the project with synthetic M1 candles (``synthetic_m1``) written
as a History Center export; ``conf/backtest`` gets ``walk_forward.max_folds`` (default 20,
the first 20 folds of 2,000/500-bar windows: the defaults' ``0`` retrains ~2,000 folds at
1 M bars) -- stated in the output with the figures.

Baseline for the feature throughput, in the same run: the same feature families written the
usual pandas way (``Series.rolling``), which is what the seed design did per request.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
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


STAGE_RE = "^  ([a-z_]+):$"
RSS_PROBE = (
    "import resource, subprocess, sys, time; t = time.perf_counter();"
    " code = subprocess.run(sys.argv[1:]).returncode;"
    " print(round(time.perf_counter() - t, 3),"
    " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)"
)


def stages() -> list[str]:
    """The pipeline's stages in dvc.yaml order (the order ``dvc repro`` runs them here)."""
    text = (REPO / "dvc.yaml").read_text().split("stages:", 1)[1]
    return re.findall(STAGE_RE, text, flags=re.MULTILINE)


def make_project(
    root: Path, candles: pd.DataFrame, walk_forward: dict[str, object], source: Path = REPO
) -> dict[str, str]:
    """A fresh copy of the project (from ``source``) in ``root`` with ``candles`` as its M1
    data, ``dvc add``-ed; ``walk_forward`` overrides ``conf/backtest`` keys. Returns the
    environment the stages run in (``source/src`` first on PYTHONPATH, so a checkout other
    than the installed one can be measured)."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MPLBACKEND": "Agg"}
    env["PYTHONPATH"] = str(source / "src")
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)
    root.mkdir(parents=True)
    for item in (
        "conf",
        "pipelines",
        "src",
        "dvc.yaml",
        "params.yaml",
        "params.base.yaml",
        ".dvcignore",
    ):
        src = source / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / item)
    (root / ".dvc").mkdir()
    shutil.copy2(REPO / ".dvc" / "config", root / ".dvc" / "config")
    cfg = root / "conf" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("timeframe: H1", "timeframe: M1"))
    backtest = root / "conf" / "backtest" / "default.yaml"
    text = backtest.read_text()
    for key, value in walk_forward.items():
        text, hits = re.subn(rf"(?m)^(  {key}:) *[^#\n]*", rf"\g<1> {value}  ", text, count=1)
        if hits != 1:
            raise SystemExit(f"conf/backtest/default.yaml has no walk_forward.{key}")
    backtest.write_text(text)
    (root / "data").mkdir()
    write_history_center(candles, root / "data" / "EURUSD1.csv")
    _sh(root, env, "git", "init", "-q")
    _sh(root, env, "dvc", "add", "-q", "data")
    return env


def _sh(root: Path, env: dict[str, str], *cmd: str) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def bench_repro(
    candles: pd.DataFrame,
    walk_forward: dict[str, object],
    keep: Path | None = None,
    source: Path = REPO,
) -> dict:
    """``dvc repro`` of a fresh copy of the project on ``candles`` (M1), one stage at a time
    (``dvc repro -s <stage>``, in dvc.yaml order) so each stage gets its seconds and the
    peak RSS of its largest process (the stage's Python; ``getrusage(RUSAGE_CHILDREN)`` of a
    probe process around ``dvc``), and the 1-minute load average when it ended (the box is
    shared: a load above the core count slows every stage). ``keep``: build the project
    there and leave it (to profile one stage again)."""
    with tempfile.TemporaryDirectory(prefix="aibridge-bench-") as tmp:
        root = keep or Path(tmp) / "project"
        env = make_project(root, candles, walk_forward, source)
        per_stage: dict[str, dict[str, float]] = {}
        t0 = time.perf_counter()
        for stage in stages():
            done = _sh(root, env, sys.executable, "-c", RSS_PROBE, "dvc", "repro", "-s", stage)
            seconds, rss_kb, code = done.stdout.strip().splitlines()[-1].split()
            if code != "0":
                raise SystemExit(f"dvc repro -s {stage} failed:\n{done.stdout[-3000:]}")
            per_stage[stage] = {
                "seconds": float(seconds),
                "peak_rss_mb": round(int(rss_kb) / 1024, 1),
                "load_1m": round(os.getloadavg()[0], 2),
            }
            print(f"  {len(candles):,} bars: {stage} {seconds} s, {per_stage[stage]}", flush=True)
        full = time.perf_counter() - t0
        t0 = time.perf_counter()
        _sh(root, env, "dvc", "repro")
        noop = time.perf_counter() - t0
        folds = _folds(root, len(candles))
    return {
        "bars": len(candles),
        "full_repro_s": round(full, 1),
        "noop_repro_s": round(noop, 2),
        "peak_rss_mb": max(v["peak_rss_mb"] for v in per_stage.values()),
        "stages": per_stage,
        "walk_forward": walk_forward,
        "folds": folds,
    }


def _folds(root: Path, n_bars: int) -> str:
    """The walk-forward plan the backtest ran: :func:`plan_folds_for` on the project's
    composed params (the function the stages call), described in one line."""
    import yaml

    from aibridge.backtest.settings import WalkForwardSettings
    from aibridge.backtest.walkforward import describe_plan, plan_folds_for

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["timeframe"] = "M1"
    folds = plan_folds_for(n_bars, params)
    settings = WalkForwardSettings.model_validate(params["backtest"]["walk_forward"])
    return describe_plan(folds, settings, "M1")


GOALS = {"repro_1m_s": 180.0, "growth_1m_to_3m": 3.3, "peak_rss_mb": 4096.0}


def goals(runs: list[dict]) -> dict[str, list]:
    by_bars = {r["bars"]: r for r in runs}
    out: dict[str, list] = {}
    if 1_000_000 in by_bars:
        v = by_bars[1_000_000]["full_repro_s"]
        out["repro_1m_s"] = [v, "<=", GOALS["repro_1m_s"], v <= GOALS["repro_1m_s"]]
    if 1_000_000 in by_bars and 3_000_000 in by_bars:
        g = round(by_bars[3_000_000]["full_repro_s"] / by_bars[1_000_000]["full_repro_s"], 2)
        out["growth_1m_to_3m"] = [g, "<=", GOALS["growth_1m_to_3m"], g <= GOALS["growth_1m_to_3m"]]
    peak = max(r["peak_rss_mb"] for r in runs)
    out["peak_rss_mb"] = [peak, "<=", GOALS["peak_rss_mb"], peak <= GOALS["peak_rss_mb"]]
    return out


def growth(runs: list[dict]) -> list[dict]:
    """Time factor between consecutive sizes, against the bar factor (linear: equal)."""
    out = []
    for a, b in itertools.pairwise(runs):
        out.append(
            {
                "from_bars": a["bars"],
                "to_bars": b["bars"],
                "bars_factor": round(b["bars"] / a["bars"], 2),
                "time_factor": round(b["full_repro_s"] / a["full_repro_s"], 2),
                "stage_factors": {
                    s: round(b["stages"][s]["seconds"] / max(a["stages"][s]["seconds"], 1e-9), 2)
                    for s in a["stages"]
                },
            }
        )
    return out


def markdown(results: dict) -> str:
    lines = []
    f = results.get("features")
    if f:
        lines += [
            "| benchmark | result | goal |",
            "|---|---|---|",
            f"| features, {f['bars']:,} M1 bars × {f['features']} features | "
            f"{f['aibridge_bars_per_s'] / 1e6:.2f} M bars/s "
            f"({f['ratio_vs_pandas']:.1f}× pandas rolling, "
            f"{f['pandas_rolling_bars_per_s'] / 1e6:.2f} M bars/s) | ≥ 1 M bars/s |",
            "",
        ]
    runs = results.get("repro", [])
    if runs:
        names = list(runs[0]["stages"])
        lines += [
            "| M1 bars | " + " | ".join(names) + " | full `dvc repro` | peak RSS | load |",
            "|---:|" + "---:|" * (len(names) + 3),
        ]
        for r in runs:
            cells = [f"{r['stages'][s]['seconds']:.1f}" for s in names]
            loads = [v["load_1m"] for v in r["stages"].values()]
            lines.append(
                f"| {r['bars']:,} | "
                + " | ".join(cells)
                + f" | **{r['full_repro_s']:.0f} s** | {r['peak_rss_mb']:.0f} MB"
                + f" | {min(loads)}–{max(loads)} |"
            )
        for g in results.get("growth", []):
            lines.append(
                f"\n{g['from_bars']:,} → {g['to_bars']:,} bars (×{g['bars_factor']}): time"
                f" ×{g['time_factor']}"
            )
        lines.append("")
        for r in runs:
            plan = r.get("folds") or "fold plan not recorded"
            wf = r.get("walk_forward")
            extra = f" (walk_forward overrides {wf})" if wf else ""
            lines.append(f"- {r['bars']:,} bars: {plan}{extra}")
        lines += [
            "",
            "| goal | measured | target | met |",
            "|---|---:|---:|:---:|",
        ]
        for name, (value, op, target, met) in results["goals"].items():
            lines.append(f"| {name} | {value} | {op} {target} | {'met' if met else 'NOT MET'} |")
        machine = results.get("machine") or {}
        if machine:
            lines.append(
                f"\n{machine.get('cpus')} CPUs, shared: 1-minute load average per stage in the "
                f"table, {machine.get('loadavg_1m_at_end')} at the end."
            )
    if results.get("note"):
        lines += ["", results["note"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000, help="bars for the feature bench")
    parser.add_argument(
        "--sizes",
        default="100000,1000000",
        help="comma-separated M1 bar counts for full dvc repro runs (e.g. 100000,1000000,3000000)",
    )
    parser.add_argument(
        "--walk-forward",
        default="",
        help="conf/backtest walk_forward overrides, e.g. 'max_folds=20,n_jobs=1' (default: none,"
        " the shipped auto fold plan)",
    )
    parser.add_argument("--keep", type=Path, help="build the (single size) project here, keep it")
    parser.add_argument(
        "--source", type=Path, default=REPO, help="checkout to measure (default: this one)"
    )
    parser.add_argument("--skip-repro", action="store_true")
    parser.add_argument("--skip-features", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/pipeline.json")
    args = parser.parse_args()
    results: dict = {}
    if not args.skip_features:
        results["features"] = bench_features(synthetic_m1(args.bars))
    if not args.skip_repro:
        runs = []
        for n in (int(x) for x in args.sizes.split(",")):
            overrides = dict(kv.split("=", 1) for kv in args.walk_forward.split(",") if kv)
            runs.append(bench_repro(synthetic_m1(n), overrides, args.keep, args.source))
            results["repro"] = runs
            results["growth"] = growth(runs)
            results["goals"] = goals(runs)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")  # after every size
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
