"""Ingest throughput (issue 12): the MT4 CSV reader and validation on a 1 M-row export.

Run: ``.venv/bin/python benchmarks/bench_ingest.py [--rows 1000000]``
Writes ``benchmarks/results/ingest.json`` and prints a table with the goal met or not.

The export is a History Center CSV of M1 bars (``2015.01.05,00:00,1.10000,...``, weekdays
only) written once into a temporary folder. Timed: ``read_mt4_csv`` (file to frame) and
``validate_candles`` (structural checks, order, gaps) -- what the ingest stage does per file
before writing Parquet; best of ``--repeats``. Baselines in the same run: the row-by-row
reader (``mt4_csv._read_rows``, what every file took before the clean-export fast path, and
still takes when a row is bad), once; and ``pandas.read_csv`` of the same file with its C
parser and nothing else (no dates, no checks), the speed of merely splitting the text.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "ingest.json"
GOAL_ROWS_PER_S = 1_000_000.0


def write_export(path: Path, n: int, seed: int = 3) -> None:
    """``n`` weekday M1 bars as MT4's History Center writes them (5 digits)."""
    rng = np.random.default_rng(seed)
    minutes = pd.date_range("2015-01-05", periods=int(n * 1.45), freq="min")
    minutes = minutes[minutes.day_of_week < 5][:n]
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 0.0002, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) + np.abs(rng.normal(0, 0.0001, n))
    low = np.minimum(open_, close) - np.abs(rng.normal(0, 0.0001, n))
    volume = rng.integers(1, 500, n)
    frame = pd.DataFrame(
        {
            "d": minutes.strftime("%Y.%m.%d"),
            "t": minutes.strftime("%H:%M"),
            "o": open_,
            "h": high,
            "l": low,
            "c": close,
            "v": volume,
        }
    )
    frame.to_csv(path, header=False, index=False, float_format="%.5f")


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


PEAK_PROBE = """
import sys
from aibridge.ingest import read_mt4_csv, validate_candles
parsed = read_mt4_csv(sys.argv[1])
validate_candles(sys.argv[1], parsed.candles, parsed.issues, 1)
print([int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM")][0])
"""


def peak_rss_mb(path: Path) -> float | None:
    """Peak resident memory of a fresh process that reads and validates ``path`` (Linux)."""
    if not Path("/proc/self/status").exists():
        return None
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", PEAK_PROBE, str(path)], capture_output=True, text=True, check=True
    )
    return round(int(done.stdout.strip().splitlines()[-1]) / 1024, 1)


def _row_reader(path: Path):
    import csv

    from aibridge.ingest import mt4_csv

    text = mt4_csv._read_text(path)
    first = mt4_csv._first_line(text)
    sep = mt4_csv._sniff_separator(first)
    header = mt4_csv._looks_like_header(next(csv.reader([first], delimiter=sep)))
    return mt4_csv._read_rows(path, text, sep, header)


def bench(rows: int, repeats: int, row_reader: bool = True) -> dict:
    sys.path.insert(0, str(REPO / "src"))
    from aibridge.ingest import read_mt4_csv, validate_candles

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "EURUSD1.csv"
        write_export(path, rows)
        size_mb = path.stat().st_size / 2**20
        load_start = os.getloadavg()[0]
        t_split, _ = best_of(lambda: pd.read_csv(path, header=None), repeats)
        t_read, parsed = best_of(lambda: read_mt4_csv(path), repeats)
        t_rows, _ = best_of(lambda: _row_reader(path), 1) if row_reader else (float("nan"), None)
        t_valid, result = best_of(
            lambda: validate_candles(path, parsed.candles, parsed.issues, 1), repeats
        )
        peak = peak_rss_mb(path)
        load_end = os.getloadavg()[0]
    total = t_read + t_valid
    out = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pandas": pd.__version__,
            "loadavg_1m": [round(load_start, 2), round(load_end, 2)],
        },
        "rows": rows,
        "file_mb": round(size_mb, 1),
        "read_s": round(t_read, 3),
        "validate_s": round(t_valid, 3),
        "total_s": round(total, 3),
        "rows_per_s": round(rows / total),
        "baseline_pandas_read_csv_s": round(t_split, 3),
        "baseline_row_reader_s": round(t_rows, 3),
        "speedup_vs_row_reader": round(t_rows / t_read, 1),
        "ratio_to_baseline": round(total / t_split, 2),
        "issues": len(result.issues),
        "peak_rss_mb_fresh_process": peak,
        "form": parsed.form,
    }
    met = out["rows_per_s"] >= GOAL_ROWS_PER_S
    out["goals"] = {"rows_per_s": [out["rows_per_s"], ">=", GOAL_ROWS_PER_S, met]}
    return out


def markdown(r: dict) -> str:
    lines = [
        f"{r['rows']:,} M1 rows ({r['file_mb']} MB History Center CSV), best of the repeats;"
        f" {r['machine']['cpus']} CPUs, pandas {r['machine']['pandas']},"
        f" 1-min load {r['machine']['loadavg_1m']}.",
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| read_mt4_csv | {r['read_s']:.3f} |",
        f"| validate_candles | {r['validate_s']:.3f} |",
        f"| **reader + validation** | **{r['total_s']:.3f}** ({r['rows_per_s']:,} rows/s) |",
        f"| baseline: bare pandas.read_csv | {r['baseline_pandas_read_csv_s']:.3f} |",
        f"| peak RSS, reading + validating | {r.get('peak_rss_mb_fresh_process')} MB |",
    ]
    if r["baseline_row_reader_s"] == r["baseline_row_reader_s"]:  # not NaN: measured
        lines.append(
            f"| baseline: row-by-row reader (before) | {r['baseline_row_reader_s']:.3f}"
            f" ({r['speedup_vs_row_reader']}x slower than read_mt4_csv) |"
        )
    lines += [
        "",
        "| goal | measured | target | met |",
        "|---|---:|---:|:---:|",
    ]
    for name, (value, op, target, met) in r["goals"].items():
        lines.append(f"| {name} | {value:,} | {op} {target:,.0f} | {'met' if met else 'NOT MET'} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-row-reader", action="store_true", help="skip the slow baseline")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    result = bench(args.rows, args.repeats, not args.skip_row_reader)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
