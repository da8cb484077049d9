"""Broker daylight-saving rules without pandas: ``aibridge.ingest.broker_clock``'s ``us_dst`` /
``eu_dst`` (tested equal there), for ``LeanModel.broker_utc_offset_at``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

_HOUR = 3600


def _nth_sunday(year: int, month: int, n: int) -> date:
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() + 1) % 7)


def _us(at: datetime) -> bool:
    year = at.year
    if year >= 2007:
        start, end = _nth_sunday(year, 3, 2), _nth_sunday(year, 11, 1)
    else:
        start, end = _nth_sunday(year, 4, 1), _nth_sunday(year, 10, -1)
    begins = datetime(start.year, start.month, start.day, 7, tzinfo=UTC)
    ends = datetime(end.year, end.month, end.day, 6, tzinfo=UTC)
    return begins <= at < ends


def _eu(at: datetime) -> bool:
    start, end = _nth_sunday(at.year, 3, -1), _nth_sunday(at.year, 10, -1)
    begins = datetime(start.year, start.month, start.day, 1, tzinfo=UTC)
    ends = datetime(end.year, end.month, end.day, 1, tzinfo=UTC)
    return begins <= at < ends


def offset_at(utc_offset_s: int | None, dst: str | None, at: datetime | float | int) -> int | None:
    """Server time - UTC (seconds) at an instant: the standard offset, +1 h in daylight time."""
    if utc_offset_s is None:
        return None
    if isinstance(at, int | float):
        at = datetime.fromtimestamp(at, UTC)
    else:
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    summer = _us(at) if dst == "us" else _eu(at) if dst == "eu" else False
    return utc_offset_s + _HOUR * summer
