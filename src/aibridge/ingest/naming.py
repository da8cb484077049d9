"""Symbol and timeframe from MT4 file names (``EURUSD60.csv``, ``EURUSD_H1.csv``)."""

from __future__ import annotations

import re
from pathlib import Path

# MT4 writes the period in minutes after the symbol in History Center exports.
_MINUTES_TO_NAME = {
    1: "M1",
    5: "M5",
    15: "M15",
    30: "M30",
    60: "H1",
    240: "H4",
    1440: "D1",
    10080: "W1",
    43200: "MN1",
}
_NAME_TO_MINUTES = {name: minutes for minutes, name in _MINUTES_TO_NAME.items()}

_NAMED = re.compile(
    r"^(?P<symbol>[A-Za-z0-9.#]+?)[_\-. ]?(?P<tf>M1|M5|M15|M30|H1|H4|D1|W1|MN1?)$", re.I
)
_MINUTES = re.compile(r"^(?P<symbol>[A-Za-z.#]+[A-Za-z#.]?)(?P<minutes>\d+)$")


def timeframe_minutes(timeframe: str) -> int:
    """``"H1"`` → 60. Raises ``ValueError`` naming the accepted values."""
    key = timeframe.upper()
    if key == "MN":
        key = "MN1"
    if key not in _NAME_TO_MINUTES:
        accepted = ", ".join(_NAME_TO_MINUTES)
        raise ValueError(f"unknown timeframe {timeframe!r}; use one of {accepted}")
    return _NAME_TO_MINUTES[key]


def timeframe_name(minutes: int) -> str:
    if minutes not in _MINUTES_TO_NAME:
        raise ValueError(f"{minutes} minutes is not an MT4 timeframe")
    return _MINUTES_TO_NAME[minutes]


def parse_symbol_timeframe(path: Path | str) -> tuple[str, str] | None:
    """Return ``(symbol, timeframe)`` from a file name, or ``None`` when the name says neither."""
    stem = Path(path).stem
    named = _NAMED.match(stem)
    by_minutes = _MINUTES.match(stem)
    # "EURUSD1" is EURUSD M1 (MT4's minutes suffix), not "EURUS" D1: without a separator the
    # named form only wins when it leaves a full 6-character symbol ("EURUSDH1").
    separated = named is not None and len(named.group("symbol")) < len(stem) - len(
        named.group("tf")
    )
    if named and (separated or len(named.group("symbol")) >= 6 or not by_minutes):
        tf = named.group("tf").upper()
        return named.group("symbol").upper(), "MN1" if tf == "MN" else tf
    if by_minutes and int(by_minutes.group("minutes")) in _MINUTES_TO_NAME:
        return by_minutes.group("symbol").upper(), timeframe_name(int(by_minutes.group("minutes")))
    return None
