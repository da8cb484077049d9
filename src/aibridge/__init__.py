"""aibridge: MT4 candles → LightGBM decisions → ZeroMQ signal server for an MT4 Expert Advisor."""

import os

__version__ = "0.1.0"

# LightGBM's OpenMP threads spin while idle by default; on a busy 2-core box the walk-forward
# backtest then runs 5x slower. Must be set before lightgbm is imported; users can override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# No usage telemetry from the tools aibridge drives (MLflow 3 sends it by default; the Makefile
# and .dvc/config turn off DVC's). Set before mlflow is imported; a user can still opt in.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "true")
