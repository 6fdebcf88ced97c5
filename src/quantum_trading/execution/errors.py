"""Exchange error types: what every adapter raises instead of its library's own exceptions.

Retry policy follows the type: :class:`ExchangeUnavailable` and :class:`RateLimited` are
transient (retry with backoff and jitter); :class:`OrderStateUnknown` means "re-query by client
order id before doing anything else"; the rest are final for that request.
"""

from __future__ import annotations

from quantum_trading.errors import ExchangeError

__all__ = [
    "AuthenticationFailed",
    "ExchangeError",
    "ExchangeUnavailable",
    "InsufficientFunds",
    "InvalidOrder",
    "OrderNotFound",
    "OrderStateUnknown",
    "RateLimited",
    "TransientExchangeError",
]


class TransientExchangeError(ExchangeError):
    """A failure that may go away: retry with backoff."""


class ExchangeUnavailable(TransientExchangeError):
    """Network error, 5xx, maintenance."""


class RateLimited(TransientExchangeError):
    """HTTP 429/418 or an exchange rate-limit code."""


class OrderStateUnknown(ExchangeError):
    """The request may or may not have reached the exchange (timeout, dropped response)."""


class InvalidOrder(ExchangeError):
    """Rejected: bad size, price, min notional, reduce-only would increase, …"""


class InsufficientFunds(InvalidOrder):
    """Rejected for lack of margin."""


class OrderNotFound(ExchangeError):
    """The exchange does not know this order id."""


class AuthenticationFailed(ExchangeError):
    """Bad or missing API key/secret or signature."""
