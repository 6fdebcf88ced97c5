"""Account, quote and control routes of the local exchange in trading mode.

Signed: ``POST /fapi/v1/leverage``, ``GET /fapi/v1/leverageBracket``,
``GET /fapi/v2|v3/positionRisk``, ``GET /fapi/v2|v3/account``, ``GET /fapi/v2|v3/balance``.
Public (from the paper exchange's quotes: last replayed close ∓ the half-spread):
``GET /fapi/v1/ticker/bookTicker``, ``ticker/price`` (v1 and v2), ``ticker/24hr``,
``GET /fapi/v1/depth`` (a synthetic ladder), ``GET /fapi/v1/premiumIndex``.
Control: ``POST /_local/advance?bars=N``, ``GET /_local/clock``.

Money is USDT; the mark price is the last replayed close; times are replay times (ms).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from fastapi import APIRouter, Request

from quantum_trading.execution.errors import InvalidOrder
from quantum_trading.execution.local_exchange.market_data import binance_number
from quantum_trading.execution.local_exchange.market_routes import BinanceAPIError
from quantum_trading.execution.local_exchange.trading import TradingSession, symbol_id
from quantum_trading.execution.local_exchange.trading_routes import (
    control_router,
    float_param,
    fmt_num,
    int_param,
    paper_error,
    session_of,
    signed_params,
    symbol_param,
)

__all__ = ["account_router"]

account_router = APIRouter(tags=["account"])
_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


def _position_row(session: TradingSession, symbol: str, *, v2: bool) -> dict[str, Any]:
    paper, acc = session.paper, session.paper.acc
    i = paper.symbols.index(symbol)
    size, last = acc.size(i), acc.last(i)
    mark = 0.0 if math.isnan(last) else last
    entry = acc.entry(i) if size else 0.0
    notional = size * mark
    upnl = size * (mark - entry) if size else 0.0
    lev = acc.leverage(i)
    isolated_margin = acc.isolated_margin(i)
    liq = acc.liquidation_price(i) or 0.0
    initial = abs(notional) / lev
    inst = paper.instruments[symbol]
    row: dict[str, Any] = {
        "symbol": symbol_id(symbol),
        "positionSide": "BOTH",
        "positionAmt": fmt_num(size),
        "entryPrice": fmt_num(entry),
        "breakEvenPrice": fmt_num(entry),
        "markPrice": fmt_num(mark),
        "unRealizedProfit": fmt_num(upnl),
        "liquidationPrice": fmt_num(liq),
        "isolatedMargin": fmt_num(isolated_margin + upnl if isolated_margin else 0.0),
        "notional": fmt_num(notional),
        "isolatedWallet": fmt_num(isolated_margin),
        "updateTime": session.now_ms,
    }
    if v2:
        row.update(
            {
                "leverage": binance_number(lev),
                "maxNotionalValue": binance_number(min(inst.max_notional_usd(lev), 9e15)),
                "marginType": "isolated" if acc.isolated else "cross",
                "isAutoAddMargin": "false",
            }
        )
    else:
        order_margin = session.order_margin_by_symbol().get(symbol, 0.0)
        row.update(
            {
                "marginAsset": "USDT",
                "initialMargin": fmt_num(initial + order_margin),
                "maintMargin": fmt_num(acc.maintenance_margin(i)),
                "positionInitialMargin": fmt_num(initial),
                "openOrderInitialMargin": fmt_num(order_margin),
                "adl": 0,
                "bidNotional": "0",
                "askNotional": "0",
            }
        )
    return row


def _has_open_orders(session: TradingSession, symbol: str) -> bool:
    return any(True for _ in session.paper.book.open_orders(symbol))


@account_router.get("/fapi/v2/positionRisk")
async def position_risk_v2(request: Request) -> list[dict[str, Any]]:
    """Every symbol (or ``symbol``), with leverage and margin type."""
    session, params = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        only = symbol_param(session, params, required=False)
        return [
            _position_row(session, s, v2=True)
            for s in session.paper.symbols
            if only is None or s == only
        ]


@account_router.get("/fapi/v3/positionRisk")
async def position_risk_v3(request: Request) -> list[dict[str, Any]]:
    """Symbols with a position or open orders (Binance's v3 rule)."""
    session, params = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        only = symbol_param(session, params, required=False)
        acc = session.paper.acc
        return [
            _position_row(session, s, v2=False)
            for i, s in enumerate(session.paper.symbols)
            if (only is None or s == only) and (acc.size(i) != 0.0 or _has_open_orders(session, s))
        ]


def _totals(session: TradingSession) -> dict[str, str]:
    m = session.paper.margin_summary()
    return {
        "totalInitialMargin": fmt_num(m.position_margin_usd + m.order_margin_usd),
        "totalMaintMargin": fmt_num(m.maintenance_margin_usd),
        "totalWalletBalance": fmt_num(m.wallet_usd),
        "totalUnrealizedProfit": fmt_num(m.unrealized_pnl_usd),
        "totalMarginBalance": fmt_num(m.equity_usd),
        "totalPositionInitialMargin": fmt_num(m.position_margin_usd),
        "totalOpenOrderInitialMargin": fmt_num(m.order_margin_usd),
        "totalCrossWalletBalance": fmt_num(m.wallet_usd),
        "totalCrossUnPnl": fmt_num(m.unrealized_pnl_usd),
        "availableBalance": fmt_num(m.free_usd),
        "maxWithdrawAmount": fmt_num(m.free_usd),
    }


def _asset_row(session: TradingSession) -> dict[str, Any]:
    t = _totals(session)
    return {
        "asset": "USDT",
        "walletBalance": t["totalWalletBalance"],
        "unrealizedProfit": t["totalUnrealizedProfit"],
        "marginBalance": t["totalMarginBalance"],
        "maintMargin": t["totalMaintMargin"],
        "initialMargin": t["totalInitialMargin"],
        "positionInitialMargin": t["totalPositionInitialMargin"],
        "openOrderInitialMargin": t["totalOpenOrderInitialMargin"],
        "crossWalletBalance": t["totalCrossWalletBalance"],
        "crossUnPnl": t["totalCrossUnPnl"],
        "availableBalance": t["availableBalance"],
        "maxWithdrawAmount": t["maxWithdrawAmount"],
        "marginAvailable": True,
        "updateTime": session.now_ms,
    }


async def _account(request: Request, *, v2: bool) -> dict[str, Any]:
    session, _ = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        acc = session.paper.acc
        body: dict[str, Any] = dict(_totals(session))
        body["assets"] = [_asset_row(session)]
        positions = []
        for i, symbol in enumerate(session.paper.symbols):
            if not v2 and acc.size(i) == 0.0:
                continue
            row = _position_row(session, symbol, v2=True)
            positions.append(
                {
                    "symbol": row["symbol"],
                    "positionSide": "BOTH",
                    "positionAmt": row["positionAmt"],
                    "unrealizedProfit": row["unRealizedProfit"],
                    "isolatedMargin": row["isolatedMargin"],
                    "notional": row["notional"],
                    "isolatedWallet": row["isolatedWallet"],
                    "initialMargin": fmt_num(abs(float(row["notional"])) / acc.leverage(i)),
                    "maintMargin": fmt_num(acc.maintenance_margin(i)),
                    "updateTime": session.now_ms,
                    **(
                        {
                            "leverage": row["leverage"],
                            "entryPrice": row["entryPrice"],
                            "isolated": acc.isolated,
                        }
                        if v2
                        else {}
                    ),
                }
            )
        body["positions"] = positions
        if v2:
            body.update(
                {
                    "feeTier": 0,
                    "canTrade": True,
                    "canDeposit": True,
                    "canWithdraw": True,
                    "updateTime": session.now_ms,
                }
            )
        return body


@account_router.get("/fapi/v2/account")
async def account_v2(request: Request) -> dict[str, Any]:
    """Account totals, the USDT asset and every symbol's position."""
    return await _account(request, v2=True)


@account_router.get("/fapi/v3/account")
async def account_v3(request: Request) -> dict[str, Any]:
    """Account totals, the USDT asset and the open positions (what ccxt's fetch_balance reads)."""
    return await _account(request, v2=False)


@account_router.get("/fapi/v2/balance")
@account_router.get("/fapi/v3/balance")
async def balance(request: Request) -> list[dict[str, Any]]:
    """The USDT balance."""
    session, _ = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        a = _asset_row(session)
        return [
            {
                "accountAlias": "local",
                "asset": "USDT",
                "balance": a["walletBalance"],
                "crossWalletBalance": a["crossWalletBalance"],
                "crossUnPnl": a["crossUnPnl"],
                "availableBalance": a["availableBalance"],
                "maxWithdrawAmount": a["maxWithdrawAmount"],
                "marginAvailable": True,
                "updateTime": session.now_ms,
            }
        ]


@account_router.post("/fapi/v1/leverage")
async def set_leverage(request: Request) -> dict[str, Any]:
    """Set ``symbol``'s leverage (an integer from 1 to the bracket maximum)."""
    session, params = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        symbol = symbol_param(session, params)
        assert symbol is not None
        lev = int_param(params, "leverage")
        if lev is None:
            float_param(params, "leverage", required=True)
            raise BinanceAPIError(-1100, "Illegal characters found in parameter 'leverage'.")
        try:
            await session.paper.set_leverage(symbol, float(lev))
        except InvalidOrder as error:
            raise paper_error(error, params) from None
        cap = session.paper.instruments[symbol].max_notional_usd(float(lev))
        return {
            "leverage": lev,
            "maxNotionalValue": binance_number(min(cap, 9e15)),
            "symbol": symbol_id(symbol),
        }


@account_router.get("/fapi/v1/leverageBracket")
async def leverage_bracket(request: Request) -> list[dict[str, Any]]:
    """Notional brackets of every symbol (or ``symbol``) from the instruments' margin tiers."""
    session, params = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        only = symbol_param(session, params, required=False)
        out = []
        for symbol, inst in session.paper.instruments.items():
            if only is not None and symbol != only:
                continue
            tiers = inst.tiers_array
            brackets = []
            for k, (floor, max_lev, rate, amount) in enumerate(tiers.tolist()):
                cap = tiers[k + 1, 0] if k + 1 < len(tiers) else 9.0e15
                brackets.append(
                    {
                        "bracket": k + 1,
                        "initialLeverage": int(max_lev),
                        "notionalCap": float(cap),
                        "notionalFloor": float(floor),
                        "maintMarginRatio": float(rate),
                        "cum": float(amount),
                    }
                )
            out.append({"symbol": symbol_id(symbol), "notionalCoef": 1.0, "brackets": brackets})
        return out


# ----------------------------------------------------------------------------- public quotes
def _symbols(session: TradingSession, request: Request) -> tuple[list[str], bool]:
    params = dict(request.query_params)
    only = symbol_param(session, params, required=False)
    return ([only] if only else list(session.paper.symbols)), only is not None


def _quoted(session: TradingSession, symbol: str) -> tuple[float, float, float]:
    bid, ask, last = session.paper.quote(symbol)
    if math.isnan(last):
        raise BinanceAPIError(-1000, f"No price yet for {symbol_id(symbol)}.")
    return bid, ask, last


@account_router.get("/fapi/v1/ticker/bookTicker")
async def book_ticker(request: Request) -> Any:
    """Best bid/ask: the last replayed close ∓ the half-spread."""
    session = session_of(request)
    symbols, single = _symbols(session, request)
    rows = []
    for symbol in symbols:
        book = (
            await session.paper.order_book(symbol, depth=1)
            if not math.isnan(session.paper.quote(symbol)[2])
            else None
        )
        if book is None:
            continue
        (bid, bid_qty), (ask, ask_qty) = book.bids[0], book.asks[0]
        rows.append(
            {
                "symbol": symbol_id(symbol),
                "bidPrice": fmt_num(bid),
                "bidQty": fmt_num(bid_qty),
                "askPrice": fmt_num(ask),
                "askQty": fmt_num(ask_qty),
                "time": session.now_ms,
                "lastUpdateId": session.now_ms,
            }
        )
    return rows[0] if single and rows else rows


@account_router.get("/fapi/v1/ticker/price")
@account_router.get("/fapi/v2/ticker/price")
async def ticker_price(request: Request) -> Any:
    """Last price: the last replayed close."""
    session = session_of(request)
    symbols, single = _symbols(session, request)
    rows = [
        {
            "symbol": symbol_id(s),
            "price": fmt_num(session.paper.quote(s)[2]),
            "time": session.now_ms,
        }
        for s in symbols
        if not math.isnan(session.paper.quote(s)[2])
    ]
    return rows[0] if single and rows else rows


@account_router.get("/fapi/v1/ticker/24hr")
async def ticker_24hr(request: Request) -> Any:
    """24-hour statistics over the replayed bars that closed in the last 24 h."""
    session = session_of(request)
    symbols, single = _symbols(session, request)
    now = pd.Timestamp(session.now_ms, unit="ms", tz="UTC")
    rows = []
    for symbol in symbols:
        since = now - pd.Timedelta(hours=24)  # bars opened in the last 24 h
        bars = await session.paper.ohlcv(symbol, session.timeframe, since=since)
        if bars.empty:
            continue
        o, c = float(bars["open"].iloc[0]), float(bars["close"].iloc[-1])
        vol = float(bars["volume"].sum())
        quote_vol = float((bars["volume"] * bars["close"]).sum())
        rows.append(
            {
                "symbol": symbol_id(symbol),
                "priceChange": fmt_num(c - o),
                "priceChangePercent": f"{(c / o - 1.0) * 100.0:.3f}",
                "weightedAvgPrice": fmt_num(quote_vol / vol if vol > 0 else c),
                "lastPrice": fmt_num(c),
                "lastQty": "0",
                "openPrice": fmt_num(o),
                "highPrice": fmt_num(float(bars["high"].max())),
                "lowPrice": fmt_num(float(bars["low"].min())),
                "volume": fmt_num(vol),
                "quoteVolume": fmt_num(quote_vol),
                "openTime": int(bars.index[0].value // 1_000_000),
                "closeTime": session.now_ms - 1,
                "firstId": 0,
                "lastId": 0,
                "count": 0,
            }
        )
    return rows[0] if single and rows else rows


@account_router.get("/fapi/v1/depth")
async def depth(request: Request) -> dict[str, Any]:
    """A synthetic book around the quotes (``limit`` 5, 10, 20, 50, 100, 500, 1000)."""
    session = session_of(request)
    params = dict(request.query_params)
    symbol = symbol_param(session, params)
    assert symbol is not None
    limit = int_param(params, "limit") or 500
    if limit not in _DEPTH_LIMITS:
        raise BinanceAPIError(-1130, "Data sent for parameter 'limit' is not valid.")
    _quoted(session, symbol)
    book = await session.paper.order_book(symbol, depth=limit)
    return {
        "lastUpdateId": session.now_ms,
        "E": session.now_ms,
        "T": session.now_ms,
        "bids": [[fmt_num(p), fmt_num(q)] for p, q in book.bids],
        "asks": [[fmt_num(p), fmt_num(q)] for p, q in book.asks],
    }


@account_router.get("/fapi/v1/premiumIndex")
async def premium_index(request: Request) -> Any:
    """Mark and index price (the last close), the last funding rate and the next settlement."""
    session = session_of(request)
    symbols, single = _symbols(session, request)
    rows = []
    for symbol in symbols:
        last = session.paper.quote(symbol)[2]
        if math.isnan(last):
            continue
        rate, next_time = await session.paper.funding_rate(symbol)
        rows.append(
            {
                "symbol": symbol_id(symbol),
                "markPrice": fmt_num(last),
                "indexPrice": fmt_num(last),
                "estimatedSettlePrice": fmt_num(last),
                "lastFundingRate": binance_number(rate),
                "interestRate": "0.00010000",
                "nextFundingTime": int(next_time.value // 1_000_000),
                "time": session.now_ms,
            }
        )
    return rows[0] if single and rows else rows


# ----------------------------------------------------------------------------- control
@control_router.post("/advance")
async def advance(request: Request) -> dict[str, Any]:
    """Move the replay clock ``bars`` bars (default 1); returns the new clock."""
    session = session_of(request)
    bars = int_param(dict(request.query_params), "bars")
    bars = 1 if bars is None else bars
    if not 0 <= bars <= 1_000_000:
        raise BinanceAPIError(-1130, "Data sent for parameter 'bars' is not valid.")
    fills = session.advance(bars)
    return {
        "time": session.now_ms,
        "fills": fills,
        "remaining": session.replay.remaining,
        "done": session.replay.done,
    }


@control_router.get("/clock")
async def clock(request: Request) -> dict[str, Any]:
    """Where the replay clock stands."""
    session = session_of(request)
    return {
        "time": session.now_ms,
        "timeframe": session.timeframe,
        "remaining": session.replay.remaining,
        "done": session.replay.done,
        "bars_per_second": session.bars_per_second,
    }
