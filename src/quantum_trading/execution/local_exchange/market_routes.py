"""Binance USDⓈ-M public market-data routes (``/fapi/v1/…``), as ccxt's ``binanceusdm`` calls them.

Served: ``ping``, ``time``, ``exchangeInfo``, ``klines``, ``markPriceKlines``, ``fundingRate``.
Answers use Binance's formats (numbers as strings in klines and funding rates, timestamps in
ms) and Binance's error bodies (``{"code": -1121, "msg": "Invalid symbol."}`` with HTTP 400).
Data routes (klines, mark-price klines, funding rates) count towards fault injection. In trading
mode (``app.state.trading`` set) they end at the replay clock: only candles closed by then and
funding settled by then are served.
"""

from __future__ import annotations

import time

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from quantum_trading.execution.local_exchange.market_data import (
    BINANCE_INTERVALS,
    MarketData,
    Series,
    UnavailableError,
    binance_number,
)

__all__ = ["BinanceAPIError", "InjectedFault", "fault_gate", "router"]

KLINES_MAX_LIMIT = 1500
KLINES_DEFAULT_LIMIT = 500
FUNDING_MAX_LIMIT = 1000
FUNDING_DEFAULT_LIMIT = 100


class BinanceAPIError(Exception):
    """An error answered in Binance's format: HTTP ``status`` with ``{"code": …, "msg": …}``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


class InjectedFault(Exception):
    """A request failed on purpose by the fault injector (plain-text body, like a proxy error)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"injected fault {status}")
        self.status = status


def _market_data(request: Request) -> MarketData:
    return request.app.state.market_data


def fault_gate(request: Request) -> None:
    """Dependency of every data route: fail the request when the fault plan says so."""
    status = request.app.state.faults.next_request()
    if status is not None:
        raise InjectedFault(status)


def _int_param(name: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 20:
        raise BinanceAPIError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    return int(value)


def _symbol(data: MarketData, symbol: str | None) -> str:
    if not symbol:
        raise BinanceAPIError(
            -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
        )
    if symbol not in data.market_ids():
        raise BinanceAPIError(-1121, "Invalid symbol.")
    return symbol


def _limit(value: str | None, default: int, maximum: int) -> int:
    limit = _int_param("limit", value)
    if limit is None:
        return default
    if limit < 1 or limit > maximum:
        raise BinanceAPIError(-1130, "Data sent for parameter 'limit' is not valid.")
    return limit


def _times(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    start_ms, end_ms = _int_param("startTime", start), _int_param("endTime", end)
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise BinanceAPIError(-1023, "Start time is greater than end time.")
    return start_ms, end_ms


def _replay_end(request: Request, end_ms: int | None, step_ms: int) -> int | None:
    """``endTime`` capped at the last candle (of ``step_ms``) closed on the replay clock."""
    trading = getattr(request.app.state, "trading", None)
    if trading is None:
        return end_ms
    cap = trading.now_ms - step_ms
    return cap if end_ms is None else min(end_ms, cap)


def _candles(
    request: Request,
    data: MarketData,
    kind: str,
    symbol: str | None,
    interval: str | None,
    start: str | None,
    end: str | None,
    limit: str | None,
) -> tuple[Series, slice, int]:
    market_id = _symbol(data, symbol)
    if not interval:
        raise BinanceAPIError(
            -1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed."
        )
    if interval not in BINANCE_INTERVALS:
        raise BinanceAPIError(-1120, "Invalid interval.")
    count = _limit(limit, KLINES_DEFAULT_LIMIT, KLINES_MAX_LIMIT)
    start_ms, end_ms = _times(start, end)
    try:
        series = data.series(market_id, kind, interval)
    except UnavailableError as error:
        raise BinanceAPIError(-1120, f"Invalid interval. (local exchange: {error})") from None
    step_ms = BINANCE_INTERVALS[interval]
    end_ms = _replay_end(request, end_ms, step_ms)
    return series, series.window(start_ms, end_ms, count), step_ms


router = APIRouter(prefix="/fapi/v1", tags=["market data"])


@router.get("/ping")
def ping() -> dict:
    """Connectivity test: ``{}``."""
    return {}


@router.get("/time")
def server_time() -> dict:
    """``{"serverTime": <now, ms>}`` (the machine's clock)."""
    return {"serverTime": int(time.time() * 1000)}


@router.get("/exchangeInfo")
def exchange_info(request: Request) -> dict:
    """Symbols available in the data folder, as perpetual contracts in trading."""
    return _market_data(request).exchange_info(int(time.time() * 1000))


@router.get("/klines", dependencies=[Depends(fault_gate)])
def klines(
    request: Request,
    symbol: str | None = None,
    interval: str | None = None,
    startTime: str | None = None,
    endTime: str | None = None,
    limit: str | None = None,
) -> JSONResponse:
    """Candles ``[openTime, "open", "high", "low", "close", "volume", closeTime, "quoteVolume",
    trades, "takerBuyBase", "takerBuyQuote", "0"]``; quote volume, trades and taker volumes are
    not stored and are sent as 0. Open times in [startTime, endTime], at most ``limit`` (≤ 1500).
    """
    series, rows, step_ms = _candles(
        request, _market_data(request), "ohlcv", symbol, interval, startTime, endTime, limit
    )
    ts, values, num = series.ts[rows], series.values[rows], binance_number
    return JSONResponse(
        [
            [t, num(o), num(h), num(lo), num(c), num(v), t + step_ms - 1, "0", 0, "0", "0", "0"]
            for t, (o, h, lo, c, v) in zip(ts.tolist(), values.tolist(), strict=True)
        ]
    )


@router.get("/markPriceKlines", dependencies=[Depends(fault_gate)])
def mark_price_klines(
    request: Request,
    symbol: str | None = None,
    interval: str | None = None,
    startTime: str | None = None,
    endTime: str | None = None,
    limit: str | None = None,
) -> JSONResponse:
    """Mark-price candles ``[openTime, "open", "high", "low", "close", "0", closeTime, "0", 0,
    "0", "0", "0"]``, selected as in :func:`klines`.
    """
    series, rows, step_ms = _candles(
        request, _market_data(request), "mark", symbol, interval, startTime, endTime, limit
    )
    ts, values, num = series.ts[rows], series.values[rows], binance_number
    return JSONResponse(
        [
            [t, num(o), num(h), num(lo), num(c), "0", t + step_ms - 1, "0", 0, "0", "0", "0"]
            for t, (o, h, lo, c) in zip(ts.tolist(), values.tolist(), strict=True)
        ]
    )


@router.get("/fundingRate", dependencies=[Depends(fault_gate)])
def funding_rate(
    request: Request,
    symbol: str | None = None,
    startTime: str | None = None,
    endTime: str | None = None,
    limit: str | None = None,
) -> JSONResponse:
    """Funding-rate history ``[{"symbol", "fundingTime" (ms), "fundingRate", "markPrice"}]``.

    ``fundingTime`` is sent as stored (Binance's own times carry a few ms of jitter); at most
    ``limit`` (≤ 1000, default 100) records from ``startTime``, or the latest ones.
    ``markPrice`` is the open of the mark-price candle at that time when one is stored, else "".
    """
    data = _market_data(request)
    market_id = _symbol(data, symbol)
    count = _limit(limit, FUNDING_DEFAULT_LIMIT, FUNDING_MAX_LIMIT)
    start_ms, end_ms = _times(startTime, endTime)
    try:
        series = data.series(market_id, "funding", "*")
    except UnavailableError:
        return JSONResponse([])
    rows = series.window(start_ms, _replay_end(request, end_ms, 0), count)
    times = series.ts[rows].tolist()
    marks = _mark_prices(data, market_id, times)
    return JSONResponse(
        [
            {
                "symbol": market_id,
                "fundingTime": t,
                "fundingRate": binance_number(rate),
                "markPrice": mark,
            }
            for t, (rate,), mark in zip(times, series.values[rows].tolist(), marks, strict=True)
        ]
    )


def _mark_prices(data: MarketData, market_id: str, times_ms: list[int]) -> list[str]:
    """Mark price (open of the stored mark candle starting at the hour of each time), else ""."""
    tfs = data.timeframes(market_id, "mark")
    if not tfs or not times_ms:
        return [""] * len(times_ms)
    series = data.series(market_id, "mark", tfs[0])
    hours = np.asarray(times_ms, dtype="int64") // 3_600_000 * 3_600_000
    pos = np.minimum(np.searchsorted(series.ts, hours), len(series.ts) - 1)
    found = series.ts[pos] == hours
    opens = series.values[:, 0]
    return [
        binance_number(opens[p]) if ok else ""
        for p, ok in zip(pos.tolist(), found.tolist(), strict=True)
    ]
