"""``python -m aibridge.server serve …``: the server commands without the main CLI."""

from aibridge.server.commands import serve_app

if __name__ == "__main__":
    serve_app()
