"""The local exchange as a FastAPI app: Binance USDⓈ-M endpoints served from stored data.

It always serves the public market-data routes ccxt's ``binanceusdm`` uses (see
:mod:`.market_routes`). With ``trading=TradingOptions(...)`` it is also a trading venue: a
:class:`~quantum_trading.execution.paper.PaperExchange` replaying the stored bars answers the
signed order, position, balance and leverage routes and the quote routes (see
:mod:`.trading_routes`, :mod:`.account_routes`, :mod:`.trading`). Random faults per endpoint
group (latency, dropped answers, 429, 5xx, rejects, partial fills; :mod:`.faults`) are applied
by :class:`FaultMiddleware`.
"""

from __future__ import annotations

import asyncio
import collections
import http
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from quantum_trading.errors import DataError
from quantum_trading.execution.local_exchange.account_routes import account_router
from quantum_trading.execution.local_exchange.faults import (
    FaultInjector,
    FaultPlan,
    endpoint_group,
)
from quantum_trading.execution.local_exchange.market_data import MarketData
from quantum_trading.execution.local_exchange.market_routes import (
    BinanceAPIError,
    InjectedFault,
    router,
)
from quantum_trading.execution.local_exchange.trading import TradingOptions, TradingSession
from quantum_trading.execution.local_exchange.trading_routes import control_router
from quantum_trading.execution.local_exchange.trading_routes import router as trading_router

__all__ = ["FaultMiddleware", "create_app"]

_CREATE_PATHS = ("/fapi/v1/order", "/fapi/v1/algoOrder")

REQUEST_LOG_SIZE = 10_000


def create_app(
    data: MarketData | Path | str,
    *,
    exchange: str = "binance",
    fail_after: int | None = None,
    fail_count: int | None = None,
    fail_status: int = 503,
    fault_plan: FaultPlan | None = None,
    trading: TradingOptions | None = None,
) -> FastAPI:
    """Build the local exchange app over a data folder.

    Parameters
    ----------
    data:
        A :class:`MarketData`, or the folder to build one from (freqtrade layout such as
        ``…/binance/futures``, or our store's root).
    exchange:
        Exchange folder name looked for inside ``data`` (``binance``).
    fail_after, fail_count, fail_status:
        Fault injection (:class:`FaultPlan`): after ``fail_after`` successful data requests,
        the next ``fail_count`` (``None``: all) answer HTTP ``fail_status``. Change it at run
        time with ``app.state.faults.configure(FaultPlan(...))``.
    fault_plan:
        A whole :class:`FaultPlan` (counted and random faults); replaces the three above.
    trading:
        :class:`~.trading.TradingOptions` to serve trading (credentials, replay timeframe and
        speed, costs, account); None = market data only.

    Returns
    -------
    fastapi.FastAPI
        ``app.state.market_data`` (the data), ``app.state.faults`` (the :class:`FaultInjector`),
        ``app.state.request_log`` (the last requests as ``(method, path, status)``),
        ``app.state.trading`` (the :class:`~.trading.TradingSession`, or None).

    Examples
    --------
    >>> from quantum_trading.execution.local_exchange.server import serve_in_thread
    >>> app = create_app("/path/to/data/binance/futures")  # doctest: +SKIP
    >>> with serve_in_thread(app) as base_url:  # doctest: +SKIP
    ...     client = make_client("binanceusdm", base_url=base_url)
    ...     client.load_markets()
    """
    market_data = (
        data if isinstance(data, MarketData) else MarketData(Path(data), exchange=exchange)
    )
    app = _LocalExchangeApp(
        title="Quantum Trading local exchange",
        description="Binance USDⓈ-M compatible endpoints served from stored market data.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.market_data = market_data
    app.state.faults = FaultInjector(
        fault_plan if fault_plan is not None else FaultPlan(fail_after, fail_count, fail_status))
    app.state.request_log = collections.deque(maxlen=REQUEST_LOG_SIZE)
    app.state.trading = (
        TradingSession(market_data, trading, faults=app.state.faults) if trading is not None
        else None)
    app.include_router(router)
    if trading is not None:
        app.include_router(trading_router)
        app.include_router(account_router)
        app.include_router(control_router)

    @app.middleware("http")
    async def _log_requests(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        app.state.request_log.append((request.method, request.url.path, response.status_code))
        return response

    @app.exception_handler(BinanceAPIError)
    async def _binance_error(request: Request, error: BinanceAPIError) -> JSONResponse:
        return JSONResponse({"code": error.code, "msg": error.msg}, status_code=error.status)

    @app.exception_handler(InjectedFault)
    async def _injected(request: Request, error: InjectedFault) -> PlainTextResponse:
        return PlainTextResponse(_phrase(error.status), status_code=error.status)

    @app.exception_handler(DataError)
    async def _data_error(request: Request, error: DataError) -> JSONResponse:
        return JSONResponse(
            {
                "code": -1000,
                "msg": f"An unknown error occurred while processing the request. ({error})",
            },
            status_code=500,
        )

    app.fault_middleware = FaultMiddleware(
        lambda scope, receive, send: FastAPI.__call__(app, scope, receive, send),
        app.state.faults)
    return app


class _LocalExchangeApp(FastAPI):
    """FastAPI with :class:`FaultMiddleware` in front of everything (even Starlette's error
    middleware), so that a dropped request can close the server's own connection."""

    fault_middleware: FaultMiddleware | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:  # type: ignore[override]
        if self.fault_middleware is None:
            await super().__call__(scope, receive, send)
        else:
            await self.fault_middleware(scope, receive, send)


class FaultMiddleware:
    """ASGI middleware applying the random faults of :class:`FaultInjector` per request.

    Latency is awaited first; a 429 (``{"code": -1003, …}``) or 503 answer, or an injected
    order reject (``{"code": -2010, …}``, order creation only), is sent without processing the
    request; a *dropped* request is processed and its connection closed without an answer.
    """

    def __init__(self, app: Any, faults: FaultInjector) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        creates = scope["method"] == "POST" and path in _CREATE_PATHS
        decision = self.faults.decide(endpoint_group(path), creates_order=creates)
        if decision.latency_ms > 0.0:
            await asyncio.sleep(decision.latency_ms / 1000.0)
        if decision.status == 429:
            response: Response = JSONResponse(
                {"code": -1003, "msg": "Too many requests; current limit of IP(127.0.0.1) is "
                 "2400 requests per minute. (local exchange: injected)"}, status_code=429,
                headers={"Retry-After": "1"})
        elif decision.status is not None:
            response = PlainTextResponse(_phrase(decision.status), status_code=decision.status)
        elif decision.reject:
            response = JSONResponse({"code": -2010, "msg": "New order rejected. (local "
                                     "exchange: injected reject)"}, status_code=400)
        elif decision.drop:
            await self._drop(scope, receive, send)
            return
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    async def _drop(self, scope: dict, receive: Any, send: Any) -> None:
        async def discard(message: dict) -> None:
            return None

        await self.app(scope, receive, discard)  # processed: an order may now exist
        # uvicorn's send is a method of its request cycle, which holds the connection
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is not None:
            transport.close()  # no status line, no body: the client sees the connection drop
            for _ in range(3):
                await asyncio.sleep(0)  # let the server notice the disconnect
            return
        # another server: start a response and never finish it (it closes the connection)
        await send({"type": "http.response.start", "status": 200, "headers": []})


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"
