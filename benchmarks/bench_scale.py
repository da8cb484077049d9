"""Many symbols × timeframes: pipeline time for 1, 4 and 16 of them, 1 vs 2 worker processes.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--bars 5000] [--jobs 1 4 16] [--workers 1 2]``
(or ``--configs 1x1 4x1 4x2 16x2`` for explicit jobs×workers pairs).
Writes ``benchmarks/results/scale.json`` and ``benchmarks/results/scale.md`` (Markdown table).

Each job is one synthetic symbol-timeframe (random-walk Bid candles in MT4 History Center
format, as large as the bundled sample by default) put through the pipeline's *real stage
functions* in a process of its own project directory: ingest → features → labels → train
(LightGBM + MLflow run + pyfunc model) → evaluate → backtest (walk-forward, gate) →
register. All jobs log into one shared
MLflow SQLite store, as a single box with DVC's queue would. Workers are a
``ProcessPoolExecutor`` (spawned and warmed before the clock starts, so interpreter and import
start-up is not counted; ``dvc repro`` adds roughly that per stage — see the README). LightGBM
gets ``cores // workers`` threads so the box is never oversubscribed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
STAGES = ("ingest", "features", "labels", "train", "evaluate", "backtest", "register")
TIMEFRAMES = {"H1": 60, "H4": 240}


def job_names(n: int) -> list[tuple[str, str]]:
    """``n`` symbol-timeframes: SYN01 H1, SYN01 H4, SYN02 H1, ..."""
    out = []
    i = 0
    while len(out) < n:
        i += 1
        for tf in TIMEFRAMES:
            if len(out) < n:
                out.append((f"SYN{i:02d}", tf))
    return out


def write_history_csv(path: Path, bars: int, minutes: int, seed: int) -> None:
    """Random-walk candles, weekdays only, 5 digits, in MT4 History Center format."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2016-01-04", periods=int(bars * 1.5), freq=f"{minutes}min")
    times = times[times.day_of_week < 5][:bars]
    vol = 0.0015 * np.sqrt(minutes / 60)
    close = 1.2 * np.exp(np.cumsum(rng.normal(0, vol, bars)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, vol / 2, bars)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, vol / 2, bars)))
    o, h, lo, c = (np.round(x, 5) for x in (open_, high, low, close))
    h, lo = np.maximum.reduce([h, o, c]), np.minimum.reduce([lo, o, c])
    volume = rng.integers(100, 5000, bars)
    frame = pd.DataFrame(
        {
            "d": times.strftime("%Y.%m.%d"),
            "t": times.strftime("%H:%M"),
            "o": o,
            "h": h,
            "l": lo,
            "c": c,
            "v": volume,
        }
    )
    frame.to_csv(path, header=False, index=False, float_format="%.5f")


def _warm(_: int) -> int:
    """Import everything a job needs, so the timed part is the pipeline, not start-up."""
    import lightgbm  # noqa: F401
    import mlflow  # noqa: F401

    from aibridge.stages import (  # noqa: F401
        backtest,
        evaluate,
        features,
        ingest,
        labels,
        register,
        train,
    )

    time.sleep(0.3)  # keep this worker busy so the pool starts the others too
    return os.getpid()


def run_job(job_root: str, symbol: str, timeframe: str, threads: int) -> dict:
    """The pipeline's stage functions for one symbol-timeframe, each timed."""
    from aibridge.config import compose_config
    from aibridge.stages.backtest import backtest
    from aibridge.stages.common import StagePaths
    from aibridge.stages.evaluate import evaluate
    from aibridge.stages.features import build_features
    from aibridge.stages.ingest import ingest
    from aibridge.stages.labels import build_labels
    from aibridge.stages.register import register
    from aibridge.stages.train import train

    root = Path(job_root)
    os.chdir(root)
    cfg = compose_config(
        [
            f"instrument.symbol={symbol}",
            f"timeframe={timeframe}",
            f"model.num_threads={threads}",
        ],
        config_dir=REPO / "conf",
    )
    paths = StagePaths(root)
    bodies = {
        "ingest": ingest,
        "features": build_features,
        "labels": build_labels,
        "train": train,
        "evaluate": evaluate,
        "backtest": backtest,
        "register": register,
    }
    times = {}
    t_start = time.perf_counter()
    for stage in STAGES:
        t0 = time.perf_counter()
        bodies[stage](cfg, paths)
        times[stage] = time.perf_counter() - t0
    reg = json.loads((paths.reports / "registration.json").read_text())
    return {
        "symbol": symbol,
        "timeframe": timeframe,
        "pid": os.getpid(),
        "start": time.time() - (time.perf_counter() - t_start),
        "seconds": time.perf_counter() - t_start,
        "stages": times,
        "registered": f"{reg['model_name']} v{reg['version']}",
    }


def run_config(
    n_jobs: int, workers: int, bars: int, base: Path, threads: int | None = None
) -> dict:
    cores = os.cpu_count() or 1
    threads = threads or max(1, cores // workers)
    work = base / f"j{n_jobs}-w{workers}"
    roots = []
    for i, (symbol, tf) in enumerate(job_names(n_jobs)):
        root = work / f"{symbol}_{tf}"
        (root / "data").mkdir(parents=True)
        write_history_csv(root / "data" / f"{symbol}_{tf}.csv", bars, TIMEFRAMES[tf], seed=i)
        roots.append((str(root), symbol, tf))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    os.environ["AIBRIDGE_HOME"] = str(work)
    # Create (migrate) the shared store once: two processes migrating a fresh SQLite store at
    # the same time fail with "duplicate column name" (the same holds for `dvc queue start -j 2`
    # on a fresh clone: run one experiment, or `mlflow.search_experiments()`, first).
    from mlflow import MlflowClient

    MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).search_experiments()
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        list(pool.map(_warm, range(workers)))
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        futures = [pool.submit(run_job, r, s, tf, threads) for r, s, tf in roots]
        results = [f.result() for f in futures]
        wall = time.perf_counter() - t0
        load_after = os.getloadavg()[0]
    per_worker: dict[int, dict] = {}
    for r in results:
        w = per_worker.setdefault(r["pid"], {"jobs": 0, "busy_s": 0.0})
        w["jobs"] += 1
        w["busy_s"] += r["seconds"]
    stage_totals = {s: sum(r["stages"][s] for r in results) for s in STAGES}
    busy = sum(r["seconds"] for r in results)
    return {
        "jobs": n_jobs,
        "workers": workers,
        "lightgbm_threads": threads,
        "bars_per_job": bars,
        # 1-minute load average before/after: other work on the box shows up here.
        "loadavg_1m": [round(load_before, 2), round(load_after, 2)],
        "wall_s": wall,
        "per_job_mean_s": busy / n_jobs,
        "jobs_per_min": 60 * n_jobs / wall,
        "worker_utilisation": busy / (wall * workers),
        "per_worker": [
            {"jobs": w["jobs"], "busy_s": round(w["busy_s"], 2)} for w in per_worker.values()
        ],
        "stage_share": {s: v / busy for s, v in stage_totals.items()},
        "stage_mean_s": {s: v / n_jobs for s, v in stage_totals.items()},
        "registered": sorted(r["registered"] for r in results),
    }


def markdown(rows: list[dict]) -> str:
    base = {r["jobs"]: r["wall_s"] for r in rows if r["workers"] == 1}
    lines = [
        "| symbol-timeframes | workers | LightGBM threads | wall time | per job | jobs/min "
        "| speed-up vs 1 worker | worker busy | jobs per worker | load avg before/after |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        speed = f"{base[r['jobs']] / r['wall_s']:.2f}×" if r["jobs"] in base else "–"
        split = ", ".join(str(w["jobs"]) for w in r["per_worker"])
        load = "/".join(f"{x:.1f}" for x in r["loadavg_1m"])
        lines.append(
            f"| {r['jobs']} | {r['workers']} | {r['lightgbm_threads']} | {r['wall_s']:.1f} s "
            f"| {r['per_job_mean_s']:.2f} s | {r['jobs_per_min']:.1f} | {speed} "
            f"| {r['worker_utilisation']:.0%} | {split} | {load} |"
        )
    shares = rows[-1]["stage_share"]
    means = rows[-1]["stage_mean_s"]
    lines += [
        "",
        f"Where a job's time goes ({rows[-1]['jobs']} jobs, {rows[-1]['workers']} workers):",
        "",
        "| stage | " + " | ".join(STAGES) + " |",
        "|---|" + "---:|" * len(STAGES),
        "| share | " + " | ".join(f"{shares[s]:.0%}" for s in STAGES) + " |",
        "| mean | " + " | ".join(f"{means[s]:.2f} s" for s in STAGES) + " |",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=5000, help="candles per symbol-timeframe")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--configs",
        nargs="+",
        metavar="JOBSxWORKERS",
        help="explicit runs, e.g. 1x1 4x1 4x2 16x2 (overrides --jobs/--workers)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="LightGBM threads per job (cores // workers)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.configs:
        plan = [tuple(int(x) for x in c.lower().split("x")) for c in args.configs]
    else:
        plan = [(n, w) for n in args.jobs for w in args.workers if w <= n]
    base = Path(tempfile.mkdtemp(prefix="aibridge-scale-"))
    rows = []
    try:
        for n, w in plan:
            row = run_config(n, w, args.bars, base, args.threads)
            rows.append(row)
            print(
                f"{n:3d} jobs × {w} worker(s): {row['wall_s']:.1f} s "
                f"({row['jobs_per_min']:.1f} jobs/min)",
                file=sys.stderr,
                flush=True,
            )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    doc = {
        "rows": rows,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(doc, indent=2) + "\n")
    table = markdown(rows)
    (RESULTS / "scale.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
