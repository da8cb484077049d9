"""``python -m aibridge.serving.serve serve --model ... [the serve options]``: the signal server
with the lean data plane, until ``aibridge.server.models.registry_backend`` offers it itself.

Same command, options, settings, journal, metrics, hot reload and CurveZMQ as
``python -m aibridge.server serve``; only the models come from
:func:`aibridge.serving.registry.lean_backend` (``LeanModel``; MLflow only in the fetch
subprocess). The integration into the server proper is the three lines at the top of
``registry_backend`` this module applies from outside.
"""

from __future__ import annotations


def use_lean_backend() -> None:
    """Route the server's registry backend to the lean runtime (before ``server.run`` loads)."""
    import aibridge.server.models as models
    from aibridge.serving.registry import lean_backend

    models.registry_backend = lean_backend


def main() -> None:
    use_lean_backend()
    from aibridge.server.commands import serve_app

    serve_app()


if __name__ == "__main__":
    main()
