"""The three load entry points (OHLCV, funding, mark) and the joins of funding and mark onto bars.

Load by path (any format the readers know; symbol, timeframe and market type are read from a
freqtrade-style file name, the exchange from a ``<exchange>/<market_type>/`` folder), or by
``(exchange, symbol, timeframe, market_type)`` under a data folder laid out as freqtrade's (and
our Parquet store's)::

    <data_dir>/<exchange>/futures/BTC_USDT_USDT-1h-futures.feather

Every loaded frame carries ``attrs``: ``source`` (file path), ``kind``, and where known
``exchange``, ``symbol``, ``timeframe``, ``market_type``; with ``validate=True`` (the default)
also ``validation``, the one-line :meth:`ValidationReport.summary` (gaps are allowed and
described there; anything else wrong raises :class:`~quantum_trading.errors.DataError`). With
``validate=False`` rows come back in file order, unchecked, for
:func:`~quantum_trading.data.repair.repair_ohlcv` or a look by eye.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from quantum_trading.data.layout import candidate_paths, parse_data_file_name
from quantum_trading.data.readers import (
    floor_funding_times,
    funding_from_frame,
    mark_from_frame,
    ohlcv_from_frame,
    read_table,
)
from quantum_trading.data.symbols import MARKET_TYPES
from quantum_trading.data.timeframes import timeframe_to_timedelta
from quantum_trading.data.validate import (
    ValidationReport,
    validate_funding,
    validate_mark,
    validate_ohlcv,
)
from quantum_trading.errors import DataError
from quantum_trading.paths import user_data_dir

__all__ = ["find_data_file", "join_funding", "join_mark", "load_funding", "load_mark", "load_ohlcv"]

_DEFAULT_TIMEFRAME: dict[str, str | None] = {"ohlcv": None, "funding": "8h", "mark": "8h"}
_CONVERTERS: dict[str, Callable[..., pd.DataFrame]] = {
    "ohlcv": ohlcv_from_frame,
    "funding": funding_from_frame,
    "mark": mark_from_frame,
}
_VALIDATORS: dict[str, Callable[..., ValidationReport]] = {
    "ohlcv": validate_ohlcv,
    "funding": validate_funding,
    "mark": validate_mark,
}


def find_data_file(
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    market_type: str = "futures",
    kind: str = "ohlcv",
    data_dir: str | Path | None = None,
) -> Path:
    """The first existing file of a series among :func:`~quantum_trading.data.layout.candidate_paths`.

    ``data_dir`` defaults to ``user_data/data``. Raises DataError listing every path tried when
    none exists (ValueError for a malformed symbol, market type or kind).

    >>> find_data_file(exchange="binance", symbol="BTC/USDT:USDT", timeframe="1h",
    ...                data_dir="/nowhere")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    quantum_trading.errors.DataError: /nowhere: no ohlcv file for BTC/USDT:USDT 1h (futures) on binance; tried /nowhere/binance/futures/BTC_USDT_USDT-1h-futures.parquet, ...
    """
    root = Path(data_dir) if data_dir is not None else user_data_dir() / "data"
    tried = candidate_paths(root, exchange, symbol, timeframe, market_type, kind)
    for path in tried:
        if path.is_file():
            return path
    raise DataError(
        f"no {kind} file for {symbol} {timeframe} ({market_type}) on {exchange}; "
        f"tried {', '.join(map(str, tried))}",
        source=str(root),
    )


def _load(
    kind: str,
    path: str | Path | None,
    *,
    exchange: str | None,
    symbol: str | None,
    timeframe: str | None,
    market_type: str,
    data_dir: str | Path | None,
    validate: bool,
) -> pd.DataFrame:
    if path is not None:
        file = Path(path)
        meta = parse_data_file_name(file)
        if meta is not None and meta.kind != kind:
            raise DataError(
                f"the file name says {meta.kind} data, not {kind}; use load_{meta.kind}",
                source=str(file),
            )
        if exchange is None and file.parent.name in MARKET_TYPES and file.parent.parent.name:
            exchange = file.parent.parent.name
        symbol = symbol or (meta.symbol if meta else None)
        timeframe = timeframe or (meta.timeframe if meta else None)
        market = meta.market_type if meta else market_type
    else:
        if exchange is None or symbol is None:
            raise ValueError("give a path, or exchange= and symbol= (and timeframe=)")
        timeframe = timeframe or _DEFAULT_TIMEFRAME[kind]
        if timeframe is None:
            raise ValueError("timeframe= is needed to find OHLCV data by symbol, e.g. timeframe='1h'")
        file = find_data_file(
            exchange=exchange, symbol=symbol, timeframe=timeframe, market_type=market_type,
            kind=kind, data_dir=data_dir,
        )
        market = market_type
    frame = _CONVERTERS[kind](read_table(file), source=str(file))
    known = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe, "market_type": market}
    frame.attrs = {"source": str(file), "kind": kind, **{k: v for k, v in known.items() if v}}
    if validate:
        report = _VALIDATORS[kind](frame, timeframe=timeframe, source=str(file))
        frame.attrs["validation"] = report.summary()
    return frame


def load_ohlcv(
    path: str | Path | None = None,
    *,
    exchange: str | None = None,
    symbol: str | None = None,
    timeframe: str | None = None,
    market_type: str = "futures",
    data_dir: str | Path | None = None,
    validate: bool = True,
) -> pd.DataFrame:
    """Load OHLCV bars: index ``date`` (UTC bar **open** time), float64 ``open high low close volume``.

    Parameters
    ----------
    path:
        A CSV, Parquet, Feather or freqtrade JSON(.gz) file. Its name, if freqtrade-style
        (``BTC_USDT_USDT-1h-futures.feather``), gives symbol, timeframe and market type.
    exchange, symbol, timeframe, market_type:
        Without ``path``: the series to look for under ``data_dir`` (ccxt symbol such as
        ``"BTC/USDT:USDT"``; ``timeframe`` required). With ``path``: override what the name says.
    data_dir:
        The data folder; default ``user_data/data``.
    validate:
        Run :func:`~quantum_trading.data.validate.validate_ohlcv` (gaps allowed; the summary is
        put in ``attrs["validation"]``).

    Raises
    ------
    DataError
        Unreadable or invalid content (naming file, row, column), or no file found by symbol
        (listing the paths tried).
    FileNotFoundError
        ``path`` does not exist.

    >>> from quantum_trading.paths import real_data_dir
    >>> bars = load_ohlcv(exchange="binance", symbol="BTC/USDT:USDT", timeframe="1h",
    ...                   data_dir=real_data_dir())
    >>> bars.attrs["symbol"], len(bars), bars.index[0]
    ('BTC/USDT:USDT', 1054, Timestamp('2023-07-04 13:00:00+0000', tz='UTC'))
    """
    return _load(
        "ohlcv", path, exchange=exchange, symbol=symbol, timeframe=timeframe,
        market_type=market_type, data_dir=data_dir, validate=validate,
    )


def load_funding(
    path: str | Path | None = None,
    *,
    exchange: str | None = None,
    symbol: str | None = None,
    timeframe: str | None = None,
    market_type: str = "futures",
    data_dir: str | Path | None = None,
    validate: bool = True,
) -> pd.DataFrame:
    """Load funding settlements: index ``date`` (UTC settlement time), float64 ``funding_rate``.

    The rate is per settlement (0.0001 = 0.01 %; longs pay when positive). freqtrade files keep
    it in ``open``; their millisecond jitter is removed (times floored to the hour).
    ``timeframe`` defaults to ``"8h"`` when looking by symbol (freqtrade's
    ``-8h-funding_rate`` files). Parameters, attrs and errors as :func:`load_ohlcv`;
    validation is :func:`~quantum_trading.data.validate.validate_funding`.

    >>> from quantum_trading.paths import real_data_dir
    >>> rates = load_funding(exchange="binance", symbol="BTC/USDT:USDT", data_dir=real_data_dir())
    >>> rates.index[1], float(rates["funding_rate"].iloc[1])
    (Timestamp('2023-07-05 00:00:00+0000', tz='UTC'), 0.0001)
    """
    return _load(
        "funding", path, exchange=exchange, symbol=symbol, timeframe=timeframe,
        market_type=market_type, data_dir=data_dir, validate=validate,
    )


def load_mark(
    path: str | Path | None = None,
    *,
    exchange: str | None = None,
    symbol: str | None = None,
    timeframe: str | None = None,
    market_type: str = "futures",
    data_dir: str | Path | None = None,
    validate: bool = True,
) -> pd.DataFrame:
    """Load mark-price candles: index ``date`` (UTC candle open time), float64 ``open high low close``.

    ``timeframe`` defaults to ``"8h"`` when looking by symbol; freqtrade also writes e.g.
    ``-1h-mark`` files. Parameters, attrs and errors as :func:`load_ohlcv`; validation is
    :func:`~quantum_trading.data.validate.validate_mark`.

    >>> from quantum_trading.paths import real_data_dir
    >>> mark = load_mark(exchange="binance", symbol="BTC/USDT:USDT", data_dir=real_data_dir())
    >>> list(mark.columns), mark.attrs["timeframe"]
    (['open', 'high', 'low', 'close'], '8h')
    """
    return _load(
        "mark", path, exchange=exchange, symbol=symbol, timeframe=timeframe,
        market_type=market_type, data_dir=data_dir, validate=validate,
    )


def join_funding(
    ohlcv: pd.DataFrame, funding: pd.DataFrame, *, timeframe: str | None = None
) -> pd.DataFrame:
    """A copy of ``ohlcv`` with ``funding_rate``: the rate settled inside each bar.

    Timing: a settlement at time ``s`` (floored to the hour) belongs to the bar ``t`` with
    ``t <= s < t + timeframe``. With hourly bars the 08:00 settlement lands on the bar that
    *opens* at 08:00, i.e. it is paid at that bar's open by the position held into it. Several
    settlements inside one bar (daily bars) are summed; bars without one get 0.0. Settlements
    before the first bar, after the last bar's end, or inside missing bars are ignored and
    counted in ``attrs``: ``funding_settlements`` (all), ``funding_joined``,
    ``funding_outside_range``, ``funding_in_gaps``.

    Both frames are validated first (DataError on bad data). ``timeframe`` defaults to
    ``ohlcv.attrs["timeframe"]``, else the most common bar step.

    >>> bars = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0},
    ...                     index=pd.date_range("2023-07-05 07:00", periods=3, freq="1h", tz="UTC"))
    >>> rates = pd.DataFrame({"funding_rate": [1e-4]},
    ...                      index=pd.DatetimeIndex(["2023-07-05 08:00:00.008"], tz="UTC"))
    >>> join_funding(bars, rates)["funding_rate"].tolist()
    [0.0, 0.0001, 0.0]
    """
    report = validate_ohlcv(ohlcv, timeframe=timeframe)
    if report.timeframe is None:
        raise ValueError("cannot tell the bar length of a single bar; pass timeframe=")
    step = int(timeframe_to_timedelta(report.timeframe).value)
    validate_funding(funding)
    bars = ohlcv.index.as_unit("ns").asi8
    settle = floor_funding_times(funding.index).as_unit("ns").asi8
    rates = funding["funding_rate"].to_numpy(dtype=np.float64)
    position = np.searchsorted(bars, settle, side="right") - 1
    inside = (settle >= bars[0]) & (settle < bars[-1] + step)
    in_bar = (position >= 0) & (settle < bars[np.clip(position, 0, None)] + step)
    out = ohlcv.copy()
    out["funding_rate"] = np.bincount(position[in_bar], weights=rates[in_bar], minlength=len(bars))
    out.attrs = {
        **ohlcv.attrs,
        "funding_settlements": len(settle),
        "funding_joined": int(in_bar.sum()),
        "funding_outside_range": int((~inside).sum()),
        "funding_in_gaps": int((inside & ~in_bar).sum()),
    }
    return out


def join_mark(ohlcv: pd.DataFrame, mark: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``ohlcv`` with ``mark_price``: the mark price known at each bar's open.

    Timing: at bar open ``t`` it is the ``open`` of the mark candle opening at ``t``; without
    one, the ``open`` of the latest mark candle opening before ``t`` (carried forward, never
    taken from a later candle); NaN before the first mark candle. Both frames are validated
    first (DataError on bad data).

    >>> bars = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0},
    ...                     index=pd.date_range("2023-07-05 07:00", periods=3, freq="1h", tz="UTC"))
    >>> mark = pd.DataFrame({"open": [2.0], "high": [2.0], "low": [2.0], "close": [2.0]},
    ...                     index=pd.DatetimeIndex(["2023-07-05 08:00"], tz="UTC"))
    >>> join_mark(bars, mark)["mark_price"].tolist()
    [nan, 2.0, 2.0]
    """
    validate_ohlcv(ohlcv)
    validate_mark(mark)
    bars = ohlcv.index.as_unit("ns").asi8
    marks = mark.index.as_unit("ns").asi8
    opens = mark["open"].to_numpy(dtype=np.float64)
    position = np.searchsorted(marks, bars, side="right") - 1
    out = ohlcv.copy()
    out["mark_price"] = np.where(position >= 0, opens[np.clip(position, 0, None)], np.nan)
    out.attrs = dict(ohlcv.attrs)
    return out
