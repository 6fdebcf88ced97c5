"""Exception types shared by every layer.

Each error says *what* is wrong and *where*: a file, a row, a column, a config field.
User-facing commands print ``str(error)`` as one line; nothing else is needed to act on it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ConfigError", "DataError", "ExchangeError", "QuantumError"]


class QuantumError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(QuantumError):
    """A configuration value is missing, unknown or out of range."""


class ExchangeError(QuantumError):
    """An exchange (or the local exchange server) answered with an error or not at all."""


def _format_rows(rows: Sequence[int] | None, limit: int = 5) -> str | None:
    if rows is None or len(rows) == 0:
        return None
    shown = ", ".join(str(int(r)) for r in list(rows)[:limit])
    more = len(rows) - limit
    return f"{shown} (+{more} more)" if more > 0 else shown


class DataError(QuantumError):
    """Market data that must not be used as it is.

    Parameters
    ----------
    problem:
        What is wrong, in a few words ("duplicate timestamps", "high below max(open, close)").
    source:
        The file (or other origin, e.g. ``"download BTC/USDT:USDT 1h"``) the data came from.
    rows:
        0-based positional row numbers where the problem was found (first few are shown).
    column:
        The column concerned, if one is.

    >>> str(DataError("NaN value", source="btc.csv", rows=[3, 9], column="close"))
    'btc.csv: NaN value in column close at rows 3, 9'
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str | None = None,
        rows: Sequence[int] | None = None,
        column: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = source
        self.rows = [int(r) for r in rows] if rows is not None else []
        self.column = column
        super().__init__(self._message())

    def _message(self) -> str:
        text = self.problem
        if self.column:
            text += f" in column {self.column}"
        rows = _format_rows(self.rows)
        if rows:
            text += f" at row{'s' if len(self.rows) > 1 else ''} {rows}"
        if self.source:
            text = f"{self.source}: {text}"
        return text
