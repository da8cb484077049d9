"""Symbol and timeframe from MT4 file names (``EURUSD60.csv``, ``EURUSD_H1.csv``).

Broker suffixes. Many brokers name symbols with a suffix (``EURUSDm``, ``EURUSD.pro``,
``EURUSD#``, ``EURUSD-ECN``), and MT4 exports carry it into the file name: ``EURUSDm60.csv``.
The suffix is never stripped by guesswork. The rule: a file symbol that is a known instrument
(``conf/instrument/<SYMBOL>.yaml``) plus extra characters must be mapped explicitly in
``data.symbol_map`` (``{EURUSDm: EURUSD}``, keys case-insensitive); unmapped, ingest stops with
one error naming the file, the symbol it read and that setting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
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
    r"^(?P<symbol>[A-Za-z0-9.#\-]+?)[_\-. ]?(?P<tf>M1|M5|M15|M30|H1|H4|D1|W1|MN1?)$", re.I
)
_MINUTES = re.compile(r"^(?P<symbol>[A-Za-z.#\-]+[A-Za-z#.]?)(?P<minutes>\d+)$")


def timeframe_minutes(timeframe: str) -> int:
    """``"H1"`` → 60. Raises ``ValueError`` naming the accepted values.

    >>> timeframe_minutes("H1"), timeframe_minutes("mn")
    (60, 43200)
    """
    key = timeframe.upper()
    if key == "MN":
        key = "MN1"
    if key not in _NAME_TO_MINUTES:
        accepted = ", ".join(_NAME_TO_MINUTES)
        raise ValueError(f"unknown timeframe {timeframe!r}; use one of {accepted}")
    return _NAME_TO_MINUTES[key]


def timeframe_name(minutes: int) -> str:
    """MT4's name of a period in minutes (the inverse of :func:`timeframe_minutes`).

    >>> timeframe_name(240)
    'H4'
    """
    if minutes not in _MINUTES_TO_NAME:
        raise ValueError(f"{minutes} minutes is not an MT4 timeframe")
    return _MINUTES_TO_NAME[minutes]


def parse_symbol_timeframe(path: Path | str) -> tuple[str, str] | None:
    """Return ``(symbol, timeframe)`` from a file name, or ``None`` when the name says neither.

    >>> parse_symbol_timeframe("EURUSD60.csv"), parse_symbol_timeframe("data/EURUSD_H1.csv")
    (('EURUSD', 'H1'), ('EURUSD', 'H1'))
    >>> parse_symbol_timeframe("EURUSD1.csv")  # MT4's minutes suffix: M1, not "EURUS" D1
    ('EURUSD', 'M1')
    >>> parse_symbol_timeframe("EURUSDm15.csv")  # broker symbol EURUSDm, M15
    ('EURUSDM', 'M15')
    >>> parse_symbol_timeframe("notes.csv") is None
    True
    """
    stem = Path(path).stem
    named = _NAMED.match(stem)
    by_minutes = _MINUTES.match(stem)
    # "EURUSD1" is EURUSD M1 (MT4's minutes suffix), not "EURUS" D1: without a separator the
    # named form only wins when it leaves a full 6-character symbol ("EURUSDH1").
    separated = named is not None and len(named.group("symbol")) < len(stem) - len(
        named.group("tf")
    )
    # "EURUSDm15" is the M15 export of the broker symbol EURUSDm (MT4 writes minutes), not
    # EURUSD M15: an unseparated lower-case period letter after an upper-case symbol is a suffix.
    if (
        named
        and not separated
        and named.group("tf")[0].islower()
        and any(c.isupper() for c in named.group("symbol"))
        and by_minutes
        and int(by_minutes.group("minutes")) in _MINUTES_TO_NAME
    ):
        named = None
    if named and (separated or len(named.group("symbol")) >= 6 or not by_minutes):
        tf = named.group("tf").upper()
        return named.group("symbol").upper(), "MN1" if tf == "MN" else tf
    if by_minutes and int(by_minutes.group("minutes")) in _MINUTES_TO_NAME:
        return by_minutes.group("symbol").upper(), timeframe_name(int(by_minutes.group("minutes")))
    return None


class SymbolMapError(ValueError):
    """A broker-suffixed symbol without a ``data.symbol_map`` entry."""


def known_instruments(conf: Path) -> set[str]:
    """Symbols with a contract spec: ``conf/instrument/<SYMBOL>.yaml``."""
    return {p.stem.upper() for p in (conf / "instrument").glob("*.yaml")}


def map_symbol(
    path: Path | str,
    symbol: str,
    symbol_map: Mapping[str, str] | None,
    known: Iterable[str],
) -> str:
    """The instrument a file's symbol stands for: ``data.symbol_map`` first, else the symbol
    itself; a known instrument with a broker suffix and no map entry raises
    :class:`SymbolMapError`.

    >>> map_symbol("EURUSDm60.csv", "EURUSDm", {"eurusdm": "EURUSD"}, ["EURUSD"])
    'EURUSD'
    >>> map_symbol("EURUSDm60.csv", "EURUSDm", None, ["EURUSD"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    aibridge.ingest.naming.SymbolMapError: EURUSDm60.csv: the file name gives symbol 'EURUSDm', ...
    """
    wanted = symbol.upper()
    for key, value in (symbol_map or {}).items():
        if str(key).upper() == wanted:
            return str(value).upper()
    known_upper = {k.upper() for k in known}
    if wanted in known_upper:
        return wanted
    bases = sorted((k for k in known_upper if wanted.startswith(k)), key=len, reverse=True)
    if bases:
        base = bases[0]
        stem = Path(path).stem
        raw = stem[: len(symbol)] if stem.upper().startswith(wanted) else symbol
        suffix = raw[len(base) :]
        raise SymbolMapError(
            f"{path}: the file name gives symbol {raw!r}, which looks like {base} with the broker "
            f"suffix {suffix!r}, and data.symbol_map has no entry for it; add "
            f"`symbol_map: {{{raw}: {base}}}` to conf/data/mt4.yaml (the data.symbol_map "
            "setting), or rename the file "
            f"{base}{stem[len(raw) :]}{Path(path).suffix}"
        )
    return wanted
