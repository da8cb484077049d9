"""The clean-export fast path of ``read_mt4_csv`` gives the row reader's frame, bit for bit,
and hands every file that is not clean to the row reader (whose messages name the lines)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from aibridge.ingest import mt4_csv
from aibridge.ingest.mt4_csv import read_mt4_csv
from tests.conftest import REPO

SAMPLE = REPO / "src/aibridge/data/EURUSD60.csv"


def _row_reader(path: Path) -> mt4_csv.ParsedCsv:
    text = mt4_csv._read_text(path)
    first = mt4_csv._first_line(text)
    sep = mt4_csv._sniff_separator(first)
    header = mt4_csv._looks_like_header(next(csv.reader([first], delimiter=sep)))
    return mt4_csv._read_rows(path, text, sep, header)


def _assert_same(a: mt4_csv.ParsedCsv, b: mt4_csv.ParsedCsv) -> None:
    assert list(a.candles.columns) == list(b.candles.columns)
    assert list(a.candles.dtypes) == list(b.candles.dtypes)
    for column in a.candles.columns:
        x, y = a.candles[column].to_numpy(), b.candles[column].to_numpy()
        assert x.tobytes() == y.tobytes(), column
    assert (a.issues, a.form) == (b.issues, b.form)


def _spy(monkeypatch) -> list[bool]:
    taken: list[bool] = []
    real = mt4_csv._read_clean

    def spy(*args):
        out = real(*args)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(mt4_csv, "_read_clean", spy)
    return taken


def _variants(tmp_path: Path) -> dict[str, tuple[str, bool]]:
    """name -> (file text, whether the fast path may take it)."""
    lines = SAMPLE.read_text().splitlines()[:300]
    rows = [ln.split(",") for ln in lines]
    dashed = [f"{r[0].replace('.', '-')} {r[1]}:00," + ",".join(r[2:]) for r in rows]
    return {
        "history_center": ("\n".join(lines) + "\n", True),
        "crlf_bom_trailing_blanks": ("\ufeff" + "\r\n".join(lines) + "\r\n\r\n\n", True),
        "tabs_8_fields": ("\n".join("\t".join([*r, "0"]) for r in rows) + "\n", True),
        "seconds": ("\n".join(f"{r[0]},{r[1]}:00," + ",".join(r[2:]) for r in rows), True),
        "header_datetime": (
            "DateTime,Open,High,Low,Close,Volume,Spread\n"
            + "\n".join(f"{d},{i % 17}" for i, d in enumerate(dashed))
            + "\n",
            True,
        ),
        "header_date_time": (
            "<DATE>;<TIME>;<OPEN>;<HIGH>;<LOW>;<CLOSE>;<TICKVOL>\n"
            + "\n".join(";".join(r) for r in rows),
            True,
        ),
        "blank_line": ("\n".join(lines[:100]) + "\n\n" + "\n".join(lines[100:]), False),
        "bad_price": (
            "\n".join([*lines[:50], lines[50].replace("1.0", "x.0", 1), *lines[51:]]),
            False,
        ),
        "bad_date": ("\n".join([*lines[:7], "2017.02.30" + lines[7][10:], *lines[8:]]), False),
        "short_row": ("\n".join([*lines[:9], ",".join(rows[9][:5]), *lines[10:]]), False),
        "unpadded_hour": (
            "\n".join([*lines[:3], lines[3].replace(",12:", ",9:", 1), *lines[4:]]),
            None,
        ),
        "spaces": ("\n".join(ln.replace(",", ", ") for ln in lines), False),
        "mixed_separators": (
            "\n".join([*lines[:5], lines[5].replace(".", "-", 2), *lines[6:]]),
            False,
        ),
    }


def test_fast_path_equals_row_reader(tmp_path: Path, monkeypatch) -> None:
    taken = _spy(monkeypatch)
    for name, (text, fast) in _variants(tmp_path).items():
        path = tmp_path / f"{name}.csv"
        path.write_text(text, encoding="utf-8", newline="")
        taken.clear()
        got = read_mt4_csv(path)
        if fast is not None:
            assert taken == [fast], name
        _assert_same(got, _row_reader(path))
    sample = read_mt4_csv(SAMPLE)
    _assert_same(sample, _row_reader(SAMPLE))
    assert len(sample.candles) == 5000


def test_fast_path_on_a_large_export(tmp_path: Path, monkeypatch) -> None:
    """100 k synthetic M1 rows, full-precision random prices: same bits as the row reader."""
    rng = np.random.default_rng(4)
    n = 100_000
    minute = np.datetime64("2016-02-28T00:00") + np.arange(n).astype("timedelta64[m]")
    stamp = np.datetime_as_string(minute, unit="m")
    price = 1.0 + rng.random((n, 4))
    price[:, 1] = price.max(axis=1) + 0.001
    price[:, 2] = price.min(axis=1) - 0.001
    text = "\n".join(
        f"{s[:10].replace('-', '.')},{s[11:]},{float(o)!r},{h:.5f},{lo:.7f},{float(c)!r},{v}"
        for s, (o, h, lo, c), v in zip(stamp, price, rng.integers(0, 999, n), strict=True)
    )
    path = tmp_path / "EURUSD1.csv"
    path.write_text(text + "\n")
    taken = _spy(monkeypatch)
    got = read_mt4_csv(path)
    assert taken == [True]
    _assert_same(got, _row_reader(path))


@pytest.mark.parametrize("text", ["", "  \n\n", "a\x00b"])
def test_unreadable_files_keep_their_messages(tmp_path: Path, text: str) -> None:
    path = tmp_path / "EURUSD60.csv"
    path.write_text(text)
    with pytest.raises(mt4_csv.CandleFileError, match=r"empty|binary"):
        read_mt4_csv(path)


def _gap_issues_reference(path: str, frame, bar_minutes: int, max_gap_bars: int) -> list:
    """The day-by-day loop ``_gap_issues`` had before its weekend prefilter."""
    import pandas as pd

    from aibridge.ingest.errors import Issue
    from aibridge.ingest.validate import _HOLIDAYS

    times = pd.DatetimeIndex(frame["time"])
    missing = np.diff(times.asi8) // 60_000_000_000 // bar_minutes - 1
    lines = frame["line"].to_numpy()
    out = []
    for i in np.flatnonzero(missing > max_gap_bars):
        start, end = times[i], times[i + 1]
        days = pd.date_range(start.normalize(), end.normalize(), freq="D")
        if (days.dayofweek >= 5).any() or any((d.month, d.day) in _HOLIDAYS for d in days):
            continue
        out.append(
            Issue(
                path,
                int(lines[i + 1]),
                "gap",
                f"{int(missing[i])} bar(s) missing between {start} and {end}",
                structural=False,
            )
        )
    return out


def test_gap_prefilter_keeps_every_gap_message() -> None:
    """Random holes in hourly bars over eight years (weekends, holidays, weekday gaps)."""
    import pandas as pd

    from aibridge.ingest.validate import _gap_issues

    rng = np.random.default_rng(11)
    hours = pd.date_range("2015-12-20", "2023-01-10", freq="h")
    keep = rng.random(len(hours)) > 0.03
    keep[rng.integers(0, len(hours), 400)] = False
    times = hours[keep].as_unit("ns")  # as read_mt4_csv returns them
    frame = pd.DataFrame({"time": times, "line": np.arange(1, len(times) + 1)})
    for max_gap in (0, 2):
        want = _gap_issues_reference("f.csv", frame, 60, max_gap)
        assert _gap_issues("f.csv", frame, 60, max_gap) == want
        assert len(want) > (100 if max_gap == 0 else 1)
