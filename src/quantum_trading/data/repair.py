"""Repair of OHLCV frames, only when asked for, with every change reported.

:func:`repair_ohlcv` sorts, drops duplicate timestamps (keeping the **last** occurrence in the
input's order, i.e. the latest download), and fills gaps with zero-volume bars priced at the
previous close. Rows with bad values (NaN or infinity, non-positive prices, high below
max(open, close), low above min(open, close), negative volume) are not guessed at: they raise
:class:`~quantum_trading.errors.DataError` unless ``drop_invalid=True`` drops them (reported).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantum_trading.data.readers import OHLCV_COLUMNS
from quantum_trading.data.timeframes import timeframe_to_timedelta
from quantum_trading.data.validate import _check_frame, row_problems
from quantum_trading.errors import DataError

__all__ = ["RepairReport", "repair_ohlcv"]


def _shown(stamps: tuple[pd.Timestamp, ...], limit: int = 3) -> str:
    text = ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in stamps[:limit])
    return text + (f" (+{len(stamps) - limit} more)" if len(stamps) > limit else "")


@dataclass(frozen=True)
class RepairReport:
    """Every change :func:`repair_ohlcv` made.

    Attributes
    ----------
    source, timeframe:
        What was repaired, at which bar length.
    rows_in, rows_out:
        Rows before and after.
    moved:
        Open times of rows that were out of order (earlier than a row above them) and were
        moved up by the sort.
    duplicates_dropped:
        Open time of every dropped duplicate row (the last occurrence of each time was kept).
    invalid_dropped:
        ``(input row, open time, problem)`` of every row dropped with ``drop_invalid=True``.
    inserted:
        Open times of the zero-volume bars inserted into gaps (open = high = low = close =
        previous close).
    """

    source: str | None
    timeframe: str
    rows_in: int
    rows_out: int
    moved: tuple[pd.Timestamp, ...] = ()
    duplicates_dropped: tuple[pd.Timestamp, ...] = ()
    invalid_dropped: tuple[tuple[int, pd.Timestamp, str], ...] = ()
    inserted: tuple[pd.Timestamp, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether anything was changed at all."""
        return bool(self.moved or self.duplicates_dropped or self.invalid_dropped or self.inserted)

    def summary(self) -> str:
        """Counts and the first few times of each change, on one line.

        >>> RepairReport("x.csv", "1h", 10, 10).summary()
        'x.csv (1h): 10 rows in, 10 out; nothing to repair'
        """
        head = f"{self.source} ({self.timeframe})" if self.source else f"({self.timeframe})"
        text = f"{head}: {self.rows_in} rows in, {self.rows_out} out"
        if not self.changed:
            return text + "; nothing to repair"
        parts = []
        if self.moved:
            parts.append(f"{len(self.moved)} out-of-order moved ({_shown(self.moved)})")
        if self.duplicates_dropped:
            parts.append(
                f"{len(self.duplicates_dropped)} duplicates dropped, last kept "
                f"({_shown(self.duplicates_dropped)})"
            )
        if self.invalid_dropped:
            rows = ", ".join(f"row {r} {p}" for r, _, p in self.invalid_dropped[:3])
            more = len(self.invalid_dropped) - 3
            parts.append(
                f"{len(self.invalid_dropped)} invalid dropped ({rows}{f' (+{more} more)' if more > 0 else ''})"
            )
        if self.inserted:
            parts.append(
                f"{len(self.inserted)} zero-volume bars inserted at previous close "
                f"({_shown(self.inserted)})"
            )
        return f"{text}; " + "; ".join(parts)


def repair_ohlcv(
    df: pd.DataFrame,
    *,
    timeframe: str,
    source: str | None = None,
    drop_invalid: bool = False,
) -> tuple[pd.DataFrame, RepairReport]:
    """Sort, dedupe (keep last) and gap-fill an OHLCV frame; return it with a report.

    Parameters
    ----------
    df:
        Index: UTC ``DatetimeIndex`` of bar open times; float64 ``open high low close volume``
        (other columns are dropped). Not changed.
    timeframe:
        Bar length (``"1h"``); inserted bars are spaced by it.
    source:
        Named in errors and the report; default ``df.attrs["source"]``.
    drop_invalid:
        Drop rows with bad values (and missing timestamps) instead of raising.

    Returns
    -------
    (pd.DataFrame, RepairReport)
        The repaired frame (sorted, unique, no gaps; ``attrs`` kept, plus ``attrs["repair"]`` =
        ``report.summary()``) and the report of every change.

    Raises
    ------
    DataError
        Bad structure; rows with bad values when ``drop_invalid`` is False; steps between bars
        that are not whole multiples of ``timeframe`` (a misaligned series needs a person).

    >>> idx = pd.DatetimeIndex(["2024-01-01 02:00", "2024-01-01 00:00", "2024-01-01 00:00"],
    ...                        tz="UTC", name="date")
    >>> df = pd.DataFrame({"open": [3.0, 1.0, 1.1], "high": [3.0, 1.0, 1.2],
    ...                    "low": [3.0, 1.0, 1.0], "close": [3.0, 1.0, 1.2],
    ...                    "volume": [5.0, 5.0, 6.0]}, index=idx)
    >>> fixed, report = repair_ohlcv(df, timeframe="1h")
    >>> fixed["close"].tolist(), fixed["volume"].tolist()
    ([1.2, 1.2, 3.0], [6.0, 0.0, 5.0])
    >>> len(report.moved), len(report.duplicates_dropped), len(report.inserted)
    (2, 1, 1)
    """
    step = timeframe_to_timedelta(timeframe)
    if source is None and isinstance(df, pd.DataFrame) and df.attrs.get("source") is not None:
        source = str(df.attrs["source"])
    nat = isinstance(df, pd.DataFrame) and isinstance(df.index, pd.DatetimeIndex) and df.index.hasnans
    if nat and not drop_invalid:
        rows = np.flatnonzero(df.index.isna())
        raise DataError("missing timestamp (NaT) in the index", source=source, rows=rows)
    _check_frame(df.loc[~df.index.isna()] if nat else df, OHLCV_COLUMNS, source)
    frame = df.loc[:, list(OHLCV_COLUMNS)]
    rows_in = len(frame)

    # 1. rows with bad values: raise, or drop and report (positions are the input's)
    bad: dict[int, str] = {}
    for row in np.flatnonzero(frame.index.isna()):
        bad[int(row)] = "missing timestamp"
    problems = row_problems(frame, OHLCV_COLUMNS)
    if problems and not drop_invalid:
        first = problems[0]
        raise DataError(
            f"{first.problem} (repair will not guess it; drop_invalid=True drops such rows)",
            source=source,
            rows=first.rows,
            column=first.column,
        )
    for problem in problems:
        for row in problem.rows:
            bad.setdefault(int(row), f"{problem.problem} in {problem.column}")
    invalid = tuple((row, frame.index[row], bad[row]) for row in sorted(bad))
    if bad:
        keep = np.ones(len(frame), dtype=bool)
        keep[list(bad)] = False
        frame = frame.loc[keep]

    # 2. sort (stable, so equal times keep input order) and report rows that were out of order
    stamps = frame.index.as_unit("ns").asi8
    earlier = np.zeros(len(stamps), dtype=bool)
    if len(stamps) > 1:
        earlier[1:] = stamps[1:] < np.maximum.accumulate(stamps)[:-1]
    moved = tuple(frame.index[earlier])
    frame = frame.sort_index(kind="stable")

    # 3. dedupe keeping the last occurrence
    duplicate = frame.index.duplicated(keep="last")
    duplicates = tuple(frame.index[duplicate])
    frame = frame.loc[~duplicate]

    # 4. fill gaps with zero-volume bars at the previous close
    inserted: tuple[pd.Timestamp, ...] = ()
    if len(frame) > 1:
        steps = np.diff(frame.index.as_unit("ns").asi8)
        off = np.flatnonzero(steps % step.value != 0) + 1
        if len(off):
            raise DataError(
                f"bar open times off the {timeframe} grid (step not a whole number of bars); "
                "repair cannot align them",
                source=source,
                rows=off,
            )
        full = pd.date_range(frame.index[0], frame.index[-1], freq=step, name="date").as_unit("ns")
        if len(full) != len(frame):
            new = ~full.isin(frame.index)
            inserted = tuple(full[new])
            frame = frame.reindex(full)
            close = frame["close"].ffill().to_numpy()
            values = {c: frame[c].to_numpy(copy=True) for c in OHLCV_COLUMNS}
            for column in ("open", "high", "low", "close"):
                values[column][new] = close[new]
            values["volume"][new] = 0.0
            frame = pd.DataFrame(values, index=full)

    frame.index = pd.DatetimeIndex(frame.index, name="date").as_unit("ns")
    report = RepairReport(
        source=source,
        timeframe=timeframe,
        rows_in=rows_in,
        rows_out=len(frame),
        moved=moved,
        duplicates_dropped=duplicates,
        invalid_dropped=invalid,
        inserted=inserted,
    )
    frame.attrs = {**df.attrs, "repair": report.summary()}
    return frame, report
