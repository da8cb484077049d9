"""Parse the two CSV forms MT4 users have: History Center exports and headed exports.

History Center (no header, comma, tab or semicolon separated)::

    2023.01.02,00:00,1.07016,1.07060,1.06990,1.07020,1234

Headed form (columns found by name, in any order)::

    datetime,open,high,low,close,volume
    2023-01-02 00:00,1.07016,1.07060,1.06990,1.07020,1234

Parsing never raises on a bad *row*: rows that do not parse are returned as issues with their
line number, so a validation policy can decide. A file that cannot be read at all raises
``CandleFileError`` with one clear sentence.

Speed: a clean export (every row the same width, no blank lines, prices that are numbers,
one date format throughout, UTF-8) is read by Arrow's multi-threaded CSV parser and its dates
by fixed-width digit arithmetic -- ~1 s for a million rows instead of ~24 s. Anything else, or
any row that does not fit, takes the row-by-row path below, which names every bad line; both
give the same frame (``tests/test_ingest_fast.py`` compares them).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CandleFileError(path, f"cannot read file ({exc.strerror})") from None
    if not raw or raw.isspace():
        raise CandleFileError(path, "file is empty")
    if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CandleFileError(path, "file is binary, not a CSV (is this an MT4 .hst file?)")
    return raw


def _decode(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    return raw.decode("utf-8-sig", errors="replace")


def _read_text(path: Path) -> str:
    return _decode(_read_bytes(path))


def _first_line(text: str) -> str:
    """``text.lstrip().splitlines()[0]`` without splitting a million lines."""
    stripped = text.lstrip()
    newline = stripped.find("\n")
    return (stripped if newline < 0 else stripped[: newline + 1]).splitlines()[0]


def read_mt4_csv(path: Path | str) -> ParsedCsv:
    """Read one MT4 candle CSV into ``time, open, high, low, close, volume`` (+ ``line``)."""
    path = Path(path)
    raw = _read_bytes(path)
    utf8 = not raw.startswith((b"\xff\xfe", b"\xfe\xff"))
    # The first line from the first 64 KB, decoded as the whole text would be.
    head = _decode(raw[:65536]) if utf8 else _decode(raw)
    if "\n" not in head.lstrip():
        head = _decode(raw)
    first_line = _first_line(head)
    try:
        sep = _sniff_separator(first_line)
    except ValueError as exc:
        raise CandleFileError(path, str(exc), line=1) from None
    first_fields = next(csv.reader([first_line], delimiter=sep))
    has_header = _looks_like_header(first_fields)
    if utf8:
        fast = _read_clean(path, raw, sep, first_fields, has_header)
        if fast is not None:
            return fast
    return _read_rows(path, _decode(raw), sep, has_header)


def _read_rows(path: Path, text: str, sep: str, has_header: bool) -> ParsedCsv:
    """The row-by-row reader: every row that does not parse becomes an issue with its line."""
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


# --------------------------------------------------------------------------- clean exports

_DIGIT_SPANS_DATE = ((0, 4), (5, 7), (8, 10))  # YYYY?MM?DD
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _read_clean(
    path: Path, raw: bytes, sep: str, first_fields: list[str], has_header: bool
) -> ParsedCsv | None:
    """The frame of a clean UTF-8 export, as ``_read_rows`` would build it; None: not clean."""
    start = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    end = len(raw)
    while end > start and raw[end - 1 : end].isspace():  # trailing blank lines: no candles
        end -= 1
    body = memoryview(raw)[start:end]
    if raw[start : start + 1].isspace():
        return None
    if raw.find(b"\r", start, end) >= 0 and raw.count(b"\r", start, end) != raw.count(
        b"\r\n", start, end
    ):
        return None  # bare CR line ends
    width = len(first_fields)
    if has_header:
        try:
            columns = _map_header(path, first_fields)
        except CandleFileError:
            return None  # the row reader raises it with its message
        if "datetime" not in columns and not ("date" in columns and "time" in columns):
            return None
    else:
        if width not in (7, 8):
            return None
        columns = {"date": 0, "time": 1, "open": 2, "high": 3, "low": 4, "close": 5, "volume": 6}
    table = _arrow_table(body, sep, width, has_header, columns)
    if table is None or table.num_rows == 0:
        return None
    if table.num_rows + has_header != raw.count(b"\n", start, end) + 1:
        return None  # Arrow skipped blank lines: the row reader numbers lines as editors do
    n = table.num_rows
    if "datetime" in columns:
        stamp = _fixed_width_times(_string_matrix(table, columns["datetime"]), None)
    else:
        stamp = _fixed_width_times(
            _string_matrix(table, columns["date"]), _string_matrix(table, columns["time"])
        )
    if stamp is None:
        return None
    frame = pd.DataFrame({"time": stamp.astype("datetime64[s]").astype("datetime64[ns]")})
    for name in PRICE_COLUMNS:
        frame[name] = table.column(columns[name]).to_numpy()
    frame["volume"] = (
        table.column(columns["volume"]).to_numpy() if "volume" in columns else np.zeros(n)
    )
    if "spread" in columns:
        spread = table.column(columns["spread"]).to_pandas().astype("string")
        frame["spread"] = pd.to_numeric(spread, errors="coerce")
    frame["line"] = np.arange(1, n + 1, dtype=np.int64) + (1 if has_header else 0)
    if not np.isfinite(frame[list(PRICE_COLUMNS)].to_numpy()).all():
        return None
    return ParsedCsv(candles=frame, issues=[], form="header" if has_header else "history_center")


def _arrow_table(
    body: memoryview, sep: str, width: int, has_header: bool, columns: dict[str, int]
) -> Any:
    """The Arrow table of a clean body; None: some row does not fit (the row reader reports it)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    numeric = {columns[c] for c in (*PRICE_COLUMNS, "volume") if c in columns}
    names = [f"c{i}" for i in range(width)]
    types = {name: pa.float64() if i in numeric else pa.string() for i, name in enumerate(names)}
    try:
        table = pacsv.read_csv(
            pa.py_buffer(body),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if has_header else 0),
            parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                null_values=[""],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None  # a row of another width, a price that is not a number, ...
    for i in numeric:
        if table.column(i).null_count:
            return None
    return table


def _string_matrix(table: Any, index: int) -> np.ndarray | None:
    """A string column whose values all have one length, as an (n, length) uint8 matrix."""
    column = table.column(index).combine_chunks()
    n = len(column)
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[
        column.offset : column.offset + n + 1
    ]
    width = int(offsets[1] - offsets[0]) if n else 0
    if width == 0 or int(offsets[-1] - offsets[0]) != n * width:
        return None
    if not (np.diff(offsets) == width).all():
        return None
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)
    return data[offsets[0] : offsets[0] + n * width].reshape(n, width)


def _digits(m: np.ndarray, start: int, stop: int) -> np.ndarray | None:
    block = m[:, start:stop] - np.uint8(48)  # wraps below "0": one test for both ends
    if (block > 9).any():
        return None
    value = block[:, 0].astype(np.int64)
    for k in range(1, stop - start):
        value = value * 10 + block[:, k]
    return value


def _fixed_width_times(date: np.ndarray | None, clock: np.ndarray | None) -> np.ndarray | None:
    """Seconds since the epoch of ``YYYY.MM.DD`` (or ``-``) dates with ``HH:MM[:SS]`` times --
    one of ``_DATE_FORMATS`` throughout, zero-padded, valid calendar dates; None otherwise
    (the row reader then parses, and reports, row by row)."""
    if date is None:
        return None
    if clock is None:  # one "datetime" column: "YYYY-MM-DD HH:MM[:SS]"
        if date.shape[1] not in (16, 19) or not (date[:, 10] == ord(" ")).all():
            return None
        date, clock = date[:, :10], date[:, 11:]
    if clock is None or date.shape[1] != 10 or clock.shape[1] not in (5, 8):
        return None
    sep = date[0, 4]
    if sep not in (ord("."), ord("-")) or not ((date[:, 4] == sep) & (date[:, 7] == sep)).all():
        return None
    if not (clock[:, 2] == ord(":")).all() or (
        clock.shape[1] == 8 and not (clock[:, 5] == ord(":")).all()
    ):
        return None
    fields = [
        *(_digits(date, a, b) for a, b in _DIGIT_SPANS_DATE),
        _digits(clock, 0, 2),
        _digits(clock, 3, 5),
        _digits(clock, 6, 8) if clock.shape[1] == 8 else np.zeros(len(date), dtype=np.int64),
    ]
    digits = [x for x in fields if x is not None]
    if len(digits) != len(fields):
        return None
    year, month, day, hour, minute, second = digits
    if not ((year >= 1971) & (year <= 2200) & (month >= 1) & (month <= 12)).all():
        return None
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_days = _DAYS_IN_MONTH[month] + ((month == 2) & leap)
    if not ((day >= 1) & (day <= month_days) & (hour < 24) & (minute < 60) & (second < 60)).all():
        return None
    # Days from the civil date (H. Hinnant's algorithm), years >= 1971 so eras are positive.
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second
