"""Parse the two CSV forms MT4 users have: History Center exports and headed exports.

History Center (no header, comma, tab or semicolon separated)::

    2023.01.02,00:00,1.07016,1.07060,1.06990,1.07020,1234

Headed form (columns found by name, in any order)::

    datetime,open,high,low,close,volume
    2023-01-02 00:00,1.07016,1.07060,1.06990,1.07020,1234

Parsing never raises on a bad *row*: rows that do not parse are returned as issues with their
line number, so a validation policy can decide. A file that cannot be read at all raises
``CandleFileError`` with one clear sentence.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aibridge.ingest.errors import CandleFileError, Issue

PRICE_COLUMNS = ("open", "high", "low", "close")
CANDLE_COLUMNS = ("time", *PRICE_COLUMNS, "volume")
_SEPARATORS = (",", "\t", ";")
_DATE_FORMATS = ("%Y.%m.%d %H:%M", "%Y.%m.%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")
_ALIASES = {
    "datetime": "datetime",
    "date_time": "datetime",
    "timestamp": "datetime",
    "time": "time",
    "date": "date",
    "open": "open",
    "o": "open",
    "high": "high",
    "h": "high",
    "low": "low",
    "l": "low",
    "close": "close",
    "c": "close",
    "volume": "volume",
    "vol": "volume",
    "tickvol": "volume",
    "tick_volume": "volume",
    "v": "volume",
    "spread": "spread",
}


@dataclass
class ParsedCsv:
    """Candles that parsed, the source line of each, and the rows that did not."""

    candles: pd.DataFrame
    issues: list[Issue] = field(default_factory=list)
    form: str = "history_center"


def _sniff_separator(first_line: str) -> str:
    counts = {sep: first_line.count(sep) for sep in _SEPARATORS}
    sep, count = max(counts.items(), key=lambda kv: kv[1])
    if count == 0:
        raise ValueError("no comma, tab or semicolon separator found")
    return sep


def _looks_like_header(fields: list[str]) -> bool:
    first = fields[0].strip().strip('"').lower()
    return not first[:1].isdigit()


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CandleFileError(path, f"cannot read file ({exc.strerror})") from None
    if not raw.strip():
        raise CandleFileError(path, "file is empty")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    if b"\x00" in raw[:4096]:
        raise CandleFileError(path, "file is binary, not a CSV (is this an MT4 .hst file?)")
    return raw.decode("utf-8-sig", errors="replace")


def read_mt4_csv(path: Path | str) -> ParsedCsv:
    """Read one MT4 candle CSV into ``time, open, high, low, close, volume`` (+ ``line``)."""
    path = Path(path)
    text = _read_text(path)
    first_line = text.lstrip().splitlines()[0]
    try:
        sep = _sniff_separator(first_line)
    except ValueError as exc:
        raise CandleFileError(path, str(exc), line=1) from None
    first_fields = next(csv.reader([first_line], delimiter=sep))
    has_header = _looks_like_header(first_fields)
    rows = list(csv.reader(io.StringIO(text), delimiter=sep))
    # Line numbers as the user's editor shows them: 1-based, blank lines counted.
    numbered = [(i + 1, r) for i, r in enumerate(rows) if any(cell.strip() for cell in r)]
    if has_header:
        header, body = numbered[0][1], numbered[1:]
        columns = _map_header(path, header)
        form = "header"
    else:
        header, body = None, numbered
        columns = None
        form = "history_center"
    issues: list[Issue] = []
    if not body:
        raise CandleFileError(path, "file has a header but no candle rows")
    frame, issues = _rows_to_frame(path, body, columns, issues)
    return ParsedCsv(candles=frame, issues=issues, form=form)


def _map_header(path: Path, header: list[str]) -> dict[str, int]:
    mapped: dict[str, int] = {}
    for index, name in enumerate(header):
        key = _ALIASES.get(name.strip().strip('"').lower().lstrip("<").rstrip(">"))
        if key and key not in mapped:
            mapped[key] = index
    has_time = "datetime" in mapped or ("date" in mapped and "time" in mapped)
    if "time" in mapped and "date" not in mapped and "datetime" not in mapped:
        mapped["datetime"] = mapped.pop("time")
        has_time = True
    missing = [c for c in PRICE_COLUMNS if c not in mapped]
    if not has_time:
        missing.insert(0, "datetime")
    if missing:
        raise CandleFileError(
            path,
            f"header {','.join(header)!r} lacks column(s) {', '.join(missing)}; expected "
            "datetime,open,high,low,close,volume",
            line=1,
        )
    return mapped


def _rows_to_frame(
    path: Path,
    body: list[tuple[int, list[str]]],
    columns: dict[str, int] | None,
    issues: list[Issue],
) -> tuple[pd.DataFrame, list[Issue]]:
    lines = np.fromiter((n for n, _ in body), dtype=np.int64, count=len(body))
    if columns is None:
        expected = 7
        wrong_width = [(n, r) for n, r in body if len(r) not in (6, 7, 8)]
        for n, r in wrong_width:
            issues.append(
                Issue(str(path), n, "unparsable", f"expected {expected} fields, found {len(r)}")
            )

        def cell(row: list[str], i: int) -> str:
            return row[i].strip() if i < len(row) else ""

        dt = [f"{cell(r, 0)} {cell(r, 1)}" for _, r in body]
        values = {name: [cell(r, i + 2) for _, r in body] for i, name in enumerate(PRICE_COLUMNS)}
        values["volume"] = [cell(r, 6) for _, r in body]
        spread = None
    else:
        width = max(columns.values()) + 1

        def cell(row: list[str], i: int) -> str:
            return row[i].strip() if i < len(row) else ""

        for n, r in body:
            if len(r) < width:
                issues.append(
                    Issue(
                        str(path), n, "unparsable", f"row has {len(r)} fields, header needs {width}"
                    )
                )
        if "datetime" in columns:
            dt = [cell(r, columns["datetime"]) for _, r in body]
        else:
            dt = [f"{cell(r, columns['date'])} {cell(r, columns['time'])}" for _, r in body]
        values = {name: [cell(r, columns[name]) for _, r in body] for name in PRICE_COLUMNS}
        values["volume"] = (
            [cell(r, columns["volume"]) for _, r in body]
            if "volume" in columns
            else ["0"] * len(body)
        )
        spread = [cell(r, columns["spread"]) for _, r in body] if "spread" in columns else None

    times = _parse_times(pd.Series(dt, dtype="string"))
    frame = pd.DataFrame({"time": times})
    for name in (*PRICE_COLUMNS, "volume"):
        frame[name] = pd.to_numeric(
            pd.Series(values[name], dtype="string"), errors="coerce"
        ).astype("float64")
    if spread is not None:
        frame["spread"] = pd.to_numeric(pd.Series(spread, dtype="string"), errors="coerce")
    frame["line"] = lines
    already = {i.line for i in issues}
    bad_time = frame["time"].isna().to_numpy()
    bad_number = frame[list(PRICE_COLUMNS)].isna().any(axis=1).to_numpy()
    for idx in np.flatnonzero(bad_time | bad_number):
        n = int(lines[idx])
        if n in already:
            continue
        if bad_time[idx]:
            issues.append(Issue(str(path), n, "unparsable", f"cannot parse date/time {dt[idx]!r}"))
        else:
            raw = ",".join(values[c][idx] for c in PRICE_COLUMNS)
            issues.append(Issue(str(path), n, "unparsable", f"cannot parse prices {raw!r}"))
    issues.sort(key=lambda i: i.line)
    return frame, issues


def _parse_times(text: pd.Series) -> pd.Series:
    """Try each known MT4 date format; the one that parses most rows wins."""
    best: pd.Series | None = None
    best_count = -1
    for fmt in _DATE_FORMATS:
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        count = int(parsed.notna().sum())
        if count > best_count:
            best, best_count = parsed, count
        if count == len(text):
            break
    assert best is not None
    return best.astype("datetime64[ns]")
