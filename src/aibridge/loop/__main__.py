"""``python -m aibridge.loop <command>``: the loop's commands without the main ``aibridge``
app (the scheduled units use this form; ``aibridge retrain`` is the same function)."""

import typer

from aibridge.loop.commands import register

app = typer.Typer(
    help="aibridge loop: retrain, reconcile, shadow-report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
register(app)


@app.callback()
def main() -> None:
    """aibridge loop commands (also registered on the main `aibridge` app)."""


if __name__ == "__main__":
    app()
