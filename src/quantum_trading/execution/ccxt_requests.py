"""The ccxt adapter's request layer: one ccxt call with retries, backoff and error mapping.

:class:`CcxtRequests` is what :class:`~quantum_trading.execution.ccxt_exchange.CcxtExchange`
sends every request through (it holds one; nothing inherits from it).

Retries
-------
Every request is tried up to :attr:`RetryConfig.max_attempts` times when it fails in a way
that may go away — a network error, HTTP 429/418, 5xx — with exponential backoff and full
jitter (``uniform(0, min(max_delay_s, base_delay_s · 2^k))`` before try k + 1). ccxt's own
throttle (``enableRateLimit``) stays on. Errors map to our types as
:func:`~.ccxt_convert.map_ccxt_error` says.

Secrets
-------
ccxt's debug log prints the request headers, which carry the API key: every client the adapter
wraps logs to one logger whose filter masks the keys and secrets of all of them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import ccxt

from quantum_trading.execution.ccxt_convert import RetryConfig, is_ambiguous, map_ccxt_error
from quantum_trading.execution.errors import (
    ExchangeError,
    OrderStateUnknown,
    TransientExchangeError,
)

__all__ = ["CcxtRequests"]

# The adapter's loggers keep the adapter's names: the trader masks secrets on
# ``quantum_trading.execution.ccxt_exchange`` by name (live.redact.REDACTED_LOGGERS).
_ADAPTER_LOGGER = "quantum_trading.execution.ccxt_exchange"
log = logging.getLogger(_ADAPTER_LOGGER)

_T = TypeVar("_T")


class _MaskSecrets(logging.Filter):
    """Masks API keys and secrets in ccxt's own log records (its debug log prints the request
    headers, which carry the key)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = text
        for secret in sorted(self.secrets, key=len, reverse=True):
            clean = clean.replace(secret, "***")
        if clean != text:
            record.msg, record.args = clean, ()
        return True


_CCXT_LOG = logging.getLogger(f"{_ADAPTER_LOGGER}.ccxt")
_MASK = _MaskSecrets()
_CCXT_LOG.addFilter(_MASK)


class CcxtRequests:
    """Sends ccxt calls for one client: retries of transient errors with backoff, ccxt errors
    mapped to ours with the client's secrets masked.

    Parameters
    ----------
    client:
        The ``ccxt.async_support`` exchange; its logger becomes the masked ccxt logger and its
        key, secret and password are masked from then on.
    retry:
        :class:`~.ccxt_convert.RetryConfig`.
    stats:
        Counter that :meth:`backoff` adds ``retries`` to (the adapter's ``stats``).
    """

    def __init__(self, client: Any, *, retry: RetryConfig, stats: Counter[str]) -> None:
        self.name: str = str(client.id)
        self.retry = retry
        self.stats = stats
        self._rng = random.Random(retry.seed)
        self.secrets: tuple[str, ...] = _secrets_of(
            (client.apiKey, client.secret, getattr(client, "password", None)))
        _MASK.secrets.update(self.secrets)
        client.logger = _CCXT_LOG  # ccxt logs request headers at debug level

    def map_error(self, error: BaseException, method: str, symbol: str | None,
                  order_call: bool = False) -> ExchangeError:
        """``error`` as ours (:func:`~.ccxt_convert.map_ccxt_error`), secrets masked."""
        return map_ccxt_error(error, exchange=self.name, method=method, symbol=symbol,
                              order_call=order_call, secrets=self.secrets)

    async def backoff(self, attempt: int) -> None:
        """Wait before try ``attempt + 1`` (``attempt`` ≥ 1 tries failed)."""
        self.stats["retries"] += 1
        await asyncio.sleep(self.retry.delay_s(attempt, self._rng))

    async def call(
        self,
        method: str,
        symbol: str | None,
        fn: Callable[[], Awaitable[_T]],
        *,
        order_call: bool = False,
    ) -> _T:
        """``await fn()`` with retries of transient errors; ccxt errors become ours. For an
        order call (a cancel) that got no answer at least once and finally fails transiently,
        :class:`OrderStateUnknown`."""
        unanswered = False
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                return await fn()
            except ccxt.BaseError as error:
                mapped = self.map_error(error, method, symbol, order_call)
                unanswered = unanswered or is_ambiguous(error)
                transient = isinstance(mapped, TransientExchangeError | OrderStateUnknown)
                if not transient:
                    raise mapped from None
                if attempt == self.retry.max_attempts:
                    if order_call and unanswered and not isinstance(mapped, OrderStateUnknown):
                        raise OrderStateUnknown(f"{mapped} (an earlier try got no answer)") \
                            from None
                    raise mapped from None
                log.info("%s: try %d of %d failed, retrying", mapped, attempt,
                         self.retry.max_attempts)
                await self.backoff(attempt)
        raise AssertionError("unreachable")  # pragma: no cover


def _secrets_of(values: Iterable[object]) -> tuple[str, ...]:
    return tuple(str(v) for v in values if v)
