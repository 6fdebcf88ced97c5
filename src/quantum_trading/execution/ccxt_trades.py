"""Paging through an exchange's trade history for the ccxt adapter's
:meth:`~quantum_trading.execution.ccxt_exchange.CcxtExchange.fills`.

``fetch_my_trades`` answers one page at a time: pages are asked by time and, on Binance (which
answers at most 7 days from ``startTime``), by trade id (``fromId``) once one trade is known.
At most ``_MAX_PAGES`` pages of ``_TRADES_PAGE`` trades are read per walk.
"""

from __future__ import annotations

import logging
from typing import Any

from quantum_trading.execution.ccxt_requests import CcxtRequests

__all__ = ["my_trades"]

# The adapter's logger (the trader masks secrets on it by name).
log = logging.getLogger("quantum_trading.execution.ccxt_exchange")

_TRADES_PAGE = 1000
_MAX_PAGES = 60
_WEEK_MS = 7 * 86_400_000


async def my_trades(requests: CcxtRequests, client: Any, symbol: str, since_ms: int | None
                    ) -> dict[str, dict[str, Any]]:
    """ccxt trades on ``symbol`` by trade id: since ``since_ms`` (Unix ms), or the exchange's
    recent ones when None. Pages of ``fetch_my_trades`` by time; on Binance, which answers at
    most 7 days from ``startTime``, by trade id (``fromId``) once one trade is known. Each page
    is one :meth:`CcxtRequests.call` (retried, errors mapped)."""
    trades: dict[str, dict[str, Any]] = {}

    async def page(at: int | None, params: dict[str, Any]) -> tuple[int, bool]:
        rows = await requests.call("fills", symbol, lambda: client.fetch_my_trades(
            symbol, at, _TRADES_PAGE, params))
        new = {str(t.get("id")): t for t in rows if str(t.get("id")) not in trades}
        trades.update(new)
        return len(new), len(rows) >= _TRADES_PAGE  # (new trades, a full page)

    if since_ms is None:
        await page(None, {})
        return trades
    by_id = requests.name.startswith("binance")
    now_ms, cursor = int(client.milliseconds()), since_ms
    for _ in range(_MAX_PAGES):
        new, full = await page(cursor, {})
        clipped = by_id and now_ms - cursor >= _WEEK_MS  # only [cursor, cursor + 7 d]
        if by_id and trades and (full or clipped):
            for _ in range(_MAX_PAGES):
                last = max(int(k) for k in trades if k.isdigit())
                new, full = await page(None, {"fromId": last + 1})
                if not (new and full):
                    return trades
            break
        if full and new:
            cursor = max(int(t.get("timestamp") or 0) for t in trades.values())
        elif clipped:
            cursor += _WEEK_MS  # an empty week: look at the next one
        else:
            return trades
    log.warning("%s fills %s: stopped after %d pages", requests.name, symbol, _MAX_PAGES)
    return trades
