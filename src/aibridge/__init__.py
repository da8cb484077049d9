"""aibridge: MT4 candles → LightGBM decisions → ZeroMQ signal server for an MT4 Expert Advisor."""

__version__ = "0.1.0"
