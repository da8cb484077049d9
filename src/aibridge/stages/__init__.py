"""DVC stage bodies. ``pipelines/*.py`` are one-line entry points into these."""
