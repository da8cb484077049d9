"""MT4 CSV loading: both forms, and every kind of bad input with its specific message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aibridge.ingest import (
    CandleFileError,
    Policy,
    parse_symbol_timeframe,
    read_mt4_csv,
    validate_candles,
)
from aibridge.ingest.naming import SymbolMapError, map_symbol
from aibridge.paths import sample_data_path

GOOD_ROWS = [
    "2023.01.02,00:00,1.07016,1.07060,1.06990,1.07020,1234",
    "2023.01.02,01:00,1.07020,1.07100,1.07000,1.07090,1500",
    "2023.01.02,02:00,1.07090,1.07120,1.07050,1.07060,900",
    "2023.01.02,03:00,1.07060,1.07080,1.06980,1.07000,1100",
]


def write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def load(path: Path, structural: Policy = Policy.FAIL, gaps: Policy = Policy.WARN):
    parsed = read_mt4_csv(path)
    return validate_candles(path, parsed.candles, parsed.issues, 60, structural, gaps)


def test_bundled_sample_is_clean_history_center_export() -> None:
    parsed = read_mt4_csv(sample_data_path())
    assert parsed.form == "history_center"
    result = validate_candles("s", parsed.candles, parsed.issues, 60)
    assert len(result.candles) == 5000 and result.issues == []
    assert str(result.candles["time"].iloc[0]) == "2017-04-19 09:00:00"
    assert result.candles["close"].iloc[-1] == pytest.approx(1.22904)


@pytest.mark.parametrize("sep", [",", "\t", ";"])
def test_history_center_separators(tmp_path: Path, sep: str) -> None:
    path = write(tmp_path, "EURUSD60.csv", [r.replace(",", sep) for r in GOOD_ROWS])
    result = load(path)
    assert len(result.candles) == 4
    np.testing.assert_allclose(result.candles["high"], [1.0706, 1.071, 1.0712, 1.0708])


def test_header_form_any_column_order(tmp_path: Path) -> None:
    lines = ["close,volume,datetime,open,low,high"]
    for r in GOOD_ROWS:
        d, t, o, h, low, c, v = r.split(",")
        lines.append(f"{c},{v},{d.replace('.', '-')} {t},{o},{low},{h}")
    result = load(write(tmp_path, "EURUSD_H1.csv", lines))
    assert read_mt4_csv(tmp_path / "EURUSD_H1.csv").form == "header"
    np.testing.assert_allclose(result.candles["open"], [1.07016, 1.0702, 1.0709, 1.0706])
    np.testing.assert_allclose(result.candles["low"], [1.0699, 1.07, 1.0705, 1.0698])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("EURUSD60.csv", ("EURUSD", "H1")),
        ("EURUSD_H1.csv", ("EURUSD", "H1")),
        ("GBPJPY240.csv", ("GBPJPY", "H4")),
        ("XAUUSD-M15.csv", ("XAUUSD", "M15")),
        ("EURUSD1.csv", ("EURUSD", "M1")),
        ("EURUSDH1.csv", ("EURUSD", "H1")),
        ("USDJPY1440.csv", ("USDJPY", "D1")),
        ("candles.csv", None),
        # Broker-suffixed exports keep their suffix here; data.symbol_map maps them.
        ("EURUSDm60.csv", ("EURUSDM", "H1")),
        ("EURUSD.pro60.csv", ("EURUSD.PRO", "H1")),
        ("EURUSDm15.csv", ("EURUSDM", "M15")),  # EURUSDm's M15, not EURUSD M15
        ("EURUSD#240.csv", ("EURUSD#", "H4")),
        ("EURUSD-ECN_H1.csv", ("EURUSD-ECN", "H1")),
    ],
)
def test_symbol_timeframe_from_name(name: str, expected) -> None:
    assert parse_symbol_timeframe(name) == expected


def test_unparsable_row_reports_file_and_line(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS[:2], "2023.01.02,02:00,1.07090,abc,1.07050,1.07060,900", GOOD_ROWS[3]]
    path = write(tmp_path, "EURUSD60.csv", rows)
    with pytest.raises(
        CandleFileError,
        match=r"EURUSD60.csv: 1 problem.*line 3: \[unparsable\] cannot parse prices",
    ):
        load(path)


def test_truncated_last_line(tmp_path: Path) -> None:
    path = write(tmp_path, "EURUSD60.csv", [*GOOD_ROWS, "2023.01.02,04:00,1.070"])
    with pytest.raises(CandleFileError, match=r"line 5: \[unparsable\] expected 7 fields, found 3"):
        load(path)
    result = load(path, structural=Policy.DROP)
    assert len(result.candles) == 4 and result.dropped_rows == 1


def test_bad_date(tmp_path: Path) -> None:
    path = write(
        tmp_path, "EURUSD60.csv", [GOOD_ROWS[0], "2023.13.45,01:00,1.07,1.071,1.069,1.0705,5"]
    )
    with pytest.raises(
        CandleFileError, match=r"line 2: \[unparsable\] cannot parse date/time '2023.13.45 01:00'"
    ):
        load(path)


def test_high_below_open_close(tmp_path: Path) -> None:
    rows = [GOOD_ROWS[0], "2023.01.02,01:00,1.07020,1.07010,1.07000,1.07090,1500", *GOOD_ROWS[2:]]
    with pytest.raises(
        CandleFileError,
        match=r"line 2: \[bad_ohlc\] high 1.0701 is below max\(open, close\) 1.0709",
    ):
        load(write(tmp_path, "EURUSD60.csv", rows))


def test_low_above_open_close(tmp_path: Path) -> None:
    rows = [GOOD_ROWS[0], "2023.01.02,01:00,1.07020,1.07100,1.07050,1.07090,1500"]
    with pytest.raises(
        CandleFileError, match=r"\[bad_ohlc\] low 1.0705 is above min\(open, close\) 1.0702"
    ):
        load(write(tmp_path, "EURUSD60.csv", rows))


def test_nonpositive_and_nan_prices(tmp_path: Path) -> None:
    rows = [
        GOOD_ROWS[0],
        "2023.01.02,01:00,0,1.07100,0,1.07090,1500",
        "2023.01.02,02:00,nan,1.1,1.0,1.05,3",
    ]
    path = write(tmp_path, "EURUSD60.csv", rows)
    with pytest.raises(
        CandleFileError,
        match=r"line 2: \[bad_price\] price is zero or negative.*line 3: \[unparsable\]",
    ):
        load(path)


def test_duplicate_and_unsorted_timestamps(tmp_path: Path) -> None:
    rows = [GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[1], GOOD_ROWS[3], GOOD_ROWS[2]]
    path = write(tmp_path, "EURUSD60.csv", rows)
    with pytest.raises(CandleFileError) as info:
        load(path)
    message = str(info.value)
    assert "line 3: [duplicate_time] timestamp 2023-01-02 01:00:00 repeats line 2" in message
    assert "line 5: [unsorted_time] timestamp 2023-01-02 02:00:00 is earlier than line 4" in message
    fixed = load(path, structural=Policy.DROP)
    assert list(fixed.candles["time"].dt.hour) == [0, 1, 2, 3]


def test_weekday_gap_warns_weekend_gap_does_not(tmp_path: Path) -> None:
    rows = [
        "2023.01.04,10:00,1.07,1.071,1.069,1.0705,5",  # Wednesday
        "2023.01.04,14:00,1.07,1.071,1.069,1.0705,5",  # 3 bars missing on a weekday
        "2023.01.06,23:00,1.07,1.071,1.069,1.0705,5",  # Friday (a long gap, no weekend inside)
        "2023.01.09,00:00,1.07,1.071,1.069,1.0705,5",  # Monday after the weekend
    ]
    result = load(write(tmp_path, "EURUSD60.csv", rows))
    gaps = [i for i in result.issues if i.code == "gap"]
    assert [i.line for i in gaps] == [2, 3]
    assert "3 bar(s) missing between 2023-01-04 10:00:00 and 2023-01-04 14:00:00" in gaps[0].message
    with pytest.raises(CandleFileError, match="gap policy 'fail'"):
        load(write(tmp_path, "EURUSD60.csv", rows), gaps=Policy.FAIL)


def test_warn_policy_keeps_rows_and_reports(tmp_path: Path) -> None:
    rows = [GOOD_ROWS[0], "2023.01.02,01:00,1.07020,1.07010,1.07000,1.07090,1500"]
    result = load(write(tmp_path, "EURUSD60.csv", rows), structural=Policy.WARN)
    assert len(result.candles) == 2 and result.counts() == {"bad_ohlc": 1}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"\x00\x01\x02\x03binary", "file is binary, not a CSV"),
        (b"just some words\n", "no comma, tab or semicolon separator found"),
        (b"time,price,qty\n2023-01-02 00:00,1,2\n", "lacks column(s) open, high, low, close"),
        (b"datetime,open,high,low,close,volume\n", "file has a header but no candle rows"),
    ],
)
def test_wrong_files_get_one_clear_message(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "EURUSD60.csv"
    path.write_bytes(content)
    with pytest.raises(CandleFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(path)


def test_too_many_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "EURUSD60.csv", [GOOD_ROWS[0], GOOD_ROWS[1] + ",1,2,3"])
    with pytest.raises(
        CandleFileError, match=r"line 2: \[unparsable\] expected 7 fields, found 10"
    ):
        load(path)


KNOWN = {"EURUSD", "USDJPY", "GBPJPY", "XAUUSD"}


@pytest.mark.parametrize(
    ("name", "mapping", "expected"),
    [
        ("EURUSDm60.csv", {"EURUSDm": "EURUSD"}, "EURUSD"),
        ("EURUSD.pro60.csv", {"eurusd.PRO": "eurusd"}, "EURUSD"),  # keys case-insensitive
        ("EURUSD60.csv", None, "EURUSD"),
        ("AUDUSD60.csv", None, "AUDUSD"),  # no spec, no suffix: unchanged, as before
    ],
)
def test_symbol_map(name: str, mapping, expected: str) -> None:
    symbol, _tf = parse_symbol_timeframe(name)
    assert map_symbol(Path("data") / name, symbol, mapping, KNOWN) == expected


@pytest.mark.parametrize(
    ("name", "raw", "suffix"),
    [("EURUSDm60.csv", "EURUSDm", "m"), ("EURUSD.pro60.csv", "EURUSD.pro", ".pro")],
)
def test_unmapped_broker_suffix_is_one_clear_error(name: str, raw: str, suffix: str) -> None:
    symbol, _tf = parse_symbol_timeframe(name)
    with pytest.raises(SymbolMapError) as err:
        map_symbol(Path("data") / name, symbol, {}, KNOWN)
    assert str(err.value) == (
        f"data/{name}: the file name gives symbol {raw!r}, which looks like EURUSD with the "
        f"broker suffix {suffix!r}, and data.symbol_map has no entry for it; add "
        f"`symbol_map: {{{raw}: EURUSD}}` to conf/data/mt4.yaml (the data.symbol_map setting), "
        "or rename the file EURUSD60.csv"
    )


def test_ingest_stage_applies_the_symbol_map(tmp_path: Path, monkeypatch) -> None:
    """The stage names the candles after the mapped instrument, and stops on an unmapped
    suffix with the same sentence (a StageError: no traceback)."""
    from omegaconf import OmegaConf

    from aibridge.stages.common import StageError
    from aibridge.stages.ingest import _symbol_timeframe

    conf = tmp_path / "conf"
    (conf / "instrument").mkdir(parents=True)
    (conf / "instrument" / "EURUSD.yaml").write_text("symbol: EURUSD\n")
    monkeypatch.setenv("AIBRIDGE_CONF_DIR", str(conf))
    cfg = OmegaConf.create({"data": {"symbol": None, "timeframe": None, "symbol_map": {}}})
    with pytest.raises(StageError, match=r"EURUSDm60.csv: the file name gives symbol 'EURUSDm'"):
        _symbol_timeframe(tmp_path / "EURUSDm60.csv", cfg)
    cfg.data.symbol_map = {"EURUSDm": "EURUSD"}
    assert _symbol_timeframe(tmp_path / "EURUSDm60.csv", cfg) == ("EURUSD", "H1")
