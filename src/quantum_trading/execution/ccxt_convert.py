"""ccxt's structures and exceptions to ours, and the retry policy: the half of the ccxt
adapter that sends nothing.

:mod:`quantum_trading.execution.ccxt_exchange` calls ccxt and hands what comes back to these
functions. Sizes: ccxt counts contracts (``amount``, ``contracts``); we count base units, so
every size is multiplied by the market's ``contractSize`` (1 on Binance USDⓈ-M). Times: ccxt's
Unix milliseconds become UTC ``pd.Timestamp``.

Error mapping (:func:`map_ccxt_error`)
--------------------------------------
=========================================  =============================================
ccxt exception                              ours
=========================================  =============================================
DDoSProtection, RateLimitExceeded (429)     :class:`~.errors.RateLimited`
RequestTimeout, NetworkError without an     :class:`~.errors.OrderStateUnknown` on calls
HTTP answer (dropped connection), and       that create or cancel orders, else
BadResponse                                 :class:`~.errors.ExchangeUnavailable`
ExchangeNotAvailable, OnMaintenance (5xx),  :class:`~.errors.ExchangeUnavailable`
InvalidNonce
InsufficientFunds                           :class:`~.errors.InsufficientFunds`
OrderNotFound                               :class:`~.errors.OrderNotFound`
InvalidOrder, BadRequest, BadSymbol         :class:`~.errors.InvalidOrder`
(and OperationRejected on order calls)
AuthenticationError, PermissionDenied,      :class:`~.errors.AuthenticationFailed`
AccountSuspended
anything else                               :class:`~.errors.ExchangeError`
=========================================  =============================================

Every message names the exchange, the method and the symbol, and is passed through a
redactor so that neither the API key nor the secret (nor a signed query string) is quoted.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import ccxt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from quantum_trading.domain import Instrument, Side
from quantum_trading.execution.errors import (
    AuthenticationFailed,
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    OrderStateUnknown,
    RateLimited,
)
from quantum_trading.execution.models import (
    Balance,
    ExchangeFill,
    ExchangeOrder,
    ExchangePosition,
    LiveOrderStatus,
    LiveOrderType,
    OrderBook,
    OrderRequest,
    Ticker,
    TimeInForce,
)

__all__ = [
    "RetryConfig",
    "balance_from_ccxt",
    "check_order_steps",
    "fill_from_ccxt",
    "instrument_from_ccxt",
    "is_ambiguous",
    "is_duplicate_id",
    "map_ccxt_error",
    "market_steps",
    "ohlcv_from_ccxt",
    "order_book_from_ccxt",
    "order_from_ccxt",
    "order_params",
    "order_type_from_ccxt",
    "position_from_ccxt",
    "redact",
    "ticker_from_ccxt",
    "tiers_from_ccxt",
    "to_time",
]

_STATUS = {
    "open": LiveOrderStatus.OPEN,
    "closed": LiveOrderStatus.FILLED,
    "canceled": LiveOrderStatus.CANCELLED,
    "cancelled": LiveOrderStatus.CANCELLED,
    "canceling": LiveOrderStatus.OPEN,
    "rejected": LiveOrderStatus.REJECTED,
    "expired": LiveOrderStatus.EXPIRED,
}
_NATIVE_TYPES = {
    "MARKET": LiveOrderType.MARKET,
    "LIMIT": LiveOrderType.LIMIT,
    "LIMIT_MAKER": LiveOrderType.LIMIT,
    "STOP": LiveOrderType.STOP_MARKET,
    "STOP_MARKET": LiveOrderType.STOP_MARKET,
    "STOP_LOSS": LiveOrderType.STOP_MARKET,
    "TRAILING_STOP_MARKET": LiveOrderType.STOP_MARKET,
    "TAKE_PROFIT": LiveOrderType.TAKE_PROFIT_MARKET,
    "TAKE_PROFIT_MARKET": LiveOrderType.TAKE_PROFIT_MARKET,
}
_QUERY = re.compile(r"\?\S*")
_DUPLICATE_CODES = ("-4116", "-2012")  # Binance USDⓈ-M / spot: client order id duplicated


class RetryConfig(BaseModel):
    """How failed requests are retried (exponential backoff with full jitter).

    >>> RetryConfig(base_delay_s=0.001).max_attempts
    5
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(
        5, ge=1, le=50,
        description="Tries of one request (count, the first included) before its error is "
        "raised; only network errors, 429/418 and 5xx are retried.",
    )
    base_delay_s: float = Field(
        0.25, ge=0.0, le=60.0,
        description="Backoff scale (seconds): the wait before try k + 1 is uniform in "
        "[0, min(max_delay_s, base_delay_s * 2**(k - 1))].",
    )
    max_delay_s: float = Field(
        10.0, ge=0.0, le=600.0, description="Longest wait between two tries (seconds)."
    )
    seed: int | None = Field(
        None, description="Seed of the jitter (None: unseeded); set it for reproducible tests."
    )

    @model_validator(mode="after")
    def _delays(self) -> RetryConfig:
        if self.max_delay_s < self.base_delay_s:
            raise ValueError(
                f"max_delay_s ({self.max_delay_s}) must be >= base_delay_s ({self.base_delay_s})"
            )
        return self

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before try ``attempt + 1`` (full jitter).

        >>> RetryConfig(base_delay_s=1.0, max_delay_s=3.0).delay_s(5, random.Random(0)) <= 3.0
        True
        """
        cap = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return rng.uniform(0.0, cap) if cap > 0.0 else 0.0


# ------------------------------------------------------------------------------- errors
def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` without signed query strings (``?…`` → ``?…``) and without any of ``secrets``.

    >>> redact("GET http://x/fapi/v1/order?symbol=BTCUSDT&signature=ab k3y-value", ["k3y-value"])
    'GET http://x/fapi/v1/order?… ***'
    """
    text = _QUERY.sub("?…", " ".join(str(text).split()))
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text if len(text) <= 400 else text[:397] + "..."


def is_ambiguous(error: BaseException) -> bool:
    """True when the request may have reached the exchange without us getting its answer: a
    timeout, a connection dropped before the response (ccxt's async client reports it as
    ``ExchangeNotAvailable`` raised *from* the aiohttp error), or an unreadable response."""
    if isinstance(error, ccxt.RequestTimeout | ccxt.BadResponse):
        return True
    if isinstance(error, ccxt.DDoSProtection | ccxt.RateLimitExceeded | ccxt.InvalidNonce):
        return False
    cause = error.__cause__
    if isinstance(cause, aiohttp.ClientError):  # sent, then the connection or body broke
        return not isinstance(cause, aiohttp.ClientConnectorError)  # (never connected: not sent)
    if isinstance(error, ccxt.ExchangeNotAvailable):  # an HTTP 5xx answer
        return False
    return isinstance(error, ccxt.NetworkError)


def is_duplicate_id(error: BaseException) -> bool:
    """True for "this client order id is already used" (ccxt ``DuplicateOrderId``, Binance
    -4116 / -2012)."""
    if isinstance(error, ccxt.DuplicateOrderId):
        return True
    text = str(error)
    return isinstance(error, ccxt.ExchangeError) and (
        any(code in text for code in _DUPLICATE_CODES) or "is duplicated" in text.lower()
    )


def map_ccxt_error(
    error: BaseException,
    *,
    exchange: str,
    method: str,
    symbol: str | None = None,
    order_call: bool = False,
    secrets: Sequence[str] = (),
) -> ExchangeError:
    """Our exception for a ccxt exception (see the module's table).

    ``order_call``: the call creates or cancels an order, so a lost answer leaves its fate
    unknown (:class:`OrderStateUnknown`). The message names exchange, method and symbol and is
    redacted (``secrets`` are the key and secret values; they are never quoted).

    >>> e = map_ccxt_error(ccxt.RateLimitExceeded("429"), exchange="binanceusdm",
    ...                    method="create_order", symbol="BTC/USDT:USDT")
    >>> type(e).__name__, str(e)
    ('RateLimited', 'binanceusdm create_order BTC/USDT:USDT: RateLimitExceeded: 429')
    """
    where = f"{exchange} {method}" + (f" {symbol}" if symbol else "")
    text = redact(f"{where}: {type(error).__name__}: {error}", secrets)
    kind: type[ExchangeError]
    if isinstance(error, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        kind = RateLimited
    elif is_ambiguous(error):
        kind = OrderStateUnknown if order_call else ExchangeUnavailable
    elif isinstance(error, ccxt.NetworkError):  # 5xx, maintenance, clock skew
        kind = ExchangeUnavailable
    elif isinstance(error, ccxt.InsufficientFunds):
        kind = InsufficientFunds
    elif isinstance(error, ccxt.OrderNotFound):
        kind = OrderNotFound
    elif isinstance(error, ccxt.InvalidOrder | ccxt.BadRequest):
        kind = InvalidOrder
    elif isinstance(error, ccxt.OperationRejected) and order_call:
        kind = InvalidOrder
    elif isinstance(error, ccxt.AuthenticationError):
        kind = AuthenticationFailed
    else:
        kind = ExchangeError
    return kind(text)


# ------------------------------------------------------------------------------- helpers
def to_time(ms: Any, default: pd.Timestamp | None = None) -> pd.Timestamp:
    """Unix ms → UTC timestamp (``default``, else now, when missing)."""
    if ms is None or (isinstance(ms, float) and math.isnan(ms)):
        return default if default is not None else pd.Timestamp.now(tz="UTC")
    return pd.Timestamp(int(ms), unit="ms", tz="UTC")


def _num(value: Any, default: float | None = None) -> float | None:
    if value is None or value == "":
        return default
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(out) else out


def _positive(value: Any) -> float | None:
    out = _num(value)
    return out if out is not None and out > 0.0 else None


def _side(value: Any) -> Side:
    return Side.SELL if str(value).lower() in ("sell", "short") else Side.BUY


def market_steps(market: Mapping[str, Any], precision_mode: int) -> tuple[float, float]:
    """``(tick_size, lot_size)`` of a ccxt market in prices and **contracts** (0 = unknown).

    ccxt states precision as a step (``TICK_SIZE`` mode, Binance), a count of decimals
    (``DECIMAL_PLACES``) or significant digits (no fixed step: 0).
    """
    precision = market.get("precision") or {}

    def step(value: Any) -> float:
        v = _num(value)
        if v is None or v <= 0:
            return 0.0 if v is None or precision_mode != ccxt.DECIMAL_PLACES else 1.0
        if precision_mode == ccxt.TICK_SIZE:
            return v
        if precision_mode == ccxt.DECIMAL_PLACES:
            return 10.0 ** (-v)
        return 0.0

    return step(precision.get("price")), step(precision.get("amount"))


# ------------------------------------------------------------------------------- requests
def order_params(request: OrderRequest, *, contract_size: float = 1.0
                 ) -> tuple[str, str, float, float | None, dict[str, Any]]:
    """Our order request → ccxt's ``create_order`` arguments ``(type, side, amount in
    contracts, price, params)``: our client id as ccxt's unified ``clientOrderId``
    (Binance: ``newClientOrderId``, ``clientAlgoId`` for stops), stops as trigger orders
    (``stopLossPrice`` / ``takeProfitPrice``), post-only as ``postOnly``.

    >>> from quantum_trading.execution.models import OrderRequest
    >>> order_params(OrderRequest("BTC/USDT:USDT", Side.SELL, LiveOrderType.STOP_MARKET, 0.01,
    ...              stop_price=20000.0, reduce_only=True, client_order_id="sl-1"))
    ('market', 'sell', 0.01, None, {'clientOrderId': 'sl-1', 'reduceOnly': True, 'stopLossPrice': 20000.0})
    """
    params: dict[str, Any] = {"clientOrderId": request.client_order_id}
    if request.reduce_only:
        params["reduceOnly"] = True
    side = "buy" if request.side is Side.BUY else "sell"
    amount = request.amount / contract_size
    otype = request.order_type
    if otype is LiveOrderType.LIMIT:
        if request.time_in_force is TimeInForce.POST_ONLY:
            params["postOnly"] = True
        else:
            params["timeInForce"] = request.time_in_force.value
        return "limit", side, amount, request.price, params
    if otype is LiveOrderType.STOP_MARKET:
        params["stopLossPrice"] = request.stop_price
    elif otype is LiveOrderType.TAKE_PROFIT_MARKET:
        params["takeProfitPrice"] = request.stop_price
    return "market", side, amount, None, params


def check_order_steps(request: OrderRequest, market: Mapping[str, Any], precision_mode: int,
                      *, exchange: str) -> None:
    """Raise :class:`InvalidOrder` when the size is not a positive multiple of the lot size or
    a price is off the tick (ccxt would round them silently)."""
    cs = _num(market.get("contractSize"), 1.0) or 1.0
    tick, lot = market_steps(market, precision_mode)
    checks = [("amount", request.amount / cs, lot, "lot size")]
    checks += [(what, px, tick, "tick size") for what, px in
               (("price", request.price), ("stop_price", request.stop_price)) if px is not None]
    for what, value, step, name in checks:
        if step > 0.0:
            units = value / step
            if units < 1.0 - 1e-9 or abs(units - round(units)) > 1e-6 * max(1.0, units):
                raise InvalidOrder(
                    f"{exchange} create_order {request.symbol} {request.client_order_id}: "
                    f"{what} {value:g} is not a positive multiple of the {name} {step:g}"
                )


# ------------------------------------------------------------------------------- orders
def order_type_from_ccxt(order: Mapping[str, Any]) -> LiveOrderType:
    """Our order type: the exchange's own name when ccxt keeps it in ``info`` (Binance's
    ``origType`` of a triggered stop, ``orderType`` of an algo order), else ccxt's unified
    ``type`` and trigger prices."""
    info = order.get("info") or {}
    for key in ("origType", "orderType", "type"):
        native = info.get(key) if isinstance(info, Mapping) else None
        if isinstance(native, str) and native.upper() in _NATIVE_TYPES:
            return _NATIVE_TYPES[native.upper()]
    if _positive(order.get("triggerPrice")) is not None or _positive(order.get("stopPrice")):
        if _positive(order.get("takeProfitPrice")) is not None:
            return LiveOrderType.TAKE_PROFIT_MARKET
        return LiveOrderType.STOP_MARKET
    return LiveOrderType.LIMIT if order.get("type") == "limit" else LiveOrderType.MARKET


def order_from_ccxt(
    order: Mapping[str, Any],
    *,
    contract_size: float = 1.0,
    client_order_id: str | None = None,
    symbol: str | None = None,
    order_type: LiveOrderType | None = None,
    stop_price: float | None = None,
    order_id: str | None = None,
) -> ExchangeOrder:
    """A ccxt order → :class:`ExchangeOrder`.

    Status: open → OPEN (PARTIALLY_FILLED once something filled), closed → FILLED, canceled →
    CANCELLED, rejected → REJECTED, expired → EXPIRED. The keyword arguments fill what the
    answer lacks or override it (a triggered stop keeps its stop type and algo id).
    """
    amount = (_num(order.get("amount"), 0.0) or 0.0) * contract_size
    filled = (_num(order.get("filled"), 0.0) or 0.0) * contract_size
    status = _STATUS.get(str(order.get("status") or "open").lower(), LiveOrderStatus.OPEN)
    if status is LiveOrderStatus.OPEN and filled > 0.0:
        status = LiveOrderStatus.PARTIALLY_FILLED
    otype = order_type or order_type_from_ccxt(order)
    created = to_time(order.get("timestamp"))
    updated = to_time(
        order.get("lastUpdateTimestamp") or order.get("lastTradeTimestamp"), default=created
    )
    fee = order.get("fee") or {}
    fee_usd = _num(fee.get("cost"), 0.0) if isinstance(fee, Mapping) else 0.0
    stop = stop_price if stop_price is not None else _positive(order.get("triggerPrice"))
    return ExchangeOrder(
        id=str(order_id or order.get("id") or ""),
        client_order_id=str(client_order_id or order.get("clientOrderId") or ""),
        symbol=str(symbol or order.get("symbol") or ""),
        side=_side(order.get("side")),
        order_type=otype,
        status=status,
        amount=amount,
        filled=min(filled, amount) if amount > 0 else filled,
        price=_positive(order.get("price")) if otype is LiveOrderType.LIMIT else None,
        stop_price=stop if otype in (LiveOrderType.STOP_MARKET,
                                     LiveOrderType.TAKE_PROFIT_MARKET) else None,
        average_price=_positive(order.get("average")) if filled > 0.0 else None,
        reduce_only=bool(order.get("reduceOnly") or False),
        created_at=created,
        updated_at=max(updated, created),
        fee_usd=fee_usd or 0.0,
    )


def fill_from_ccxt(
    trade: Mapping[str, Any], *, contract_size: float = 1.0, client_order_id: str = ""
) -> ExchangeFill:
    """A ccxt trade of our own (``fetch_my_trades``) → :class:`ExchangeFill`."""
    fee = trade.get("fee") or {}
    return ExchangeFill(
        id=str(trade.get("id") or ""),
        order_id=str(trade.get("order") or ""),
        client_order_id=client_order_id,
        symbol=str(trade.get("symbol") or ""),
        side=_side(trade.get("side")),
        amount=(_num(trade.get("amount"), 0.0) or 0.0) * contract_size,
        price=_num(trade.get("price"), 0.0) or 0.0,
        fee_usd=(_num(fee.get("cost"), 0.0) or 0.0) if isinstance(fee, Mapping) else 0.0,
        is_maker=trade.get("takerOrMaker") == "maker",
        time=to_time(trade.get("timestamp")),
    )


# ------------------------------------------------------------------------------- account
def position_from_ccxt(
    position: Mapping[str, Any], *, contract_size: float = 1.0, leverage: float | None = None
) -> ExchangePosition | None:
    """A ccxt position → :class:`ExchangePosition` (None when flat). Leverage: ccxt's, else
    ``leverage`` (the one we set), else notional / initial margin, else 1."""
    contracts = _num(position.get("contracts"), 0.0) or 0.0
    cs = _num(position.get("contractSize")) or contract_size
    size = abs(contracts) * cs
    if size == 0.0:
        return None
    side = str(position.get("side") or "").lower()
    sign = -1.0 if side == "short" or (side not in ("long", "short") and contracts < 0) else 1.0
    notional = abs(_num(position.get("notional"), 0.0) or 0.0)
    margin = _num(position.get("initialMargin"), 0.0) or 0.0
    lev = _positive(position.get("leverage")) or leverage
    if lev is None:
        lev = notional / margin if notional > 0.0 and margin > 0.0 else 1.0
    entry = _num(position.get("entryPrice"), 0.0) or 0.0
    mark = _num(position.get("markPrice")) or entry
    upnl = _num(position.get("unrealizedPnl"))
    return ExchangePosition(
        symbol=str(position.get("symbol") or ""),
        size=sign * size,
        entry_price=entry,
        mark_price=mark,
        unrealized_pnl_usd=upnl if upnl is not None else sign * size * (mark - entry),
        leverage=float(lev),
        liquidation_price=_positive(position.get("liquidationPrice")),
    )


def balance_from_ccxt(balance: Mapping[str, Any], *, currency: str = "USDT") -> Balance:
    """A ccxt balance → :class:`Balance`. Binance's account totals (``totalWalletBalance``,
    ``availableBalance``, ``totalMarginBalance``) are used when ccxt keeps them in ``info``;
    otherwise wallet = equity = the currency's total and free = its free amount."""
    entry = balance.get(currency) or {}
    total = _num(entry.get("total"), 0.0) or 0.0
    free = _num(entry.get("free"), total) or 0.0
    info = balance.get("info") or {}
    if isinstance(info, Mapping) and "totalWalletBalance" in info:
        wallet = _num(info.get("totalWalletBalance"), total) or 0.0
        equity = _num(info.get("totalMarginBalance"), wallet) or 0.0
        free = _num(info.get("availableBalance"), free) or 0.0
        return Balance(wallet_usd=wallet, free_usd=free, equity_usd=equity)
    return Balance(wallet_usd=total, free_usd=free, equity_usd=total)


# ------------------------------------------------------------------------------- market data
def ticker_from_ccxt(ticker: Mapping[str, Any], *, bid: float | None = None,
                     ask: float | None = None) -> Ticker:
    """A ccxt ticker → :class:`Ticker` (``bid``/``ask`` fill in what the ticker lacks; the last
    price stands in for a missing side)."""
    last = _num(ticker.get("last")) or _num(ticker.get("close"))
    b = _num(ticker.get("bid")) or bid
    a = _num(ticker.get("ask")) or ask
    if last is None:
        last = 0.5 * (b + a) if b is not None and a is not None else (b or a or float("nan"))
    return Ticker(
        symbol=str(ticker.get("symbol") or ""),
        bid=b if b is not None else last,
        ask=a if a is not None else last,
        last=last,
        time=to_time(ticker.get("timestamp")),
    )


def order_book_from_ccxt(
    book: Mapping[str, Any], *, symbol: str, depth: int, contract_size: float = 1.0
) -> OrderBook:
    """A ccxt order book → :class:`OrderBook` (top ``depth`` levels, sizes in base units)."""

    def levels(rows: Any) -> tuple[tuple[float, float], ...]:
        return tuple((float(r[0]), float(r[1]) * contract_size) for r in list(rows or [])[:depth])

    return OrderBook(
        symbol=symbol,
        bids=levels(book.get("bids")),
        asks=levels(book.get("asks")),
        time=to_time(book.get("timestamp")),
    )


def ohlcv_from_ccxt(rows: Sequence[Sequence[Any]], *, timeframe_ms: int,
                    now_ms: int) -> pd.DataFrame:
    """ccxt candles → the canonical OHLCV frame: UTC bar-open index ``date``, float64 ``open
    high low close volume``, sorted, one row a bar; bars not closed at ``now_ms`` are dropped."""
    closed = sorted({int(r[0]): r for r in rows if int(r[0]) + timeframe_ms <= now_ms}.items())
    index = pd.DatetimeIndex(
        pd.to_datetime([t for t, _ in closed], unit="ms", utc=True), name="date"
    ).as_unit("ns")
    columns = ("open", "high", "low", "close", "volume")
    data = {c: [_num(r[1 + i], float("nan")) for _, r in closed] for i, c in enumerate(columns)}
    return pd.DataFrame(data, index=index, columns=list(columns)).astype("float64")


# ------------------------------------------------------------------------------- instruments
def tiers_from_ccxt(
    tiers: Sequence[Mapping[str, Any]], *, contract_size: float = 1.0
) -> tuple[tuple[float, float, float, float], ...]:
    """ccxt leverage tiers → ``(notional_floor_usd, max_leverage, maintenance_rate,
    maintenance_amount_usd)`` rows; the amounts are recomputed so that the maintenance margin
    is continuous at each floor (Binance's ``cum``)."""
    rows: list[tuple[float, float, float, float]] = []
    for tier in sorted(tiers, key=lambda t: _num(t.get("minNotional"), 0.0) or 0.0):
        floor = _num(tier.get("minNotional"), 0.0) or 0.0
        if tier.get("currency") not in (None, "USDT", "USD", "USDC"):  # tiers in contracts
            floor *= contract_size
        lev = _num(tier.get("maxLeverage"), 1.0) or 1.0
        rate = _num(tier.get("maintenanceMarginRate"), 0.004) or 0.004
        amount = 0.0 if not rows else rows[-1][3] + floor * (rate - rows[-1][2])
        if rows and floor <= rows[-1][0]:
            continue
        rows.append((0.0 if not rows else floor, max(lev, 1.0), rate, amount))
    return tuple(rows)


def instrument_from_ccxt(
    market: Mapping[str, Any],
    *,
    precision_mode: int,
    tiers: Sequence[Mapping[str, Any]] | None = None,
) -> Instrument:
    """A ccxt market (and its leverage tiers, where the exchange gives them) →
    :class:`~quantum_trading.domain.Instrument`: tick and lot size from the precision (lot in
    base units), the minimum notional from ``limits.cost.min``, the maximum leverage from
    ``limits.leverage.max`` or the first tier, fees in basis points."""
    cs = _num(market.get("contractSize"), 1.0) or 1.0
    tick, lot_contracts = market_steps(market, precision_mode)
    limits = market.get("limits") or {}
    min_cost = _num((limits.get("cost") or {}).get("min"), 0.0) or 0.0
    rows = tiers_from_ccxt(tiers, contract_size=cs) if tiers else ()
    max_lev = _num((limits.get("leverage") or {}).get("max"))
    if max_lev is None or max_lev < 1.0:
        max_lev = rows[0][1] if rows else 125.0
    max_lev = min(max(max_lev, 1.0), 1000.0)
    taker = _num(market.get("taker"), 4e-4)
    maker = _num(market.get("maker"), 2e-4)
    common = {
        "tick_size": tick,
        "lot_size": lot_contracts * cs,
        "min_notional_usd": min_cost,
        "max_leverage": max_lev,
        "taker_fee_bps": max((taker or 0.0) * 1e4, 0.0),
        "maker_fee_bps": max((maker or 0.0) * 1e4, 0.0),
    }
    if rows:
        return Instrument(symbol=str(market["symbol"]), margin_tiers=rows, **common)
    return Instrument.generic(str(market["symbol"]), **common)
