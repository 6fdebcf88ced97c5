"""Validation of canonical OHLCV, funding and mark frames: bad data raises, gaps are reported.

Each check raises :class:`~quantum_trading.errors.DataError` naming the source, the rows
(0-based positions in the frame) and the column of the first problem found, in this order:

1. structure: a DataFrame, required columns present (and unique), each float64; a
   ``DatetimeIndex`` in UTC without NaT; at least one row;
2. order: timestamps sorted ascending, no duplicates;
3. values: no NaN or infinity; open/high/low/close > 0; high >= max(open, close);
   low <= min(open, close); volume >= 0 (funding: |rate| < ``max_abs_rate``);
4. spacing (OHLCV and mark): every step between bar opens is a whole multiple of the
   timeframe. Steps of more than one bar are *gaps*: reported in the
   :class:`ValidationReport`, raised only with ``allow_gaps=False``.

Nothing is changed: fixing is :func:`quantum_trading.data.repair.repair_ohlcv`'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from quantum_trading.data.readers import FUNDING_COLUMNS, MARK_COLUMNS, OHLCV_COLUMNS
from quantum_trading.data.timeframes import timeframe_to_timedelta
from quantum_trading.errors import DataError

__all__ = [
    "RowProblem",
    "ValidationReport",
    "row_problems",
    "validate_funding",
    "validate_mark",
    "validate_ohlcv",
]

_PRICES = ("open", "high", "low", "close")
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Universal", "Zulu", "Etc/Zulu", "Z",
                        "GMT", "Etc/GMT", "tzutc()", "UTC+00:00"})
_MONTHS = re.compile(r"^\d+M$")


@dataclass(frozen=True)
class ValidationReport:
    """What a valid series holds, and where bars are missing.

    Attributes
    ----------
    bars:
        Rows in the frame (bars, or funding settlements).
    first, last:
        First and last bar open time (UTC).
    timeframe:
        Bar length used for the gap check: the one given, else ``attrs["timeframe"]``, else the
        most common step between rows; ``None`` for a single row with none given.
    gap_count:
        Number of places where one or more bars are missing.
    largest_gap:
        Longest stretch of missing time (missing bars × timeframe); zero without gaps.
    missing_bars:
        Total bars missing between ``first`` and ``last``.
    source:
        Where the data came from.
    gaps:
        ``(first missing bar open, last missing bar open)`` for every gap, in time order.
    kind:
        ``"ohlcv"``, ``"funding"`` or ``"mark"``.
    """

    bars: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    timeframe: str | None
    gap_count: int
    largest_gap: pd.Timedelta
    missing_bars: int
    source: str | None = None
    gaps: tuple[tuple[pd.Timestamp, pd.Timestamp], ...] = ()
    kind: str = "ohlcv"

    def summary(self) -> str:
        """One line: what, how many, from when to when, and the gaps.

        >>> idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC", name="date")
        >>> df = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0,
        ...                    "volume": 0.0}, index=idx)
        >>> validate_ohlcv(df, source="x.csv").summary()
        'x.csv: 3 ohlcv bars of 1h from 2024-01-01 00:00 to 2024-01-01 02:00 UTC; no gaps'
        """
        unit = "funding settlements" if self.kind == "funding" else f"{self.kind} bars"
        every = "every" if self.kind == "funding" else "of"
        text = f"{self.bars} {unit}"
        if self.timeframe:
            text += f" {every} {self.timeframe}"
        if self.first is not None and self.last is not None:
            text += f" from {self.first:%Y-%m-%d %H:%M} to {self.last:%Y-%m-%d %H:%M} UTC"
        if self.gap_count:
            text += (
                f"; {self.gap_count} gap{'s' if self.gap_count > 1 else ''}, "
                f"{self.missing_bars} missing, largest {_timeframe_name(self.largest_gap.value)}"
            )
        else:
            text += "; no gaps"
        return f"{self.source}: {text}" if self.source else text


class RowProblem(NamedTuple):
    """One kind of bad value: what, in which column, at which rows (0-based positions)."""

    problem: str
    column: str
    rows: np.ndarray


def _is_utc(tz: object) -> bool:
    return tz is not None and str(tz) in _UTC_NAMES


def _check_frame(df: object, columns: tuple[str, ...], source: str | None) -> pd.DatetimeIndex:
    """Structure checks shared by validation, repair and joins; returns the index in ns."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}", source=source)
    duplicated = df.columns[df.columns.duplicated()]
    if len(duplicated):
        raise DataError("two columns with this name", source=source, column=str(duplicated[0]))
    for column in columns:
        if column not in df.columns:
            raise DataError(
                f"missing column (required: {', '.join(columns)})", source=source, column=column
            )
        dtype = df[column].dtype
        if dtype != np.float64:
            raise DataError(f"dtype {dtype} where float64 is required", source=source, column=column)
    index = df.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(
            f"index is a {type(index).__name__}, not a DatetimeIndex of bar open times", source=source
        )
    if index.tz is None:
        raise DataError("index is tz-naive; bar open times must be UTC", source=source)
    if not _is_utc(index.tz):
        raise DataError(f"index time zone is {index.tz}, not UTC", source=source)
    if len(df) == 0:
        raise DataError("no rows", source=source)
    missing = np.flatnonzero(index.isna())
    if len(missing):
        raise DataError("missing timestamp (NaT) in the index", source=source, rows=missing)
    try:
        return index.as_unit("ns")
    except ValueError:  # OutOfBoundsDatetime
        raise DataError("timestamps outside 1677-2262", source=source) from None


def _check_order(stamps: np.ndarray, source: str | None) -> None:
    steps = np.diff(stamps)
    back = np.flatnonzero(steps < 0) + 1
    if len(back):
        raise DataError("timestamps not sorted (earlier than the row before)", source=source, rows=back)
    same = np.flatnonzero(steps == 0)
    if len(same):
        rows = np.unique(np.concatenate([same, same + 1]))
        raise DataError("duplicate timestamps", source=source, rows=rows)


def row_problems(df: pd.DataFrame, columns: tuple[str, ...] = OHLCV_COLUMNS) -> list[RowProblem]:
    """Every bad value in the given columns of a structurally valid frame.

    Checks NaN and infinity in every column; for open/high/low/close: > 0,
    high >= max(open, close), low <= min(open, close); volume >= 0. Columns not in
    ``columns`` are not looked at.

    >>> idx = pd.date_range("2024-01-01", periods=2, freq="1h", tz="UTC")
    >>> df = pd.DataFrame({"open": [1.0, 1.0], "high": [1.0, 0.5], "low": [1.0, 0.5],
    ...                    "close": [1.0, 1.0], "volume": [0.0, 0.0]}, index=idx)
    >>> [(p.problem, p.column, p.rows.tolist()) for p in row_problems(df)]
    [('high below max(open, close)', 'high', [1])]
    """
    found: list[RowProblem] = []
    values = {c: df[c].to_numpy(dtype=np.float64) for c in columns}
    for column, array in values.items():
        nan = np.flatnonzero(np.isnan(array))
        if len(nan):
            found.append(RowProblem("NaN value", column, nan))
        inf = np.flatnonzero(np.isinf(array))
        if len(inf):
            found.append(RowProblem("infinite value", column, inf))
    for column in _PRICES:
        if column in values:
            bad = np.flatnonzero(values[column] <= 0)
            if len(bad):
                found.append(RowProblem("non-positive price", column, bad))
    if all(c in values for c in _PRICES):
        op, hi, lo, cl = (values[c] for c in _PRICES)
        with np.errstate(invalid="ignore"):
            high_bad = np.flatnonzero(hi < np.maximum(op, cl))
            low_bad = np.flatnonzero(lo > np.minimum(op, cl))
        if len(high_bad):
            found.append(RowProblem("high below max(open, close)", "high", high_bad))
        if len(low_bad):
            found.append(RowProblem("low above min(open, close)", "low", low_bad))
    if "volume" in values:
        bad = np.flatnonzero(values["volume"] < 0)
        if len(bad):
            found.append(RowProblem("negative volume", "volume", bad))
    return found


def _timeframe_name(step_ns: int) -> str:
    seconds, rest = divmod(step_ns, 1_000_000_000)
    if rest:
        return str(pd.Timedelta(step_ns, unit="ns"))
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"  # pragma: no cover - every whole second matches "s"


def _resolve_timeframe(
    timeframe: str | None, attrs: dict, stamps: np.ndarray
) -> tuple[str | None, int | None]:
    """Timeframe name and length in ns (``None``: no gap check). A bad argument is a ValueError."""
    if timeframe is not None:
        if _MONTHS.match(timeframe):
            return timeframe, None  # calendar months have no fixed length: no gap check
        return timeframe, int(timeframe_to_timedelta(timeframe).value)
    attr = attrs.get("timeframe")
    if isinstance(attr, str):
        if _MONTHS.match(attr):
            return attr, None
        try:
            return attr, int(timeframe_to_timedelta(attr).value)
        except ValueError:
            pass  # a label we do not understand: infer from the data instead
    steps = np.diff(stamps)
    steps = steps[steps > 0]
    if len(steps) == 0:
        return None, None
    values, counts = np.unique(steps, return_counts=True)
    step = int(values[np.argmax(counts)])  # most common; ties -> the shortest
    return _timeframe_name(step), step


def _gap_report(
    stamps: np.ndarray,
    index: pd.DatetimeIndex,
    timeframe: str | None,
    step: int | None,
    *,
    strict: bool,
    allow_gaps: bool,
    source: str | None,
    kind: str,
) -> ValidationReport:
    first, last = index[0], index[-1]
    empty = ValidationReport(len(index), first, last, timeframe, 0, pd.Timedelta(0), 0, source, (), kind)
    if step is None or len(stamps) < 2:
        return empty
    steps = np.diff(stamps)
    if strict:
        off = np.flatnonzero(steps % step != 0) + 1
        if len(off):
            raise DataError(
                f"bar open times off the {timeframe} grid (step not a whole number of bars)",
                source=source,
                rows=off,
            )
    at = np.flatnonzero(steps >= 2 * step)
    if len(at) == 0:
        return empty
    missing = steps[at] // step - 1
    if not allow_gaps:
        raise DataError(
            f"{int(missing.sum())} missing {timeframe} bars ({len(at)} gap{'s' if len(at) > 1 else ''}); "
            "the bar after each gap is",
            source=source,
            rows=at + 1,
        )
    gaps = tuple(
        (pd.Timestamp(int(stamps[i] + step), unit="ns", tz="UTC"),
         pd.Timestamp(int(stamps[i + 1] - step), unit="ns", tz="UTC"))
        for i in at
    )
    return ValidationReport(
        bars=len(index),
        first=first,
        last=last,
        timeframe=timeframe,
        gap_count=len(at),
        largest_gap=pd.Timedelta(int(missing.max() * step), unit="ns"),
        missing_bars=int(missing.sum()),
        source=source,
        gaps=gaps,
        kind=kind,
    )


def _validate(
    df: pd.DataFrame,
    columns: tuple[str, ...],
    *,
    kind: str,
    timeframe: str | None,
    source: str | None,
    allow_gaps: bool,
    strict: bool,
    max_abs_rate: float | None = None,
) -> ValidationReport:
    if source is None and isinstance(df, pd.DataFrame):
        attr = df.attrs.get("source")
        source = str(attr) if attr is not None else None
    index = _check_frame(df, columns, source)
    stamps = index.asi8
    _check_order(stamps, source)
    problems = row_problems(df, columns)
    if problems:
        problem = problems[0]
        raise DataError(problem.problem, source=source, rows=problem.rows, column=problem.column)
    if max_abs_rate is not None:
        rates = df["funding_rate"].to_numpy(dtype=np.float64)
        wild = np.flatnonzero(np.abs(rates) >= max_abs_rate)
        if len(wild):
            raise DataError(
                f"implausible funding rate (|rate| >= {max_abs_rate} per settlement)",
                source=source,
                rows=wild,
                column="funding_rate",
            )
    name, step = _resolve_timeframe(timeframe, df.attrs, stamps)
    return _gap_report(
        stamps, index, name, step, strict=strict, allow_gaps=allow_gaps, source=source, kind=kind
    )


def validate_ohlcv(
    df: pd.DataFrame,
    *,
    timeframe: str | None = None,
    source: str | None = None,
    allow_gaps: bool = True,
) -> ValidationReport:
    """Check a canonical OHLCV frame; raise DataError at the first problem, report gaps.

    Parameters
    ----------
    df:
        Index ``date`` (UTC bar open times), float64 ``open high low close volume``; other
        columns are ignored.
    timeframe:
        Bar length (``"1h"``); default ``df.attrs["timeframe"]``, else the most common step.
    source:
        Named in errors and the report; default ``df.attrs["source"]``.
    allow_gaps:
        ``False`` makes missing bars an error too.

    Returns
    -------
    ValidationReport

    Raises
    ------
    DataError
        With source, rows (0-based positions) and column of the first problem (see the module
        docstring for the list and order of checks).

    >>> idx = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 03:00"], tz="UTC", name="date")
    >>> df = pd.DataFrame({"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5,
    ...                    "volume": 10.0}, index=idx)
    >>> report = validate_ohlcv(df, timeframe="1h")
    >>> report.gap_count, report.missing_bars, report.largest_gap
    (1, 2, Timedelta('0 days 02:00:00'))
    >>> validate_ohlcv(df, timeframe="1h", allow_gaps=False, source="x.csv")
    Traceback (most recent call last):
    ...
    quantum_trading.errors.DataError: x.csv: 2 missing 1h bars (1 gap); the bar after each gap is at row 1
    """
    return _validate(
        df, OHLCV_COLUMNS, kind="ohlcv", timeframe=timeframe, source=source,
        allow_gaps=allow_gaps, strict=True,
    )


def validate_mark(
    df: pd.DataFrame,
    *,
    timeframe: str | None = None,
    source: str | None = None,
    allow_gaps: bool = True,
) -> ValidationReport:
    """Check mark-price candles (``open high low close``) as :func:`validate_ohlcv` does.

    >>> idx = pd.date_range("2023-07-05", periods=3, freq="8h", tz="UTC", name="date")
    >>> df = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}, index=idx)
    >>> validate_mark(df).timeframe
    '8h'
    """
    return _validate(
        df, MARK_COLUMNS, kind="mark", timeframe=timeframe, source=source,
        allow_gaps=allow_gaps, strict=True,
    )


def validate_funding(
    df: pd.DataFrame,
    *,
    timeframe: str | None = None,
    source: str | None = None,
    max_abs_rate: float = 0.1,
) -> ValidationReport:
    """Check funding settlements: sorted, unique, finite, ``|funding_rate| < max_abs_rate``.

    Funding intervals change (8 h, 4 h, 1 h), so irregular steps are not an error; steps of two
    or more intervals (``timeframe``, default ``attrs`` or the most common step) are reported
    as gaps, never raised. Rates are per settlement (0.0001 = 0.01 %).

    >>> idx = pd.date_range("2023-07-05", periods=3, freq="8h", tz="UTC", name="date")
    >>> validate_funding(pd.DataFrame({"funding_rate": [1e-4, 1e-4, -2e-4]}, index=idx)).bars
    3
    """
    return _validate(
        df, FUNDING_COLUMNS, kind="funding", timeframe=timeframe, source=source,
        allow_gaps=True, strict=False, max_abs_rate=max_abs_rate,
    )
