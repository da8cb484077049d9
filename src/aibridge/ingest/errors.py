"""Errors and findings about candle files, always naming the file and the line."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from aibridge.errors import AibridgeError


class CandleFileError(AibridgeError):
    """A candle file cannot be used. The message is meant for the user, not for a traceback."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Issue:
    """One problem found in one row of one file (``line`` is 1-based, as an editor shows it)."""

    file: str
    line: int
    code: str
    message: str
    structural: bool = True

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: [{self.code}] {self.message}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
