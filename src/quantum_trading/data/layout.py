"""File layout of market data on disk: freqtrade's data directory and our Parquet store.

freqtrade (and so our store) names files by pair, timeframe and kind::

    <data_dir>/<exchange>/futures/BTC_USDT_USDT-1h-futures.feather     OHLCV, perpetual
    <data_dir>/<exchange>/futures/BTC_USDT_USDT-8h-funding_rate.feather funding rates
    <data_dir>/<exchange>/futures/BTC_USDT_USDT-8h-mark.feather         mark-price candles
    <data_dir>/<exchange>/BTC_USDT-1h.feather                           OHLCV, spot (freqtrade)
    <data_dir>/<exchange>/spot/BTC_USDT-1h.parquet                      OHLCV, spot (our store)

Formats are told apart by extension: ``.feather``, ``.parquet``, ``.json``, ``.json.gz``,
``.csv``. Our Parquet store always writes ``<data_dir>/<exchange>/<market_type>/…parquet``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from quantum_trading.data.symbols import MARKET_TYPES, filename_to_symbol, symbol_to_filename

__all__ = [
    "DATA_KINDS",
    "FORMAT_EXTENSIONS",
    "DataFileName",
    "DataKind",
    "candidate_paths",
    "data_file_name",
    "parse_data_file_name",
    "store_path",
]

DataKind = Literal["ohlcv", "funding", "mark"]
DATA_KINDS: tuple[str, ...] = ("ohlcv", "funding", "mark")
FORMAT_EXTENSIONS: tuple[str, ...] = (".parquet", ".feather", ".json.gz", ".json", ".csv")

_KIND_SUFFIX = {"funding": "funding_rate", "mark": "mark"}
_NAME = re.compile(
    r"^(?P<pair>[A-Za-z0-9_]+?)-(?P<timeframe>\d+[smhdwM])"
    r"(?:-(?P<suffix>futures|funding_rate|mark|spot))?"
    r"(?P<ext>\.parquet|\.feather|\.json\.gz|\.json|\.csv)$"
)


@dataclass(frozen=True)
class DataFileName:
    """What a data file's name says about its contents."""

    symbol: str
    timeframe: str
    market_type: str
    kind: str
    extension: str


def _check(market_type: str, kind: str) -> None:
    if market_type not in MARKET_TYPES:
        raise ValueError(f"market_type {market_type!r} is not one of {', '.join(MARKET_TYPES)}")
    if kind not in DATA_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(DATA_KINDS)}")
    if kind != "ohlcv" and market_type != "futures":
        raise ValueError(f"{kind} data exists only for market_type 'futures'")


def data_file_name(symbol: str, timeframe: str, market_type: str, kind: str, extension: str) -> str:
    """freqtrade's file name, e.g. ``BTC_USDT_USDT-8h-funding_rate.feather``.

    >>> data_file_name("BTC/USDT:USDT", "1h", "futures", "ohlcv", ".parquet")
    'BTC_USDT_USDT-1h-futures.parquet'
    """
    _check(market_type, kind)
    stem = f"{symbol_to_filename(symbol)}-{timeframe}"
    if kind == "ohlcv":
        suffix = "-futures" if market_type == "futures" else ""
    else:
        suffix = f"-{_KIND_SUFFIX[kind]}"
    return f"{stem}{suffix}{extension}"


def parse_data_file_name(path: str | Path) -> DataFileName | None:
    """Read symbol, timeframe, market type and kind from a freqtrade-style file name.

    Returns ``None`` for names that do not follow the layout.

    >>> parse_data_file_name("BTC_USDT_USDT-8h-funding_rate.feather").kind
    'funding'
    """
    match = _NAME.match(Path(path).name)
    if match is None:
        return None
    suffix = match.group("suffix")
    kind = {"funding_rate": "funding", "mark": "mark"}.get(suffix or "", "ohlcv")
    pair = match.group("pair")
    market_type = "futures" if (suffix in ("futures", "funding_rate", "mark") or pair.count("_") == 2) else "spot"
    try:
        symbol = filename_to_symbol(pair, market_type)
    except ValueError:
        return None
    return DataFileName(symbol, match.group("timeframe"), market_type, kind, match.group("ext"))


def store_path(data_dir: Path, exchange: str, symbol: str, timeframe: str, market_type: str, kind: str) -> Path:
    """Where our Parquet store keeps one series: ``<data_dir>/<exchange>/<market_type>/<name>.parquet``."""
    name = data_file_name(symbol, timeframe, market_type, kind, ".parquet")
    return Path(data_dir) / exchange / market_type / name


def candidate_paths(
    data_dir: Path, exchange: str, symbol: str, timeframe: str, market_type: str, kind: str
) -> list[Path]:
    """Every path, in order of preference, where one series may be found.

    Our store's Parquet file first, then freqtrade's files in each format. Spot data is looked
    for both in ``<exchange>/spot/`` (our store) and in ``<exchange>/`` (freqtrade).
    """
    _check(market_type, kind)
    folders = [Path(data_dir) / exchange / market_type]
    if market_type == "spot":
        folders.append(Path(data_dir) / exchange)
    return [
        folder / data_file_name(symbol, timeframe, market_type, kind, ext)
        for folder in folders
        for ext in FORMAT_EXTENSIONS
    ]
