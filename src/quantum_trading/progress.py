"""The progress bar long work shows (sweeps, searches, validation, downloads, training).

>>> bar = progress_bar(remaining=False)
>>> [type(c).__name__ for c in bar.columns]
['TextColumn', 'BarColumn', 'MofNCompleteColumn', 'TimeElapsedColumn']
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["progress_bar"]


def progress_bar(*, console: Console | None = None, remaining: bool = True,
                 transient: bool = False, disable: bool = False) -> Progress:
    """A rich :class:`~rich.progress.Progress`: the task's description (bold), the bar,
    done / total, the elapsed time and, with ``remaining``, the estimated time left. Use it as
    a context manager (or ``start()`` / ``stop()``)."""
    columns: list[ProgressColumn] = [TextColumn("[bold]{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn()]
    if remaining:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, console=console, transient=transient, disable=disable)
