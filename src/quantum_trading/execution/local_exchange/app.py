"""The local exchange as a FastAPI app: Binance USDⓈ-M endpoints served from stored data.

Today it serves the public market-data routes ccxt's ``binanceusdm`` uses (see
:mod:`.market_routes`); trading routes can be added later as another router on the same app.
"""

from __future__ import annotations

import collections
import http
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from quantum_trading.errors import DataError
from quantum_trading.execution.local_exchange.faults import FaultInjector, FaultPlan
from quantum_trading.execution.local_exchange.market_data import MarketData
from quantum_trading.execution.local_exchange.market_routes import (
    BinanceAPIError,
    InjectedFault,
    router,
)

__all__ = ["create_app"]

REQUEST_LOG_SIZE = 10_000


def create_app(
    data: MarketData | Path | str,
    *,
    exchange: str = "binance",
    fail_after: int | None = None,
    fail_count: int | None = None,
    fail_status: int = 503,
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

    Returns
    -------
    fastapi.FastAPI
        ``app.state.market_data`` (the data), ``app.state.faults`` (the :class:`FaultInjector`),
        ``app.state.request_log`` (the last requests as ``(method, path, status)``).

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
    app = FastAPI(
        title="Quantum Trading local exchange",
        description="Binance USDⓈ-M compatible endpoints served from stored market data.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.market_data = market_data
    app.state.faults = FaultInjector(FaultPlan(fail_after, fail_count, fail_status))
    app.state.request_log = collections.deque(maxlen=REQUEST_LOG_SIZE)
    app.include_router(router)

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

    return app


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"
