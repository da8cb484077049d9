"""The broker clock read off an export's weekly opens, checked against the tz database.

Synthetic exports are built with ``zoneinfo`` (independent of the DST rules the module
implements): every FX week opens Sunday 17:00 New York and closes Friday 17:00 New York, and
each broker stamps bars in its own server time.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
import yaml

from aibridge.ingest import read_mt4_csv
from aibridge.ingest.broker_clock import (
    SOURCE_CONFIG,
    SOURCE_INFERRED,
    SOURCE_UNKNOWN,
    BrokerClock,
    eu_dst,
    infer_broker_clock,
    resolve_broker_clock,
    us_dst,
)
from tests.conftest import REPO, run

try:
    NEW_YORK = ZoneInfo("America/New_York")
except ZoneInfoNotFoundError:  # pragma: no cover - no tz database on this machine
    pytest.skip("needs the tz database (zoneinfo)", allow_module_level=True)

Clock = Callable[[datetime], timedelta]  # UTC instant -> server time - UTC


def zone(name: str) -> Clock:
    tz = ZoneInfo(name)
    return lambda at: at.astimezone(tz).utcoffset()


def ny_close_aligned(at: datetime) -> timedelta:
    """GMT+2 in winter, GMT+3 in summer, switching with New York: the week opens at 00:00."""
    return at.astimezone(NEW_YORK).utcoffset() + timedelta(hours=7)


CLOCKS: dict[str, tuple[Clock, int, str]] = {
    # name: (server clock, standard-time offset expected, daylight-saving rule expected)
    "utc": (zone("UTC"), 0, "none"),
    "gmt+2/+3 new york close": (ny_close_aligned, 7200, "us"),
    "eet (eu summer time)": (zone("Europe/Athens"), 7200, "eu"),
    "est fixed -5": (zone("Etc/GMT+5"), -5 * 3600, "none"),
    "gmt+3 fixed": (zone("Etc/GMT-3"), 3 * 3600, "none"),
}


def week_opens_utc(first_sunday: date, weeks: int) -> list[tuple[datetime, datetime]]:
    """(open, close) of each FX week in UTC; the Christmas Monday holiday delays one open."""
    sessions = []
    for w in range(weeks):
        sunday = first_sunday + timedelta(days=7 * w)
        start_day = (
            sunday + timedelta(days=1)
            if (sunday + timedelta(days=1)).day == 25 and (sunday.month == 12)
            else sunday
        )
        opens = datetime.combine(start_day, datetime.min.time().replace(hour=17), NEW_YORK)
        closes = datetime.combine(
            sunday + timedelta(days=5), datetime.min.time().replace(hour=17), NEW_YORK
        )
        sessions.append((opens.astimezone(UTC), closes.astimezone(UTC)))
    return sessions


def write_export(
    path: Path,
    clock: Clock,
    first_sunday: date = date(2023, 1, 8),
    weeks: int = 52,
    bar_minutes: int = 60,
    skip_first_bar_of: tuple[int, ...] = (),
) -> list[tuple[datetime, datetime]]:
    """An MT4 History Center export in the broker's server time; returns (utc, server) pairs."""
    bar = timedelta(minutes=bar_minutes)
    lines, stamps = [], []
    for w, (opens, closes) in enumerate(week_opens_utc(first_sunday, weeks)):
        at = opens
        while at < closes:
            server = (at + clock(at)).replace(tzinfo=None)
            if not (w in skip_first_bar_of and at == opens):
                lines.append(f"{server:%Y.%m.%d,%H:%M},1.10000,1.10050,1.09950,1.10020,100")
                stamps.append((at, server))
            at += bar
    path.write_text("\n".join(lines) + "\n")
    return stamps


def clock_of(path: Path, bar_minutes: int = 60) -> BrokerClock:
    return infer_broker_clock(read_mt4_csv(path).candles["time"], bar_minutes)


@pytest.mark.parametrize("name", list(CLOCKS))
def test_offset_and_daylight_rule_read_off_a_year_of_weekly_opens(tmp_path: Path, name: str):
    server_clock, offset_s, rule = CLOCKS[name]
    stamps = write_export(tmp_path / "EURUSD60.csv", server_clock)
    clock = clock_of(tmp_path / "EURUSD60.csv")
    assert (clock.source, clock.utc_offset_s, clock.dst) == (SOURCE_INFERRED, offset_s, rule)
    assert clock.weekends == clock.agreeing == 51  # 52 weeks, the first open has no gap before
    # The clock gives the true offset of every bar of the year, summer and winter.
    wrong = [
        utc
        for utc, server in stamps
        if clock.offset_at(utc) != (server - utc.replace(tzinfo=None)).total_seconds()
    ]
    assert wrong == []


def test_minute_bars_and_missing_first_bars(tmp_path: Path) -> None:
    """M15 bars; three weekends whose first bar is missing still leave a clear majority."""
    path = tmp_path / "EURUSD15.csv"
    write_export(path, ny_close_aligned, weeks=20, bar_minutes=15, skip_first_bar_of=(3, 7, 11))
    clock = clock_of(path, 15)
    # 2023-01-08 .. 2023-05-21: both US seasons, no EU-only weeks missing, so the rule is US.
    assert (clock.utc_offset_s, clock.dst, clock.weekends) == (7200, "us", 19)
    # Losing the 00:00 bar moves the open to 00:15: the hour is the same, so all agree.
    assert clock.agreeing == 19


def test_data_hole_after_a_weekend_is_not_an_open(tmp_path: Path) -> None:
    """Monday and Tuesday missing: the Wednesday bar after the hole says nothing."""
    path = tmp_path / "EURUSD60.csv"
    write_export(path, zone("Etc/GMT-2"), weeks=12)
    lines = path.read_text().splitlines()
    hole = ("2023.02.13", "2023.02.14")  # server-time Monday and Tuesday
    path.write_text("\n".join(x for x in lines if not x.startswith(hole)) + "\n")
    clock = clock_of(path)
    assert (clock.utc_offset_s, clock.dst, clock.weekends, clock.agreeing) == (7200, "none", 10, 10)


def test_clock_change_inside_the_export_is_named(tmp_path: Path) -> None:
    """A broker that moved from GMT+2 to GMT+3 (fixed) after 40 weeks: the majority wins and
    the weekends of the other clock are dated in the note."""
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_export(a, zone("Etc/GMT-2"), first_sunday=date(2022, 1, 2), weeks=40)
    write_export(b, zone("Etc/GMT-3"), first_sunday=date(2022, 10, 9), weeks=10)
    path = tmp_path / "EURUSD60.csv"
    path.write_text(a.read_text() + b.read_text())
    clock = clock_of(path)
    assert (clock.utc_offset_s, clock.dst, clock.weekends, clock.agreeing) == (7200, "none", 49, 39)
    assert clock.note == "10 weekend(s) disagree (2022-10-10 .. 2022-12-12)"


def test_one_season_shows_the_offset_but_not_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "EURUSD60.csv"
    write_export(path, ny_close_aligned, first_sunday=date(2023, 5, 7), weeks=12)
    clock = clock_of(path)
    assert (clock.source, clock.utc_offset_s, clock.dst) == (SOURCE_INFERRED, 10800, None)
    assert "one daylight-saving season" in clock.note
    assert clock.offset_at(datetime(2023, 12, 1, tzinfo=UTC)) == 10800


def test_too_few_weekends_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "EURUSD60.csv"
    write_export(path, zone("Etc/GMT-2"), weeks=3)
    clock = clock_of(path)
    assert (clock.source, clock.utc_offset_s, clock.weekends) == (SOURCE_UNKNOWN, None, 2)
    assert clock.note == "2 weekend(s) in the export, 4 needed"
    assert clock.offset_at(0) is None
    assert clock.evidence.startswith("unknown")


def test_no_consensus_is_unknown_not_a_guess(tmp_path: Path) -> None:
    """Two exports from different brokers pasted together: half the weekends say +2, half 0."""
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_export(a, zone("Etc/GMT-2"), first_sunday=date(2023, 1, 8), weeks=6)
    write_export(b, zone("UTC"), first_sunday=date(2023, 2, 19), weeks=6)
    path = tmp_path / "EURUSD60.csv"
    path.write_text(a.read_text() + b.read_text())
    clock = clock_of(path)
    assert (clock.source, clock.utc_offset_s, clock.weekends) == (SOURCE_UNKNOWN, None, 11)
    assert "no offset reaches 75% of weekends" in clock.note
    assert clock.offsets_h == {"+0": 6, "+2": 5}


def test_h4_bars_do_not_tell(tmp_path: Path) -> None:
    path = tmp_path / "EURUSD240.csv"
    write_export(path, zone("UTC"), bar_minutes=240)
    clock = clock_of(path, 240)
    assert (clock.source, clock.utc_offset_s) == (SOURCE_UNKNOWN, None)
    assert "H1 or shorter" in clock.note


def test_configured_offset_wins_and_is_checked_against_the_export(tmp_path: Path) -> None:
    path = tmp_path / "EURUSD60.csv"
    write_export(path, ny_close_aligned)
    times = read_mt4_csv(path).candles["time"]
    agreed = resolve_broker_clock(2, times, 60)
    assert (agreed.source, agreed.utc_offset_s, agreed.dst) == (SOURCE_CONFIG, 7200, "us")
    assert agreed.note == "the export agrees"
    told = resolve_broker_clock(-5, times, 60)
    assert (told.source, told.utc_offset_s, told.dst) == (SOURCE_CONFIG, -18000, "none")
    assert told.note.startswith("the export suggests inferred UTC+2, daylight saving us")


def test_bundled_sample_is_utc(tmp_path: Path) -> None:
    clock = clock_of(REPO / "src/aibridge/data/EURUSD60.csv")
    assert clock.to_dict() == {
        "utc_offset_s": 0,
        "source": SOURCE_INFERRED,
        "dst": "none",
        "weekends": 42,
        "agreeing": 42,
        "offsets_h": {"+0": 42},
        "note": "",
        "evidence": "inferred UTC+0, daylight saving none; 42/42 weekends agree",
    }
    assert BrokerClock.from_dict(clock.to_dict()) == clock


def test_daylight_rules_match_the_tz_database() -> None:
    """Every hour around every switch, 1990-2035 (US rules changed in 2007)."""
    london, athens = ZoneInfo("Europe/London"), ZoneInfo("Europe/Athens")
    wrong = []
    for year in range(1990, 2036):
        for month in (3, 4, 10, 11):
            start = datetime(year, month, 1, tzinfo=UTC)
            for hour in range(0, 31 * 24):
                at = start + timedelta(hours=hour)
                if us_dst(at) != bool(at.astimezone(NEW_YORK).dst()):
                    wrong.append(("us", at))
                if year >= 1996 and eu_dst(at) != bool(at.astimezone(athens).dst()):
                    wrong.append(("eu", at))
                if year >= 1996 and eu_dst(at) != bool(at.astimezone(london).dst()):
                    wrong.append(("uk", at))
    assert wrong == []


# -- through the ingest stage -------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    import shutil

    for item in ("conf", "dvc.yaml", "params.yaml", "pipelines"):
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / item)
    (tmp_path / "data").mkdir()
    return tmp_path


def set_configured_offset(project: Path, hours: float | None) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["broker_utc_offset_hours"] = hours
    (project / "params.yaml").write_text(yaml.safe_dump(params))


def test_ingest_stage_writes_the_clock(project: Path) -> None:
    write_export(project / "data" / "EURUSD60.csv", ny_close_aligned)
    write_export(project / "data" / "GBPJPY60.csv", zone("UTC"), weeks=3)
    set_configured_offset(project, None)
    result = run([sys.executable, "pipelines/ingest.py"], project)
    assert "broker clock: inferred UTC+2, daylight saving us; 51/51 weekends agree" in (
        result.stderr
    )
    clocks = json.loads((project / "artifacts/broker_clock.json").read_text())
    assert sorted(clocks) == ["EURUSD_H1", "GBPJPY_H1"]
    assert clocks["EURUSD_H1"]["utc_offset_s"] == 7200 and clocks["EURUSD_H1"]["dst"] == "us"
    assert clocks["GBPJPY_H1"]["utc_offset_s"] is None
    report = json.loads((project / "reports/ingest.json").read_text())
    assert report["files"]["data/EURUSD60.csv"]["broker_clock"] == clocks["EURUSD_H1"]
    metrics = json.loads((project / "reports/ingest_metrics.json").read_text())
    assert metrics["broker_clock"] == {
        "EURUSD_H1": {"utc_offset_hours": 2.0, "weekends": 51, "agreeing": 51},
        "GBPJPY_H1": {"utc_offset_hours": None, "weekends": 2, "agreeing": 0},
    }
    # The clock file is deterministic: a second run writes the same bytes (DVC output).
    before = (project / "artifacts/broker_clock.json").read_bytes()
    run([sys.executable, "pipelines/ingest.py"], project)
    assert (project / "artifacts/broker_clock.json").read_bytes() == before


def test_ingest_stage_configured_offset(project: Path) -> None:
    write_export(project / "data" / "EURUSD60.csv", zone("UTC"), weeks=8)
    set_configured_offset(project, 3)
    run([sys.executable, "pipelines/ingest.py"], project)
    clock = json.loads((project / "artifacts/broker_clock.json").read_text())["EURUSD_H1"]
    assert (clock["source"], clock["utc_offset_s"], clock["dst"]) == ("config", 10800, "none")
    assert clock["note"].startswith("the export suggests inferred UTC+0")
    set_configured_offset(project, "GMT+2")
    result = run([sys.executable, "pipelines/ingest.py"], project, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "data.broker_utc_offset_hours is 'GMT+2'" in result.stderr
