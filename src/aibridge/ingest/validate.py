"""Validate candles and apply the configured policy.

Two kinds of problems, each with its own policy (``fail`` / ``drop`` / ``warn``):

* structural -- the row is wrong: unparsable, NaN or non-positive prices, impossible OHLC
  (high below open/close, low above open/close), duplicate or out-of-order timestamps.
  Default ``fail``: training on broken candles silently is worse than stopping.
* gaps -- bars missing outside weekends and the year-end holidays. Default ``warn``: brokers
  do drop quiet bars, and the features only use bar counts, not wall-clock windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd

from aibridge.ingest.errors import CandleFileError, Issue
from aibridge.ingest.mt4_csv import PRICE_COLUMNS

_HOLIDAYS = ((12, 25), (1, 1))


class Policy(StrEnum):
    FAIL = "fail"
    DROP = "drop"
    WARN = "warn"


@dataclass
class ValidationResult:
    candles: pd.DataFrame
    issues: list[Issue] = field(default_factory=list)
    dropped_rows: int = 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for issue in self.issues:
            out[issue.code] = out.get(issue.code, 0) + 1
        return out


def _row_issues(path: str, frame: pd.DataFrame) -> tuple[list[Issue], np.ndarray]:
    """Per-row structural checks; returns issues and a mask of rows to drop under ``drop``."""
    issues: list[Issue] = []
    lines = frame["line"].to_numpy()
    prices = frame[list(PRICE_COLUMNS)].to_numpy(dtype="float64")
    o, h, low, c = prices.T
    bad = np.zeros(len(frame), dtype=bool)

    nonpositive = np.isfinite(prices).all(axis=1) & (prices <= 0).any(axis=1)
    for i in np.flatnonzero(nonpositive):
        issues.append(Issue(path, int(lines[i]), "bad_price", "price is zero or negative"))
    bad |= nonpositive

    volume = frame["volume"].to_numpy(dtype="float64")
    bad_volume = ~np.isnan(volume) & (volume < 0)
    for i in np.flatnonzero(bad_volume):
        issues.append(Issue(path, int(lines[i]), "bad_volume", f"negative volume {volume[i]:g}"))
    bad |= bad_volume

    with np.errstate(invalid="ignore"):
        high_low = h < np.maximum(o, c)
        low_high = low > np.minimum(o, c)
    for i in np.flatnonzero(high_low & ~nonpositive):
        issues.append(
            Issue(
                path,
                int(lines[i]),
                "bad_ohlc",
                f"high {h[i]:g} is below max(open, close) {max(o[i], c[i]):g}",
            )
        )
    for i in np.flatnonzero(low_high & ~nonpositive & ~high_low):
        issues.append(
            Issue(
                path,
                int(lines[i]),
                "bad_ohlc",
                f"low {low[i]:g} is above min(open, close) {min(o[i], c[i]):g}",
            )
        )
    bad |= high_low | low_high
    return issues, bad


def _order_issues(path: str, frame: pd.DataFrame) -> list[Issue]:
    issues: list[Issue] = []
    times = frame["time"].to_numpy()
    lines = frame["line"].to_numpy()
    if len(frame) < 2:
        return issues
    delta = np.diff(times).astype("timedelta64[s]").astype(np.int64)
    for i in np.flatnonzero(delta == 0):
        issues.append(
            Issue(
                path,
                int(lines[i + 1]),
                "duplicate_time",
                f"timestamp {pd.Timestamp(times[i + 1])} repeats line {int(lines[i])}",
            )
        )
    for i in np.flatnonzero(delta < 0):
        issues.append(
            Issue(
                path,
                int(lines[i + 1]),
                "unsorted_time",
                f"timestamp {pd.Timestamp(times[i + 1])} is earlier than line {int(lines[i])}",
            )
        )
    return issues


def _gap_issues(path: str, frame: pd.DataFrame, bar_minutes: int, max_gap_bars: int) -> list[Issue]:
    """Missing bars that neither a weekend nor a year-end holiday explains."""
    if len(frame) < 2:
        return []
    times = pd.DatetimeIndex(frame["time"])
    delta_min = np.diff(times.asi8) // 60_000_000_000
    missing = delta_min // bar_minutes - 1
    issues = []
    lines = frame["line"].to_numpy()
    gaps = np.flatnonzero(missing > max_gap_bars)
    # A gap whose calendar days include a Saturday or Sunday is a weekend: decided for all gaps
    # at once (a 1 M-bar M1 export has ~200); the rest are checked day by day below.
    day = times.asi8[gaps] // 86_400_000_000_000
    span = times.asi8[gaps + 1] // 86_400_000_000_000 - day + 1
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    gaps = gaps[(span < 7) & (weekday + span - 1 < 5)]
    for i in gaps:
        start, end = times[i], times[i + 1]
        days = pd.date_range(start.normalize(), end.normalize(), freq="D")
        if (days.dayofweek >= 5).any() or any((d.month, d.day) in _HOLIDAYS for d in days):
            continue
        issues.append(
            Issue(
                path,
                int(lines[i + 1]),
                "gap",
                f"{int(missing[i])} bar(s) missing between {start} and {end}",
                structural=False,
            )
        )
    return issues


def validate_candles(
    path: Path | str,
    frame: pd.DataFrame,
    parse_issues: list[Issue],
    bar_minutes: int,
    structural: Policy = Policy.FAIL,
    gaps: Policy = Policy.WARN,
    max_gap_bars: int = 0,
    max_reported: int = 20,
) -> ValidationResult:
    """Check one parsed file and apply the policies. Raises ``CandleFileError`` under ``fail``."""
    path = str(path)
    issues = list(parse_issues)
    unparsable = frame["time"].isna() | frame[list(PRICE_COLUMNS)].isna().any(axis=1)
    frame = frame.loc[~unparsable].reset_index(drop=True)
    frame["volume"] = frame["volume"].fillna(0.0)

    row_issues, row_bad = _row_issues(path, frame)
    issues += row_issues
    if structural is Policy.DROP:
        frame = frame.loc[~row_bad].reset_index(drop=True)
    order_issues = _order_issues(path, frame)
    issues += order_issues
    if structural is Policy.DROP:
        frame = frame.sort_values("time", kind="stable").drop_duplicates("time", keep="first")
        frame = frame.reset_index(drop=True)
    issues.sort(key=lambda i: i.line)

    structural_issues = [i for i in issues if i.structural]
    if structural_issues and structural is Policy.FAIL:
        raise CandleFileError(path, _summarise(structural_issues, max_reported, "policy 'fail'"))

    gap_issues = _gap_issues(path, frame, bar_minutes, max_gap_bars)
    if gap_issues and gaps is Policy.FAIL:
        raise CandleFileError(path, _summarise(gap_issues, max_reported, "gap policy 'fail'"))
    issues += gap_issues
    if len(frame) == 0:
        raise CandleFileError(path, "no valid candles left after validation")
    dropped = int(len(unparsable) - len(frame))
    return ValidationResult(candles=frame, issues=issues, dropped_rows=dropped)


def _summarise(issues: list[Issue], limit: int, why: str) -> str:
    head = "; ".join(f"line {i.line}: [{i.code}] {i.message}" for i in issues[:limit])
    more = f" (and {len(issues) - limit} more)" if len(issues) > limit else ""
    return (
        f"{len(issues)} problem(s) under {why}: {head}{more}. "
        "Fix the file, or set data.policy.structural=drop to skip bad rows."
    )
