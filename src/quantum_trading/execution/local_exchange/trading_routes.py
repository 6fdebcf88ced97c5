"""Binance USDⓈ-M trading routes of the local exchange, backed by the replaying paper exchange.

What ccxt 4.5's ``binanceusdm`` calls, and what answers here (Binance's formats and codes):

=============================== ============================================================
ccxt method                      endpoint
=============================== ============================================================
load_markets                     GET /fapi/v1/exchangeInfo (market routes)
set_leverage                     POST /fapi/v1/leverage
create_order market / limit      POST /fapi/v1/order (``newClientOrderId``)
create_order stop / take-profit  POST /fapi/v1/algoOrder (``clientAlgoId``, ``triggerPrice``;
                                 Binance's algo service since 2025-12; a conditional type on
                                 /fapi/v1/order is refused with -4120 as on Binance)
fetch_order / cancel_order       GET / DELETE /fapi/v1/order (``origClientOrderId``);
                                 with ``{"trigger": True}``: GET / DELETE /fapi/v1/algoOrder
fetch_open_orders                GET /fapi/v1/openOrders (``trigger``: /fapi/v1/openAlgoOrders)
fetch_orders                     GET /fapi/v1/allOrders
cancel_all_orders                DELETE /fapi/v1/allOpenOrders
fetch_positions                  GET /fapi/v1/leverageBracket, GET /fapi/v3/positionRisk
                                 (v2 with ``useV2``)
fetch_balance                    GET /fapi/v3/account (v2 with ``useV2``; /fapi/v2|v3/balance)
fetch_my_trades                  GET /fapi/v1/userTrades
fetch_ticker / fetch_bids_asks   GET /fapi/v1/ticker/24hr / ticker/bookTicker (and
                                 ticker/price)
fetch_order_book                 GET /fapi/v1/depth (a synthetic ladder around bid/ask)
fetch_funding_rate               GET /fapi/v1/premiumIndex
=============================== ============================================================

Signed routes check ``X-MBX-APIKEY``, the HMAC-SHA256 ``signature`` and ``timestamp`` /
``recvWindow`` (:mod:`.signing`). Client ids follow Binance: ``^[.A-Z:/a-z0-9_-]{1,36}$``
(-4015), unique among **open** orders (a second create with the id of an open order →
``-4116 ClientOrderId is duplicated.``; the id of a finished order may be used again, and a query
by it then finds the newest order — as Binance documents it). A stop that triggers becomes a
regular order under the same client id and order id (type MARKET, ``origType`` STOP_MARKET /
TAKE_PROFIT_MARKET), visible in /fapi/v1/order, openOrders and userTrades.

Orders are accepted with status NEW and fill as the paper exchange fills them: a market order at
the next replayed bar's open (see :mod:`quantum_trading.execution.paper`).

Control routes (no signature, never faulted): ``POST /_local/advance?bars=N`` moves the replay
clock N bars; ``GET /_local/clock`` tells where it stands.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pandas as pd
from fastapi import APIRouter, Request

from quantum_trading.domain import Side
from quantum_trading.execution.errors import InvalidOrder
from quantum_trading.execution.local_exchange.market_data import binance_number
from quantum_trading.execution.local_exchange.market_routes import BinanceAPIError
from quantum_trading.execution.local_exchange.signing import (
    SignatureError,
    verify_signed_request,
)
from quantum_trading.execution.local_exchange.trading import TradingSession, ms, symbol_id
from quantum_trading.execution.models import (
    LiveOrderStatus,
    LiveOrderType,
    OrderRequest,
    TimeInForce,
    new_client_order_id,
)
from quantum_trading.execution.paper_book import PaperOrder

__all__ = [
    "algo_json",
    "bool_param",
    "control_router",
    "float_param",
    "fmt_num",
    "int_param",
    "order_json",
    "paper_error",
    "required_param",
    "router",
    "session_of",
    "signed_params",
    "symbol_param",
]

router = APIRouter(tags=["trading"])
control_router = APIRouter(prefix="/_local", tags=["control"])

_CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_STATUS = {
    LiveOrderStatus.NEW: "NEW",
    LiveOrderStatus.OPEN: "NEW",
    LiveOrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    LiveOrderStatus.FILLED: "FILLED",
    LiveOrderStatus.CANCELLED: "CANCELED",
    LiveOrderStatus.REJECTED: "REJECTED",
    LiveOrderStatus.EXPIRED: "EXPIRED",
}
_TYPES = {"MARKET": LiveOrderType.MARKET, "LIMIT": LiveOrderType.LIMIT}
_ALGO_TYPES = {
    "STOP_MARKET": LiveOrderType.STOP_MARKET,
    "TAKE_PROFIT_MARKET": LiveOrderType.TAKE_PROFIT_MARKET,
}
_CONDITIONAL_NAMES = (
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
)
_TIF = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "GTX": TimeInForce.POST_ONLY}
_REASONS: dict[str, tuple[int, Callable[[dict[str, str]], str]]] = {
    "unknown_symbol": (-1121, lambda p: "Invalid symbol."),
    "bankrupt": (-2019, lambda p: "Margin is insufficient."),
    "margin": (-2019, lambda p: "Margin is insufficient."),
    "lot_size": (-1111, lambda p: "Precision is over the maximum defined for this asset."),
    "tick_size": (-4014, lambda p: "Price not increased by tick size."),
    "no_price": (-1000, lambda p: "An unknown error occurred while processing the request."),
    "reduce_only": (-2022, lambda p: "ReduceOnly Order is rejected."),
    "short": (-2010, lambda p: "New order rejected."),
    "min_notional": (
        -4164,
        lambda p: (
            f"Order's notional must be no smaller than "
            f"{p.get('_min', '5')} (unless you choose reduce only)."
        ),
    ),
    "max_position": (
        -2027,
        lambda p: "Exceeded the maximum allowable position at current leverage.",
    ),
    "leverage": (-4028, lambda p: f"Leverage {p.get('leverage', '')} is not valid"),
}


# ----------------------------------------------------------------------------- plumbing
def session_of(request: Request) -> TradingSession:
    session = getattr(request.app.state, "trading", None)
    if session is None:
        raise BinanceAPIError(
            -1000, "Trading is not enabled on this local exchange (start it with --trading).", 404
        )
    return session


async def signed_params(request: Request) -> tuple[TradingSession, dict[str, str]]:
    session = session_of(request)
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        params = verify_signed_request(
            session.credentials,
            api_key=request.headers.get("X-MBX-APIKEY"),
            query=request.url.query,
            body=body,
        )
    except SignatureError as error:
        raise BinanceAPIError(error.code, error.msg, error.status) from None
    return session, params


def fmt_num(value: float | None) -> str:
    return binance_number(0.0 if value is None else float(value))


def required_param(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise BinanceAPIError(
            -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        )
    return value


def float_param(params: dict[str, str], name: str, *, required: bool = False) -> float | None:
    raw = required_param(params, name) if required else params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise BinanceAPIError(-1100, f"Illegal characters found in parameter '{name}'.") from None


def int_param(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.lstrip("-").isdigit():
        raise BinanceAPIError(-1100, f"Illegal characters found in parameter '{name}'.")
    return int(raw)


def symbol_param(
    session: TradingSession, params: dict[str, str], *, required: bool = True
) -> str | None:
    raw = required_param(params, "symbol") if required else params.get("symbol")
    if raw is None:
        return None
    for symbol in session.paper.symbols:
        if symbol_id(symbol) == raw:
            return symbol
    raise BinanceAPIError(-1121, "Invalid symbol.")


def bool_param(params: dict[str, str], name: str) -> bool:
    return params.get(name, "false").lower() == "true"


def _client_id(params: dict[str, str], name: str) -> str:
    cid = params.get(name) or new_client_order_id("local")
    if not _CLIENT_ID.match(cid):
        raise BinanceAPIError(-4015, "Client order id is not valid.")
    return cid


def paper_error(error: InvalidOrder, params: dict[str, str]) -> BinanceAPIError:
    code, msg = _REASONS.get(getattr(error, "reason", ""), (-2010, lambda p: "New order rejected."))
    return BinanceAPIError(code, msg(params))


def _float_of(value: object) -> float:
    return float(value)  # type: ignore[arg-type]


def _side_name(side: Side) -> str:
    return "BUY" if side is Side.BUY else "SELL"


def _ms(stamp: pd.Timestamp | None) -> int:
    return 0 if stamp is None else ms(stamp)


# ----------------------------------------------------------------------------- order JSON
def order_json(order: PaperOrder) -> dict[str, Any]:
    """A regular order (or a triggered stop's actual order) in Binance's format."""
    conditional = order.is_conditional
    kind = str(order.order_type).upper()
    return {
        "orderId": order.id,
        "symbol": symbol_id(order.symbol),
        "status": _STATUS[order.status],
        "clientOrderId": order.client_order_id,
        "price": fmt_num(order.price),
        "avgPrice": fmt_num(order.average_price),
        "origQty": fmt_num(order.amount),
        "executedQty": fmt_num(order.filled),
        "cumQty": fmt_num(order.filled),
        "cumQuote": fmt_num(order.cost_usd),
        "timeInForce": "GTC" if conditional else order.time_in_force.value,
        "type": "MARKET" if conditional else kind,
        "reduceOnly": order.reduce_only,
        "closePosition": False,
        "side": _side_name(order.side),
        "positionSide": "BOTH",
        "stopPrice": fmt_num(order.stop_price),
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": kind,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "time": _ms(order.triggered_at if conditional else order.created_at),
        "updateTime": _ms(order.updated_at),
    }


def _algo_status(order: PaperOrder) -> str:
    if order.status is LiveOrderStatus.CANCELLED:
        return "CANCELED"
    if order.status in (LiveOrderStatus.REJECTED, LiveOrderStatus.EXPIRED):
        return _STATUS[order.status]
    if not order.triggered:
        return "NEW"
    return "FINISHED" if order.status is LiveOrderStatus.FILLED else "TRIGGERED"


def algo_json(order: PaperOrder) -> dict[str, Any]:
    """A conditional (algo) order in Binance's format."""
    return {
        "algoId": order.id,
        "clientAlgoId": order.client_order_id,
        "algoType": "CONDITIONAL",
        "orderType": str(order.order_type).upper(),
        "symbol": symbol_id(order.symbol),
        "side": _side_name(order.side),
        "positionSide": "BOTH",
        "timeInForce": "GTC",
        "quantity": fmt_num(order.amount),
        "algoStatus": _algo_status(order),
        "triggerPrice": fmt_num(order.stop_price),
        "price": "0",
        "icebergQuantity": None,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": "CONTRACT_PRICE",
        "priceMatch": "NONE",
        "closePosition": False,
        "priceProtect": False,
        "reduceOnly": order.reduce_only,
        "createTime": _ms(order.created_at),
        "updateTime": _ms(order.updated_at),
        "triggerTime": _ms(order.triggered_at),
        "goodTillDate": 0,
        "actualOrderId": str(order.id) if order.triggered else "",
        "actualPrice": fmt_num(order.average_price),
    }


def _find(
    session: TradingSession, symbol: str, params: dict[str, str], id_key: str, cid_key: str
) -> PaperOrder | None:
    order_id, cid = int_param(params, id_key), params.get(cid_key)
    if order_id is None and not cid:
        raise BinanceAPIError(
            -1102, f"Param '{id_key}' or '{cid_key}' must be sent, but both were empty/null!"
        )
    book = session.paper.book
    order = book.orders.get(order_id) if order_id is not None else book.by_client_id.get(cid or "")
    if order is None or order.symbol != symbol:
        return None
    return order


def _visible_as_order(order: PaperOrder) -> bool:
    return not order.is_conditional or order.triggered


# ----------------------------------------------------------------------------- orders
async def _create(request: Request, *, algo: bool) -> dict[str, Any]:
    session, params = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        symbol = symbol_param(session, params)
        assert symbol is not None
        side_raw = required_param(params, "side")
        if side_raw not in ("BUY", "SELL"):
            raise BinanceAPIError(-1117, "Invalid side.")
        type_raw = required_param(params, "type")
        if algo:
            if params.get("algoType") != "CONDITIONAL":
                raise BinanceAPIError(-1116, "Invalid algoType.")
            if type_raw not in _ALGO_TYPES:
                raise BinanceAPIError(
                    -1116,
                    "Invalid orderType. (local exchange: STOP_MARKET and "
                    "TAKE_PROFIT_MARKET are served)",
                )
            otype = _ALGO_TYPES[type_raw]
        else:
            if type_raw in _CONDITIONAL_NAMES:
                raise BinanceAPIError(
                    -4120,
                    "Order type not supported for this endpoint. Please "
                    "use the Algo Order API endpoints instead.",
                )
            if type_raw not in _TYPES:
                raise BinanceAPIError(-1116, "Invalid orderType.")
            otype = _TYPES[type_raw]
        if params.get("positionSide", "BOTH") != "BOTH":
            raise BinanceAPIError(-4061, "Order's position side does not match user's setting.")
        if bool_param(params, "closePosition"):
            raise BinanceAPIError(
                -1106,
                "Parameter 'closePosition' sent when not required. "
                "(local exchange: send quantity and reduceOnly)",
            )
        quantity = float_param(params, "quantity", required=True)
        assert quantity is not None
        if quantity <= 0.0:
            raise BinanceAPIError(-4003, "Quantity less than or equal to zero.")
        price = stop = None
        tif = TimeInForce.GTC
        if otype is LiveOrderType.LIMIT:
            price = float_param(params, "price", required=True)
            tif_raw = required_param(params, "timeInForce")
            if tif_raw not in _TIF:
                raise BinanceAPIError(-1115, "Invalid timeInForce. (local exchange: GTC, IOC, GTX)")
            tif = _TIF[tif_raw]
            if price is None or price <= 0.0:
                raise BinanceAPIError(-4001, "Price less than 0.")
        if algo:
            stop = float_param(params, "triggerPrice", required=True)
            if stop is None or stop <= 0.0:
                raise BinanceAPIError(-4006, "Stop price less than zero.")
        cid = _client_id(params, "clientAlgoId" if algo else "newClientOrderId")
        paper = session.paper
        known = paper.book.by_client_id.get(cid)
        if known is not None and known.is_open:
            raise BinanceAPIError(-4116, "ClientOrderId is duplicated.")
        req = OrderRequest(
            symbol=symbol,
            side=Side.BUY if side_raw == "BUY" else Side.SELL,
            order_type=otype,
            amount=quantity,
            price=price,
            stop_price=stop,
            reduce_only=bool_param(params, "reduceOnly"),
            time_in_force=tif,
            client_order_id=cid,
        )
        try:
            await paper.create_order(req, reuse_terminal_id=True)
        except InvalidOrder as error:
            params["_min"] = binance_number(paper.instruments[symbol].min_notional_usd)
            raise paper_error(error, params) from None
        record = paper.order_record(cid, symbol)
        if tif is TimeInForce.POST_ONLY and record.status is LiveOrderStatus.EXPIRED:
            raise BinanceAPIError(
                -5022,
                "Due to the order could not be executed as maker, the Post "
                "Only order will be rejected.",
            )
        return algo_json(record) if algo else order_json(record)


@router.post("/fapi/v1/order")
async def create_order(request: Request) -> dict[str, Any]:
    """New order: MARKET or LIMIT (GTC, IOC, GTX)."""
    return await _create(request, algo=False)


@router.post("/fapi/v1/algoOrder")
async def create_algo_order(request: Request) -> dict[str, Any]:
    """New conditional order: STOP_MARKET / TAKE_PROFIT_MARKET (``algoType=CONDITIONAL``)."""
    return await _create(request, algo=True)


@router.get("/fapi/v1/order")
async def query_order(request: Request) -> dict[str, Any]:
    """Query by ``orderId`` or ``origClientOrderId`` (-2013 if unknown)."""
    session, params = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        symbol = symbol_param(session, params)
        assert symbol is not None
        order = _find(session, symbol, params, "orderId", "origClientOrderId")
        if order is None or not _visible_as_order(order):
            raise BinanceAPIError(-2013, "Order does not exist.")
        return order_json(order)


@router.delete("/fapi/v1/order")
async def cancel_order(request: Request) -> dict[str, Any]:
    """Cancel an open order (-2011 if unknown or already finished)."""
    session, params = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        symbol = symbol_param(session, params)
        assert symbol is not None
        order = _find(session, symbol, params, "orderId", "origClientOrderId")
        if order is None or not order.is_open or not _visible_as_order(order):
            raise BinanceAPIError(-2011, "Unknown order sent.")
        await session.paper.cancel_order(symbol, client_order_id=order.client_order_id)
        return order_json(order)


@router.get("/fapi/v1/algoOrder")
async def query_algo_order(request: Request) -> dict[str, Any]:
    """Query a conditional order by ``algoId`` or ``clientAlgoId``."""
    session, params = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        symbol = symbol_param(session, params, required=False)
        order = _find(session, symbol or "", params, "algoId", "clientAlgoId") if symbol else None
        if symbol is None:
            order = _find_any(session, params)
        if order is None or not order.is_conditional:
            raise BinanceAPIError(-2013, "Order does not exist.")
        return algo_json(order)


def _find_any(session: TradingSession, params: dict[str, str]) -> PaperOrder | None:
    order_id, cid = int_param(params, "algoId"), params.get("clientAlgoId")
    if order_id is None and not cid:
        raise BinanceAPIError(
            -1102, "Param 'algoId' or 'clientAlgoId' must be sent, but both were empty/null!"
        )
    book = session.paper.book
    return book.orders.get(order_id) if order_id is not None else book.by_client_id.get(cid or "")


@router.delete("/fapi/v1/algoOrder")
async def cancel_algo_order(request: Request) -> dict[str, Any]:
    """Cancel a conditional order that has not triggered."""
    session, params = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        order = _find_any(session, params)
        if order is None or not order.is_conditional or not order.is_open or order.triggered:
            raise BinanceAPIError(-2011, "Unknown order sent.")
        await session.paper.cancel_order(order.symbol, client_order_id=order.client_order_id)
        return {
            "algoId": order.id,
            "clientAlgoId": order.client_order_id,
            "code": "200",
            "msg": "success",
        }


@router.get("/fapi/v1/openOrders")
async def open_orders(request: Request) -> list[dict[str, Any]]:
    """Open regular orders (and triggered stops still filling), oldest first."""
    session, params = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        symbol = symbol_param(session, params, required=False)
        return [
            order_json(o) for o in session.paper.book.open_orders(symbol) if _visible_as_order(o)
        ]


@router.get("/fapi/v1/openAlgoOrders")
async def open_algo_orders(request: Request) -> list[dict[str, Any]]:
    """Conditional orders waiting for their trigger."""
    session, params = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        symbol = symbol_param(session, params, required=False)
        return [
            algo_json(o)
            for o in session.paper.book.open_orders(symbol)
            if o.is_conditional and not o.triggered
        ]


@router.get("/fapi/v1/allOrders")
async def all_orders(request: Request) -> list[dict[str, Any]]:
    """Every regular order of ``symbol``: ``orderId`` (≥), ``startTime``/``endTime`` on the
    creation time, ``limit`` (default 500, ≤ 1000)."""
    session, params = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        symbol = symbol_param(session, params)
        from_id, start, end = (
            int_param(params, "orderId"),
            int_param(params, "startTime"),
            int_param(params, "endTime"),
        )
        limit = min(int_param(params, "limit") or 500, 1000)
        rows = [
            o
            for o in session.paper.book.orders.values()
            if o.symbol == symbol
            and _visible_as_order(o)
            and (from_id is None or o.id >= from_id)
            and (start is None or _ms(o.created_at) >= start)
            and (end is None or _ms(o.created_at) <= end)
        ]
        return [order_json(o) for o in rows[-limit:]]


@router.delete("/fapi/v1/allOpenOrders")
async def cancel_all(request: Request) -> dict[str, Any]:
    """Cancel every open regular order of ``symbol``."""
    session, params = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        symbol = symbol_param(session, params)
        for order in list(session.paper.book.open_orders(symbol)):
            if not order.is_conditional:
                await session.paper.cancel_order(
                    order.symbol, client_order_id=order.client_order_id
                )
        return {"code": 200, "msg": "The operation of cancel all open order is done."}


@router.get("/fapi/v1/userTrades")
async def user_trades(request: Request) -> list[dict[str, Any]]:
    """Our fills on ``symbol`` (``orderId``, ``startTime``, ``endTime``, ``fromId``, ``limit``
    ≤ 1000, default 500); ``realizedPnl`` from the simulator's fill record."""
    session, params = await signed_params(request)
    with session.paper.lock:  # a replay thread may be feeding bars
        symbol = symbol_param(session, params)
        assert symbol is not None
        order_id, start, end = (
            int_param(params, "orderId"),
            int_param(params, "startTime"),
            int_param(params, "endTime"),
        )
        from_id = int_param(params, "fromId")
        limit = min(int_param(params, "limit") or 500, 1000)
        with session.paper.lock:
            pnl = {r["fill_id"]: r for r in session.paper.matcher.records if r["symbol"] == symbol}
        out = []
        for fill in await session.paper.fills(symbol):
            t = _ms(fill.time)
            if (
                (order_id is not None and fill.order_id != str(order_id))
                or (start is not None and t < start)
                or (end is not None and t > end)
                or (from_id is not None and int(fill.id) < from_id)
            ):
                continue
            rec = pnl.get(fill.id, {})
            out.append(
                {
                    "buyer": fill.side is Side.BUY,
                    "commission": fmt_num(fill.fee_usd),
                    "commissionAsset": "USDT",
                    "id": int(fill.id),
                    "maker": fill.is_maker,
                    "orderId": int(fill.order_id),
                    "price": fmt_num(fill.price),
                    "qty": fmt_num(fill.amount),
                    "quoteQty": fmt_num(fill.amount * fill.price),
                    "realizedPnl": fmt_num(_float_of(rec.get("realized_pnl_usd", 0.0))),
                    "side": _side_name(fill.side),
                    "positionSide": "BOTH",
                    "symbol": symbol_id(symbol),
                    "time": t,
                }
            )
        return out[:limit] if from_id is not None or start is not None else out[-limit:]
