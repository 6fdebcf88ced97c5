"""The Parquet store: one series (OHLCV, funding or mark) per file, merged in place, written atomically.

Files live where :func:`quantum_trading.data.layout.store_path` says, under the store's root
(``user_data/data``)::

    <root>/<exchange>/<market_type>/BTC_USDT_USDT-1h-futures.parquet

Each file holds a ``date`` column (UTC, ``timestamp[ns]``, bar open time, sorted and unique) and
the float64 value columns of its kind:

========  ===================================
kind      columns
========  ===================================
ohlcv     ``open high low close volume``
funding   ``funding_rate`` (at funding times)
mark      ``open high low close``
========  ===================================

Merging never duplicates a timestamp and never drops a stored bar: the result is the union of
stored and new timestamps, and where both have a timestamp the new row wins. A write goes to a
temporary file in the same folder, is flushed to disk (``fsync``) and then renamed over the old
file (``os.replace``), so a crash mid-write leaves the old file as it was. One writer per file at
a time is assumed (no locking).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quantum_trading.data.layout import DATA_KINDS, parse_data_file_name, store_path
from quantum_trading.errors import DataError

__all__ = ["KIND_COLUMNS", "LIST_COLUMNS", "MergeReport", "ParquetStore"]

KIND_COLUMNS: dict[str, tuple[str, ...]] = {
    "ohlcv": ("open", "high", "low", "close", "volume"),
    "funding": ("funding_rate",),
    "mark": ("open", "high", "low", "close"),
}
"""The value columns (float64, in this order) of each kind of series."""

LIST_COLUMNS: tuple[str, ...] = (
    "exchange",
    "market_type",
    "symbol",
    "timeframe",
    "kind",
    "bars",
    "first",
    "last",
    "path",
)
"""Columns of :meth:`ParquetStore.list`."""

_TS_DTYPE = "datetime64[ns, UTC]"


@dataclass(frozen=True)
class MergeReport:
    """What one :meth:`ParquetStore.merge` did to one file.

    Attributes
    ----------
    path:
        The series' file.
    added:
        Rows whose timestamps were not stored before.
    updated:
        Rows whose timestamps were stored, with different values (the new values won).
    unchanged:
        Rows whose timestamps were stored with exactly the same values.
    first, last:
        Span of the merged input (bar open times, UTC); ``None`` for an empty input.
    bars:
        Rows in the file after the merge.
    """

    path: Path
    added: int
    updated: int
    unchanged: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    bars: int


def _empty_frame(kind: str) -> pd.DataFrame:
    index = pd.DatetimeIndex([], dtype=_TS_DTYPE, name="date")
    return pd.DataFrame(
        {c: pd.Series([], dtype="float64") for c in KIND_COLUMNS[kind]}, index=index
    )


def _check_kind(kind: str) -> None:
    if kind not in DATA_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(DATA_KINDS)}")


def _canonical(df: pd.DataFrame, kind: str, source: str) -> pd.DataFrame:
    """Check an input frame and return it in the store's canonical form (raises DataError)."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}", source=source)
    frame = df
    if not isinstance(frame.index, pd.DatetimeIndex):
        if "date" not in frame.columns:
            raise DataError("no DatetimeIndex and no 'date' column", source=source)
        frame = frame.set_index("date")
        if not isinstance(frame.index, pd.DatetimeIndex):
            try:
                frame.index = pd.DatetimeIndex(frame.index)
            except (TypeError, ValueError) as error:
                raise DataError(
                    f"'date' column is not made of timestamps ({error})", source=source
                ) from None
    index = frame.index
    if index.tz is None:
        raise DataError("timestamps have no time zone; UTC expected", source=source, column="date")
    missing_ts = np.flatnonzero(index.isna())
    if len(missing_ts):
        raise DataError("missing timestamp", source=source, rows=missing_ts, column="date")
    expected = KIND_COLUMNS[kind]
    missing = [c for c in expected if c not in frame.columns]
    extra = [c for c in frame.columns if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing columns {', '.join(map(str, missing))}")
        if extra:
            parts.append(f"unexpected columns {', '.join(map(str, extra))}")
        raise DataError(
            f"{'; '.join(parts)} (a {kind} series has exactly: {' '.join(expected)})", source=source
        )
    values = {}
    for column in expected:
        try:
            values[column] = frame[column].to_numpy(dtype="float64")
        except (TypeError, ValueError):
            raise DataError("values are not numbers", source=source, column=column) from None
        bad = np.flatnonzero(~np.isfinite(values[column]))
        if len(bad):
            raise DataError("NaN or infinite value", source=source, rows=bad, column=column)
    out_index = pd.DatetimeIndex(index.tz_convert("UTC").as_unit("ns"), name="date")
    duplicated = np.flatnonzero(out_index.duplicated(keep="first"))
    if len(duplicated):
        raise DataError("duplicate timestamps", source=source, rows=duplicated, column="date")
    i8 = out_index.asi8
    unsorted = np.flatnonzero(i8[1:] < i8[:-1]) + 1
    if len(unsorted):
        raise DataError(
            "timestamps not in ascending order", source=source, rows=unsorted, column="date"
        )
    return pd.DataFrame(values, index=out_index)


class ParquetStore:
    """Market-data series kept as Parquet files under ``root`` (usually ``user_data/data``).

    Parameters
    ----------
    root:
        The data folder; files go to ``<root>/<exchange>/<market_type>/<name>.parquet``.
        Created on the first write.

    Examples
    --------
    >>> import tempfile
    >>> store = ParquetStore(Path(tempfile.mkdtemp()))
    >>> bars = pd.DataFrame(
    ...     {"open": [1.0, 2.0], "high": [2.0, 3.0], "low": [0.5, 1.5], "close": [2.0, 2.5],
    ...      "volume": [10.0, 12.0]},
    ...     index=pd.DatetimeIndex(["2023-07-04 13:00", "2023-07-04 14:00"], tz="UTC", name="date"),
    ... )
    >>> report = store.merge(bars, exchange="binance", symbol="BTC/USDT:USDT", timeframe="1h",
    ...                      market_type="futures", kind="ohlcv")
    >>> (report.added, report.updated, report.bars)
    (2, 0, 2)
    >>> store.last_timestamp(exchange="binance", symbol="BTC/USDT:USDT", timeframe="1h")
    Timestamp('2023-07-04 14:00:00+0000', tz='UTC')
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ParquetStore({str(self.root)!r})"

    # ------------------------------------------------------------------ paths
    def path(
        self,
        *,
        exchange: str,
        symbol: str,
        timeframe: str,
        market_type: str = "futures",
        kind: str = "ohlcv",
    ) -> Path:
        """The file of one series (it may not exist yet)."""
        return store_path(self.root, exchange, symbol, timeframe, market_type, kind)

    def exists(
        self,
        *,
        exchange: str,
        symbol: str,
        timeframe: str,
        market_type: str = "futures",
        kind: str = "ohlcv",
    ) -> bool:
        """Whether the series has a file."""
        path = self.path(exchange=exchange, symbol=symbol, timeframe=timeframe,
                         market_type=market_type, kind=kind)
        return path.exists()

    # ------------------------------------------------------------------ reading
    def read(
        self,
        *,
        exchange: str,
        symbol: str,
        timeframe: str,
        market_type: str = "futures",
        kind: str = "ohlcv",
        start: pd.Timestamp | str | None = None,
        end: pd.Timestamp | str | None = None,
    ) -> pd.DataFrame:
        """One stored series as a canonical frame.

        Parameters
        ----------
        start, end:
            Optional bounds on the bar open time, both inclusive (UTC; naive values are UTC).

        Returns
        -------
        pandas.DataFrame
            UTC ``DatetimeIndex`` named ``date`` (bar open time), float64 columns of the kind
            (see :data:`KIND_COLUMNS`).

        Raises
        ------
        DataError
            When the series is not stored or its file cannot be read.
        """
        _check_kind(kind)
        path = self.path(exchange=exchange, symbol=symbol, timeframe=timeframe,
                         market_type=market_type, kind=kind)
        if not path.exists():
            raise DataError(
                f"no stored {kind} data for {symbol} {timeframe} ({market_type})", source=str(path)
            )
        frame = self._read_file(path, kind)
        if start is not None:
            frame = frame[frame.index >= _utc(start)]
        if end is not None:
            frame = frame[frame.index <= _utc(end)]
        return frame

    @staticmethod
    def _read_file(path: Path, kind: str) -> pd.DataFrame:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as error:
            raise DataError(f"cannot read stored file ({error})", source=str(path)) from None
        columns = ("date", *KIND_COLUMNS[kind])
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise DataError(f"stored file lacks columns {', '.join(missing)}", source=str(path))
        raw = table.select(list(columns)).to_pandas()
        index = _utc_index(pd.DatetimeIndex(raw["date"], name="date"))
        return pd.DataFrame(
            {c: raw[c].to_numpy(dtype="float64") for c in KIND_COLUMNS[kind]}, index=index
        )

    @staticmethod
    def _read_dates(path: Path) -> pd.DatetimeIndex:
        try:
            table = pq.read_table(path, columns=["date"])
        except (OSError, pa.ArrowException, KeyError) as error:
            raise DataError(f"cannot read stored file ({error})", source=str(path)) from None
        return _utc_index(pd.DatetimeIndex(table.column("date").to_pandas(), name="date"))

    def _stored_dates(
        self, exchange: str, symbol: str, timeframe: str, market_type: str, kind: str
    ) -> pd.DatetimeIndex:
        """The stored bar open times of a series; empty when it has no file."""
        path = self.path(exchange=exchange, symbol=symbol, timeframe=timeframe,
                         market_type=market_type, kind=kind)
        return self._read_dates(path) if path.exists() else pd.DatetimeIndex([])

    def first_timestamp(
        self,
        *,
        exchange: str,
        symbol: str,
        timeframe: str,
        market_type: str = "futures",
        kind: str = "ohlcv",
    ) -> pd.Timestamp | None:
        """Open time of the first stored bar (UTC), or ``None`` when nothing is stored."""
        dates = self._stored_dates(exchange, symbol, timeframe, market_type, kind)
        return dates[0] if len(dates) else None

    def last_timestamp(
        self,
        *,
        exchange: str,
        symbol: str,
        timeframe: str,
        market_type: str = "futures",
        kind: str = "ohlcv",
    ) -> pd.Timestamp | None:
        """Open time of the last stored bar (UTC), or ``None`` when nothing is stored.

        Downloads resume from here (re-fetching this bar, which may have been incomplete).
        """
        dates = self._stored_dates(exchange, symbol, timeframe, market_type, kind)
        return dates[-1] if len(dates) else None

    def list(self) -> pd.DataFrame:
        """Every stored series, one row each.

        Returns
        -------
        pandas.DataFrame
            Columns ``exchange market_type symbol timeframe kind bars first last path``
            (``first``/``last``: UTC bar open times), sorted by exchange, market type, symbol,
            kind and timeframe.
        """
        rows = []
        if self.root.exists():
            for path in sorted(self.root.glob("*/*/*.parquet")):
                parsed = parse_data_file_name(path)
                if parsed is None or parsed.extension != ".parquet":
                    continue
                dates = self._read_dates(path)
                rows.append(
                    {
                        "exchange": path.parent.parent.name,
                        "market_type": path.parent.name,
                        "symbol": parsed.symbol,
                        "timeframe": parsed.timeframe,
                        "kind": parsed.kind,
                        "bars": len(dates),
                        "first": dates[0] if len(dates) else pd.NaT,
                        "last": dates[-1] if len(dates) else pd.NaT,
                        "path": path,
                    }
                )
        frame = pd.DataFrame(rows, columns=list(LIST_COLUMNS))
        frame["bars"] = frame["bars"].astype("int64")
        for column in ("first", "last"):
            frame[column] = pd.to_datetime(frame[column], utc=True).astype(_TS_DTYPE)
        return frame.sort_values(
            ["exchange", "market_type", "symbol", "kind", "timeframe"], ignore_index=True
        )

    # ------------------------------------------------------------------ writing
    def merge(
        self,
        df: pd.DataFrame,
        *,
        exchange: str,
        symbol: str,
        timeframe: str,
        market_type: str = "futures",
        kind: str = "ohlcv",
    ) -> MergeReport:
        """Merge ``df`` into the stored series: union of timestamps, new rows win.

        Parameters
        ----------
        df:
            Canonical frame of the kind: UTC ``DatetimeIndex`` (bar open time; a ``date`` column
            is accepted instead) and exactly the kind's columns (:data:`KIND_COLUMNS`). It must
            be sorted, without duplicate timestamps and without NaN/inf values.

        Returns
        -------
        MergeReport
            Rows added, updated (same timestamp, other values), unchanged; the input's span;
            the file's row count after the merge.

        Raises
        ------
        DataError
            When ``df`` breaks the rules above (nothing is written), or the stored file cannot
            be read.

        Notes
        -----
        The file is rewritten atomically (temporary file in the same folder, ``fsync``,
        ``os.replace``): after a crash it holds either the old or the new series, never a mix.
        """
        _check_kind(kind)
        path = self.path(exchange=exchange, symbol=symbol, timeframe=timeframe,
                         market_type=market_type, kind=kind)
        source = f"merge into {path}"
        new = _canonical(df, kind, source)
        if new.empty:
            bars = len(self._read_dates(path)) if path.exists() else 0
            return MergeReport(path, 0, 0, 0, None, None, bars)
        old = self._read_file(path, kind) if path.exists() else _empty_frame(kind)
        overlap = new.index.intersection(old.index)
        if len(overlap):
            same = (old.loc[overlap].to_numpy() == new.loc[overlap].to_numpy()).all(axis=1)
            unchanged = int(same.sum())
        else:
            unchanged = 0
        updated = len(overlap) - unchanged
        added = len(new) - len(overlap)
        if added == 0 and updated == 0:
            return MergeReport(path, 0, 0, unchanged, new.index[0], new.index[-1], len(old))
        merged = pd.concat([old[~old.index.isin(overlap)], new]).sort_index(kind="stable")
        self._write_atomic(path, merged)
        return MergeReport(
            path, added, updated, unchanged, new.index[0], new.index[-1], len(merged)
        )

    @staticmethod
    def _write_atomic(path: Path, frame: pd.DataFrame) -> None:
        """Write ``frame`` to ``path`` through a temporary file, fsync and ``os.replace``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(frame.reset_index(), preserve_index=False)
        # a new, unique name next to the target; "x" mode creates it with the usual permissions
        tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
        try:
            with open(tmp, "xb") as handle:
                pq.write_table(table, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a directory; the file itself was synced
        pass
    finally:
        os.close(fd)


def _utc_index(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Stored times as UTC nanoseconds (files written without a time zone are UTC)."""
    return (index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")).as_unit("ns")


def _utc(value: pd.Timestamp | str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
