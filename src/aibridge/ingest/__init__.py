"""Read and validate MT4 candle exports."""

from aibridge.ingest.broker_clock import BrokerClock, infer_broker_clock, resolve_broker_clock
from aibridge.ingest.errors import CandleFileError, Issue
from aibridge.ingest.mt4_csv import read_mt4_csv
from aibridge.ingest.naming import parse_symbol_timeframe, timeframe_minutes
from aibridge.ingest.validate import Policy, ValidationResult, validate_candles

__all__ = [
    "BrokerClock",
    "CandleFileError",
    "Issue",
    "Policy",
    "ValidationResult",
    "infer_broker_clock",
    "parse_symbol_timeframe",
    "read_mt4_csv",
    "resolve_broker_clock",
    "timeframe_minutes",
    "validate_candles",
]
