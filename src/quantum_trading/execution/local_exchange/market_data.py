"""The market data the local exchange serves, read from a data folder (no network here).

The folder may be freqtrade's (``…/binance/futures`` with ``BTC_USDT_USDT-1h-futures.feather``,
``…-8h-funding_rate.feather``, ``…-8h-mark.feather``) or our Parquet store's root
(``user_data/data``, series under ``<exchange>/futures/``). Files are found by name
(:func:`quantum_trading.data.layout.parse_data_file_name`), loaded on first use and kept in
memory. Timestamps are Unix milliseconds (UTC), as Binance sends them.
"""

from __future__ import annotations

import gzip
import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from quantum_trading.data.layout import FORMAT_EXTENSIONS, parse_data_file_name
from quantum_trading.data.symbols import symbol_to_exchange_id
from quantum_trading.errors import DataError

__all__ = [
    "BINANCE_INTERVALS",
    "MarketData",
    "Series",
    "UnavailableError",
    "binance_number",
]

BINANCE_INTERVALS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
"""Kline intervals Binance USDⓈ-M accepts (``1M`` is not served), and their length in ms."""

_WEEK_OFFSET_MS = 4 * 86_400_000  # Binance weeks start on Monday; 1970-01-01 was a Thursday
_VALUE_COLUMNS = {
    "ohlcv": ("open", "high", "low", "close", "volume"),
    "mark": ("open", "high", "low", "close"),
    "funding": ("funding_rate",),
}


class UnavailableError(LookupError):
    """The folder has no data for this symbol / kind / interval."""


@dataclass(frozen=True)
class Series:
    """One loaded series: ``ts`` (int64 ms, sorted) and ``values`` (float64, one column a field)."""

    ts: np.ndarray
    values: np.ndarray
    columns: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ts)

    def window(self, start_ms: int | None, end_ms: int | None, limit: int) -> slice:
        """Rows Binance returns for ``startTime``/``endTime`` (both inclusive) and ``limit``.

        With ``startTime``: the first ``limit`` rows from it; with only ``endTime``: the last
        ``limit`` rows up to it; with neither: the most recent ``limit`` rows.
        """
        hi = len(self.ts) if end_ms is None else int(np.searchsorted(self.ts, end_ms, side="right"))
        if start_ms is not None:
            lo = int(np.searchsorted(self.ts, start_ms, side="left"))
            return slice(lo, max(lo, min(hi, lo + limit)))
        return slice(max(0, hi - limit), hi)


def _read_frame(path: Path) -> pd.DataFrame:
    name = path.name
    if name.endswith(".feather"):
        return pd.read_feather(path)
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    if name.endswith(".csv"):
        return pd.read_csv(path)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt") as handle:  # freqtrade json: [[ts_ms, o, h, l, c, v], …]
        rows = json.load(handle)
    frame = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close", "volume"])
    frame["date"] = pd.to_datetime(frame["date"], unit="ms", utc=True)
    return frame


def _load_series(path: Path, kind: str) -> Series:
    """Read one file into ms timestamps and float values (funding: ``funding_rate`` or ``open``)."""
    try:
        frame = _read_frame(path)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read ({error})", source=str(path)) from None
    if "date" not in frame.columns:
        if isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.reset_index(names="date")
        else:
            raise DataError("no 'date' column", source=str(path))
    dates = pd.DatetimeIndex(pd.to_datetime(frame["date"], utc=True))
    ts = dates.as_unit("ms").asi8.astype("int64")
    if kind == "funding":
        source_columns: tuple[str, ...] = (
            ("funding_rate",) if "funding_rate" in frame.columns else ("open",)
        )
    else:
        source_columns = _VALUE_COLUMNS[kind]
    missing = [c for c in source_columns if c not in frame.columns]
    if missing:
        raise DataError(f"missing columns {', '.join(missing)}", source=str(path))
    values = frame[list(source_columns)].to_numpy(dtype="float64")
    order = np.argsort(ts, kind="stable")
    ts, values = ts[order], values[order]
    keep = np.ones(len(ts), dtype=bool)
    keep[1:] = ts[1:] != ts[:-1]  # one row a timestamp (the first)
    return Series(ts[keep], np.ascontiguousarray(values[keep]), _VALUE_COLUMNS[kind])


def _resample(series: Series, source_ms: int, target_ms: int) -> Series:
    """Aggregate finer candles into ``target_ms`` bins (epoch-aligned; weeks start Monday).

    Only complete bins (every finer candle present) are kept.
    """
    offset = _WEEK_OFFSET_MS if target_ms == BINANCE_INTERVALS["1w"] else 0
    bins = (series.ts - offset) // target_ms * target_ms + offset
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    counts = np.diff(np.r_[starts, len(bins)])
    ends = starts + counts - 1
    vals = series.values
    out = np.empty((len(starts), vals.shape[1]), dtype="float64")
    out[:, 0] = vals[starts, 0]
    out[:, 1] = np.maximum.reduceat(vals[:, 1], starts)
    out[:, 2] = np.minimum.reduceat(vals[:, 2], starts)
    out[:, 3] = vals[ends, 3]
    if vals.shape[1] > 4:
        out[:, 4] = np.add.reduceat(vals[:, 4], starts)
    complete = counts == target_ms // source_ms
    return Series(bins[starts][complete], out[complete], series.columns)


def _decimals(values: np.ndarray, max_decimals: int = 8) -> int:
    """Fewest decimals that write every value exactly (the data's price precision)."""
    for d in range(max_decimals + 1):
        scaled = values * 10.0**d
        if np.all(
            np.abs(scaled - np.round(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled)) + 1e-9
        ):
            return d
    return max_decimals


def _step_size(price: float) -> str:
    """A Binance-like quantity step for a contract at ``price`` (USDT)."""
    if price >= 1000:
        return "0.001"
    if price >= 10:
        return "0.01"
    if price >= 0.1:
        return "0.1"
    return "1"


def _fmt_decimal(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


class MarketData:
    """Series found in a data folder, indexed by Binance market id (``BTCUSDT``), kind and interval.

    Parameters
    ----------
    data_dir:
        A freqtrade-layout folder (files directly inside, or under ``<exchange>/futures``), or our
        Parquet store's root.
    exchange:
        The exchange folder name to look in (``binance``).
    min_notional_usd:
        ``MIN_NOTIONAL`` filter published for every symbol (USDT).

    Raises
    ------
    DataError
        When the folder does not exist or holds no perpetual-futures data files.

    Examples
    --------
    >>> from quantum_trading.paths import real_data_dir
    >>> data = MarketData(real_data_dir() / "binance" / "futures")  # doctest: +SKIP
    >>> data.market_ids()[:2]  # doctest: +SKIP
    ['ADAUSDT', 'BNBUSDT']
    """

    def __init__(
        self, data_dir: Path | str, *, exchange: str = "binance", min_notional_usd: float = 5.0
    ) -> None:
        self.data_dir = Path(data_dir)
        self.exchange = exchange
        self.min_notional_usd = float(min_notional_usd)
        if not self.data_dir.is_dir():
            raise DataError("data folder does not exist", source=str(self.data_dir))
        self._files: dict[tuple[str, str, str], Path] = {}
        self._symbols: dict[str, str] = {}  # market id -> unified symbol
        self._cache: dict[tuple[str, str, str], Series] = {}
        self._lock = threading.Lock()
        self._discover()
        if not self._files:
            raise DataError(
                "no perpetual-futures data files (e.g. BTC_USDT_USDT-1h-futures.feather) found in it, "
                f"nor in {exchange}/futures/ below it",
                source=str(self.data_dir),
            )

    def _discover(self) -> None:
        folders = [
            self.data_dir,
            self.data_dir / self.exchange / "futures",
            self.data_dir / self.exchange,
        ]
        rank = {ext: i for i, ext in enumerate(FORMAT_EXTENSIONS)}
        for folder in folders:
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                parsed = parse_data_file_name(path)
                if parsed is None or parsed.market_type != "futures" or not path.is_file():
                    continue
                try:
                    market_id = symbol_to_exchange_id(parsed.symbol)
                except ValueError:
                    continue
                key = (market_id, parsed.kind, parsed.timeframe)
                known = self._files.get(key)
                if known is None or rank[parsed.extension] < rank[_extension(known)]:
                    self._files[key] = path
                self._symbols[market_id] = parsed.symbol

    # ------------------------------------------------------------------ lookup
    def market_ids(self) -> list[str]:
        """Binance ids of every symbol with at least one file, sorted."""
        return sorted(self._symbols)

    def symbol(self, market_id: str) -> str:
        """Unified symbol of a market id (``BTCUSDT`` -> ``BTC/USDT:USDT``)."""
        return self._symbols[market_id]

    def timeframes(self, market_id: str, kind: str) -> list[str]:
        """Intervals stored as files for one symbol and kind."""
        return sorted(
            (tf for (mid, k, tf) in self._files if mid == market_id and k == kind),
            key=lambda tf: BINANCE_INTERVALS.get(tf, 0),
        )

    def series(self, market_id: str, kind: str, interval: str) -> Series:
        """The series of one symbol, kind and interval, loaded once and cached.

        OHLCV and mark candles missing at ``interval`` are aggregated from the coarsest stored
        interval that divides it (complete bins only). Funding is stored at its own interval
        (``8h``) and is looked up by kind only when ``interval`` is ``"*"``.

        Raises
        ------
        UnavailableError
            When the symbol, or the interval for it, is not available.
        """
        key = (market_id, kind, interval)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
            series = self._build(market_id, kind, interval)
            self._cache[key] = series
            return series

    def _build(self, market_id: str, kind: str, interval: str) -> Series:
        if market_id not in self._symbols:
            raise UnavailableError(f"no data for symbol {market_id}")
        if kind == "funding":
            paths = [
                p
                for (mid, k, _), p in sorted(self._files.items())
                if mid == market_id and k == kind
            ]
            if not paths:
                raise UnavailableError(f"no funding data for {market_id}")
            return _load_series(paths[0], kind)
        path = self._files.get((market_id, kind, interval))
        if path is not None:
            return _load_series(path, kind)
        target_ms = BINANCE_INTERVALS.get(interval)
        if target_ms is None:
            raise UnavailableError(f"interval {interval} is not served")
        finer = [
            tf
            for tf in self.timeframes(market_id, kind)
            if tf in BINANCE_INTERVALS
            and BINANCE_INTERVALS[tf] < target_ms
            and target_ms % BINANCE_INTERVALS[tf] == 0
        ]
        if not finer:
            stored = ", ".join(self.timeframes(market_id, kind)) or "none"
            raise UnavailableError(
                f"no {kind} data for {market_id} at {interval} (stored intervals: {stored})"
            )
        source_tf = finer[-1]
        source = _load_series(self._files[(market_id, kind, source_tf)], kind)
        return _resample(source, BINANCE_INTERVALS[source_tf], target_ms)

    # ------------------------------------------------------------------ exchangeInfo
    def _reference_prices(self, market_id: str) -> tuple[np.ndarray | None, int | None]:
        """Recent close prices and the first timestamp (ms) of one symbol, from its coarsest file."""
        for kind in ("ohlcv", "mark"):
            tfs = self.timeframes(market_id, kind)
            if tfs:
                series = self.series(market_id, kind, tfs[-1])
                if len(series):
                    return series.values[-500:, 3], int(series.ts[0])
        return None, None

    def exchange_info(self, server_time_ms: int) -> dict:
        """``GET /fapi/v1/exchangeInfo``: one ``PERPETUAL``/``TRADING`` entry a stored symbol.

        Filters are inferred from the data: ``tickSize`` from the decimals of the prices, the
        quantity step from the price level; ``MIN_NOTIONAL`` is ``min_notional_usd``.
        """
        symbols = []
        assets = set()
        for market_id in self.market_ids():
            unified = self._symbols[market_id]
            base, rest = unified.split("/")
            quote, settle = rest.split(":")
            assets.add(settle)
            prices, onboard_ms = self._reference_prices(market_id)
            if prices is not None and len(prices):
                price_decimals = _decimals(prices)
                step = _step_size(float(np.median(prices)))
            else:
                price_decimals, step = 4, "1"
            quantity_decimals = 0 if "." not in step else len(step.split(".")[1])
            tick = 10.0**-price_decimals
            symbols.append(
                {
                    "symbol": market_id,
                    "pair": market_id,
                    "contractType": "PERPETUAL",
                    "deliveryDate": 4133404800000,
                    "onboardDate": onboard_ms if onboard_ms is not None else 1569398400000,
                    "status": "TRADING",
                    "maintMarginPercent": "2.5000",
                    "requiredMarginPercent": "5.0000",
                    "baseAsset": base,
                    "quoteAsset": quote,
                    "marginAsset": settle,
                    "pricePrecision": price_decimals,
                    "quantityPrecision": quantity_decimals,
                    "baseAssetPrecision": 8,
                    "quotePrecision": 8,
                    "underlyingType": "COIN",
                    "underlyingSubType": [],
                    "settlePlan": 0,
                    "triggerProtect": "0.0500",
                    "liquidationFee": "0.012500",
                    "marketTakeBound": "0.05",
                    "maxMoveOrderLimit": 10000,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": _fmt_decimal(tick, price_decimals),
                            "maxPrice": "10000000",
                            "tickSize": _fmt_decimal(tick, price_decimals),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "stepSize": step,
                            "minQty": step,
                            "maxQty": "10000000",
                        },
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "stepSize": step,
                            "minQty": step,
                            "maxQty": "1000000",
                        },
                        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                        {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                        {
                            "filterType": "MIN_NOTIONAL",
                            "notional": binance_number(self.min_notional_usd),
                        },
                        {
                            "filterType": "PERCENT_PRICE",
                            "multiplierUp": "1.0500",
                            "multiplierDown": "0.9500",
                            "multiplierDecimal": "4",
                        },
                    ],
                    "orderTypes": [
                        "LIMIT",
                        "MARKET",
                        "STOP",
                        "STOP_MARKET",
                        "TAKE_PROFIT",
                        "TAKE_PROFIT_MARKET",
                        "TRAILING_STOP_MARKET",
                    ],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": int(server_time_ms),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 2400,
                },
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [
                {"asset": asset, "marginAvailable": True, "autoAssetExchange": "-10000"}
                for asset in sorted(assets)
            ],
            "symbols": symbols,
        }


def _extension(path: Path) -> str:
    parsed = parse_data_file_name(path)
    return parsed.extension if parsed is not None else path.suffix


def binance_number(value: float) -> str:
    """Shortest exact decimal text of a float, never in exponent form (``1e-05`` -> ``0.00001``)."""
    if not math.isfinite(value):
        raise ValueError(f"cannot send non-finite number {value}")
    return np.format_float_positional(value, unique=True, trim="-")
