"""Symbols: ccxt's unified form and freqtrade's file-name form.

``BTC/USDT:USDT`` (USDT-margined perpetual) is stored by freqtrade as ``BTC_USDT_USDT``;
``BTC/USDT`` (spot) as ``BTC_USDT``. Binance's own id of the perpetual is ``BTCUSDT``.
"""

from __future__ import annotations

import re

__all__ = ["MARKET_TYPES", "exchange_id_to_symbol", "filename_to_symbol", "symbol_to_exchange_id", "symbol_to_filename"]

MARKET_TYPES = ("spot", "futures")

_SYMBOL = re.compile(r"^([A-Z0-9]+)/([A-Z0-9]+)(?::([A-Z0-9]+))?$")


def _split(symbol: str) -> tuple[str, str, str | None]:
    match = _SYMBOL.match(symbol.strip().upper()) if isinstance(symbol, str) else None
    if match is None:
        raise ValueError(
            f"symbol {symbol!r} is not a ccxt unified symbol; use e.g. 'BTC/USDT:USDT' (perpetual) "
            "or 'BTC/USDT' (spot)"
        )
    return match.group(1), match.group(2), match.group(3)


def symbol_to_filename(symbol: str) -> str:
    """freqtrade's file stem for a symbol.

    >>> symbol_to_filename("BTC/USDT:USDT")
    'BTC_USDT_USDT'
    """
    base, quote, settle = _split(symbol)
    return f"{base}_{quote}_{settle}" if settle else f"{base}_{quote}"


def filename_to_symbol(stem: str, market_type: str = "futures") -> str:
    """Inverse of :func:`symbol_to_filename` (``BTC_USDT_USDT`` -> ``BTC/USDT:USDT``)."""
    parts = stem.upper().split("_")
    if len(parts) == 3:
        return f"{parts[0]}/{parts[1]}:{parts[2]}"
    if len(parts) == 2:
        if market_type == "futures":
            return f"{parts[0]}/{parts[1]}:{parts[1]}"
        return f"{parts[0]}/{parts[1]}"
    raise ValueError(f"file stem {stem!r} is not a freqtrade pair name such as 'BTC_USDT_USDT'")


def symbol_to_exchange_id(symbol: str) -> str:
    """Binance's market id (``BTC/USDT:USDT`` -> ``BTCUSDT``)."""
    base, quote, _ = _split(symbol)
    return f"{base}{quote}"


def exchange_id_to_symbol(market_id: str, quote: str = "USDT", perpetual: bool = True) -> str:
    """Binance's market id to ccxt's unified symbol (``BTCUSDT`` -> ``BTC/USDT:USDT``)."""
    market_id = market_id.upper()
    if not market_id.endswith(quote):
        raise ValueError(f"market id {market_id!r} does not end with quote currency {quote!r}")
    base = market_id[: -len(quote)]
    return f"{base}/{quote}:{quote}" if perpetual else f"{base}/{quote}"
