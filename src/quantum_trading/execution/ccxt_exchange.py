"""The ccxt adapter: the :class:`~quantum_trading.execution.protocol.Exchange` protocol for any
ccxt exchange with USDT-margined perpetuals (``ccxt.async_support``), Binance USDⓈ-M first.

This adapter (with the modules it is made of: :mod:`~.ccxt_requests`, :mod:`~.ccxt_trades`,
:mod:`~.ccxt_stops`) is one of the two places that touch the network (with the data
downloader). Keys come only from environment variables whose *names* are given; their values
are never logged nor quoted in errors (:func:`~.ccxt_convert.redact`).

Retries
-------
Every request goes through :class:`~.ccxt_requests.CcxtRequests`: tried up to
:attr:`RetryConfig.max_attempts` times when it fails in a way that may go away — a network
error, HTTP 429/418, 5xx — with exponential backoff and full jitter (see there); ccxt's own
throttle (``enableRateLimit``) stays on. Errors map to our types as
:func:`~.ccxt_convert.map_ccxt_error` says.

Idempotent orders
-----------------
:meth:`CcxtExchange.create_order` sends our client order id (ccxt's unified
``clientOrderId``; Binance: ``newClientOrderId``, ``clientAlgoId`` for stops). When a create
fails without a clear "no" — a timeout, a dropped connection, a 5xx — the order is looked up by
that id (Binance: ``origClientOrderId``) **before** anything is sent again: found, it is
returned; not found, the create is retried (same id). A "client order id is duplicated" answer
(Binance -4116) is resolved by fetching the existing order. So a create retried after a lost
answer never doubles an order. When even the look-up cannot be answered the call raises
:class:`~.errors.OrderStateUnknown` and the caller re-queries later (as the order manager does).

Stops
-----
STOP_MARKET / TAKE_PROFIT_MARKET orders are ccxt trigger orders (``stopLossPrice`` /
``takeProfitPrice``). On Binance (ccxt 4.5) they live on ``/fapi/v1/algoOrder`` until they
trigger: they are fetched and cancelled with ``params={"trigger": True}``; a triggered stop's
fills are read from its actual order (:func:`~.ccxt_stops.fetch_stop`). The adapter
remembers which client ids are stops (:class:`~.ccxt_order_ids.OrderIds`); an id it has not
seen is looked for among regular orders first, then among trigger orders. A stop keeps its algo
id as :attr:`ExchangeOrder.id` for its whole life.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import pandas as pd

from quantum_trading.data.download import make_client
from quantum_trading.domain import Instrument
from quantum_trading.execution.ccxt_convert import (
    RetryConfig,
    balance_from_ccxt,
    check_order_steps,
    fill_from_ccxt,
    instrument_from_ccxt,
    is_duplicate_id,
    ohlcv_from_ccxt,
    order_book_from_ccxt,
    order_params,
    order_type_from_ccxt,
    position_from_ccxt,
    ticker_from_ccxt,
)
from quantum_trading.execution.ccxt_order_ids import STOPS, KnownOrder, OrderIds
from quantum_trading.execution.ccxt_requests import CcxtRequests
from quantum_trading.execution.ccxt_stops import fetch_stop
from quantum_trading.execution.ccxt_trades import my_trades
from quantum_trading.execution.errors import (
    ExchangeError,
    ExchangeUnavailable,
    InvalidOrder,
    OrderNotFound,
    OrderStateUnknown,
    RateLimited,
    TransientExchangeError,
)
from quantum_trading.execution.models import (
    Balance,
    ExchangeFill,
    ExchangeOrder,
    ExchangePosition,
    OrderBook,
    OrderRequest,
    Ticker,
)

__all__ = ["CcxtExchange", "RetryConfig"]

log = logging.getLogger(__name__)

_SPLIT_TRIGGER_EXCHANGES = frozenset({"binance", "binanceusdm", "binancecoinm", "okx"})
_BINANCE_DEPTHS = (5, 10, 20, 50, 100, 500, 1000)


class CcxtExchange:
    """The :class:`~quantum_trading.execution.protocol.Exchange` protocol over a ccxt client.

    Parameters
    ----------
    client:
        A ``ccxt.async_support`` exchange (see :meth:`create`, which builds one).
    retry:
        :class:`RetryConfig`.
    settle:
        Settlement currency of the perpetuals traded (``"USDT"``).
    split_trigger_orders:
        Whether trigger (stop) orders must be fetched and cancelled apart with
        ``params={"trigger": True}``; None: as the exchange needs (Binance, OKX).

    Attributes
    ----------
    name:
        The ccxt exchange id.
    stats:
        Counts of what recovery did: ``retries`` (requests sent again), ``requeries``
        (look-ups by client id after an unanswered create), ``found_after_loss`` (creates
        whose answer was lost but whose order was found), ``duplicate_id_resolved``.

    Examples
    --------
    >>> import asyncio
    >>> ex = CcxtExchange.create("binanceusdm", base_url="http://127.0.0.1:8765",
    ...                          api_key_env="QT_KEY", secret_env="QT_SECRET")  # doctest: +SKIP
    >>> asyncio.run(ex.balance())  # doctest: +SKIP
    Balance(wallet_usd=10000.0, free_usd=10000.0, equity_usd=10000.0)
    """

    def __init__(
        self,
        client: Any,
        *,
        retry: RetryConfig | None = None,
        settle: str = "USDT",
        split_trigger_orders: bool | None = None,
    ) -> None:
        if not isinstance(client, ccxt_async.Exchange):
            raise TypeError("CcxtExchange needs a ccxt.async_support exchange (see create())")
        self._client = client
        self.name: str = str(client.id)
        self.retry = retry or RetryConfig()
        self.stats: Counter[str] = Counter()
        self.settle = settle
        self._split = (
            self.name in _SPLIT_TRIGGER_EXCHANGES
            if split_trigger_orders is None
            else bool(split_trigger_orders)
        )
        self._requests = CcxtRequests(client, retry=self.retry, stats=self.stats)
        self._call = self._requests.call  # every request goes through it
        self._ids = OrderIds()
        self._leverage: dict[str, float] = {}
        options = client.options
        options["fetchOpenOrders"] = {**dict(options.get("fetchOpenOrders") or {}),
                                      "warnWithoutSymbol": False}

    @classmethod
    def create(
        cls,
        exchange_id: str = "binanceusdm",
        *,
        base_url: str | None = None,
        api_key_env: str | None = None,
        secret_env: str | None = None,
        retry: RetryConfig | None = None,
        timeout_ms: int = 10_000,
        rate_limit_ms: float | None = None,
        settle: str = "USDT",
    ) -> CcxtExchange:
        """An adapter with its own ccxt async client (rate limiting on).

        Parameters
        ----------
        exchange_id:
            ccxt id: ``binanceusdm``, ``bybit``, ``okx`` …
        base_url:
            Root URL of a server speaking the exchange's API (our local exchange,
            ``http://127.0.0.1:8765``); None = the exchange itself.
        api_key_env, secret_env:
            Names of the environment variables holding key and secret (never the values).
        retry:
            :class:`RetryConfig`.
        timeout_ms:
            HTTP timeout of one request (ms).
        rate_limit_ms:
            ccxt's ``rateLimit`` (ms per unit of request weight); None: the exchange's.
        settle:
            Settlement currency.

        Raises
        ------
        ConfigError
            A named environment variable is not set (the message names the variable only).
        ValueError
            Unknown exchange id or malformed ``base_url``.
        """
        client = make_client(
            exchange_id,
            base_url=base_url,
            api_key_env=api_key_env,
            secret_env=secret_env,
            timeout_ms=timeout_ms,
            rate_limit_ms=rate_limit_ms,
            asynchronous=True,
        )
        return cls(client, retry=retry, settle=settle)

    @property
    def client(self) -> Any:
        """The underlying ccxt client."""
        return self._client

    async def __aenter__(self) -> CcxtExchange:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ plumbing
    async def _load_markets(self) -> dict[str, Any]:
        return await self._call("load_markets", None, lambda: self._client.load_markets())

    async def _market(self, symbol: str) -> dict[str, Any]:
        markets = await self._load_markets()
        if symbol not in markets:
            raise InvalidOrder(f"{self.name}: unknown symbol {symbol!r}")
        return markets[symbol]

    async def _contract_size(self, symbol: str) -> float:
        size = (await self._market(symbol)).get("contractSize")
        return float(size) if size else 1.0

    # ------------------------------------------------------------------ account
    async def markets(self) -> dict[str, Instrument]:
        """Tradable linear perpetuals settled in :attr:`settle`: tick/lot size, minimum
        notional, fees and — where the exchange gives them (Binance's leverage brackets, a
        signed request) — maximum leverage and margin tiers."""
        markets = await self._load_markets()
        perps = {
            s: m for s, m in markets.items()
            if m.get("swap") and m.get("linear") and m.get("settle") == self.settle
            and m.get("active") is not False
        }
        tiers: dict[str, Any] = {}
        if self._client.has.get("fetchLeverageTiers") and self._client.apiKey and perps:
            try:
                tiers = await self._call("markets", None,
                                         lambda: self._client.fetch_leverage_tiers(list(perps)))
            except ExchangeError as error:
                log.warning("%s: no leverage tiers (%s); one generic tier per market",
                            self.name, error)
        mode = self._client.precisionMode
        return {s: instrument_from_ccxt(m, precision_mode=mode, tiers=tiers.get(s))
                for s, m in perps.items()}

    async def balance(self) -> Balance:
        """Wallet, free margin and equity in :attr:`settle`."""
        raw = await self._call("balance", None, lambda: self._client.fetch_balance())
        return balance_from_ccxt(raw, currency=self.settle)

    async def positions(self) -> dict[str, ExchangePosition]:
        """Open positions by symbol (one-way mode; flat symbols omitted)."""
        raw = await self._call("positions", None, lambda: self._client.fetch_positions())
        out: dict[str, ExchangePosition] = {}
        for row in raw:
            symbol = str(row.get("symbol") or "")
            pos = position_from_ccxt(row, leverage=self._leverage.get(symbol))
            if pos is not None:
                out[symbol] = pos
        return out

    async def set_leverage(self, symbol: str, leverage: float) -> None:
        """Set the leverage for new positions on ``symbol`` (an integer where the exchange
        wants one)."""
        if not (math.isfinite(leverage) and leverage >= 1.0):
            raise InvalidOrder(f"{self.name} set_leverage {symbol}: leverage must be >= 1, "
                               f"got {leverage!r}")
        value: float | int = int(leverage) if float(leverage).is_integer() else float(leverage)
        await self._market(symbol)
        await self._call("set_leverage", symbol,
                         lambda: self._client.set_leverage(value, symbol))
        self._leverage[symbol] = float(leverage)

    # ------------------------------------------------------------------ orders
    async def open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        """Orders not yet terminal (all symbols when ``symbol`` is None), stops waiting for
        their trigger included, oldest first."""
        await self._load_markets()
        rows = await self._call("open_orders", symbol,
                                lambda: self._client.fetch_open_orders(symbol))
        if self._split:
            rows = list(rows) + list(await self._call(
                "open_orders", symbol,
                lambda: self._client.fetch_open_orders(symbol, params={"trigger": True})))
        out: dict[str, ExchangeOrder] = {}
        for raw in rows:
            sym = str(raw.get("symbol") or symbol or "")
            order = self._ids.convert(raw, sym, await self._contract_size(sym))
            key = order.client_order_id or f"#{order.id}"
            if key not in out or out[key].is_terminal:
                out[key] = order
        return sorted((o for o in out.values() if not o.is_terminal),
                      key=lambda o: (o.created_at, o.id))

    async def create_order(self, request: OrderRequest) -> ExchangeOrder:
        """Submit an order; idempotent by ``request.client_order_id`` (see the module).

        Raises
        ------
        InvalidOrder, InsufficientFunds
            Refused (also: size off the lot, price off the tick, unknown symbol).
        RateLimited, ExchangeUnavailable
            Every try failed and the order is known **not** to be on the exchange.
        OrderStateUnknown
            No answer, and the look-up by client id could not be answered either.
        """
        symbol, cid = request.symbol, request.client_order_id
        market = await self._market(symbol)
        cs = float(market.get("contractSize") or 1.0)
        check_order_steps(request, market, self._client.precisionMode, exchange=self.name)
        self._ids.known.setdefault(cid, KnownOrder(request.order_type in STOPS))
        otype, side, amount, price, params = order_params(request, contract_size=cs)
        last: ExchangeError | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            if attempt > 1:
                await self._requests.backoff(attempt - 1)
            try:
                raw = await self._client.create_order(symbol, otype, side, amount, price,
                                                      dict(params))
            except ccxt.BaseError as error:
                if is_duplicate_id(error):  # e.g. the earlier try did arrive
                    self.stats["duplicate_id_resolved"] += 1
                    try:
                        return await self.fetch_order(symbol, client_order_id=cid)
                    except OrderNotFound:
                        refused = self._requests.map_error(error, "create_order", symbol)
                        raise InvalidOrder(f"{refused} (client order id {cid} belongs to "
                                           "another order)") from None
                mapped = self._requests.map_error(error, "create_order", symbol,
                                                  order_call=True)
                if not isinstance(mapped, TransientExchangeError | OrderStateUnknown):
                    raise mapped from None
                last = mapped
                log.info("%s: try %d of %d failed", mapped, attempt, self.retry.max_attempts)
                if isinstance(mapped, RateLimited):
                    continue  # refused before it was processed: nothing to look for
                found = await self._look_up_after_loss(request, mapped)
                if found is not None:
                    return found
            else:
                return self._ids.convert(raw, symbol, cs, client_order_id=cid,
                                     order_type=request.order_type)
        assert last is not None
        if not isinstance(last, RateLimited):  # the last look-up said "not there"
            kind = ExchangeUnavailable if isinstance(last, OrderStateUnknown) else type(last)
            last = kind(f"{last}; not on the exchange after {self.retry.max_attempts} tries")
        raise last

    async def _look_up_after_loss(self, request: OrderRequest, error: ExchangeError
                                  ) -> ExchangeOrder | None:
        """After a create without a clear answer: the order if the exchange has it, None if
        it has not (safe to send again); OrderStateUnknown if it cannot tell."""
        self.stats["requeries"] += 1
        try:
            found = await self.fetch_order(request.symbol, client_order_id=request.client_order_id)
        except OrderNotFound:
            return None
        except ExchangeError as query_error:
            raise OrderStateUnknown(
                f"{error}; the look-up by client order id {request.client_order_id} failed "
                f"too ({type(query_error).__name__}); query it again later"
            ) from None
        self.stats["found_after_loss"] += 1
        return found

    async def fetch_order(self, symbol: str, *, client_order_id: str) -> ExchangeOrder:
        """The order's current state by client order id (:class:`OrderNotFound` if the
        exchange does not know it). A triggered stop reports its actual order's fills."""
        cid = client_order_id
        cs = await self._contract_size(symbol)
        known = self._ids.known.get(cid)
        if self._split and known is not None and known.conditional:
            return await fetch_stop(self._requests, self._client, self._ids, symbol, cid, cs)
        try:
            raw = await self._call("fetch_order", symbol, lambda: self._client.fetch_order(
                None, symbol, {"clientOrderId": cid}))
        except OrderNotFound:
            if not self._split or known is not None:  # we know it is a regular order
                raise
            return await fetch_stop(self._requests, self._client, self._ids, symbol, cid, cs)
        return self._ids.convert(raw, symbol, cs, client_order_id=cid)

    async def cancel_order(self, symbol: str, *, client_order_id: str) -> ExchangeOrder:
        """Cancel by client order id; returns the order's final state (a finished order is
        returned as it is). :class:`OrderNotFound` if the exchange never saw it;
        :class:`OrderStateUnknown` if the cancel got no answer and could not be confirmed."""
        cid = client_order_id
        known = self._ids.known.get(cid)
        if known is None or not known.order_id:
            current = await self.fetch_order(symbol, client_order_id=cid)  # where is it?
            if current.is_terminal:
                return current
            known = self._ids.known[cid]
        cs = await self._contract_size(symbol)
        if self._split and known.conditional and known.actual_id is None:
            try:
                await self._call("cancel_order", symbol, lambda: self._client.cancel_order(
                    None, symbol, {"clientOrderId": cid, "trigger": True}), order_call=True)
            except OrderNotFound:
                pass  # triggered or finished meanwhile
            current = await self.fetch_order(symbol, client_order_id=cid)
            if current.is_terminal or known.actual_id is None:
                return current
        return await self._cancel_regular(symbol, cid, cs, known)

    async def _cancel_regular(self, symbol: str, cid: str, cs: float, known: KnownOrder
                              ) -> ExchangeOrder:
        actual = known.actual_id if known.conditional else None
        params = {} if actual else {"clientOrderId": cid}
        try:
            raw = await self._call("cancel_order", symbol, lambda: self._client.cancel_order(
                actual, symbol, params), order_call=True)
        except OrderNotFound:  # finished meanwhile (or an earlier try of this cancel did it)
            return await self.fetch_order(symbol, client_order_id=cid)
        if not raw.get("status") or raw.get("amount") is None:  # a bare acknowledgement
            return await self.fetch_order(symbol, client_order_id=cid)
        if known.conditional:
            return self._ids.convert(raw, symbol, cs, client_order_id=cid,
                                 order_type=order_type_from_ccxt(raw), order_id=known.order_id)
        return self._ids.convert(raw, symbol, cs, client_order_id=cid)

    async def fills(self, symbol: str, *, since: pd.Timestamp | None = None
                    ) -> list[ExchangeFill]:
        """Our executions on ``symbol`` since ``since`` (oldest first; without ``since``, the
        exchange's recent ones — Binance: up to 1000 of the last 7 days). Client ids come from
        the orders the adapter has seen, else from the exchange's order list (one request)."""
        cs = await self._contract_size(symbol)
        since_ms = None if since is None else int(pd.Timestamp(since).value // 1_000_000)
        trades = await my_trades(self._requests, self._client, symbol, since_ms)
        rows = sorted(trades.values(), key=lambda t: (int(t.get("timestamp") or 0),
                                                      str(t.get("id"))))
        cids = self._ids.cid_by_order_id
        missing = [t for t in rows if str(t.get("order")) not in cids]
        if missing and self._client.has.get("fetchOrders"):
            first = min(int(t.get("timestamp") or 0) for t in missing)
            try:
                for raw in await self._call("fills", symbol, lambda: self._client.fetch_orders(
                        symbol, first - 1)):
                    if raw.get("id") and raw.get("clientOrderId"):
                        cids.setdefault(str(raw["id"]), raw["clientOrderId"])
            except ExchangeError as error:
                log.warning("%s: client ids of fills unknown (%s)", self.name, error)
        return [fill_from_ccxt(t, contract_size=cs,
                               client_order_id=cids.get(str(t.get("order")), ""))
                for t in rows]

    # ------------------------------------------------------------------ market data
    async def ohlcv(self, symbol: str, timeframe: str, *, since: pd.Timestamp | None = None,
                    limit: int | None = None) -> pd.DataFrame:
        """Closed bars as the canonical OHLCV frame (UTC bar-open index ``date``); the bar
        still forming is left out."""
        tf_ms = int(self._client.parse_timeframe(timeframe) * 1000)
        start = None if since is None else int(pd.Timestamp(since).value // 1_000_000)
        rows = await self._call("ohlcv", symbol, lambda: self._client.fetch_ohlcv(
            symbol, timeframe, start, limit))
        return ohlcv_from_ccxt(rows, timeframe_ms=tf_ms, now_ms=int(self._client.milliseconds()))

    async def ticker(self, symbol: str) -> Ticker:
        """Best bid/ask and last price (bid/ask from the book ticker when the ticker lacks
        them)."""
        raw = await self._call("ticker", symbol, lambda: self._client.fetch_ticker(symbol))
        bid = ask = None
        if (raw.get("bid") is None or raw.get("ask") is None) and \
                self._client.has.get("fetchBidsAsks"):
            quotes = await self._call("ticker", symbol,
                                      lambda: self._client.fetch_bids_asks([symbol]))
            quote = quotes.get(symbol) or {}
            bid, ask = quote.get("bid"), quote.get("ask")
        return ticker_from_ccxt({**raw, "symbol": symbol}, bid=bid, ask=ask)

    async def order_book(self, symbol: str, *, depth: int = 20) -> OrderBook:
        """Top ``depth`` levels each side (sizes in base units)."""
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        limit = depth
        if self.name.startswith("binance"):
            limit = next((n for n in _BINANCE_DEPTHS if n >= depth), _BINANCE_DEPTHS[-1])
        cs = await self._contract_size(symbol)
        raw = await self._call("order_book", symbol,
                               lambda: self._client.fetch_order_book(symbol, limit))
        return order_book_from_ccxt(raw, symbol=symbol, depth=depth, contract_size=cs)

    async def funding_rate(self, symbol: str) -> tuple[float, pd.Timestamp]:
        """The current (predicted) funding rate per settlement and the next settlement."""
        raw = await self._call("funding_rate", symbol,
                               lambda: self._client.fetch_funding_rate(symbol))
        when = raw.get("fundingTimestamp") or raw.get("nextFundingTimestamp")
        if raw.get("fundingRate") is None or when is None:
            raise ExchangeError(f"{self.name} funding_rate {symbol}: no rate or time in the "
                                "answer")
        return float(raw["fundingRate"]), pd.Timestamp(int(when), unit="ms", tz="UTC")

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._client.close()
