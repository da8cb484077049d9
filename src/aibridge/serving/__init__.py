"""The serving data plane: what answering a predict request needs, and nothing else.

* :mod:`aibridge.serving.runtime` -- :class:`LeanModel`, a model version decided from plain
  files: feature row in Python, trees in LightGBM's C library, the bundle's ``decision.py``.
  Imports numpy and the standard library only (no MLflow, pandas, scikit-learn, numba).
* :mod:`aibridge.serving.fetch` -- the control step: resolve ``models:/name@alias`` to a
  version, materialise it into the model cache and check the lean path against the bundle's
  own code before it may be served. Runs in its own process (``python -m
  aibridge.serving.fetch``), so MLflow never enters the server.
* :mod:`aibridge.serving.resolve` -- the server's resolver/loader pair on top of both: alias
  lookups read the store directly (SQLite, or the tracking server's REST API) instead of
  through MLflow (``aibridge.registry``), downloads go through the fetch subprocess.
* :mod:`aibridge.serving.bundled` -- what the lean and the full runtime
  (``aibridge.serving_model``) share: settings, decision rule, warm-up.

Submodules are imported on use; ``import aibridge.serving`` itself imports nothing heavy.
"""
