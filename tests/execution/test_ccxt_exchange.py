"""The ccxt adapter against the local Binance USDⓈ-M exchange on 127.0.0.1, with the real
``ccxt.async_support`` client underneath: every protocol method, the error mapping, retries,
lost answers found again by client order id, and a seeded fault soak that ends with no
duplicated, no lost order and the exchange's positions."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import ccxt
import httpx
import pandas as pd
import pytest

from quantum_trading.data.download import make_client
from quantum_trading.domain import Side
from quantum_trading.errors import ConfigError
from quantum_trading.execution.ccxt_convert import map_ccxt_error, redact
from quantum_trading.execution.ccxt_exchange import CcxtExchange, RetryConfig
from quantum_trading.execution.errors import (
    AuthenticationFailed,
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    OrderStateUnknown,
    RateLimited,
    TransientExchangeError,
)
from quantum_trading.execution.local_exchange import (
    Credentials,
    FaultPlan,
    MarketData,
    RandomFaults,
    TradingOptions,
    create_app,
    serve_in_thread,
)
from quantum_trading.execution.local_exchange.app import FaultMiddleware
from quantum_trading.execution.local_exchange.faults import FaultDecision, endpoint_group
from quantum_trading.execution.models import (
    LiveOrderStatus,
    LiveOrderType,
    OrderRequest,
    TimeInForce,
)
from quantum_trading.execution.protocol import Exchange

# generous timeouts: the local exchange runs in this process's threads, slow when the
# machine is loaded (httpx's default 5 s timed out on a loaded 2-core machine)
http_post = functools.partial(httpx.post, timeout=60.0)

pytestmark = pytest.mark.network_local

KEY, SECRET = "test-api-key-7f3a9c", "test-api-secret-0d9e8f"
KEY_ENV, SECRET_ENV = "QT_CCXT_TEST_KEY", "QT_CCXT_TEST_SECRET"
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
FAST = RetryConfig(max_attempts=4, base_delay_s=0.001, max_delay_s=0.01, seed=3)
OK, DROP = FaultDecision(), FaultDecision(drop=True)
E429, E503, REJECT = FaultDecision(status=429), FaultDecision(status=503), FaultDecision(reject=True)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def market_data(binance_futures_dir: Path) -> MarketData:
    return MarketData(binance_futures_dir)


@pytest.fixture
def venue(market_data, monkeypatch) -> Iterator[tuple[str, Any]]:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    options = TradingOptions(Credentials(KEY, SECRET), timeframe="1h", symbols=(BTC, ETH),
                             warmup_bars=30)
    app = create_app(market_data, trading=options)
    with serve_in_thread(app) as url:
        yield url, app


def adapter(url: str, retry: RetryConfig = FAST) -> CcxtExchange:
    return CcxtExchange.create("binanceusdm", base_url=url, api_key_env=KEY_ENV,
                               secret_env=SECRET_ENV, retry=retry, rate_limit_ms=1,
                               timeout_ms=5_000)


def run(url: str, scenario: Callable[[CcxtExchange], Awaitable[Any]],
        retry: RetryConfig = FAST) -> Any:
    async def main() -> Any:
        async with adapter(url, retry) as ex:
            return await scenario(ex)

    return asyncio.run(main())


def advance(url: str, bars: int = 1) -> None:
    assert http_post(f"{url}/_local/advance", params={"bars": bars}).status_code == 200


def req(symbol: str, side: Side, otype: LiveOrderType, amount: float, cid: str,
        **kw: Any) -> OrderRequest:
    return OrderRequest(symbol, side, otype, amount, client_order_id=cid, **kw)


class Script(FaultMiddleware):
    """Faults by route for the next requests (``script[("POST", "/fapi/v1/order")] = [DROP,
    OK]``); counts every request by (method, path) and by endpoint group."""

    def __init__(self, app: Any) -> None:
        super().__init__(app.fault_middleware.app, app.state.faults)
        self.random = app.state.faults
        self.script: dict[tuple[str, str], list[FaultDecision]] = {}
        self.seen: Counter[tuple[str, str]] = Counter()
        self.groups: Counter[str] = Counter()
        app.fault_middleware = self

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = (scope["method"], scope["path"])
        self.seen[key] += 1
        self.groups[endpoint_group(scope["path"]) or "control"] += 1
        queued = self.script.get(key)
        self.faults = _Fixed(queued.pop(0)) if queued else self.random
        await super().__call__(scope, receive, send)


class _Fixed:
    def __init__(self, decision: FaultDecision) -> None:
        self.decision = decision

    def decide(self, group: str | None, *, creates_order: bool = False) -> FaultDecision:
        return self.decision


def orders_with(app: Any, cid: str) -> list[Any]:
    return [o for o in app.state.trading.paper.book.orders.values() if o.client_order_id == cid]


# --------------------------------------------------------------------------- every method
def test_every_protocol_method(venue) -> None:
    url, app = venue
    paper = app.state.trading.paper

    async def scenario(ex: CcxtExchange) -> None:
        assert isinstance(ex, Exchange) and ex.name == "binanceusdm"
        markets = await ex.markets()
        btc, local = markets[BTC], paper.instruments[BTC]
        assert (btc.tick_size, btc.lot_size, btc.min_notional_usd) == (0.1, 0.001, 5.0)
        assert btc.max_leverage == local.max_leverage == 125.0
        assert len(btc.margin_tiers) == len(local.margin_tiers) > 1  # from leverage brackets
        for ours, theirs in zip(btc.margin_tiers, local.margin_tiers, strict=True):
            assert ours == pytest.approx(theirs, rel=1e-9)
        balance = await ex.balance()
        assert balance.wallet_usd == balance.equity_usd == balance.free_usd == 10_000.0
        await ex.set_leverage(BTC, 5)
        assert paper.acc.leverage(paper.symbols.index(BTC)) == 5.0

        buy = await ex.create_order(req(BTC, Side.BUY, LiveOrderType.MARKET, 0.01, "m-1"))
        assert (buy.status, buy.filled, buy.client_order_id) == (LiveOrderStatus.OPEN, 0.0, "m-1")
        advance(url)
        done = await ex.fetch_order(BTC, client_order_id="m-1")
        local_order = paper.book.by_client_id["m-1"]
        assert (done.status, done.filled, done.id) == (LiveOrderStatus.FILLED, 0.01, buy.id)
        assert done.average_price == pytest.approx(local_order.average_price)
        (pos,) = (await ex.positions()).values()
        assert (pos.symbol, pos.size, pos.leverage) == (BTC, 0.01, 5.0)
        assert pos.entry_price == pytest.approx(done.average_price)
        assert (await ex.balance()).free_usd < 10_000.0
        (fill,) = await ex.fills(BTC)
        assert (fill.client_order_id, fill.order_id, fill.amount) == ("m-1", buy.id, 0.01)
        assert fill.fee_usd == pytest.approx(0.01 * fill.price * 4e-4) and not fill.is_maker

        last = (await ex.ticker(BTC)).last
        limit = await ex.create_order(req(BTC, Side.BUY, LiveOrderType.LIMIT, 0.01, "l-1",
                                          price=round(last * 0.8, 1)))
        stop = await ex.create_order(req(BTC, Side.SELL, LiveOrderType.STOP_MARKET, 0.01,
                                         "s-1", stop_price=round(last * 0.8, 1),
                                         reduce_only=True))
        assert (limit.order_type, limit.price) == (LiveOrderType.LIMIT, round(last * 0.8, 1))
        assert (stop.order_type, stop.stop_price, stop.reduce_only) == (
            LiveOrderType.STOP_MARKET, round(last * 0.8, 1), True)
        opened = await ex.open_orders()
        assert [o.client_order_id for o in opened] == ["l-1", "s-1"]
        assert [o.client_order_id for o in await ex.open_orders(ETH)] == []
        cancelled = await ex.cancel_order(BTC, client_order_id="l-1")
        assert cancelled.status is LiveOrderStatus.CANCELLED and cancelled.id == limit.id
        cancelled = await ex.cancel_order(BTC, client_order_id="s-1")
        assert (cancelled.status, cancelled.order_type) == (
            LiveOrderStatus.CANCELLED, LiveOrderType.STOP_MARKET)
        # a filled order stays filled: cancelling it is not an error
        assert (await ex.cancel_order(BTC, client_order_id="m-1")).status is LiveOrderStatus.FILLED

        take = await ex.create_order(req(BTC, Side.SELL, LiveOrderType.TAKE_PROFIT_MARKET, 0.01,
                                         "tp-1", stop_price=round(last * 0.999, 1),
                                         reduce_only=True))
        assert take.status is LiveOrderStatus.OPEN
        advance(url)  # the bar opens above the level: it triggers at the open and fills
        taken = await ex.fetch_order(BTC, client_order_id="tp-1")
        assert (taken.status, taken.filled, taken.order_type, taken.id) == (
            LiveOrderStatus.FILLED, 0.01, LiveOrderType.TAKE_PROFIT_MARKET, take.id)
        assert taken.stop_price == round(last * 0.999, 1)
        assert await ex.positions() == {}
        assert [f.client_order_id for f in await ex.fills(BTC)] == ["m-1", "tp-1"]

        ticker = await ex.ticker(BTC)
        bid, ask, close = paper.quote(BTC)
        assert (ticker.bid, ticker.ask, ticker.last) == pytest.approx((bid, ask, close))
        book = await ex.order_book(BTC, depth=3)
        assert len(book.bids) == len(book.asks) == 3
        assert book.bids[0][0] == pytest.approx(bid) and book.asks[0][0] == pytest.approx(ask)
        assert book.bids[0][0] > book.bids[1][0] and book.asks[0][0] < book.asks[1][0]
        rate, when = await ex.funding_rate(BTC)
        assert isinstance(rate, float) and when.tz is not None and when.hour % 8 == 0
        bars = await ex.ohlcv(BTC, "1h", limit=5)
        assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
        assert bars.index.name == "date" and str(bars.index.tz) == "UTC" and len(bars) == 5
        assert bars.index[-1] + pd.Timedelta("1h") == paper.now
        assert bars["close"].iloc[-1] == close and (bars.dtypes == "float64").all()

    run(url, scenario)


def test_partial_fills_and_stops_seen_by_a_fresh_adapter(venue) -> None:
    url, app = venue
    app.state.faults.configure(FaultPlan(random={"order": RandomFaults(partial=1.0)}, seed=2))

    async def first(ex: CcxtExchange) -> None:
        await ex.create_order(req(ETH, Side.BUY, LiveOrderType.MARKET, 1.0, "p-1"))
        last = (await ex.ticker(ETH)).last
        await ex.create_order(req(ETH, Side.SELL, LiveOrderType.STOP_MARKET, 0.5, "ps-1",
                                  stop_price=round(last * 0.5, 2), reduce_only=True))
        advance(url)
        part = await ex.fetch_order(ETH, client_order_id="p-1")
        assert part.status is LiveOrderStatus.PARTIALLY_FILLED and 0.0 < part.filled < 1.0

    run(url, first)
    app.state.faults.configure(FaultPlan())

    async def second(ex: CcxtExchange) -> None:  # knows nothing of these client ids
        stop = await ex.fetch_order(ETH, client_order_id="ps-1")  # regular first, then algo
        assert (stop.order_type, stop.status) == (LiveOrderType.STOP_MARKET, LiveOrderStatus.OPEN)
        assert (await ex.cancel_order(ETH, client_order_id="ps-1")).status \
            is LiveOrderStatus.CANCELLED
        part = await ex.cancel_order(ETH, client_order_id="p-1")  # the rest is cancelled
        assert part.status is LiveOrderStatus.CANCELLED and 0.0 < part.filled < 1.0
        assert (await ex.positions())[ETH].size == pytest.approx(part.filled)

    run(url, second)


# --------------------------------------------------------------------------- errors
def test_errors_are_mapped(venue, monkeypatch) -> None:
    url, app = venue

    async def scenario(ex: CcxtExchange) -> None:
        with pytest.raises(InvalidOrder, match="lot size"):  # refused before sending
            await ex.create_order(req(BTC, Side.BUY, LiveOrderType.MARKET, 0.0015, "bad-lot"))
        with pytest.raises(InvalidOrder, match="tick size"):
            await ex.create_order(req(BTC, Side.BUY, LiveOrderType.LIMIT, 0.001, "bad-tick",
                                      price=20_000.05))
        with pytest.raises(InvalidOrder, match="-4164"):  # about 2 USDT: under the minimum
            await ex.create_order(req(ETH, Side.BUY, LiveOrderType.MARKET, 0.001, "small"))
        with pytest.raises(InsufficientFunds, match="-2019"):
            await ex.create_order(req(BTC, Side.BUY, LiveOrderType.MARKET, 5.0, "big"))
        with pytest.raises(InvalidOrder, match="-2022"):
            await ex.create_order(req(ETH, Side.SELL, LiveOrderType.MARKET, 0.01, "ro",
                                      reduce_only=True))
        with pytest.raises(InvalidOrder, match="-5022"):  # post-only that would take
            await ex.create_order(req(BTC, Side.BUY, LiveOrderType.LIMIT, 0.001, "po",
                                      price=round((await ex.ticker(BTC)).ask * 1.01, 1),
                                      time_in_force=TimeInForce.POST_ONLY))
        with pytest.raises(InvalidOrder, match="unknown symbol"):
            await ex.create_order(req("NOPE/USDT:USDT", Side.BUY, LiveOrderType.MARKET, 1.0, "x"))
        with pytest.raises(InvalidOrder, match="-1121"):  # listed, not traded here
            await ex.create_order(req("DOGE/USDT:USDT", Side.BUY, LiveOrderType.MARKET, 100.0,
                                      "y"))
        with pytest.raises(OrderNotFound):
            await ex.fetch_order(BTC, client_order_id="never-sent")
        with pytest.raises(OrderNotFound):
            await ex.cancel_order(BTC, client_order_id="never-sent")
        with pytest.raises(InvalidOrder):
            await ex.set_leverage(BTC, 500)

    run(url, scenario)
    (expired,) = app.state.trading.paper.book.orders.values()  # only the post-only was taken
    assert (expired.client_order_id, expired.status) == ("po", LiveOrderStatus.EXPIRED)

    for variable, value in ((KEY_ENV, "wrong-key-123456"), (SECRET_ENV, "wrong-secret-123456")):
        monkeypatch.setenv(variable, value)

        async def bad_keys(ex: CcxtExchange) -> None:
            with pytest.raises(AuthenticationFailed) as caught:
                await ex.balance()
            assert "binanceusdm balance" in str(caught.value)
            for secret in (KEY, SECRET, "wrong-key-123456", "wrong-secret-123456"):
                assert secret not in str(caught.value)

        run(url, bad_keys)
        monkeypatch.setenv(variable, KEY if variable == KEY_ENV else SECRET)

    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(ConfigError, match=SECRET_ENV) as caught:
        adapter(url)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_make_client_picks_binance_error_tables_by_path(asynchronous: bool) -> None:
    client = make_client("binanceusdm", base_url="http://127.0.0.1:9", asynchronous=asynchronous)
    linear = client.get_exceptions_by_url("http://127.0.0.1:9/fapi/v1/order", "exact")
    assert linear["-4164"] is ccxt.InvalidOrder and linear["-2019"] is ccxt.InsufficientFunds
    assert client.get_exceptions_by_url("http://127.0.0.1:9/dapi/v1/order", "exact") \
        == client.exceptions["inverse"]["exact"]
    assert client.get_exceptions_by_url("http://127.0.0.1:9/elsewhere", "exact") == {}
    assert client.rateLimit == make_client("binanceusdm").rateLimit
    assert make_client("binanceusdm", rate_limit_ms=2, asynchronous=asynchronous).rateLimit == 2
    with pytest.raises(ValueError, match="rate_limit_ms"):
        make_client("binanceusdm", rate_limit_ms=0)
    with pytest.raises(TypeError, match="async_support"):
        CcxtExchange(make_client("binanceusdm"))


def test_keys_never_reach_the_logs(venue, caplog) -> None:
    url, _ = venue
    caplog.set_level(logging.DEBUG)
    script = Script(venue[1])
    script.script[("GET", "/fapi/v3/account")] = [E503]  # a retry is logged too

    async def scenario(ex: CcxtExchange) -> None:
        await ex.balance()

    run(url, scenario)
    assert "X-MBX-APIKEY" in caplog.text and "try 1 of 4 failed" in caplog.text
    assert KEY not in caplog.text and SECRET not in caplog.text


@pytest.mark.parametrize(
    ("error", "order_call", "expected"),
    [
        (ccxt.RateLimitExceeded("429"), True, RateLimited),
        (ccxt.DDoSProtection("418"), False, RateLimited),
        (ccxt.RequestTimeout("timed out"), True, OrderStateUnknown),
        (ccxt.RequestTimeout("timed out"), False, ExchangeUnavailable),
        (ccxt.NetworkError("reset"), True, OrderStateUnknown),
        (ccxt.ExchangeNotAvailable("503 Service Unavailable"), True, ExchangeUnavailable),
        (ccxt.OnMaintenance("maintenance"), False, ExchangeUnavailable),
        (ccxt.InvalidNonce("-1021"), False, ExchangeUnavailable),
        (ccxt.BadResponse("not json"), True, OrderStateUnknown),
        (ccxt.InsufficientFunds("-2019"), True, InsufficientFunds),
        (ccxt.OrderNotFound("-2013"), False, OrderNotFound),
        (ccxt.InvalidOrder("-4164"), True, InvalidOrder),
        (ccxt.BadRequest("-1102"), False, InvalidOrder),
        (ccxt.BadSymbol("-1121"), False, InvalidOrder),
        (ccxt.OperationRejected("-2027"), True, InvalidOrder),
        (ccxt.AuthenticationError("-2015"), False, AuthenticationFailed),
        (ccxt.PermissionDenied("-2015"), False, AuthenticationFailed),
        (ccxt.ExchangeError("-9999"), False, ExchangeError),
        (ccxt.NotSupported("nope"), False, ExchangeError),
    ],
)
def test_error_table(error: Exception, order_call: bool, expected: type) -> None:
    mapped = map_ccxt_error(error, exchange="binanceusdm", method="create_order",
                            symbol=BTC, order_call=order_call)
    assert type(mapped) is expected
    assert str(mapped).startswith("binanceusdm create_order BTC/USDT:USDT: ")


def test_dropped_connection_is_ambiguous_and_secrets_are_redacted() -> None:
    def dropped() -> ccxt.ExchangeNotAvailable:  # how ccxt's async client reports it
        try:
            try:
                raise aiohttp.ServerDisconnectedError()
            except aiohttp.ClientError as cause:
                raise ccxt.ExchangeNotAvailable("binanceusdm POST http://x/fapi/v1/order") \
                    from cause
        except ccxt.ExchangeNotAvailable as error:
            return error

    assert type(map_ccxt_error(dropped(), exchange="b", method="m", order_call=True)) \
        is OrderStateUnknown
    assert type(map_ccxt_error(dropped(), exchange="b", method="m")) is ExchangeUnavailable
    text = str(map_ccxt_error(
        ccxt.ExchangeError(f"GET http://x/fapi/v1/order?signature=abc&apiKey={KEY} {SECRET}"),
        exchange="b", method="m", secrets=[KEY, SECRET]))
    assert KEY not in text and SECRET not in text and "signature" not in text
    assert redact("a secret-value-1", ["secret-value-1"]) == "a ***"


# --------------------------------------------------------------------------- retries
def test_retries_on_429_and_5xx_then_success(venue) -> None:
    url, app = venue
    script = Script(app)
    create, query = ("POST", "/fapi/v1/order"), ("GET", "/fapi/v1/order")
    script.script[create] = [E429, E503, E429]
    script.script[("GET", "/fapi/v3/account")] = [E503, E503]

    async def scenario(ex: CcxtExchange) -> None:
        order = await ex.create_order(req(BTC, Side.BUY, LiveOrderType.MARKET, 0.01, "r-1"))
        assert order.status is LiveOrderStatus.OPEN
        assert script.seen[create] == 4 and script.seen[query] == 1  # looked after the 503
        assert (ex.stats["retries"], ex.stats["requeries"]) == (3, 1)
        assert (await ex.balance()).wallet_usd == 10_000.0
        assert script.seen[("GET", "/fapi/v3/account")] == 3
        script.script[create] = [E429] * 10
        with pytest.raises(RateLimited, match="binanceusdm create_order BTC/USDT:USDT"):
            await ex.create_order(req(BTC, Side.BUY, LiveOrderType.MARKET, 0.01, "r-2"))
        assert script.seen[create] == 4 + FAST.max_attempts
        script.script[create] = [E503] * 10
        with pytest.raises(ExchangeUnavailable, match="not on the exchange"):
            await ex.create_order(req(BTC, Side.BUY, LiveOrderType.MARKET, 0.01, "r-3"))

    run(url, scenario)
    assert [len(orders_with(app, c)) for c in ("r-1", "r-2", "r-3")] == [1, 0, 0]


def test_lost_create_is_found_by_client_id_not_sent_twice(venue) -> None:
    url, app = venue
    script = Script(app)
    create, query = ("POST", "/fapi/v1/order"), ("GET", "/fapi/v1/order")
    algo = ("POST", "/fapi/v1/algoOrder")

    async def scenario(ex: CcxtExchange) -> None:
        # the order WAS created, the response was lost
        script.script[create] = [DROP]
        order = await ex.create_order(req(BTC, Side.BUY, LiveOrderType.LIMIT, 0.01, "d-1",
                                          price=20_000.0))
        assert (order.client_order_id, order.status) == ("d-1", LiveOrderStatus.OPEN)
        assert script.seen[create] == 1 and ex.stats["found_after_loss"] == 1
        script.script[algo] = [DROP]
        stop = await ex.create_order(req(BTC, Side.SELL, LiveOrderType.STOP_MARKET, 0.01,
                                         "d-2", stop_price=20_000.0, reduce_only=True))
        assert stop.order_type is LiveOrderType.STOP_MARKET and script.seen[algo] == 1
        # lost, and the look-ups fail too: the caller is told the state is unknown
        script.script[create] = [DROP]
        script.script[query] = [E503] * FAST.max_attempts
        with pytest.raises(OrderStateUnknown, match="d-3"):
            await ex.create_order(req(BTC, Side.BUY, LiveOrderType.LIMIT, 0.01, "d-3",
                                      price=20_000.0))
        # the caller re-sends under the same id: the exchange says "duplicated", the
        # adapter returns the existing order
        again = await ex.create_order(req(BTC, Side.BUY, LiveOrderType.LIMIT, 0.01, "d-3",
                                          price=20_000.0))
        assert again.status is LiveOrderStatus.OPEN and ex.stats["duplicate_id_resolved"] == 1
        # a dropped cancel: the retry hears "unknown order", the adapter fetches the outcome
        script.script[("DELETE", "/fapi/v1/order")] = [DROP]
        assert (await ex.cancel_order(BTC, client_order_id="d-1")).status \
            is LiveOrderStatus.CANCELLED
        script.script[("DELETE", "/fapi/v1/algoOrder")] = [DROP]
        assert (await ex.cancel_order(BTC, client_order_id="d-2")).status \
            is LiveOrderStatus.CANCELLED
        # a dropped create whose look-up first meets two 5xx
        script.script[create] = [DROP]
        script.script[query] = [E503, E503]
        market = await ex.create_order(req(ETH, Side.BUY, LiveOrderType.MARKET, 0.1, "d-4"))
        assert market.client_order_id == "d-4"

    run(url, scenario)
    for cid in ("d-1", "d-2", "d-3", "d-4"):
        assert len(orders_with(app, cid)) == 1, cid


# --------------------------------------------------------------------------- fault soak
SOAK_FAULTS = RandomFaults(latency_ms=1.0, drop=0.09, rate_limit=0.08, server_error=0.08,
                           reject=0.10, partial=0.3)
SOAK_RETRY = RetryConfig(max_attempts=6, base_delay_s=0.001, max_delay_s=0.005, seed=5)


class SoakTrader:
    """Drives the adapter as the order manager would: re-queries after OrderStateUnknown and
    re-sends (same client id) what the exchange never got, until each order has a known end."""

    def __init__(self, ex: CcxtExchange, rng: random.Random) -> None:
        self.ex = ex
        self.rng = rng
        self.outcome: dict[str, str] = {}  # client id -> "exchange" / "rejected" / "unknown"
        self.symbol_of: dict[str, str] = {}
        self.live: list[str] = []
        self.ops: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    async def _found(self, symbol: str, cid: str, tries: int = 12) -> bool | None:
        for _ in range(tries):
            try:
                await self.ex.fetch_order(symbol, client_order_id=cid)
                return True
            except OrderNotFound:
                return False
            except ExchangeError as error:
                self.errors[type(error).__name__] += 1
        return None

    async def submit(self, request: OrderRequest) -> None:
        cid = request.client_order_id
        self.symbol_of[cid] = request.symbol
        self.ops[f"create_{request.order_type.value}"] += 1
        self.outcome[cid] = "unknown"
        for _ in range(6):
            try:
                order = await self.ex.create_order(request)
            except InvalidOrder:
                self.outcome[cid] = "rejected"
                return
            except OrderStateUnknown:
                self.errors["OrderStateUnknown"] += 1
                found = await self._found(request.symbol, cid)
                if found is None:
                    return  # still unknown: resolved at the end
                if found:
                    break
            except TransientExchangeError as error:  # known not to be there: send again
                self.errors[type(error).__name__] += 1
            else:
                if order.is_terminal:
                    self.outcome[cid] = "exchange"
                    return
                break
        else:
            return  # never answered: resolved at the end
        self.outcome[cid] = "exchange"
        self.live.append(cid)

    async def cancel(self) -> None:
        if not self.live:
            return
        cid = self.live.pop(self.rng.randrange(len(self.live)))
        self.ops["cancel"] += 1
        try:
            order = await self.ex.cancel_order(self.symbol_of[cid], client_order_id=cid)
            assert order.is_terminal, order
        except (OrderStateUnknown, TransientExchangeError) as error:
            self.errors[type(error).__name__] += 1
            self.live.append(cid)

    async def fetch(self) -> None:
        if not self.symbol_of:
            return
        cid = self.rng.choice(sorted(self.symbol_of))
        self.ops["fetch"] += 1
        try:
            await self.ex.fetch_order(self.symbol_of[cid], client_order_id=cid)
        except OrderNotFound:
            assert self.outcome[cid] in ("rejected", "unknown"), cid
        except TransientExchangeError as error:
            self.errors[type(error).__name__] += 1

    async def other(self, name: str, call: Callable[[], Awaitable[Any]]) -> None:
        self.ops[name] += 1
        try:
            await call()
        except TransientExchangeError as error:
            self.errors[type(error).__name__] += 1


async def _soak(ex: CcxtExchange, url: str, app: Any, n_ops: int) -> SoakTrader:
    paper = app.state.trading.paper
    rng = random.Random(20240601)
    trader = SoakTrader(ex, rng)
    for symbol in (BTC, ETH):
        await ex.set_leverage(symbol, 10)
    sizes = {BTC: (0.001, 0.004), ETH: (0.01, 0.06)}
    decimals = {BTC: 1, ETH: 2}
    for i in range(n_ops):
        if i % 8 == 7:
            advance(url)
        symbol = rng.choice((BTC, ETH))
        lot, top = sizes[symbol]
        amount = round(lot * rng.randint(1, round(top / lot)), 6)
        side = rng.choice((Side.BUY, Side.SELL))
        last = paper.quote(symbol)[2]
        cid = f"soak-{i}"
        u = rng.random()
        if u < 0.30:
            await trader.submit(req(symbol, side, LiveOrderType.MARKET, amount, cid,
                                    reduce_only=rng.random() < 0.15))
        elif u < 0.50:
            away = rng.uniform(-0.002, 0.01) * (-1 if side is Side.BUY else 1)
            await trader.submit(req(symbol, side, LiveOrderType.LIMIT, amount, cid,
                                    price=round(last * (1 + away), decimals[symbol])))
        elif u < 0.65:
            otype = rng.choice((LiveOrderType.STOP_MARKET, LiveOrderType.TAKE_PROFIT_MARKET))
            sign = -1 if (side is Side.SELL) == (otype is LiveOrderType.STOP_MARKET) else 1
            level = round(last * (1 + sign * rng.uniform(0.001, 0.01)), decimals[symbol])
            await trader.submit(req(symbol, side, otype, amount, cid, stop_price=level,
                                    reduce_only=True))
        elif u < 0.80:
            await trader.cancel()
        elif u < 0.92:
            await trader.fetch()
        elif u < 0.96:
            await trader.other("open_orders", lambda s=symbol: ex.open_orders(
                rng.choice((None, s))))
        else:
            await trader.other("positions", ex.positions)
    return trader


def test_fault_soak_no_duplicate_no_lost_order(venue) -> None:
    url, app = venue
    paper = app.state.trading.paper
    counter = Script(app)  # counts requests; the faults stay random
    app.state.faults.configure(FaultPlan(random={"*": SOAK_FAULTS}, seed=11))
    began, start = time.monotonic(), paper.now - pd.Timedelta("1h")

    async def scenario(ex: CcxtExchange) -> dict[str, Any]:
        trader = await _soak(ex, url, app, n_ops=420)
        injected = dict(app.state.faults.counts)
        requests = sum(counter.groups.values()) - counter.groups["control"]
        creates = counter.seen[("POST", "/fapi/v1/order")] + counter.seen[
            ("POST", "/fapi/v1/algoOrder")]
        app.state.faults.configure(FaultPlan())  # the storm is over: settle and compare
        for cid, outcome in trader.outcome.items():
            if outcome == "unknown":
                found = await trader._found(trader.symbol_of[cid], cid)
                trader.outcome[cid] = "exchange" if found else "not-sent"
        listed = await ex.open_orders()
        reported = {cid: await ex.fetch_order(trader.symbol_of[cid], client_order_id=cid)
                    for cid, outcome in trader.outcome.items() if outcome == "exchange"}
        fills = {s: await ex.fills(s, since=start) for s in (BTC, ETH)}
        return {"trader": trader, "injected": injected, "requests": requests,
                "creates": creates, "listed": listed, "reported": reported,
                "positions": await ex.positions(), "fills": fills, "stats": dict(ex.stats)}

    out = run(url, scenario, SOAK_RETRY)
    elapsed = time.monotonic() - began
    trader, injected = out["trader"], out["injected"]
    book = paper.book

    # no duplicated order: each client id at most one order on the exchange
    per_cid = Counter(o.client_order_id for o in book.orders.values())
    duplicates = {cid: n for cid, n in per_cid.items() if n > 1}
    assert duplicates == {}
    # no lost order: every id we tried ends known, and what we know is what the exchange has
    lost = [cid for cid, outcome in trader.outcome.items()
            if outcome not in ("exchange", "rejected")
            or (outcome == "exchange") != (cid in book.by_client_id)]
    assert lost == []
    assert set(per_cid) == {c for c, o in trader.outcome.items() if o == "exchange"}
    for cid, order in out["reported"].items():
        truth = book.by_client_id[cid].snapshot()
        assert (order.id, order.status, order.order_type, order.side) == (
            truth.id, truth.status, truth.order_type, truth.side), cid
        assert order.filled == pytest.approx(truth.filled, abs=1e-12), (order, truth)
    assert sorted(o.client_order_id for o in out["listed"]) == sorted(
        o.client_order_id for o in book.open_orders())
    truth_positions = {s: p for s, p in asyncio.run(paper.positions()).items()}
    assert out["positions"].keys() == truth_positions.keys()
    for symbol, pos in out["positions"].items():
        assert pos.size == pytest.approx(truth_positions[symbol].size, abs=1e-12)
        assert pos.entry_price == pytest.approx(truth_positions[symbol].entry_price, rel=1e-9)
    frame = paper.fill_frame()
    assert sum(len(f) for f in out["fills"].values()) == len(frame)

    # the storm was real: ≥ 300 order operations, ≥ 5 % of requests failing each way
    order_ops = sum(n for k, n in trader.ops.items() if k.startswith(("create", "cancel",
                                                                        "fetch")))
    requests = out["requests"]
    rates = {
        "drop": injected.get("drop", 0) / requests,
        "rate_limit": injected.get("rate_limit", 0) / requests,
        "server_error": injected.get("server_error", 0) / requests,
        "reject": injected.get("reject", 0) / out["creates"],
        "partial": injected.get("partial", 0) / max(len(frame), 1),
    }
    print(f"\nsoak: {order_ops} order operations ({dict(trader.ops)}), {requests} requests, "
          f"{out['creates']} creates sent, injected {injected} (+ latency "
          f"{SOAK_FAULTS.latency_ms} ms on all {requests}); rates "
          f"{ {k: round(v, 3) for k, v in rates.items()} }; outcomes "
          f"{dict(Counter(trader.outcome.values()))}; caller saw {dict(trader.errors)}; "
          f"adapter {out['stats']}; duplicates {len(duplicates)}, lost {len(lost)}; "
          f"{elapsed:.1f} s")
    assert order_ops >= 300
    assert all(rate >= 0.05 for rate in rates.values()), rates
    assert out["stats"]["found_after_loss"] > 0 and out["stats"]["retries"] > 50
    assert elapsed < 60.0
