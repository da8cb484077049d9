"""Closing the loop around a served model: scheduled retraining (:mod:`.retrain`), the
live-vs-backtest trade report (:mod:`.reconcile`), feature drift (:mod:`.drift`) and the shadow
challenger (:mod:`.shadow`). CLI commands: :mod:`.commands`."""
