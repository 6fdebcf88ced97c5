"""Download perpetual-futures history through ccxt into the Parquet store (the network adapter).

Three kinds of series per symbol: OHLCV candles (``fetch_ohlcv``), funding-rate history
(``fetch_funding_rate_history``) and mark-price candles (``fetch_ohlcv(..., params={"price":
"mark"})``). Pages are requested by ``since``/``limit`` and merged into the store as they
arrive, so an interruption loses at most the page in flight; the next run resumes from the
last stored bar (fetched again, as it may have been incomplete). Network errors (timeouts,
429/418 rate limits, 5xx) are retried with exponential backoff and jitter; other exchange errors
become :class:`~quantum_trading.errors.ExchangeError` naming symbol, kind and position.

API keys are never needed for this public data; :func:`make_client` reads them from environment
variables only when asked, and they are never logged.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt
import pandas as pd
from rich.console import Console

from quantum_trading.data.layout import DATA_KINDS
from quantum_trading.data.store import KIND_COLUMNS, ParquetStore
from quantum_trading.data.timeframes import timeframe_to_ms
from quantum_trading.errors import ConfigError, ExchangeError
from quantum_trading.progress import progress_bar

__all__ = [
    "DEFAULT_EXCHANGE_ID",
    "DownloadReport",
    "SeriesReport",
    "download",
    "make_client",
    "store_exchange_name",
]

DEFAULT_EXCHANGE_ID = "binanceusdm"
FUNDING_PAGE_MAX = 1000  # Binance's fundingRate maximum; ccxt does not cap it
MAX_BACKOFF_S = 60.0
_STORE_EXCHANGE = {"binanceusdm": "binance", "binancecoinm": "binance", "binance": "binance"}
_T = TypeVar("_T")


def _now_ms() -> int:
    """Wall-clock time in ms (a function so tests can move the clock)."""
    return int(time.time() * 1000)


def _sleep(seconds: float) -> None:
    """Wait between retries (a function so tests can record the delays)."""
    time.sleep(seconds)


def store_exchange_name(exchange_id: str) -> str:
    """Exchange folder in the store for a ccxt id (``binanceusdm`` -> ``binance``, as freqtrade)."""
    return _STORE_EXCHANGE.get(exchange_id, exchange_id)


# ---------------------------------------------------------------------------------------- client
def _rewrite_urls(value: Any, base: str) -> Any:
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.scheme in ("http", "https"):
            return base + parts.path + (f"?{parts.query}" if parts.query else "")
        return value
    if isinstance(value, dict):
        return {key: _rewrite_urls(item, base) for key, item in value.items()}
    return value


def make_client(
    exchange_id: str = DEFAULT_EXCHANGE_ID,
    *,
    base_url: str | None = None,
    api_key_env: str | None = None,
    secret_env: str | None = None,
    timeout_ms: int = 30_000,
    rate_limit_ms: float | None = None,
    asynchronous: bool = False,
) -> ccxt.Exchange:
    """A ccxt client with rate limiting on, optionally pointed at our local exchange.

    Parameters
    ----------
    exchange_id:
        ccxt exchange id (``binanceusdm`` for Binance USDⓈ-M perpetuals, ``bybit``, ``okx`` …).
    base_url:
        Root URL of a server speaking the exchange's API, e.g. ``http://127.0.0.1:8765`` for
        ``quantum exchange serve``: every API URL keeps its path and gets this scheme and host.
    api_key_env, secret_env:
        Names of environment variables holding the API key and secret (not the values). Not
        needed for market data. Keys are read from the environment only, never logged.
    timeout_ms:
        HTTP timeout of one request (ms).
    rate_limit_ms:
        ccxt's ``rateLimit`` (ms per unit of request weight; the throttle stays on); None keeps
        the exchange's own value.
    asynchronous:
        Build the ``ccxt.async_support`` client (coroutines; close it with ``await
        client.close()``) instead of the synchronous one.

    With ``base_url`` on a Binance client, ccxt's choice of error table (made from the host
    name, ``fapi.binance.com`` …) is made from the URL path instead (``/fapi/`` → USDⓈ-M,
    ``/dapi/`` → COIN-M, ``/api/`` and ``/sapi/`` → spot, …), so that the local exchange's
    error codes map to the same ccxt exceptions as Binance's.

    Raises
    ------
    ValueError
        Unknown exchange id or malformed ``base_url``.
    ConfigError
        A named environment variable is not set.

    Examples
    --------
    >>> client = make_client("binanceusdm", base_url="http://127.0.0.1:8765")
    >>> client.urls["api"]["fapiPublic"]
    'http://127.0.0.1:8765/fapi/v1'
    """
    module: Any = ccxt
    if asynchronous:
        import ccxt.async_support as module
    exchange_class = getattr(module, exchange_id, None) if exchange_id in ccxt.exchanges else None
    if exchange_class is None:
        raise ValueError(
            f"exchange id {exchange_id!r} is not a ccxt exchange (e.g. 'binanceusdm', 'bybit', 'okx')"
        )
    if timeout_ms <= 0:
        raise ValueError(f"timeout_ms must be > 0, got {timeout_ms}")
    if rate_limit_ms is not None and not rate_limit_ms > 0:
        raise ValueError(f"rate_limit_ms must be > 0, got {rate_limit_ms}")
    config: dict[str, Any] = {"enableRateLimit": True, "timeout": int(timeout_ms)}
    if rate_limit_ms is not None:
        config["rateLimit"] = rate_limit_ms
    for option, variable in (("apiKey", api_key_env), ("secret", secret_env)):
        if variable is None:
            continue
        value = os.environ.get(variable)
        if not value:
            raise ConfigError(
                f"environment variable {variable} (for the {exchange_id} {option}) is not set"
            )
        config[option] = value
    client = exchange_class(config)
    if base_url is not None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url {base_url!r} must look like 'http://127.0.0.1:8765'")
        client.urls["api"] = _rewrite_urls(client.urls["api"], f"{parts.scheme}://{parts.netloc}")
        if isinstance(client.options.get("fetchCurrencies"), bool):
            client.options["fetchCurrencies"] = False  # wallet endpoints are not served locally
        if "linear" in getattr(client, "exceptions", {}) and hasattr(client, "get_exceptions_by_url"):
            client.get_exceptions_by_url = _exceptions_by_path(client)
    return client


_PATH_MARKET_TYPES = (
    ("/fapi/", "linear"),
    ("/dapi/", "inverse"),
    ("/eapi/", "option"),
    ("/papi/", "portfolioMargin"),
    ("/sapi/", "spot"),
    ("/api/", "spot"),
)


def _exceptions_by_path(client: Any) -> Callable[[str | None, str], dict]:
    """Binance's ``get_exceptions_by_url`` keyed on the URL path, not the host name."""

    def get_exceptions_by_url(url: str | None, exact_or_broad: str) -> dict:
        if url is None:
            return {}
        path = urlsplit(url).path
        for prefix, market_type in _PATH_MARKET_TYPES:
            if path.startswith(prefix):
                return dict(client.exceptions.get(market_type, {}).get(exact_or_broad, {}))
        return {}

    return get_exceptions_by_url


# ---------------------------------------------------------------------------------------- reports
@dataclass(frozen=True)
class SeriesReport:
    """What a download did for one series.

    Attributes
    ----------
    symbol, kind, timeframe, path:
        The series and its file in the store.
    pages:
        Pages received (requests that succeeded, the final empty one included).
    rows:
        Rows received and merged (closed bars within the asked span).
    added, updated:
        Rows new to the store / stored before with other values.
    retries:
        Requests repeated after a network error.
    first, last:
        Span of the stored series after the download (UTC), ``None`` if nothing is stored.
    """

    symbol: str
    kind: str
    timeframe: str
    path: Path
    pages: int
    rows: int
    added: int
    updated: int
    retries: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None


@dataclass(frozen=True)
class DownloadReport:
    """Reports of every series of one :func:`download` call."""

    exchange_id: str
    series: tuple[SeriesReport, ...] = field(default_factory=tuple)

    @property
    def added(self) -> int:
        """Rows added over all series."""
        return sum(s.added for s in self.series)

    @property
    def updated(self) -> int:
        """Rows updated over all series."""
        return sum(s.updated for s in self.series)

    @property
    def retries(self) -> int:
        """Requests retried over all series."""
        return sum(s.retries for s in self.series)

    def to_frame(self) -> pd.DataFrame:
        """One row a series (for printing)."""
        rows = [{k: getattr(s, k) for k in SeriesReport.__dataclass_fields__} for s in self.series]
        return pd.DataFrame(rows, columns=list(SeriesReport.__dataclass_fields__))


# ---------------------------------------------------------------------------------------- helpers
def _utc(value: pd.Timestamp | str | Any) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{value!r} is not a time ({error})") from None
    if ts is pd.NaT:
        raise ValueError(f"{value!r} is not a time")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.as_unit("ns").value // 1_000_000)


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat().replace("+00:00", "Z")


def _short(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class _Retrier:
    max_retries: int
    backoff_base_s: float
    retries: int = 0

    def call(self, fn: Callable[[], _T], describe: Callable[[], str]) -> _T:
        """Run ``fn``; retry ccxt network errors with exponential backoff and jitter."""
        for attempt in range(self.max_retries + 1):
            try:
                return fn()
            except ccxt.NetworkError as error:
                if attempt >= self.max_retries:
                    raise ExchangeError(
                        f"{describe()}: gave up after {attempt + 1} attempts: {type(error).__name__}: {_short(error)}"
                    ) from error
                self.retries += 1
                delay = min(MAX_BACKOFF_S, self.backoff_base_s * 2.0**attempt) * random.uniform(
                    1.0, 1.5
                )
                _sleep(delay)
            except ccxt.BaseError as error:
                raise ExchangeError(
                    f"{describe()}: {type(error).__name__}: {_short(error)}"
                ) from error
        raise AssertionError("unreachable")  # pragma: no cover


def _candles_frame(rows: Sequence[Sequence[Any]], kind: str) -> pd.DataFrame:
    columns = KIND_COLUMNS[kind]
    index = pd.DatetimeIndex(
        pd.to_datetime([int(r[0]) for r in rows], unit="ms", utc=True), name="date"
    )
    data = {c: [r[1 + i] for r in rows] for i, c in enumerate(columns)}
    frame = pd.DataFrame(data, index=index.as_unit("ns"))
    return frame.apply(pd.to_numeric, errors="coerce").astype("float64")


def _funding_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    index = pd.DatetimeIndex(
        pd.to_datetime([int(r["timestamp"]) for r in rows], unit="ms", utc=True), name="date"
    ).floor("h")
    rates = pd.to_numeric(pd.Series([r.get("fundingRate") for r in rows]), errors="coerce")
    return pd.DataFrame(
        {"funding_rate": rates.to_numpy(dtype="float64")}, index=index.as_unit("ns")
    )


@dataclass
class _Job:
    """Downloading one series: state shared by its pages."""

    client: ccxt.Exchange
    store: ParquetStore
    store_exchange: str
    market_type: str
    symbol: str
    kind: str
    timeframe: str
    page_limit: int
    retrier: _Retrier
    advance: Callable[[int], None]
    pages: int = 0
    rows: int = 0
    added: int = 0
    updated: int = 0

    @property
    def key(self) -> dict[str, str]:
        return {
            "exchange": self.store_exchange,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "market_type": self.market_type,
            "kind": self.kind,
        }

    def _fetch(self, since_ms: int, end_ms: int) -> list[Any]:
        params: dict[str, Any] = {"until": end_ms - 1}
        if self.kind == "funding":
            limit = min(self.page_limit, FUNDING_PAGE_MAX)
            return self.client.fetch_funding_rate_history(
                self.symbol, since=since_ms, limit=limit, params=params
            )
        if self.kind == "mark":
            params["price"] = "mark"
        return self.client.fetch_ohlcv(
            self.symbol, self.timeframe, since=since_ms, limit=self.page_limit, params=params
        )

    def run_range(self, start_ms: int, end_ms: int) -> None:
        """Fetch pages from ``start_ms`` until the exchange has nothing more before ``end_ms``.

        Keeps rows with ``start_ms <= time < end_ms`` that are final: candles whose close time
        has passed, funding events in the past.
        """
        tf_ms = timeframe_to_ms(self.timeframe)
        cursor = start_ms
        while cursor < end_ms:
            since = cursor
            raw = self.retrier.call(
                lambda since=since: self._fetch(since, end_ms),
                lambda since=since: (
                    f"{self.client.id} {self.symbol} {self.kind} {self.timeframe} since {_iso(since)}"
                ),
            )
            self.pages += 1
            now_ms = _now_ms()
            if self.kind == "funding":
                rows = [
                    r
                    for r in raw
                    if r.get("timestamp") is not None
                    and since <= int(r["timestamp"]) < end_ms
                    and int(r["timestamp"]) <= now_ms
                ]
                rows.sort(key=lambda r: int(r["timestamp"]))
                times = [int(r["timestamp"]) for r in rows]
                step = 1
            else:
                rows = [
                    r for r in raw if since <= int(r[0]) < end_ms and int(r[0]) + tf_ms <= now_ms
                ]
                rows.sort(key=lambda r: int(r[0]))
                times = [int(r[0]) for r in rows]
                step = tf_ms
            if not rows:
                return
            frame = (
                _funding_frame(rows) if self.kind == "funding" else _candles_frame(rows, self.kind)
            )
            report = self.store.merge(frame, **self.key)
            self.rows += len(rows)
            self.added += report.added
            self.updated += report.updated
            self.advance(len(rows))
            next_cursor = times[-1] + step
            if next_cursor <= cursor:  # the exchange is not moving forward: stop rather than loop
                return
            cursor = next_cursor


def _check_symbols(symbols: Iterable[str] | str) -> list[str]:
    if isinstance(symbols, str):
        symbols = [symbols]
    out = list(symbols)
    if not out:
        raise ValueError("symbols is empty; give e.g. ['BTC/USDT:USDT']")
    for symbol in out:
        if not isinstance(symbol, str) or not symbol:
            raise ValueError(f"symbol {symbol!r} is not a ccxt symbol such as 'BTC/USDT:USDT'")
    return out


# ---------------------------------------------------------------------------------------- download
def download(
    symbols: Sequence[str],
    *,
    timeframe: str,
    since: pd.Timestamp | str,
    until: pd.Timestamp | str | None = None,
    kinds: Sequence[str] = ("ohlcv", "funding", "mark"),
    exchange_id: str = DEFAULT_EXCHANGE_ID,
    store: ParquetStore,
    client: ccxt.Exchange | None = None,
    page_limit: int = 1500,
    progress: bool = True,
    max_retries: int = 5,
    backoff_base_s: float = 1.0,
    funding_timeframe: str = "8h",
    mark_timeframe: str = "8h",
    store_exchange: str | None = None,
) -> DownloadReport:
    """Download OHLCV, funding-rate and mark-price history of perpetuals into ``store``.

    Parameters
    ----------
    symbols:
        ccxt unified symbols, e.g. ``["BTC/USDT:USDT", "ETH/USDT:USDT"]``.
    timeframe:
        OHLCV candle length (``1m``, ``1h`` …).
    since, until:
        Span of bar open times to fetch, ``since`` inclusive, ``until`` exclusive (UTC; naive
        values are UTC). ``until`` defaults to now. A bar still open (close time in the future)
        is never stored. Where the store already holds the series, fetching resumes at its last
        bar (fetched again); history before its first bar and after ``since`` is filled too.
    kinds:
        Any of ``"ohlcv"``, ``"funding"``, ``"mark"``.
    exchange_id:
        ccxt exchange id; ``binanceusdm`` is Binance USDⓈ-M.
    store:
        Where the series go (``<root>/<store_exchange>/futures/...parquet``).
    client:
        A ready ccxt client (e.g. :func:`make_client` with ``base_url`` of the local exchange);
        default ``make_client(exchange_id)``.
    page_limit:
        Rows asked for per request (ccxt caps Binance candles at 1,000; funding at 1,000 here).
    progress:
        Show a rich progress bar per symbol (on stderr).
    max_retries, backoff_base_s:
        Network errors are retried up to ``max_retries`` times, waiting
        ``backoff_base_s · 2^attempt · U(1, 1.5)`` seconds (at most 60 s) between tries.
    funding_timeframe, mark_timeframe:
        Timeframe the funding series is filed under, and the mark-price candle length (both
        ``8h``, freqtrade's choice).
    store_exchange:
        Exchange folder in the store; default :func:`store_exchange_name` (``binance``).

    Returns
    -------
    DownloadReport
        Pages, rows, additions, updates and retries per series.

    Raises
    ------
    ExchangeError
        An exchange error that is not a network error, or network errors beyond
        ``max_retries``; the message names exchange, symbol, kind and the ``since`` of the
        failing page. Pages merged before it stay stored: call again to resume.
    DataError
        The exchange sent rows the store refuses (NaN, duplicate times).

    Examples
    --------
    >>> store = ParquetStore(Path("user_data/data"))  # doctest: +SKIP
    >>> report = download(["BTC/USDT:USDT"], timeframe="1h", since="2023-07-01", store=store)  # doctest: +SKIP
    >>> report.to_frame()[["symbol", "kind", "rows", "added"]]  # doctest: +SKIP
    """
    names = _check_symbols(symbols)
    tf_ms = {
        "ohlcv": timeframe_to_ms(timeframe),
        "funding": timeframe_to_ms(funding_timeframe),
        "mark": timeframe_to_ms(mark_timeframe),
    }
    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in DATA_KINDS]
    if bad or not kinds:
        raise ValueError(f"kinds {list(kinds)} must be some of {', '.join(DATA_KINDS)}")
    if not isinstance(page_limit, int) or page_limit < 1:
        raise ValueError(f"page_limit must be an integer >= 1, got {page_limit!r}")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
    if backoff_base_s < 0:
        raise ValueError(f"backoff_base_s must be >= 0, got {backoff_base_s}")
    since_ms = _ms(_utc(since))
    until_ms = _now_ms() if until is None else _ms(_utc(until))
    if since_ms >= until_ms:
        raise ValueError(f"since ({_iso(since_ms)}) must be before until ({_iso(until_ms)})")
    client = client if client is not None else make_client(exchange_id)
    exchange_id = getattr(client, "id", exchange_id)
    store_exchange = store_exchange or store_exchange_name(exchange_id)
    retrier = _Retrier(max_retries, backoff_base_s)
    retrier.call(client.load_markets, lambda: f"{exchange_id} load_markets")
    timeframes = {"ohlcv": timeframe, "funding": funding_timeframe, "mark": mark_timeframe}

    reports: list[SeriesReport] = []
    console = Console(stderr=True)
    with progress_bar(console=console, remaining=False, disable=not progress) as bar:
        for symbol in names:
            market = client.markets.get(symbol) if client.markets else None
            if market is None:
                raise ExchangeError(
                    f"{exchange_id} has no market {symbol} (load_markets lists {len(client.markets or {})})"
                )
            market_type = "futures" if market.get("contract") else "spot"
            if market_type == "spot" and any(k != "ohlcv" for k in kinds):
                raise ValueError(
                    f"{symbol} is a spot market: funding and mark data exist only for perpetuals"
                )
            expected = sum(max(0, until_ms - since_ms) // tf_ms[k] for k in kinds)
            task = bar.add_task(symbol, total=expected)
            for kind in kinds:
                job = _Job(
                    client=client,
                    store=store,
                    store_exchange=store_exchange,
                    market_type=market_type,
                    symbol=symbol,
                    kind=kind,
                    timeframe=timeframes[kind],
                    page_limit=page_limit,
                    retrier=retrier,
                    advance=lambda n, task=task: bar.advance(task, n),
                )
                retries_before = retrier.retries
                first = store.first_timestamp(**job.key)
                last = store.last_timestamp(**job.key)
                if first is None or last is None:
                    job.run_range(since_ms, until_ms)
                else:
                    if since_ms < _ms(first):
                        job.run_range(since_ms, min(_ms(first), until_ms))
                    job.run_range(max(since_ms, _ms(last)), until_ms)
                reports.append(
                    SeriesReport(
                        symbol=symbol,
                        kind=kind,
                        timeframe=timeframes[kind],
                        path=store.path(**job.key),
                        pages=job.pages,
                        rows=job.rows,
                        added=job.added,
                        updated=job.updated,
                        retries=retrier.retries - retries_before,
                        first=store.first_timestamp(**job.key),
                        last=store.last_timestamp(**job.key),
                    )
                )
            bar.update(task, completed=expected)
    return DownloadReport(exchange_id=exchange_id, series=tuple(reports))
