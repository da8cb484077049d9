"""The one root of every error a user can fix, and the one way it is shown.

An :class:`AibridgeError`'s message says *what to do* (``run `dvc repro` from the start``,
``set data.symbol``), so the outermost caller (``run_stage``, the CLI, the server commands)
prints it as one red line and exits 1 -- never a traceback. Domain modules raise their own
subclass (``StageError``, ``SweepError``, ``ServeError``, ``CandleFileError``, ...) so callers
can still catch one kind; the printer only needs the root.

>>> str(AibridgeError("run `dvc repro` first"))
'run `dvc repro` first'
>>> issubclass(ConfigError, AibridgeError)
True
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

EXIT_USER_ERROR = 1


class AibridgeError(Exception):
    """A problem the user can fix; the message says how. Printed as one line."""


class ConfigError(AibridgeError):
    """A configuration value is missing, misspelt or out of range (the message names the key)."""


def error_line(exc: BaseException, context: str | None = None) -> str:
    """The one line shown for ``exc`` (rich markup), e.g. ``train failed: ...``.

    >>> error_line(AibridgeError("no candles"), "features")
    '[bold red]features failed:[/] no candles'
    >>> error_line(AibridgeError("no [x]"))
    '[bold red]error:[/] no \\\\[x]'
    """
    head = f"{context} failed:" if context else "error:"
    return f"[bold red]{head}[/] {escape(str(exc).strip())}"


def print_error(
    exc: BaseException, context: str | None = None, console: Console | None = None
) -> None:
    """Print ``exc`` the one way every entry point does: one red line on stderr."""
    (console or Console(stderr=True, soft_wrap=True)).print(
        error_line(exc, context), soft_wrap=True, highlight=False
    )
