"""``python -m aibridge.serving.serve serve --model ... [the serve options]``: the signal server
on the lean data plane — the same as ``aibridge serve``, whose default runtime is now lean
(``serve.runtime: lean``; ``aibridge.server.models.registry_backend`` routes to
:func:`aibridge.serving.resolve.lean_backend`). Kept so existing service units keep working.
"""

from __future__ import annotations


def main() -> None:
    from aibridge.server.commands import serve_app

    serve_app()


if __name__ == "__main__":
    main()
