"""The position monitor: time stops, loss stops, take-profits and trailing stops, live.

:class:`PositionMonitor` watches the exchange's positions each time :meth:`PositionMonitor.poll`
is called (the trader calls it periodically, after :meth:`OrderManager.poll
<quantum_trading.execution.order_manager.OrderManager.poll>`) and closes a position when

* it is older than ``max_position_age_s`` (time stop; age from when the monitor first saw it
  open, or the ``opened_at`` given to :meth:`PositionMonitor.set_exits`);
* its unrealised loss reaches ``max_loss_pct`` of its entry notional;
* the price crosses its stop-loss or take-profit price (per position), or the take-profit
  gain ``take_profit_pct`` is reached;
* the price retraces by the trailing distance (%) from the best price seen since entry.

Every exit — and :meth:`PositionMonitor.close` / :meth:`PositionMonitor.close_all`, the
emergency exits — is a **reduce-only market order** for the whole position, sent through the
order manager, and recorded as an :class:`ExitAction` with its reason. While an exit order is
working no second one is sent for the same symbol.

Trigger price: the mid of the ticker passed to :meth:`PositionMonitor.poll` for the symbol, else
the position's mark price. When several triggers hold at once the most protective wins:
stop-loss, max loss, trailing stop, take-profit, then age.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import pandas as pd

from quantum_trading.domain import Side
from quantum_trading.errors import ConfigError
from quantum_trading.execution.config import PositionMonitorConfig
from quantum_trading.execution.errors import ExchangeError
from quantum_trading.execution.models import (
    ExchangePosition,
    LiveOrderType,
    OrderRequest,
    Ticker,
)
from quantum_trading.execution.order_manager import OrderManager

__all__ = ["ExitAction", "ExitTrigger", "PositionMonitor", "TrackedPosition"]

log = logging.getLogger(__name__)


class ExitTrigger(StrEnum):
    """Why a position was closed."""

    STOP_LOSS = "stop_loss"
    MAX_LOSS = "max_loss"
    TRAILING_STOP = "trailing_stop"
    TAKE_PROFIT = "take_profit"
    MAX_AGE = "max_age"
    EMERGENCY = "emergency"


@dataclass(frozen=True)
class ExitAction:
    """One exit the monitor sent: a reduce-only market order closing ``position_size``.

    ``price`` is the trigger price (USDT), ``pnl_pct`` the unrealised return on the entry
    notional at that price (%), ``age_s`` the position's age (seconds); ``reason`` says why,
    with the numbers.
    """

    time: pd.Timestamp
    symbol: str
    trigger: ExitTrigger
    position_size: float
    entry_price: float
    price: float
    pnl_pct: float
    age_s: float
    client_order_id: str
    reason: str


@dataclass(slots=True, eq=False)
class TrackedPosition:
    """What the monitor knows of one open position (signed ``size``, prices in USDT)."""

    symbol: str
    size: float
    entry_price: float
    opened_at: pd.Timestamp
    best_price: float
    stop_loss_price: float | None = None
    take_profit_price: float | None = None
    trailing_stop_pct: float | None = None
    closing_id: str | None = None


@dataclass(frozen=True)
class _Exits:
    stop_loss_price: float | None
    take_profit_price: float | None
    trailing_stop_pct: float | None
    opened_at: pd.Timestamp | None


class PositionMonitor:
    """Close positions by age, loss, stop, take-profit and trailing stop (see the module).

    Parameters
    ----------
    manager:
        The :class:`~quantum_trading.execution.order_manager.OrderManager` the exits go
        through (its exchange and clock are used).
    config:
        :class:`~quantum_trading.execution.config.PositionMonitorConfig` (None = defaults:
        1 h time stop, 5 % loss stop).

    >>> monitor = PositionMonitor(manager)  # doctest: +SKIP
    >>> monitor.set_exits("BTC/USDT:USDT", stop_loss_price=29_000.0)  # doctest: +SKIP
    >>> actions = asyncio.run(monitor.poll())  # doctest: +SKIP
    """

    def __init__(self, manager: OrderManager, *, config: PositionMonitorConfig | None = None,
                 ) -> None:
        if not isinstance(manager, OrderManager):
            raise ConfigError("PositionMonitor: manager must be an OrderManager")
        config = PositionMonitorConfig() if config is None else config
        if not isinstance(config, PositionMonitorConfig):
            raise ConfigError("PositionMonitor: config must be a PositionMonitorConfig")
        self.manager = manager
        self.config = config
        self._tracked: dict[str, TrackedPosition] = {}
        self._exits: dict[str, _Exits] = {}
        self.actions: list[ExitAction] = []
        """Every exit sent, in order."""

    @property
    def tracked(self) -> Mapping[str, TrackedPosition]:
        """Open positions as last seen, by symbol."""
        return self._tracked

    def set_exits(self, symbol: str, *, stop_loss_price: float | None = None,
                  take_profit_price: float | None = None,
                  trailing_stop_pct: float | None = None,
                  opened_at: pd.Timestamp | None = None) -> None:
        """Exit levels for the current (or next) position on ``symbol``; they are dropped when
        that position closes. Prices in USDT; ``trailing_stop_pct`` overrides the config's;
        ``opened_at`` (UTC) sets the position's age base (e.g. after a restart)."""
        for name, value in (("stop_loss_price", stop_loss_price),
                            ("take_profit_price", take_profit_price)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"set_exits: {name} must be > 0, got {value!r}")
        if trailing_stop_pct is not None and not 0.0 < trailing_stop_pct <= 100.0:
            raise ConfigError(f"set_exits: trailing_stop_pct must be in (0, 100], got "
                              f"{trailing_stop_pct!r}")
        exits = _Exits(stop_loss_price, take_profit_price, trailing_stop_pct,
                       None if opened_at is None else pd.Timestamp(opened_at))
        self._exits[symbol] = exits
        if symbol in self._tracked:
            self._configure(self._tracked[symbol], exits)

    @staticmethod
    def _configure(t: TrackedPosition, exits: _Exits) -> None:
        t.stop_loss_price = exits.stop_loss_price
        t.take_profit_price = exits.take_profit_price
        t.trailing_stop_pct = exits.trailing_stop_pct
        if exits.opened_at is not None:
            t.opened_at = exits.opened_at

    # -- the cycle -------------------------------------------------------------------------
    async def poll(self, tickers: Mapping[str, Ticker] | None = None) -> list[ExitAction]:
        """Read positions, update each one's best price, and send the exits that trigger.
        Returns the exits sent in this call."""
        tickers = tickers or {}
        positions = await self._positions()
        if positions is None:
            return []
        now = self.manager.now()
        start = len(self.actions)
        for symbol in [s for s in self._tracked if s not in positions]:
            del self._tracked[symbol]  # closed: its exits go with it
            self._exits.pop(symbol, None)
        for symbol, pos in positions.items():
            t = self._track(pos, now)
            ticker = tickers.get(symbol)
            price = ticker.mid if ticker is not None else pos.mark_price
            if not (math.isfinite(price) and price > 0):
                continue
            sign = 1.0 if t.size > 0 else -1.0
            t.best_price = max(t.best_price * sign, price * sign) * sign
            if self._closing(t):
                continue
            hit = self._trigger(t, price, now)
            if hit is not None:
                await self._close(t, hit[0], price, now, hit[1])
        return self.actions[start:]

    async def close(self, symbol: str, *, reason: str = "emergency exit") -> ExitAction | None:
        """Emergency exit: close the whole position on ``symbol`` now with a reduce-only market
        order (None when flat or an exit is already working)."""
        positions = await self._positions()
        if positions is None or symbol not in positions:
            return None
        now = self.manager.now()
        t = self._track(positions[symbol], now)
        if self._closing(t):
            return None
        return await self._close(t, ExitTrigger.EMERGENCY, positions[symbol].mark_price, now,
                                 reason)

    async def close_all(self, *, reason: str = "emergency exit") -> list[ExitAction]:
        """Emergency exit of every open position (see :meth:`close`)."""
        positions = await self._positions()
        actions = []
        for symbol in positions or {}:
            action = await self.close(symbol, reason=reason)
            if action is not None:
                actions.append(action)
        return actions

    # -- internals -------------------------------------------------------------------------
    async def _positions(self) -> dict[str, ExchangePosition] | None:
        try:
            return {s: p for s, p in (await self.manager.exchange.positions()).items()
                    if p.size != 0.0}
        except ExchangeError as exc:
            log.warning("positions() failed: %s", exc)
            return None

    def _track(self, pos: ExchangePosition, now: pd.Timestamp) -> TrackedPosition:
        t = self._tracked.get(pos.symbol)
        if t is None or (t.size > 0) != (pos.size > 0):  # new, or flipped: a new position
            t = TrackedPosition(symbol=pos.symbol, size=pos.size, entry_price=pos.entry_price,
                                opened_at=now, best_price=pos.entry_price)
            if pos.symbol in self._exits:
                self._configure(t, self._exits[pos.symbol])
            self._tracked[pos.symbol] = t
        t.size = pos.size
        t.entry_price = pos.entry_price
        return t

    def _closing(self, t: TrackedPosition) -> bool:
        if t.closing_id is None:
            return False
        if self.manager.get(t.closing_id).is_terminal:
            t.closing_id = None  # done (a rest still open is closed again if triggers hold)
            return False
        return True

    def _trigger(self, t: TrackedPosition, price: float,
                 now: pd.Timestamp) -> tuple[ExitTrigger, str] | None:
        cfg = self.config
        s = 1.0 if t.size > 0 else -1.0
        side = "long" if s > 0 else "short"
        ret_pct = s * (price - t.entry_price) / t.entry_price * 100.0
        if t.stop_loss_price is not None and s * (price - t.stop_loss_price) <= 0:
            return ExitTrigger.STOP_LOSS, (f"{side} price {price:g} crossed the stop-loss "
                                           f"{t.stop_loss_price:g}")
        if cfg.max_loss_pct is not None and -ret_pct >= cfg.max_loss_pct:
            return ExitTrigger.MAX_LOSS, (f"{side} loss {-ret_pct:.3f}% of entry notional "
                                          f"(entry {t.entry_price:g}, price {price:g}) >= "
                                          f"max_loss_pct {cfg.max_loss_pct:g}%")
        trail = t.trailing_stop_pct if t.trailing_stop_pct is not None else cfg.trailing_stop_pct
        if trail is not None:
            retrace = s * (t.best_price - price) / t.best_price * 100.0
            if retrace >= trail:
                return ExitTrigger.TRAILING_STOP, (f"{side} retraced {retrace:.3f}% from the best "
                                                   f"price {t.best_price:g} to {price:g} >= "
                                                   f"{trail:g}%")
        if t.take_profit_price is not None and s * (price - t.take_profit_price) >= 0:
            return ExitTrigger.TAKE_PROFIT, (f"{side} price {price:g} reached the take-profit "
                                             f"{t.take_profit_price:g}")
        if cfg.take_profit_pct is not None and ret_pct >= cfg.take_profit_pct:
            return ExitTrigger.TAKE_PROFIT, (f"{side} gain {ret_pct:.3f}% >= take_profit_pct "
                                             f"{cfg.take_profit_pct:g}%")
        age_s = (now - t.opened_at).total_seconds()
        if cfg.max_position_age_s is not None and age_s > cfg.max_position_age_s:
            return ExitTrigger.MAX_AGE, (f"held {age_s:g} s > max_position_age_s "
                                         f"{cfg.max_position_age_s:g} s")
        return None

    async def _close(self, t: TrackedPosition, trigger: ExitTrigger, price: float,
                     now: pd.Timestamp, reason: str) -> ExitAction:
        request = OrderRequest(symbol=t.symbol, side=Side.SELL if t.size > 0 else Side.BUY,
                               order_type=LiveOrderType.MARKET, amount=abs(t.size),
                               reduce_only=True,
                               client_order_id=self.manager.new_client_order_id())
        t.closing_id = request.client_order_id
        order = await self.manager.submit(request, tag=f"exit:{trigger.value}")
        s = 1.0 if t.size > 0 else -1.0
        action = ExitAction(time=now, symbol=t.symbol, trigger=trigger, position_size=t.size,
                            entry_price=t.entry_price, price=price,
                            pnl_pct=s * (price - t.entry_price) / t.entry_price * 100.0,
                            age_s=(now - t.opened_at).total_seconds(),
                            client_order_id=order.client_order_id,
                            reason=f"{trigger.value}: {reason}")
        self.actions.append(action)
        log.info("exit %s %s: %s (order %s, %s)", t.symbol, trigger.value, reason,
                 order.client_order_id, order.state.value)
        return action
