"""Readers: market-data files (CSV, Parquet, Feather, freqtrade JSON) to canonical frames.

Every reader returns a frame indexed by ``date`` (UTC ``DatetimeIndex``, nanoseconds, the bar
**open** time) with float64 value columns, in the file's own row order (readers never sort,
dedupe or fill: :mod:`~quantum_trading.data.validate` says what is wrong and
:mod:`~quantum_trading.data.repair` fixes it when asked):

========  ==============================================================================
kind      columns
========  ==============================================================================
OHLCV     ``open high low close volume``
funding   ``funding_rate`` (freqtrade keeps it in ``open``; times floored to the hour)
mark      ``open high low close`` (mark-price candles; volume is dropped)
========  ==============================================================================

What users bring is read tolerantly: the time may be a column named ``date``, ``timestamp``,
``time``, ``datetime`` or ``open_time`` (any case; first found in that order) or a datetime
index; its values epoch seconds / milliseconds / microseconds / nanoseconds (told apart by
magnitude) or date strings (naive strings are UTC; offsets are converted to UTC). Column names
are case-insensitive and extra columns are dropped. Content that cannot be used raises
:class:`~quantum_trading.errors.DataError` naming the file and, where it applies, the row
(0-based, in file order) and column; a missing file raises :class:`FileNotFoundError`.
"""

from __future__ import annotations

import errno
import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.errors import DataError

__all__ = [
    "FUNDING_COLUMNS",
    "MARK_COLUMNS",
    "OHLCV_COLUMNS",
    "TIME_COLUMNS",
    "floor_funding_times",
    "funding_from_frame",
    "mark_from_frame",
    "ohlcv_from_frame",
    "read_funding",
    "read_mark",
    "read_ohlcv",
    "read_table",
    "write_frame",
]

OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
MARK_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
FUNDING_COLUMNS: tuple[str, ...] = ("funding_rate",)
TIME_COLUMNS: tuple[str, ...] = ("date", "timestamp", "time", "datetime", "open_time")
"""Names (any case) taken as the bar open time, in order of preference."""

_ARRAY_COLUMNS = ("date", "open", "high", "low", "close", "volume")  # freqtrade JSON / headerless CSV
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".feather": "feather",
    ".arrow": "feather",
    ".json": "json",
}
# Output column -> accepted input names (lower case), in order of preference.
_OHLCV_SOURCES = {c: (c,) for c in OHLCV_COLUMNS}
_MARK_SOURCES = {c: (c, "mark_price", "mark") for c in MARK_COLUMNS}
_FUNDING_SOURCES = {"funding_rate": ("funding_rate", "fundingrate", "rate", "open")}
_JITTER = pd.Timedelta(seconds=1)


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".json.gz"):
        return "json.gz"
    if name.endswith(".csv.gz"):
        return "csv"
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"unknown file format {path.suffix!r} (use .csv, .parquet, .feather, .json or .json.gz)",
            source=str(path),
        )
    return fmt


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


def _name_array_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Name positional columns as freqtrade does: date, open, high, low, close, volume, extra_6…"""
    names = [
        _ARRAY_COLUMNS[i] if i < len(_ARRAY_COLUMNS) else f"extra_{i}" for i in range(frame.shape[1])
    ]
    return frame.set_axis(names, axis=1)


def _read_csv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    if frame.shape[1] > 0 and _is_number(frame.columns[0]):
        # No header row (e.g. Binance's kline dumps): columns by position.
        frame = _name_array_columns(pd.read_csv(path, header=None))
    return frame


def _json_to_frame(payload: Any, source: str) -> pd.DataFrame:
    if isinstance(payload, dict):
        if "columns" in payload and "data" in payload:  # pandas orient="split"
            return pd.DataFrame(payload["data"], columns=payload["columns"], index=payload.get("index"))
        return pd.DataFrame(payload)
    if not isinstance(payload, list):
        raise DataError("JSON is neither a list of rows nor an object of columns", source=source)
    if not payload:
        return pd.DataFrame({c: [] for c in _ARRAY_COLUMNS})
    if isinstance(payload[0], dict):
        bad = [i for i, row in enumerate(payload) if not isinstance(row, dict)]
        if bad:
            raise DataError("JSON row is not an object like the first row", source=source, rows=bad)
        return pd.DataFrame.from_records(payload)
    width = len(payload[0]) if isinstance(payload[0], list) else -1
    bad = [i for i, row in enumerate(payload) if not isinstance(row, list) or len(row) != width]
    if bad:
        raise DataError(
            f"JSON row is not an array of {width} values like the first row", source=source, rows=bad
        )
    return _name_array_columns(pd.DataFrame(payload))


def _read_json(path: Path, compressed: bool) -> pd.DataFrame:
    if compressed:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            payload = json.load(handle)
    else:
        with path.open(encoding="utf-8") as handle:
            payload = json.load(handle)
    return _json_to_frame(payload, str(path))


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a data file as it is (columns and index as stored), by extension.

    Formats: ``.csv`` (also ``.csv.gz``; a file without a header row is read by position as
    ``date open high low close volume …``), ``.parquet``, ``.feather``, ``.json`` and
    ``.json.gz`` (freqtrade's ``[[timestamp_ms, open, high, low, close, volume], …]``, a list of
    objects, or an object of columns).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    DataError
        Unknown extension or a file its format's reader cannot parse.

    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> _ = p.write_text("[[1700000000000, 1.0, 2.0, 0.5, 1.5, 10.0]]")
    >>> list(read_table(p).columns)
    ['date', 'open', 'high', 'low', 'close', 'volume']
    """
    path = Path(path)
    fmt = _format_of(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "market data file not found", str(path))
    try:
        if fmt == "csv":
            frame = _read_csv(path)
        elif fmt == "parquet":
            frame = pd.read_parquet(path)
        elif fmt == "feather":
            frame = pd.read_feather(path)
        else:
            frame = _read_json(path, compressed=fmt == "json.gz")
    except (DataError, MemoryError):
        raise
    except Exception as error:  # any parser failure on bad content becomes a DataError
        raise DataError(
            f"cannot read {fmt} file ({type(error).__name__}: {error})", source=str(path)
        ) from error
    frame.attrs = {"source": str(path)}
    return frame


# --- time parsing -------------------------------------------------------------------------------


def _bad_rows(values: Sequence[Any], parse: Any) -> list[int]:
    bad = []
    for i, value in enumerate(values):
        try:
            if value is None or (isinstance(value, float) and not np.isfinite(value)):
                raise ValueError("missing")
            result = parse(value)
            if result is pd.NaT:
                raise ValueError("missing")
        except (ValueError, TypeError, OverflowError):
            bad.append(i)
    return bad


def _epoch_unit(values: np.ndarray) -> str:
    magnitude = float(np.max(np.abs(values))) if len(values) else 0.0
    if magnitude < 1e11:
        return "s"
    if magnitude < 1e14:
        return "ms"
    if magnitude < 1e17:
        return "us"
    return "ns"


def _from_epoch(values: np.ndarray, source: str | None, column: str) -> pd.DatetimeIndex:
    if values.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise DataError("missing or non-finite timestamp", source=source, rows=bad, column=column)
    unit = _epoch_unit(values)
    try:
        return pd.DatetimeIndex(pd.to_datetime(values, unit=unit, utc=True))
    except (ValueError, OverflowError) as error:  # OutOfBoundsDatetime is a ValueError
        rows = _bad_rows(list(values), lambda v: pd.Timestamp(v, unit=unit))
        raise DataError(
            f"timestamp out of range as epoch {unit} ({error})", source=source, rows=rows, column=column
        ) from None


def _numbers_as_text(value: object) -> object:
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    return str(value) if isinstance(value, int | float | np.number) else value


def _from_text(values: pd.Series, source: str | None, column: str) -> pd.DatetimeIndex:
    if values.dtype == object:  # numbers among strings are text here, never epochs
        values = values.map(_numbers_as_text)
    for fmt in ("ISO8601", "mixed"):
        try:
            return pd.DatetimeIndex(pd.to_datetime(values, utc=True, format=fmt))
        except (ValueError, TypeError, OverflowError):
            continue
    rows = _bad_rows(list(values), lambda v: pd.Timestamp(v))
    raise DataError("unparseable timestamp", source=source, rows=rows, column=column)


def _parse_times(values: pd.Series, source: str | None, column: str) -> pd.DatetimeIndex:
    """Any time column to a UTC nanosecond DatetimeIndex named ``date`` (raises DataError)."""
    values = values.reset_index(drop=True)
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M":
        index = pd.DatetimeIndex(values)
        index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    elif pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_complex_dtype(dtype):
        raise DataError(f"{dtype} values are not timestamps", source=source, column=column)
    elif pd.api.types.is_numeric_dtype(dtype):
        kind = "f" if pd.api.types.is_float_dtype(dtype) or values.hasnans else "i"
        array = values.to_numpy(dtype=np.float64 if kind == "f" else np.int64, na_value=np.nan)
        index = _from_epoch(array, source, column)
    else:
        try:
            numeric = pd.to_numeric(values, errors="coerce")
        except (TypeError, ValueError):
            numeric = None
        if numeric is not None and len(values) and numeric.notna().sum() == values.notna().sum() > 0:
            return _parse_times(numeric, source, column)
        index = _from_text(values, source, column)
    missing = np.flatnonzero(index.isna())
    if len(missing):
        raise DataError("missing timestamp", source=source, rows=missing, column=column)
    try:
        index = index.as_unit("ns")
    except ValueError:  # OutOfBoundsDatetime: beyond 1677-2262
        limit = (pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC"))
        rows = np.flatnonzero((index < limit[0]) | (index > limit[1]))
        raise DataError(
            "timestamp outside 1677-2262", source=source, rows=rows, column=column
        ) from None
    return index.rename("date")


def _to_float(values: pd.Series, source: str | None, column: str) -> np.ndarray:
    """A value column to float64; NaN stays NaN (validation judges it), junk raises DataError."""
    values = values.reset_index(drop=True)
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_complex_dtype(dtype):
        raise DataError(f"{dtype} values where numbers are expected", source=source, column=column)
    if isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind in "mM":
        raise DataError("timestamps where numbers are expected", source=source, column=column)
    if pd.api.types.is_numeric_dtype(dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        numeric = pd.to_numeric(values, errors="coerce")
        bad = np.flatnonzero(numeric.isna().to_numpy() & values.notna().to_numpy())
    except (TypeError, ValueError):
        numeric = None
        bad = np.asarray(_bad_rows(list(values), float))
    if numeric is None or len(bad):
        raise DataError("non-numeric value", source=source, rows=bad, column=column)
    return numeric.to_numpy(dtype=np.float64, na_value=np.nan)


def _canonical(
    frame: pd.DataFrame, sources: dict[str, tuple[str, ...]], source: str | None
) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(frame).__name__}", source=source)
    names = [str(c).strip().lower() for c in frame.columns]
    seen: dict[str, int] = {}
    for position, name in enumerate(names):
        if name in seen:
            raise DataError(
                "two columns with this name (names are case-insensitive)", source=source, column=name
            )
        seen[name] = position

    time_name = next((n for n in TIME_COLUMNS if n in seen), None)
    index_name = str(frame.index.name).strip().lower() if frame.index.name is not None else None
    if time_name is not None:
        index = _parse_times(frame.iloc[:, seen[time_name]], source, str(frame.columns[seen[time_name]]))
    elif isinstance(frame.index, pd.DatetimeIndex) or index_name in TIME_COLUMNS:
        index = _parse_times(pd.Series(frame.index), source, str(frame.index.name or "index"))
    else:
        raise DataError(
            f"no time column (looked for {', '.join(TIME_COLUMNS)} in any case, or a datetime index)",
            source=source,
            column="date",
        )

    data: dict[str, np.ndarray] = {}
    for out, candidates in sources.items():
        found = next((c for c in candidates if c in seen), None)
        if found is None:
            raise DataError(
                f"missing column (looked for {', '.join(candidates)}; have {', '.join(names) or 'none'})",
                source=source,
                column=out,
            )
        data[out] = _to_float(frame.iloc[:, seen[found]], source, str(frame.columns[seen[found]]))
    result = pd.DataFrame(data, index=index)
    result.attrs = {"source": source} if source is not None else {}
    return result


def ohlcv_from_frame(frame: pd.DataFrame, *, source: str | None = None) -> pd.DataFrame:
    """Any OHLCV-like frame to the canonical OHLCV frame (see the module docstring).

    The time is the bar open time; rows stay in the input's order (not sorted, not deduped).

    >>> raw = pd.DataFrame([[1700000000000, 1.0, 2.0, 0.5, 1.5, 10.0]],
    ...                    columns=["Timestamp", "Open", "High", "Low", "Close", "Volume"])
    >>> bars = ohlcv_from_frame(raw)
    >>> bars.index[0], list(bars.columns)
    (Timestamp('2023-11-14 22:13:20+0000', tz='UTC'), ['open', 'high', 'low', 'close', 'volume'])
    """
    return _canonical(frame, _OHLCV_SOURCES, source)


def mark_from_frame(frame: pd.DataFrame, *, source: str | None = None) -> pd.DataFrame:
    """Mark-price candles to ``open high low close`` (float64, UTC open-time index).

    A frame with a single ``mark`` / ``mark_price`` column and no OHLC gets that price in all
    four columns. Volume is dropped.

    >>> raw = pd.DataFrame({"date": ["2023-07-05 08:00"], "mark": [30765.9]})
    >>> mark_from_frame(raw)["close"].iloc[0]
    np.float64(30765.9)
    """
    return _canonical(frame, _MARK_SOURCES, source)


def floor_funding_times(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Settlement times without exchange jitter: floored to the hour, 1 s early counts as on time.

    Binance stamps settlements a few milliseconds after the hour (``08:00:00.008``), and now and
    then just before it (``07:59:59.999``); both become ``08:00``.

    >>> floor_funding_times(pd.DatetimeIndex(["2023-07-05 08:00:00.008", "2023-07-05 15:59:59.999"],
    ...                                      tz="UTC")).strftime("%H:%M").tolist()
    ['08:00', '16:00']
    """
    return (index + _JITTER).floor("h").rename("date")


def funding_from_frame(frame: pd.DataFrame, *, source: str | None = None) -> pd.DataFrame:
    """Funding settlements to one float64 column ``funding_rate`` (rate per settlement).

    Uses ``funding_rate`` when present, else freqtrade's ``open`` column. Times are floored to
    the hour (:func:`floor_funding_times`); the rate at ``t`` is the one settled at ``t``.

    >>> raw = pd.DataFrame({"date": pd.to_datetime(["2023-07-05 08:00:00.008"], utc=True),
    ...                     "open": [0.0001], "high": [0.0], "low": [0.0], "close": [0.0]})
    >>> rates = funding_from_frame(raw)
    >>> rates.index[0], list(rates.columns)
    (Timestamp('2023-07-05 08:00:00+0000', tz='UTC'), ['funding_rate'])
    """
    result = _canonical(frame, _FUNDING_SOURCES, source)
    try:
        result.index = floor_funding_times(result.index)
    except (OverflowError, ValueError):  # within 1 s of the last representable time (2262)
        last = int(result.index.asi8.argmax())
        raise DataError("settlement time too close to the end of the representable range "
                        "(2262-04-11)", source=source, rows=[last], column="date") from None
    return result


def read_ohlcv(path: str | Path) -> pd.DataFrame:
    """Read an OHLCV file (any supported format) as the canonical OHLCV frame, in file order.

    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "btc.csv"
    >>> _ = p.write_text("time,open,high,low,close,volume\\n2024-01-01 00:00,1,2,0.5,1.5,10\\n")
    >>> read_ohlcv(p).index[0]
    Timestamp('2024-01-01 00:00:00+0000', tz='UTC')
    """
    return ohlcv_from_frame(read_table(path), source=str(path))


def read_funding(path: str | Path) -> pd.DataFrame:
    """Read a funding-rate file as a ``funding_rate`` frame (see :func:`funding_from_frame`).

    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "f.json"
    >>> _ = p.write_text("[[1688544000008, 0.0001, 0, 0, 0, 0]]")
    >>> read_funding(p).index[0]
    Timestamp('2023-07-05 08:00:00+0000', tz='UTC')
    """
    return funding_from_frame(read_table(path), source=str(path))


def read_mark(path: str | Path) -> pd.DataFrame:
    """Read a mark-price candle file as an ``open high low close`` frame.

    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.json"
    >>> _ = p.write_text("[[1688544000000, 30765.9, 30800, 30300, 30345, 0]]")
    >>> list(read_mark(p).columns)
    ['open', 'high', 'low', 'close']
    """
    return mark_from_frame(read_table(path), source=str(path))


def write_frame(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a canonical frame (index ``date``) so that the readers give it back unchanged.

    By extension: ``.csv`` (ISO times with ``+00:00``), ``.parquet`` and ``.feather`` (a
    ``date`` column, ``timestamp[ns, UTC]``), ``.json`` / ``.json.gz`` (freqtrade's arrays
    ``[timestamp_ms, value columns…]``; sub-millisecond times are truncated). Parent folders are
    created. Returns the path written.

    >>> import pathlib, tempfile
    >>> df = pd.DataFrame({"open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5],
    ...                    "volume": [10.0]},
    ...                   index=pd.DatetimeIndex(["2024-01-01"], tz="UTC", name="date"))
    >>> p = write_frame(df, pathlib.Path(tempfile.mkdtemp()) / "x.json.gz")
    >>> read_ohlcv(p).equals(df)
    True
    """
    path = Path(path)
    fmt = _format_of(path)
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise DataError("frame to write has no DatetimeIndex", source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    table = frame.rename_axis("date").reset_index()
    if fmt == "csv":
        table.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S.%f%z")
    elif fmt == "parquet":
        table.to_parquet(path, index=False)
    elif fmt == "feather":
        table.to_feather(path)
    else:
        columns = next(
            (list(kind) for kind in (OHLCV_COLUMNS, MARK_COLUMNS, FUNDING_COLUMNS)
             if set(kind) == set(frame.columns)),
            None,
        )
        if columns is None:
            raise DataError(
                "JSON files hold only OHLCV, mark or funding_rate columns; "
                f"this frame has {', '.join(map(str, frame.columns))}",
                source=str(path),
            )
        stamps = frame.index.as_unit("ns").asi8 // 1_000_000
        values = frame[columns].to_numpy(dtype=np.float64, na_value=np.nan)
        rows = [[int(t), *(None if not np.isfinite(v) else float(v) for v in row)]
                for t, row in zip(stamps, values, strict=True)]
        text = json.dumps(rows, separators=(",", ":"))
        if fmt == "json.gz":
            with gzip.open(path, "wt", encoding="utf-8") as handle:
                handle.write(text)
        else:
            path.write_text(text, encoding="utf-8")
    return path
