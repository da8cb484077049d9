"""Stage ``ingest``: MT4 CSVs in ``data/`` → validated, typed candles + a validation report.

Also the broker clock of each export (``artifacts/broker_clock.json``, one entry per
``SYMBOL_TIMEFRAME``): the UTC offset configured in ``data.broker_utc_offset_hours`` or read
off the export's weekly opens (``aibridge.ingest.broker_clock``). ``train`` puts it in the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from rich.progress import Progress

from aibridge.ingest import (
    CandleFileError,
    Policy,
    parse_symbol_timeframe,
    read_mt4_csv,
    resolve_broker_clock,
    timeframe_minutes,
    validate_candles,
)
from aibridge.settings import DataSettings, PipelineSettings, pipeline_settings
from aibridge.stages.common import StageError, StagePaths, console, run_stage, write_json

MAX_ISSUES_IN_REPORT = 200


def _symbol_timeframe(path: Path, cfg: PipelineSettings | Any) -> tuple[str, str]:
    from aibridge.ingest.naming import SymbolMapError, known_instruments, map_symbol
    from aibridge.paths import conf_dir

    from_name = parse_symbol_timeframe(path)
    if from_name and not cfg.data.symbol:
        # Broker suffixes (EURUSDm60.csv): data.symbol_map, or one error saying to use it.
        try:
            mapped = map_symbol(
                path, from_name[0], cfg.data.symbol_map, known_instruments(conf_dir())
            )
        except SymbolMapError as exc:
            raise StageError(str(exc)) from None
        from_name = (mapped, from_name[1])
    symbol = cfg.data.symbol or (from_name[0] if from_name else None)
    timeframe = cfg.data.timeframe or (from_name[1] if from_name else None)
    if not symbol or not timeframe:
        raise StageError(
            f"{path}: cannot tell symbol and timeframe from the file name; name it like "
            "EURUSD60.csv or EURUSD_H1.csv, or set data.symbol and data.timeframe"
        )
    return str(symbol).upper(), str(timeframe).upper()


def _check_bar_spacing(path: Path, times: np.ndarray, minutes: int, timeframe: str) -> None:
    """The typical bar spacing must match the timeframe the name claims."""
    if len(times) < 3:
        return
    deltas = np.diff(times).astype("timedelta64[m]").astype(np.int64)
    typical = int(np.median(deltas))
    if typical != minutes:
        raise CandleFileError(
            path,
            f"bars are typically {typical} minutes apart, but the timeframe is {timeframe} "
            f"({minutes} minutes); rename the file or set data.timeframe",
        )


def _configured_offset_hours(data: DataSettings) -> float | None:
    value = data.broker_utc_offset_hours
    if value is None:
        return None
    try:
        hours = float(value)
    except (TypeError, ValueError):
        hours = float("nan")
    if not -12 <= hours <= 14:
        raise StageError(
            f"data.broker_utc_offset_hours is {value!r}; give the broker's standard-time UTC "
            "offset in hours (-12..14, e.g. 2 for GMT+2), or null to infer it from the export"
        )
    return hours


def ingest(settings: PipelineSettings, paths: StagePaths) -> dict[str, Any]:
    cfg = pipeline_settings(settings)
    data = cfg.data
    data_dir = paths.root / data.dir
    files = sorted(p for p in data_dir.glob(data.pattern) if p.is_file())
    if not files:
        raise StageError(
            f"no files matching {data.pattern!r} in {data_dir}; export candles from MT4 "
            "(History Center → Export) into it, or run `aibridge sample-data`"
        )
    try:
        structural = Policy(data.policy.structural)
        gaps = Policy(data.policy.gaps)
    except ValueError as exc:
        raise StageError(f"data.policy: {exc}; use fail, drop or warn") from None

    out_dir = paths.artifacts / "candles"
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.parquet"):
        stale.unlink()
    configured_offset = _configured_offset_hours(data)
    report: dict[str, Any] = {
        "files": {},
        "totals": {"files": 0, "rows": 0, "issues": 0, "dropped_rows": 0},
    }
    clocks: dict[str, dict[str, Any]] = {}
    seen: dict[tuple[str, str], Path] = {}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("ingest", total=len(files))
        for path in files:
            symbol, timeframe = _symbol_timeframe(path, cfg)
            if (symbol, timeframe) in seen:
                raise StageError(
                    f"{path} and {seen[symbol, timeframe]} both hold {symbol} {timeframe}; "
                    "keep one export per symbol and timeframe"
                )
            seen[symbol, timeframe] = path
            try:
                minutes = timeframe_minutes(timeframe)
            except ValueError as exc:
                raise StageError(f"{path}: {exc}") from None
            rel = path.relative_to(paths.root) if path.is_relative_to(paths.root) else path
            parsed = read_mt4_csv(path)
            result = validate_candles(
                rel,
                parsed.candles,
                parsed.issues,
                minutes,
                structural,
                gaps,
                data.max_gap_bars,
            )
            candles = result.candles
            _check_bar_spacing(path, candles["time"].to_numpy(), minutes, timeframe)
            candles = candles.drop(columns=["line"])
            clock = resolve_broker_clock(configured_offset, candles["time"].to_numpy(), minutes)
            clocks[f"{symbol}_{timeframe}"] = clock.to_dict()
            console.print(f"ingest: {escape(str(rel))} broker clock: {escape(clock.evidence)}")
            candles.to_parquet(paths.candles(symbol, timeframe), index=False)
            for issue in result.issues[:5]:
                console.print(f"[yellow]warning[/] {escape(str(issue))}")
            report["files"][str(rel)] = {
                "symbol": symbol,
                "timeframe": timeframe,
                "form": parsed.form,
                "rows": len(candles),
                "first": str(candles["time"].iloc[0]),
                "last": str(candles["time"].iloc[-1]),
                "dropped_rows": result.dropped_rows,
                "issues": result.counts(),
                "issue_list": [i.to_dict() for i in result.issues[:MAX_ISSUES_IN_REPORT]],
                "broker_clock": clock.to_dict(),
            }
            totals = report["totals"]
            totals["files"] += 1
            totals["rows"] += len(candles)
            totals["issues"] += len(result.issues)
            totals["dropped_rows"] += result.dropped_rows
            progress.advance(task)
    write_json(paths.broker_clock, clocks)
    write_json(paths.reports / "ingest.json", report)
    write_json(
        paths.reports / "ingest_metrics.json",
        report["totals"]
        | {
            "broker_clock": {
                key: {
                    "utc_offset_hours": None
                    if c["utc_offset_s"] is None
                    else c["utc_offset_s"] / 3600,
                    "weekends": c["weekends"],
                    "agreeing": c["agreeing"],
                }
                for key, c in clocks.items()
            }
        },
    )
    console.print(
        f"ingest: {report['totals']['files']} file(s), {report['totals']['rows']} candles, "
        f"{report['totals']['issues']} issue(s)"
    )
    return report


def main() -> None:
    run_stage("ingest", ingest, typed=True)
