"""The broker's clock: the UTC offset of an MT4 export's server time.

MT4 stamps every bar in the broker's *server* time, and hour of day and weekday are model
features. A model trained on one broker's clock and served on another's sees every hour
shifted, without a word. So the model records the clock of its training data, and the server
compares it with the ``TimeCurrent() - TimeGMT()`` the EA reports.

The offset is configured (``data.broker_utc_offset_hours``) or read from the export itself.
The FX week opens when New York's Friday close ends, at 17:00 New York time on Sunday: 22:00
UTC in northern winter, 21:00 UTC while the US is on daylight time. The first bar after each
weekend gap, in server time, therefore gives::

    offset = first_bar_hour - open_hour_utc   (mod 24, in -12..+14)

Many brokers run GMT+2 in winter and GMT+3 in summer, switching with New York so that the
week always opens at 00:00 server time; others switch on the EU dates, others never. Each
weekend is read under the three clock rules (``none``, ``us``, ``eu``): under a rule, the
weekends' *standard-time* offsets (the offset minus the rule's daylight hour) should agree.
The rule under which most weekends agree wins. When the export has too few weekends, or no
offset reaches the agreement threshold, the answer is "unknown" -- never a guess.

Only timeframes up to H1 are read: an H4 or D1 bar starts on the broker's bar grid, not at the
open, so its hour says nothing about the open.

>>> clock = BrokerClock(utc_offset_s=7200, source="inferred", dst="us")
>>> winter, summer = datetime(2024, 1, 15, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC)
>>> clock.offset_at(winter), clock.offset_at(summer)
(7200, 10800)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

# Clock rules, in the order ties are broken among the daylight-saving ones.
RULE_NONE = "none"
RULE_US = "us"
RULE_EU = "eu"
RULES = (RULE_NONE, RULE_US, RULE_EU)

SOURCE_CONFIG = "config"
SOURCE_INFERRED = "inferred"
SOURCE_UNKNOWN = "unknown"

MIN_WEEKENDS = 4
MIN_AGREEMENT = 0.75
# A weekend closure is ~48 h (72 h over a Monday holiday, plus a bar); a longer hole is missing
# data, whose first bar is not an open.
_MIN_WEEKEND_GAP = timedelta(hours=40)
_MAX_WEEKEND_GAP = timedelta(hours=76)
_NY_OPEN_HOUR_STANDARD_UTC = 22  # 17:00 EST
_HOUR = 3600


def _nth_sunday(year: int, month: int, n: int) -> date:
    """The ``n``-th Sunday of a month (``n = -1``: the last)."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() + 1) % 7)


def us_dst(at: datetime) -> bool:
    """Whether New York is on daylight time at the UTC instant ``at`` (rules since 1987).

    >>> [us_dst(datetime(2024, 3, 10, h, m, tzinfo=UTC)) for h, m in ((6, 59), (7, 0))]
    [False, True]
    """
    at = _as_utc(at)
    year = at.year
    if year >= 2007:
        start, end = _nth_sunday(year, 3, 2), _nth_sunday(year, 11, 1)
    else:
        start, end = _nth_sunday(year, 4, 1), _nth_sunday(year, 10, -1)
    # 02:00 local: 07:00 UTC on the way in (EST), 06:00 UTC on the way out (EDT).
    begins = datetime(start.year, start.month, start.day, 7, tzinfo=UTC)
    ends = datetime(end.year, end.month, end.day, 6, tzinfo=UTC)
    return begins <= at < ends


def eu_dst(at: datetime) -> bool:
    """Whether the EU is on summer time at the UTC instant ``at`` (rules since 1996).

    >>> [eu_dst(datetime(2024, 3, 31, h, m, tzinfo=UTC)) for h, m in ((0, 59), (1, 0))]
    [False, True]
    """
    at = _as_utc(at)
    start, end = _nth_sunday(at.year, 3, -1), _nth_sunday(at.year, 10, -1)
    begins = datetime(start.year, start.month, start.day, 1, tzinfo=UTC)
    ends = datetime(end.year, end.month, end.day, 1, tzinfo=UTC)
    return begins <= at < ends


def _as_utc(at: datetime | float | int) -> datetime:
    if isinstance(at, int | float):
        return datetime.fromtimestamp(at, UTC)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _daylight(rule: str | None, at: datetime) -> bool:
    if rule == RULE_US:
        return us_dst(at)
    if rule == RULE_EU:
        return eu_dst(at)
    return False


@dataclass(frozen=True)
class Weekend:
    """One weekly open seen in the export: the first bar after the gap, in server time."""

    first_bar: str
    open_utc: str
    offset_h: int  # first_bar_hour - open_hour_utc, in -12..+14

    def standard_offset_h(self, rule: str) -> int:
        return self.offset_h - _daylight(rule, datetime.fromisoformat(self.open_utc))


@dataclass(frozen=True)
class BrokerClock:
    """The UTC offset of a broker's server time, and where that knowledge came from.

    ``utc_offset_s`` is the standard-time offset (server time - UTC, seconds); when ``dst`` is
    ``us`` or ``eu`` the clock runs one hour ahead of it during that daylight-saving period
    (:meth:`offset_at`). ``dst`` is ``None`` when the export cannot tell (all its weekends in
    one season); ``utc_offset_s`` is then the offset the export shows. ``None`` offset: unknown.
    """

    utc_offset_s: int | None
    source: str
    dst: str | None = None
    weekends: int = 0
    agreeing: int = 0
    offsets_h: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def offset_at(self, at: datetime | float | int) -> int | None:
        """The clock's UTC offset (seconds) at an instant (a UTC datetime or a Unix time)."""
        if self.utc_offset_s is None:
            return None
        return self.utc_offset_s + _HOUR * _daylight(self.dst, _as_utc(at))

    @property
    def evidence(self) -> str:
        """One line for a log, a tag or a report."""
        if self.source == SOURCE_CONFIG:
            head = f"configured UTC{_fmt_h(self.utc_offset_s)}"
        elif self.utc_offset_s is None:
            head = "unknown"
        else:
            head = f"inferred UTC{_fmt_h(self.utc_offset_s)}"
        if self.utc_offset_s is not None:
            head += f", daylight saving {self.dst or 'unknown'}"
        if self.weekends:
            head += f"; {self.agreeing}/{self.weekends} weekends agree"
        return f"{head}; {self.note}" if self.note else head

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"evidence": self.evidence}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BrokerClock:
        return cls(**{k: v for k, v in data.items() if k != "evidence"})


def _fmt_h(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    hours = seconds / _HOUR
    return f"{hours:+g}"


def weekly_opens(times: np.ndarray | pd.Series) -> list[Weekend]:
    """Each weekly open in bar times (server time, sorted): the bar after a weekend gap.

    A weekend gap is 40 to 76 hours long and contains a Saturday noon in server time.
    """
    stamps = pd.DatetimeIndex(pd.to_datetime(np.asarray(times)))
    if len(stamps) < 2:
        return []
    gaps = stamps[1:] - stamps[:-1]
    found = []
    for i in np.flatnonzero((gaps >= _MIN_WEEKEND_GAP) & (gaps <= _MAX_WEEKEND_GAP)):
        before, after = stamps[i].to_pydatetime(), stamps[i + 1].to_pydatetime()
        saturday = datetime.combine(
            before.date() + timedelta(days=(5 - before.weekday()) % 7), datetime.min.time()
        ) + timedelta(hours=12)
        if not before < saturday < after:
            continue
        weekend = _read_open(after)
        if weekend is not None:
            found.append(weekend)
    return found


def _read_open(first_bar: datetime) -> Weekend | None:
    """The offset a weekly open shows: the first bar's hour against 17:00 New York that day.

    The open is on the weekend's Sunday, or on Monday after a holiday (Christmas, New Year);
    the earlier day that puts the offset in -12..+14 is taken. ``None``: the first bar is too
    late for either (data missing after the weekend).
    """
    hour = first_bar.replace(minute=0, second=0, microsecond=0)
    sunday = first_bar.date() - timedelta(days=(first_bar.weekday() + 1) % 7)
    for day in (sunday, sunday + timedelta(days=1)):
        open_utc = datetime(day.year, day.month, day.day, _NY_OPEN_HOUR_STANDARD_UTC, tzinfo=UTC)
        if us_dst(open_utc):
            open_utc -= timedelta(hours=1)
        offset_h = (hour - open_utc.replace(tzinfo=None)) // timedelta(hours=1)
        if -12 <= offset_h <= 14:
            return Weekend(
                first_bar=first_bar.isoformat(sep=" "),
                open_utc=open_utc.isoformat(sep=" "),
                offset_h=int(offset_h),
            )
    return None


def infer_broker_clock(
    times: np.ndarray | pd.Series,
    bar_minutes: int,
    min_weekends: int = MIN_WEEKENDS,
    min_agreement: float = MIN_AGREEMENT,
) -> BrokerClock:
    """Read the broker's UTC offset off the weekly opens of an export (see the module doc)."""
    if bar_minutes > 60:
        return BrokerClock(
            None,
            SOURCE_UNKNOWN,
            note=f"{bar_minutes}-minute bars start on the broker's grid, not at the weekly open; "
            "infer from an H1 or shorter export, or set data.broker_utc_offset_hours",
        )
    weekends = weekly_opens(times)
    histogram = Counter(w.offset_h for w in weekends)
    offsets_h = {f"{h:+d}": n for h, n in sorted(histogram.items())}
    n = len(weekends)
    if n < min_weekends:
        return BrokerClock(
            None,
            SOURCE_UNKNOWN,
            weekends=n,
            offsets_h=offsets_h,
            note=f"{n} weekend(s) in the export, {min_weekends} needed",
        )
    fits = {}
    for candidate in RULES:
        offset, agreeing = Counter(w.standard_offset_h(candidate) for w in weekends).most_common(1)[
            0
        ]
        fits[candidate] = (offset, agreeing)
    best = max(agreeing for _, agreeing in fits.values())
    winners = [candidate for candidate in RULES if fits[candidate][1] == best]
    if best < min_agreement * n:
        return BrokerClock(
            None,
            SOURCE_UNKNOWN,
            weekends=n,
            agreeing=best,
            offsets_h=offsets_h,
            note=f"no offset reaches {min_agreement:.0%} of weekends (offsets seen, hours: "
            f"{offsets_h})",
        )
    note = ""
    if winners == [RULE_NONE] or len(winners) == 1:
        rule: str | None = winners[0]
    elif RULE_NONE in winners:
        # Every agreeing weekend lies in one daylight-saving season: the export shows one offset
        # but not whether the clock moves.
        rule = None
        note = "all weekends in one daylight-saving season: whether the clock shifts is unknown"
    else:
        rule = winners[0]
        note = f"no weekend tells {' from '.join(winners)} daylight saving apart"
    offset_h = fits[rule or RULE_NONE][0]
    # A clock change inside the export shows as a run of disagreeing weekends: say where.
    odd = [w.first_bar[:10] for w in weekends if w.standard_offset_h(rule or RULE_NONE) != offset_h]
    if odd:
        where = odd[0] if len(odd) == 1 else f"{odd[0]} .. {odd[-1]}"
        note = "; ".join(filter(None, [note, f"{len(odd)} weekend(s) disagree ({where})"]))
    return BrokerClock(
        utc_offset_s=offset_h * _HOUR,
        source=SOURCE_INFERRED,
        dst=rule,
        weekends=n,
        agreeing=best,
        offsets_h=offsets_h,
        note=note,
    )


def resolve_broker_clock(
    configured_hours: float | None, times: np.ndarray | pd.Series, bar_minutes: int
) -> BrokerClock:
    """The configured offset when there is one, else the inferred clock.

    A configured offset is the standard-time offset; it takes the daylight-saving rule the
    export shows when the export agrees with it, else no rule. A disagreement is kept in
    ``note`` so the ingest report shows it.
    """
    inferred = infer_broker_clock(times, bar_minutes)
    if configured_hours is None:
        return inferred
    seconds = round(float(configured_hours) * _HOUR)
    agrees = inferred.utc_offset_s == seconds
    if inferred.utc_offset_s is None:
        note = f"the export does not tell ({inferred.note})"
    elif agrees:
        note = "the export agrees"
    else:
        note = f"the export suggests {inferred.evidence}"
    return BrokerClock(
        utc_offset_s=seconds,
        source=SOURCE_CONFIG,
        dst=inferred.dst if agrees else RULE_NONE,
        weekends=inferred.weekends,
        agreeing=inferred.agreeing,
        offsets_h=inferred.offsets_h,
        note=note,
    )
