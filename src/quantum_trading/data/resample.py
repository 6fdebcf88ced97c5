"""Resampling OHLCV to higher timeframes and aligning timeframes without look-ahead.

Timing contract (DESIGN.md, "Data conventions" and "Simulator semantics: Timing"): a bar is
labelled by its **open** time and covers ``[open, open + timeframe)``; a decision at a bar's
close may use everything up to and including that close. So

- :func:`resample_ohlcv` builds a higher bar from the source bars inside its bucket and labels
  it with the bucket's open time. Buckets are anchored at the Unix epoch (1970-01-01 00:00 UTC),
  weeks on Monday 00:00 UTC, as Binance does; a bucket missing any source bar is incomplete and
  is dropped unless asked for.
- :func:`align_to_lower` shows a higher bar (or any feature computed on higher bars) on a lower
  bar only once the higher bar has **closed** by the lower bar's close: the 4h bar opening
  00:00 closes at 04:00, so it first appears on the 1h bar opening 03:00 (closing 04:00).

>>> import pandas as pd
>>> idx = pd.date_range("2024-01-01", periods=8, freq="1h", tz="UTC", name="date")
>>> bars = pd.DataFrame({"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5,
...                      "volume": 10.0}, index=idx)
>>> four = resample_ohlcv(bars, "4h")
>>> four["volume"].tolist()
[40.0, 40.0]
>>> aligned = align_to_lower(four, bars.index, higher_timeframe="4h", lower_timeframe="1h")
>>> aligned["volume_4h"].notna().tolist()
[False, False, False, True, True, True, True, True]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from quantum_trading.data.timeframes import timeframe_to_ms
from quantum_trading.errors import DataError

__all__ = ["align_to_lower", "floor_to_timeframe", "merge_timeframes", "resample_ohlcv"]

_PRICE_COLUMNS = ("open", "high", "low", "close")
_NS_PER_MS = 1_000_000
_WEEK_MS = 604_800_000
_DAY_MS = 86_400_000
# 1970-01-05 (a Monday) is the anchor of week buckets; 1970-01-01 was a Thursday.
_MONDAY_ANCHOR_NS = 4 * _DAY_MS * _NS_PER_MS
_UNIT_MS = (("w", _WEEK_MS), ("d", _DAY_MS), ("h", 3_600_000), ("m", 60_000), ("s", 1000))


def _anchor_ns(timeframe_ms: int) -> int:
    return _MONDAY_ANCHOR_NS if timeframe_ms % _WEEK_MS == 0 else 0


def _floor_ns(ns: np.ndarray, timeframe_ms: int) -> np.ndarray:
    step = timeframe_ms * _NS_PER_MS
    anchor = _anchor_ns(timeframe_ms)
    return (ns - anchor) // step * step + anchor


def _ms_to_timeframe(ms: int) -> str:
    for unit, size in _UNIT_MS:
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _index_ns(index: pd.Index, what: str) -> np.ndarray:
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"{what} index is not a DatetimeIndex (got {type(index).__name__})", column="date")
    if index.tz is None or str(index.tz) != "UTC":
        raise DataError(f"{what} index must be tz-aware UTC (got tz={index.tz})", column="date")
    if index.hasnans:
        raise DataError(f"{what} index contains NaT", rows=np.flatnonzero(index.isna()), column="date")
    return index.as_unit("ns").asi8


def _sorted_unique_ns(index: pd.Index, what: str) -> np.ndarray:
    ns = _index_ns(index, what)
    if ns.size > 1:
        step = np.diff(ns)
        if (step < 0).any():
            raise DataError(f"{what} index is not sorted", rows=np.flatnonzero(step < 0) + 1, column="date")
        if (step == 0).any():
            raise DataError(f"{what} has duplicate timestamps", rows=np.flatnonzero(step == 0) + 1, column="date")
    return ns


def floor_to_timeframe(index: pd.DatetimeIndex, timeframe: str) -> pd.DatetimeIndex:
    """Open time of the ``timeframe`` bucket that contains each timestamp.

    Buckets are anchored at the Unix epoch, weeks at Monday 00:00 UTC (Binance's candles).

    >>> import pandas as pd
    >>> floor_to_timeframe(pd.DatetimeIndex(["2024-01-03 13:45"], tz="UTC"), "1w")[0]
    Timestamp('2024-01-01 00:00:00+0000', tz='UTC')
    """
    ns = _index_ns(index, "timestamps")
    floored = _floor_ns(ns, timeframe_to_ms(timeframe))
    return pd.DatetimeIndex(floored.view("datetime64[ns]"), name=index.name).tz_localize("UTC").as_unit(
        index.unit
    )


def _source_ms(df: pd.DataFrame, ns: np.ndarray, source_timeframe: str | None) -> tuple[int, str]:
    if source_timeframe is None:
        source_timeframe = df.attrs.get("timeframe")
    if source_timeframe is not None:
        return timeframe_to_ms(source_timeframe), source_timeframe
    if ns.size < 2:
        raise ValueError("cannot infer the source timeframe from fewer than 2 bars; pass source_timeframe")
    step_ms = int(np.diff(ns).min()) // _NS_PER_MS
    return step_ms, _ms_to_timeframe(step_ms)


def resample_ohlcv(
    df: pd.DataFrame,
    timeframe: str,
    *,
    source_timeframe: str | None = None,
    drop_incomplete: bool = True,
) -> pd.DataFrame:
    """Aggregate OHLCV bars to a higher timeframe (open first, high max, low min, close last,
    volume sum).

    Parameters
    ----------
    df:
        Bars with a UTC ``DatetimeIndex`` of bar **open** times (sorted, unique) and columns
        ``open high low close`` and optionally ``volume``. Other columns are not aggregated and
        do not appear in the result. Timestamps must lie on the source timeframe's grid.
    timeframe:
        Target bar length, a whole multiple of the source's (``"4h"`` from ``"1h"``).
    source_timeframe:
        Bar length of ``df``; default ``df.attrs["timeframe"]``, else the smallest spacing of
        the index.
    drop_incomplete:
        A target bar is complete when all ``target / source`` source bars of its bucket are
        present; buckets cut by the start or end of the data or by a gap are incomplete. By
        default they are dropped. With ``False`` they are kept (aggregated from the bars
        present) and a bool column ``complete`` says which are whole.

    Returns
    -------
    pd.DataFrame
        Index ``date`` = bucket open time (UTC, same resolution as ``df``); float64 columns in
        the order of ``df``; ``attrs`` copied from ``df`` with ``attrs["timeframe"] = timeframe``.
        A target bar closing at T is built only from source bars closing at or before T, so it
        is known at T (no look-ahead); NaN in the source propagates.

    Raises
    ------
    ValueError
        ``timeframe`` is not a whole multiple of the source timeframe (both are named).
    DataError
        Index not UTC, unsorted, duplicated, off the source grid, or columns missing.

    >>> import pandas as pd
    >>> idx = pd.date_range("2024-01-01 00:30", periods=4, freq="30min", tz="UTC", name="date")
    >>> bars = pd.DataFrame({"open": [1., 2, 3, 4], "high": [2., 3, 4, 5],
    ...                      "low": [0.5, 1, 2, 3], "close": [2., 3, 4, 5],
    ...                      "volume": 1.0}, index=idx)
    >>> out = resample_ohlcv(bars, "1h")  # 00:00 lacks its first half hour, 02:00 its second
    >>> str(out.index[0]), out.iloc[0].tolist(), len(out)
    ('2024-01-01 01:00:00+00:00', [2.0, 4.0, 1.0, 4.0, 2.0], 1)
    """
    missing = [c for c in _PRICE_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"missing OHLC column(s) {', '.join(missing)}", column=missing[0])
    ns = _sorted_unique_ns(df.index, "OHLCV")
    target_ms = timeframe_to_ms(timeframe)
    source_ms, source_name = _source_ms(df, ns, source_timeframe)
    if target_ms % source_ms != 0:
        raise ValueError(
            f"target timeframe {timeframe!r} is not a whole multiple of source timeframe {source_name!r}"
        )
    off_grid = np.flatnonzero(_floor_ns(ns, source_ms) != ns)
    if off_grid.size:
        raise DataError(f"timestamps are not on the {source_name} grid", rows=off_grid, column="date")
    if ns.size > 1 and int(np.diff(ns).min()) < source_ms * _NS_PER_MS:
        raise DataError(f"bars are closer together than the source timeframe {source_name}", column="date")

    columns = [c for c in ("open", "high", "low", "close", "volume") if c in df.columns]
    bucket = _floor_ns(ns, target_ms)
    if ns.size:
        starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    else:
        starts = np.empty(0, dtype=np.int64)
    ends = np.append(starts[1:], ns.size) if starts.size else starts
    complete = (ends - starts) == target_ms // source_ms
    data: dict[str, np.ndarray] = {}
    for column in columns:
        values = df[column].to_numpy(dtype=np.float64)
        if not starts.size:
            data[column] = np.empty(0)
        elif column == "open":
            data[column] = values[starts]
        elif column == "close":
            data[column] = values[ends - 1]
        elif column == "high":
            data[column] = np.maximum.reduceat(values, starts)
        elif column == "low":
            data[column] = np.minimum.reduceat(values, starts)
        else:
            data[column] = np.add.reduceat(values, starts)
    index = pd.DatetimeIndex(bucket[starts].view("datetime64[ns]"), name="date").tz_localize("UTC")
    out = pd.DataFrame(data, index=index.as_unit(df.index.unit), columns=columns)
    if drop_incomplete:
        out = out.loc[complete]
    else:
        out["complete"] = complete
    out.attrs = {**df.attrs, "timeframe": timeframe}
    return out


def align_to_lower(
    higher: pd.DataFrame | pd.Series,
    lower_index: pd.DatetimeIndex,
    *,
    higher_timeframe: str,
    lower_timeframe: str,
    suffix: str | None = None,
) -> pd.DataFrame | pd.Series:
    """Reindex higher-timeframe rows onto lower-timeframe bars, each visible only once closed.

    The lower bar opening at ``t`` (closing at ``t + lower``) gets the latest row of ``higher``
    whose bar has closed by then, i.e. with open time ``<= t + lower - higher``: a decision at
    the lower bar's close may use it. The 4h bar opening 00:00 first appears on the 1h bar
    opening 03:00 and stays until the next 4h bar present in ``higher`` has closed (a missing
    higher bar, e.g. a dropped incomplete one, leaves the previous one in place). Lower bars
    before the first closed higher bar get NaN.

    Parameters
    ----------
    higher:
        Frame (or Series) indexed by higher bar **open** times (UTC, sorted, unique): OHLCV or
        any features computed on them, e.g. a 4h RSI.
    lower_index:
        UTC open times of the lower bars.
    higher_timeframe, lower_timeframe:
        Bar lengths; the higher must not be shorter than the lower.
    suffix:
        Appended to each column name (or the Series name); default ``"_<higher_timeframe>"``,
        ``""`` for none.

    Returns
    -------
    pd.DataFrame | pd.Series
        Same kind as ``higher``, indexed by ``lower_index``. Integer columns become float and
        bool columns object where NaN had to be filled in.

    >>> import pandas as pd
    >>> four = pd.DataFrame({"close": [10.0, 20.0]},
    ...     index=pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 04:00"], tz="UTC", name="date"))
    >>> hours = pd.date_range("2024-01-01 02:00", periods=6, freq="1h", tz="UTC", name="date")
    >>> align_to_lower(four, hours, higher_timeframe="4h", lower_timeframe="1h")["close_4h"].tolist()
    [nan, 10.0, 10.0, 10.0, 10.0, 20.0]
    """
    higher_ms = timeframe_to_ms(higher_timeframe)
    lower_ms = timeframe_to_ms(lower_timeframe)
    if higher_ms < lower_ms:
        raise ValueError(
            f"higher timeframe {higher_timeframe!r} is shorter than lower timeframe {lower_timeframe!r}"
        )
    higher_ns = _sorted_unique_ns(higher.index, "higher-timeframe")
    lower_ns = _index_ns(lower_index, "lower-timeframe")
    latest_open = lower_ns + (lower_ms - higher_ms) * _NS_PER_MS
    pos = np.searchsorted(higher_ns, latest_open, side="right") - 1
    found = pos >= 0
    take = np.where(found, pos, 0)
    if len(higher):
        out = higher.iloc[take]
    else:
        out = higher.reindex(pd.DatetimeIndex([pd.NaT] * len(lower_index), tz="UTC"))
    out = out.set_axis(lower_index, axis=0)
    if not found.all():
        if isinstance(out, pd.DataFrame):
            out = out.where(np.broadcast_to(found[:, None], out.shape))
        else:
            out = out.where(found)
    suffix = f"_{higher_timeframe}" if suffix is None else suffix
    if isinstance(out, pd.Series):
        return out.rename(None if out.name is None else f"{out.name}{suffix}")
    out.columns = [f"{c}{suffix}" for c in out.columns]
    return out


def merge_timeframes(
    base: pd.DataFrame,
    others: Mapping[str, pd.DataFrame | None] | Sequence[str],
    *,
    base_timeframe: str,
) -> pd.DataFrame:
    """The base bars with higher-timeframe bars (or features) aligned onto them, look-ahead free.

    Parameters
    ----------
    base:
        Lower-timeframe bars (UTC open-time index); kept as they are.
    others:
        ``{timeframe: frame}`` of higher-timeframe frames (OHLCV or features, indexed by their
        open times) to align; a ``None`` frame, or a bare list of timeframes, means "resample
        the base's OHLCV to that timeframe" (complete buckets only).
    base_timeframe:
        Bar length of ``base``.

    Returns
    -------
    pd.DataFrame
        ``base``'s columns followed by each other frame's columns with suffix
        ``_<timeframe>``, aligned by :func:`align_to_lower`. Causal: merging ``base[:t]``
        gives the first ``t`` rows of merging all of ``base``.

    >>> import pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=8, freq="1h", tz="UTC", name="date")
    >>> bars = pd.DataFrame({"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5,
    ...                      "volume": 1.0}, index=idx)
    >>> merged = merge_timeframes(bars, ["4h"], base_timeframe="1h")
    >>> list(merged.columns)[5:], int(merged["volume_4h"].count())
    (['open_4h', 'high_4h', 'low_4h', 'close_4h', 'volume_4h'], 5)
    """
    items = others.items() if isinstance(others, Mapping) else ((tf, None) for tf in others)
    parts = [base]
    for timeframe, frame in items:
        if frame is None:
            frame = resample_ohlcv(base, timeframe, source_timeframe=base_timeframe)
        parts.append(
            align_to_lower(frame, base.index, higher_timeframe=timeframe, lower_timeframe=base_timeframe)
        )
    merged = pd.concat(parts, axis=1)
    duplicated = merged.columns[merged.columns.duplicated()]
    if len(duplicated):
        raise ValueError(f"merged columns collide: {', '.join(map(str, duplicated))}")
    merged.attrs = dict(base.attrs)
    return merged
