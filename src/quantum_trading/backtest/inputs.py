"""Finding a backtest's bars on disk, with the funding and mark files that sit next to them.

Used by ``quantum backtest --data …`` and ``quantum demo --data …``. ``data`` may be:

* a file (CSV, Parquet, Feather, freqtrade JSON): loaded as it is; a freqtrade-style name
  (``BTC_USDT_USDT-1h-futures.feather``) gives symbol and timeframe;
* a folder in freqtrade's layout: the ``<exchange>/futures`` folder itself, an exchange folder
  holding ``futures/``, or a data folder holding ``<exchange>/futures/`` (``exchange`` picks
  one; without it, the only exchange that has the series); ``symbol`` is needed;
* otherwise an exchange name in the Parquet store (``user_data/data/<name>/futures/…``).

Funding settlements (``…-8h-funding_rate.*``) and mark candles (``…-8h-mark.*``) of the same
symbol in the same folder are joined onto the bars (``funding_rate`` settled inside each bar,
``mark_price`` known at each bar's open); an explicit funding file wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from quantum_trading.data.layout import FORMAT_EXTENSIONS, data_file_name
from quantum_trading.data.loaders import (
    join_funding,
    join_mark,
    load_funding,
    load_mark,
    load_ohlcv,
)
from quantum_trading.data.validate import validate_ohlcv
from quantum_trading.errors import ConfigError, DataError

__all__ = ["LoadedBars", "load_bars"]


@dataclass(frozen=True)
class LoadedBars:
    """Bars ready for :class:`~quantum_trading.backtest.Backtest`, and where they came from.

    ``bars`` carries ``funding_rate`` / ``mark_price`` columns when those files were found;
    ``funding_path`` / ``mark_path`` say which (None = not found); ``notes`` are lines to
    show the user.
    """

    bars: pd.DataFrame
    symbol: str
    timeframe: str
    source: Path
    funding_path: Path | None
    mark_path: Path | None
    notes: tuple[str, ...]


def _first_existing(folder: Path, symbol: str, timeframe: str, kind: str) -> Path | None:
    for ext in FORMAT_EXTENSIONS:
        path = folder / data_file_name(symbol, timeframe, "futures", kind, ext)
        if path.is_file():
            return path
    return None


def _find_in_folder(root: Path, symbol: str, timeframe: str, exchange: str | None) -> Path:
    """The OHLCV file of ``symbol`` under a freqtrade-style folder ``root``."""
    folders = [root, root / "futures"]
    if exchange:
        folders.insert(0, root / exchange / "futures")
    for folder in folders:
        found = _first_existing(folder, symbol, timeframe, "ohlcv")
        if found is not None:
            return found
    if not exchange:
        hits = [p for sub in sorted(root.iterdir()) if sub.is_dir()
                if (p := _first_existing(sub / "futures", symbol, timeframe, "ohlcv"))]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            names = ", ".join(p.parent.parent.name for p in hits)
            raise ConfigError(f"--data {root}: {symbol} {timeframe} exists for several "
                              f"exchanges ({names}); pick one with --exchange")
    raise DataError(f"no {timeframe} OHLCV file for {symbol} (looked in {root}, its futures/ "
                    "folder and its <exchange>/futures/ folders)", source=str(root))


def load_bars(
    data: str | Path,
    *,
    symbol: str | None = None,
    exchange: str | None = None,
    timeframe: str | None = None,
    funding: str | Path | None = None,
    data_dir: str | Path | None = None,
) -> LoadedBars:
    """Load one symbol's bars from a file, a freqtrade folder or the store, and join the
    funding (and mark) files found next to them.

    Parameters
    ----------
    data:
        A file, a folder, or an exchange name in the store (see the module docstring).
    symbol, exchange, timeframe:
        Which series (``timeframe`` defaults to the file name's, else ``"1h"``).
    funding:
        A funding file to use instead of looking next to the data.
    data_dir:
        The store's data folder (default ``user_data/data``) for exchange names.

    Raises
    ------
    ConfigError
        ``symbol`` missing where it is needed, or an ambiguous folder.
    DataError
        Nothing found, or invalid data (naming file, row and column).

    >>> from quantum_trading.paths import real_data_dir
    >>> loaded = load_bars(real_data_dir() / "binance" / "futures", symbol="BTC/USDT:USDT")
    >>> loaded.timeframe, "funding_rate" in loaded.bars, loaded.funding_path.name
    ('1h', True, 'BTC_USDT_USDT-8h-funding_rate.feather')
    """
    path = Path(data)
    if path.is_file():
        bars = load_ohlcv(path, symbol=symbol, timeframe=timeframe)
    elif path.is_dir():
        if not symbol:
            raise ConfigError(f"--data {path} is a folder: say which series with --symbol "
                              "(e.g. BTC/USDT:USDT)")
        path = _find_in_folder(path, symbol, timeframe or "1h", exchange)
        bars = load_ohlcv(path, symbol=symbol, timeframe=timeframe or "1h")
    else:
        if not symbol:
            raise ConfigError(f"--data {data}: no such file or folder; as an exchange name in the "
                              "store it needs --symbol")
        if exchange and exchange != str(data):
            raise ConfigError(f"--data {data} and --exchange {exchange} disagree")
        bars = load_ohlcv(exchange=str(data), symbol=symbol, timeframe=timeframe or "1h",
                          data_dir=data_dir)
        path = Path(bars.attrs["source"])
    sym = bars.attrs.get("symbol") or symbol
    if not sym:
        raise ConfigError(f"--data {path}: the file name does not say which symbol it holds; "
                          "give it with --symbol (e.g. BTC/USDT:USDT)")
    sym = str(sym)
    bars.attrs["symbol"] = sym
    tf = str(bars.attrs.get("timeframe") or timeframe
             or validate_ohlcv(bars, source=str(path)).timeframe or "")
    if tf:
        bars.attrs["timeframe"] = tf
    notes: list[str] = [f"data: {len(bars):,} bars of {sym} {tf} from {path}"]
    folder = path.parent
    funding_path = Path(funding) if funding is not None else _first_existing(folder, sym, "8h",
                                                                            "funding")
    if funding_path is not None:
        rates = load_funding(funding_path)
        bars = join_funding(bars, rates, timeframe=tf or None)
        joined = bars.attrs.get("funding_joined", 0)
        notes.append(f"funding: {joined} settlements joined from {funding_path}")
    else:
        notes.append("funding: no funding file found next to the data; the simulator's "
                     "default schedule is used (0.01 % every 8 h)")
    mark_path = _first_existing(folder, sym, "8h", "mark")
    if mark_path is not None:
        bars = join_mark(bars, load_mark(mark_path))
        notes.append(f"mark: mark prices for funding joined from {mark_path}")
    bars.attrs["symbol"] = sym
    return LoadedBars(bars=bars, symbol=sym, timeframe=tf, source=path,
                      funding_path=funding_path, mark_path=mark_path, notes=tuple(notes))
