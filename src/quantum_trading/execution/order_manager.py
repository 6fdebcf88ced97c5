"""The order manager: every order's lifecycle as an explicit state machine.

:class:`OrderManager` sits between the trader (strategies, the position monitor, execution
algorithms) and an :class:`~quantum_trading.execution.protocol.Exchange`. It

* stores each order under **our** client order id *before* sending it, so a submit is
  idempotent and no answer can be lost without a record of the question;
* passes every order that is not reduce-only through the
  :class:`~quantum_trading.risk.engine.RiskEngine` (when given) and honours its resize / reject;
* moves each order through :data:`TRANSITIONS` only — an update the table does not allow is
  refused and logged as an error, never silently applied;
* after a timeout (:class:`~quantum_trading.execution.errors.OrderStateUnknown`, or any
  non-final error) re-queries the order by client order id with exponential backoff; an
  order the exchange says it never saw is sent again under the *same* id (idempotent), at most
  ``max_submit_attempts`` times;
* cancels limit orders older than ``max_order_age_s`` or more than
  ``cancel_on_price_move_pct`` away from the mid, then re-prices them at the touch, escalates
  them to market or leaves them cancelled (``on_stale``).

The risk check, the re-queries and the stale policy live in :mod:`~.order_risk`,
:mod:`~.order_requery` and :mod:`~.order_stale`; the states in :mod:`~.order_state`.

Time comes from an injected clock; nothing sleeps. The trader calls :meth:`OrderManager.poll`
(or :meth:`OrderManager.on_tick` with a fresh ticker) periodically, e.g. every second:
re-queries, fills, stale checks and follow-up orders all happen there.

State machine (``from → to``; fills inside ``PARTIALLY_FILLED`` / ``PENDING_CANCEL`` update
the order without a state change; terminal states never change):

================  ===========================================================================
NEW               UNKNOWN, OPEN, PARTIALLY_FILLED, FILLED, CANCELLED, REJECTED, EXPIRED
UNKNOWN           OPEN, PARTIALLY_FILLED, FILLED, CANCELLED, REJECTED, EXPIRED
OPEN              PARTIALLY_FILLED, FILLED, PENDING_CANCEL, CANCELLED, EXPIRED
PARTIALLY_FILLED  FILLED, PENDING_CANCEL, CANCELLED, EXPIRED
PENDING_CANCEL    FILLED, CANCELLED, EXPIRED
================  ===========================================================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import pandas as pd

from quantum_trading.domain import Instrument, Side
from quantum_trading.errors import ConfigError
from quantum_trading.execution.config import OrderManagerConfig
from quantum_trading.execution.errors import (
    AuthenticationFailed,
    ExchangeError,
    InvalidOrder,
    OrderNotFound,
)
from quantum_trading.execution.models import (
    ExchangeOrder,
    LiveOrderStatus,
    LiveOrderType,
    OrderRequest,
    Ticker,
    TimeInForce,
    new_client_order_id,
)
from quantum_trading.execution.order_requery import fetch_live, query_unknown, sync_open_orders
from quantum_trading.execution.order_risk import check_order_risk
from quantum_trading.execution.order_stale import check_stale, run_followups
from quantum_trading.execution.order_state import (
    LIVE_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    ChainFill,
    ManagedOrder,
    OrderEvent,
    OrderState,
    StaleOverride,
    is_legal_transition,
    round_to_step,
)
from quantum_trading.execution.protocol import Exchange
from quantum_trading.risk.engine import RiskEngine

__all__ = [
    "TERMINAL_STATES",
    "TRANSITIONS",
    "ChainFill",
    "ManagedOrder",
    "OrderEvent",
    "OrderManager",
    "OrderState",
    "StaleOverride",
    "is_legal_transition",
    "round_to_step",
]

log = logging.getLogger(__name__)
_UTC_TZ = pd.Timestamp(0, tz="UTC").tzinfo  # the tz object of pandas' UTC stamps

S = OrderState


class OrderManager:
    """Submit, track, re-query, cancel and replace orders on one exchange.

    Parameters
    ----------
    exchange:
        Any :class:`~quantum_trading.execution.protocol.Exchange`.
    clock:
        Returns the current time as a tz-aware UTC ``pd.Timestamp`` (inject one in tests).
    config:
        :class:`~quantum_trading.execution.config.OrderManagerConfig` (None = defaults).
    risk:
        Optional :class:`~quantum_trading.risk.engine.RiskEngine`; every order that is not
        reduce-only is checked with equity, positions (mark prices) from the exchange and the
        order's price (limit price, else the ticker mid). Replacements are checked again.
    redact:
        Masks secrets in text (e.g. the trader's
        :class:`~quantum_trading.live.redact.SecretRedactor`). Every exchange error text
        passes it before it becomes an order's reason, an event's detail or a log line, so
        a key an exchange quotes back reaches no log handler, however configured, nor the
        database or a report; every event detail and transition reason passes it too.
        None = texts as they are (the ccxt adapter already masks its own key and secret).

    >>> import asyncio  # doctest: +SKIP
    >>> om = OrderManager(exchange, clock=lambda: pd.Timestamp.now(tz="UTC"))  # doctest: +SKIP
    >>> order = asyncio.run(om.submit_market("BTC/USDT:USDT", Side.BUY, 0.01))  # doctest: +SKIP
    """

    def __init__(self, exchange: Exchange, *, clock: Callable[[], pd.Timestamp],
                 config: OrderManagerConfig | None = None, risk: RiskEngine | None = None,
                 redact: Callable[[str], str] | None = None) -> None:
        if not isinstance(exchange, Exchange):
            raise ConfigError("OrderManager: exchange does not implement the Exchange protocol")
        if not callable(clock):
            raise ConfigError("OrderManager: clock must be a callable returning a pd.Timestamp")
        config = OrderManagerConfig() if config is None else config
        if not isinstance(config, OrderManagerConfig):
            raise ConfigError("OrderManager: config must be an OrderManagerConfig")
        if risk is not None and not isinstance(risk, RiskEngine):
            raise ConfigError("OrderManager: risk must be a RiskEngine or None")
        if redact is not None and not callable(redact):
            raise ConfigError("OrderManager: redact must be a callable str -> str or None")
        self._redact = redact
        self.exchange = exchange
        self.clock = clock
        self.config = config
        self.risk = risk
        self._orders: dict[str, ManagedOrder] = {}
        self._chains: dict[str, list[ManagedOrder]] = {}
        self._active: dict[str, ManagedOrder] = {}  # not terminal: what a poll looks at
        self._followups: list[ManagedOrder] = []
        self._foreign: set[str] = set()
        self._markets: dict[str, Instrument] | None = None
        self.events: list[OrderEvent] = []
        """Every event so far, in order."""
        self.errors: list[OrderEvent] = []
        """The error events (illegal transitions, inconsistent answers, unresolved orders)."""

    # -- reading ---------------------------------------------------------------------------
    def now(self) -> pd.Timestamp:
        """The clock's time (tz-aware UTC). Called several times an order: a clock that
        already returns UTC ``pd.Timestamp`` s (the trader's) costs ~0.3 µs, others ~5 µs."""
        t = self.clock()
        if type(t) is pd.Timestamp and t.tzinfo is _UTC_TZ:
            return t
        t = pd.Timestamp(t)
        if t.tz is None:
            raise ConfigError("OrderManager: the clock must return tz-aware UTC timestamps")
        return t.tz_convert("UTC")

    @property
    def orders(self) -> Mapping[str, ManagedOrder]:
        """Every order ever submitted, by client order id (insertion order)."""
        return self._orders

    def get(self, client_order_id: str) -> ManagedOrder:
        """The order with this client order id (``KeyError`` if we never made it)."""
        return self._orders[client_order_id]

    def open_orders(self, symbol: str | None = None) -> list[ManagedOrder]:
        """Orders not yet terminal (including NEW / UNKNOWN ones)."""
        return [o for o in self._active.values() if symbol is None or o.symbol == symbol]

    def pending_followups(self, symbol: str | None = None) -> list[ManagedOrder]:
        """Cancelled orders whose replacement (re-priced or market) is sent at the next
        :meth:`poll`; :meth:`cancel` on one drops its replacement."""
        return [o for o in self._followups if symbol is None or o.symbol == symbol]

    def unresolved(self) -> list[ManagedOrder]:
        """Orders whose fate is not known yet (UNKNOWN: being re-queried)."""
        return [o for o in self._active.values() if o.state is S.UNKNOWN]

    def chain(self, root_id: str) -> list[ManagedOrder]:
        """The order ``root_id`` and its replacements, oldest first."""
        return list(self._chains.get(root_id, ()))

    def chain_fill(self, root_id: str) -> ChainFill:
        """Summed fills of a chain (see :class:`ChainFill`)."""
        chain = self.chain(root_id)
        if not chain:
            raise KeyError(root_id)
        filled = sum(o.filled for o in chain)
        notional = sum(o.filled * o.average_price for o in chain if o.average_price is not None)
        last = chain[-1]
        return ChainFill(root_id=root_id, client_order_ids=tuple(o.client_order_id for o in chain),
                         amount=chain[0].amount, filled=filled,
                         average_price=notional / filled if filled > 0 else None,
                         fee_usd=sum(o.fee_usd for o in chain),
                         done=last.is_terminal and not last.pending_followup,
                         last_state=last.state)

    def order_frame(self) -> pd.DataFrame:
        """One row per order: id, symbol, side, type, amount, price, state, filled, times."""
        rows = [{"client_order_id": o.client_order_id, "root_id": o.root_id, "tag": o.tag,
                 "symbol": o.symbol, "side": o.side.name.lower(),
                 "order_type": o.request.order_type.value, "amount": o.amount,
                 "price": o.request.price, "reduce_only": o.request.reduce_only,
                 "state": o.state.value, "filled": o.filled, "average_price": o.average_price,
                 "fee_usd": o.fee_usd, "created_at": o.created_at, "sent_at": o.sent_at,
                 "reason": o.reason} for o in self._orders.values()]
        return pd.DataFrame(rows)

    # -- submitting ------------------------------------------------------------------------
    def new_client_order_id(self) -> str:
        """A fresh client order id with the configured prefix."""
        return new_client_order_id(self.config.client_id_prefix)

    async def submit_market(self, symbol: str, side: Side, amount: float, *,
                            reduce_only: bool = False, tag: str = "") -> ManagedOrder:
        """Submit a market order of ``amount`` base units (see :meth:`submit`)."""
        return await self.submit(OrderRequest(
            symbol=symbol, side=side, order_type=LiveOrderType.MARKET, amount=amount,
            reduce_only=reduce_only, client_order_id=self.new_client_order_id()), tag=tag)

    async def submit_limit(self, symbol: str, side: Side, amount: float, price: float, *,
                           reduce_only: bool = False, tag: str = "",
                           time_in_force: TimeInForce = TimeInForce.GTC,
                           on_stale: StaleOverride | None = None) -> ManagedOrder:
        """Submit a limit order at ``price`` USDT (see :meth:`submit`)."""
        return await self.submit(OrderRequest(
            symbol=symbol, side=side, order_type=LiveOrderType.LIMIT, amount=amount, price=price,
            reduce_only=reduce_only, time_in_force=time_in_force,
            client_order_id=self.new_client_order_id()), tag=tag, on_stale=on_stale)

    async def submit(self, request: OrderRequest, *, tag: str = "",
                     on_stale: StaleOverride | None = None) -> ManagedOrder:
        """Store, risk-check and send one order; returns its record.

        Idempotent: a request whose client order id is already known returns the existing
        record and sends nothing. A risk reject or an exchange reject is a REJECTED order (a
        value, with :attr:`ManagedOrder.reason`), not an exception; a timeout leaves the order
        UNKNOWN, resolved by :meth:`poll`.

        Parameters
        ----------
        tag:
            Free text kept with the order (e.g. ``"twap:ab12"``, ``"exit:stop_loss"``).
        on_stale:
            Per-order stale policy (``"keep"``: never cancelled as stale); None = config.
        """
        return await self._submit(request, tag=tag, on_stale=on_stale)

    async def _submit(self, request: OrderRequest, *, tag: str, on_stale: StaleOverride | None,
                      parent: ManagedOrder | None = None, reprices: int = 0) -> ManagedOrder:
        cid = request.client_order_id
        if cid in self._orders:
            self._event(self._orders[cid], "duplicate", "submit of a known id ignored")
            return self._orders[cid]
        now = self.now()
        order = ManagedOrder(request=request, created_at=now, tag=tag, on_stale=on_stale,
                             root_id=cid if parent is None else parent.root_id,
                             reprices=reprices,
                             replaces=None if parent is None else parent.client_order_id)
        self._orders[cid] = order
        self._chains.setdefault(order.root_id, []).append(order)
        self._active[cid] = order
        self._event(order, "created", f"{request.side.name} {request.amount:g} {request.symbol} "
                    f"{request.order_type.value}")
        if self.risk is not None and not request.reduce_only \
                and not await check_order_risk(self, order):
            return order
        await self._send(order)
        return order

    async def _send(self, order: ManagedOrder) -> None:
        now = self.now()
        order.submit_attempts += 1
        if order.sent_at is None:
            order.sent_at = now
        kind = "sent" if order.submit_attempts == 1 else "resubmit"
        self._event(order, kind, f"attempt {order.submit_attempts}")
        try:
            snap = await self.exchange.create_order(order.request)
        except (InvalidOrder, AuthenticationFailed) as exc:
            self._transition(order, S.REJECTED, f"exchange: {exc}")
        except ExchangeError as exc:  # timeout, 5xx, rate limit: it may have arrived
            if order.state is S.NEW:
                self._transition(order, S.UNKNOWN, f"create: {type(exc).__name__}: {exc}")
            self._schedule_retry(order, reset=True)
            self._event(order, "timeout", f"create: {type(exc).__name__}")
        else:
            self._apply(order, snap, "create")
            if order.cancel_requested and order.state in (S.OPEN, S.PARTIALLY_FILLED):
                await self._request_cancel(order, "cancel requested while sending")

    # -- cancelling ------------------------------------------------------------------------
    async def cancel(self, client_order_id: str, *, reason: str = "requested") -> ManagedOrder:
        """Cancel an order (no replacement follows). An order whose fate is unknown is
        cancelled as soon as it is found; one the exchange never saw ends CANCELLED; a
        cancelled order waiting for its replacement loses the replacement."""
        order = self._orders[client_order_id]
        if order.is_terminal:
            if order.pending_followup:  # its replacement is not sent yet: it never will be
                order.pending_followup = False
                self._followups = [o for o in self._followups if o is not order]
                self._event(order, "followup_dropped", reason)
            return order
        order.cancel_requested = True
        order.after_cancel = None
        self._event(order, "cancel_requested", reason)
        if order.state in LIVE_STATES:
            await self._request_cancel(order, reason)
        return order

    async def _request_cancel(self, order: ManagedOrder, reason: str) -> None:
        if order.state is not S.PENDING_CANCEL:
            self._transition(order, S.PENDING_CANCEL, reason)
        order.cancel_attempts = 0
        await self._send_cancel(order)

    async def _send_cancel(self, order: ManagedOrder) -> None:
        order.cancel_attempts += 1
        try:
            snap = await self.exchange.cancel_order(order.symbol,
                                                    client_order_id=order.client_order_id)
        except (OrderNotFound, InvalidOrder) as exc:
            self._event(order, "query", f"cancel answered {type(exc).__name__}; fetching")
            await fetch_live(self, order)
        except ExchangeError as exc:
            self._event(order, "timeout", f"cancel: {type(exc).__name__}")
        else:
            self._apply(order, snap, "cancel")
        if not order.is_terminal:
            self._schedule_retry(order, attempts=order.cancel_attempts - 1)

    # -- the periodic cycle ----------------------------------------------------------------
    async def on_tick(self, ticker: Ticker) -> list[OrderEvent]:
        """:meth:`poll` with a fresh ticker for ``ticker.symbol``."""
        return await self.poll({ticker.symbol: ticker})

    async def poll(self, tickers: Mapping[str, Ticker] | None = None) -> list[OrderEvent]:
        """One cycle: re-query due UNKNOWN orders, sync live ones with the exchange (fills,
        states), retry unconfirmed cancels, cancel stale limit orders and send their
        replacements. Tickers not given are fetched (only for symbols with resting limit
        orders). Returns the events of this cycle."""
        start = len(self.events)
        tickers = dict(tickers or {})
        now = self.now()
        for order in [o for o in self._active.values() if o.state is S.UNKNOWN]:
            if order.retry_at is None or order.retry_at <= now:
                await query_unknown(self, order)
        await sync_open_orders(self)
        for order in [o for o in self._active.values() if o.state is S.PENDING_CANCEL]:
            if order.retry_at is not None and order.retry_at <= now:
                await self._send_cancel(order)
        await check_stale(self, now, tickers)
        await run_followups(self, tickers)
        return self.events[start:]

    async def resolve_unknown(self) -> list[OrderEvent]:
        """Re-query now, whatever their backoff, every order whose fate is unknown (the
        trader calls it when a bar closes with orders in flight, before it decides from the
        position: an order found filled must not also count as still to fill). Returns the
        events of these queries."""
        start = len(self.events)
        for order in [o for o in self._active.values() if o.state is S.UNKNOWN]:
            await query_unknown(self, order)
        return self.events[start:]

    async def instrument(self, symbol: str) -> Instrument | None:
        """The exchange's contract rules for ``symbol`` (markets fetched once; None when
        unknown or the exchange cannot answer now)."""
        if self._markets is None:
            try:
                self._markets = dict(await self.exchange.markets())
            except ExchangeError as exc:
                log.warning("markets() failed: %s", self._text(exc))
                return None
        return self._markets.get(symbol)

    async def passive_price(self, symbol: str, side: Side,
                            tickers: dict[str, Ticker] | None = None) -> float | None:
        """The best bid (buy) or ask (sell) now, on the instrument's tick grid without
        crossing (a buy rounds down, a sell up); None when no ticker can be had."""
        ticker = await self._ticker(symbol, {} if tickers is None else tickers)
        if ticker is None:
            return None
        inst = await self.instrument(symbol)
        price = ticker.bid if side is Side.BUY else ticker.ask
        return round_to_step(price, inst.tick_size if inst else 0.0,
                             "down" if side is Side.BUY else "up")

    async def _ticker(self, symbol: str, tickers: dict[str, Ticker]) -> Ticker | None:
        if symbol not in tickers:
            try:
                tickers[symbol] = await self.exchange.ticker(symbol)
            except ExchangeError as exc:
                log.warning("ticker(%s) failed: %s", symbol, self._text(exc))
                return None
        return tickers[symbol]

    # -- the state machine -----------------------------------------------------------------
    def apply_update(self, snapshot: ExchangeOrder) -> bool:
        """Apply an order update pushed by the exchange (e.g. a user-data stream).

        Returns False (and records an error) when the update is refused: an unknown client
        order id, an illegal transition, or a fill that went backwards.
        """
        order = self._orders.get(snapshot.client_order_id)
        if order is None:
            log.warning("update for unknown order %s ignored", snapshot.client_order_id)
            return False
        return self._apply(order, snapshot, "update")

    def _apply(self, order: ManagedOrder, snap: ExchangeOrder, source: str) -> bool:
        tol = 1e-12 * max(1.0, order.amount)
        if snap.status in (LiveOrderStatus.NEW, LiveOrderStatus.OPEN,
                           LiveOrderStatus.PARTIALLY_FILLED):
            target = S.PARTIALLY_FILLED if snap.filled > tol else S.OPEN
            if order.state is S.PENDING_CANCEL:
                target = S.PENDING_CANCEL
        else:
            target = S(snap.status.value)
        new_fill = snap.filled - order.filled
        if new_fill < -tol:
            self._error(order, f"{source}: filled went back from {order.filled:g} to "
                        f"{snap.filled:g}; update refused")
            return False
        if target is order.state and order.is_terminal and new_fill > tol:
            self._error(order, f"{source}: fill on a {order.state.value} order refused")
            return False
        if target is not order.state and not is_legal_transition(order.state, target):
            self._error(order, f"{source}: illegal transition {order.state.value} → "
                        f"{target.value} refused")
            return False
        order.exchange_id = snap.id
        order.updated_at = self.now()
        if new_fill > tol:
            order.filled = snap.filled
            order.average_price = snap.average_price
            order.fee_usd = snap.fee_usd
            self._event(order, "fill", f"+{new_fill:g} (total {snap.filled:g}) avg "
                        f"{snap.average_price}")
        if target is not order.state:
            self._transition(order, target, f"{source}: exchange says {snap.status.value}")
        return True

    def _transition(self, order: ManagedOrder, new: OrderState, reason: str) -> bool:
        old = order.state
        if not is_legal_transition(old, new):
            self._error(order, f"illegal transition {old.value} → {new.value} refused ({reason})")
            return False
        now = self.now()
        reason = self._text(reason)  # masked once: the history, the reason and the event
        order.state = new
        order.history.append((now, old, new, reason))
        if new is S.REJECTED or new is S.CANCELLED:
            order.reason = order.reason or reason
        if new in TERMINAL_STATES:
            self._active.pop(order.client_order_id, None)
            order.retry_at = None
            if new is S.CANCELLED and order.after_cancel and not order.cancel_requested \
                    and order.remaining > 1e-12 * max(1.0, order.amount):
                order.pending_followup = True
                self._followups.append(order)
        elif new in (S.OPEN, S.PARTIALLY_FILLED):
            order.retry_at = None
            order.query_attempts = 0
        self._append_event(order, "transition", f"{old.value} → {new.value}: {reason}")
        return True

    # -- internals -------------------------------------------------------------------------
    def _schedule_retry(self, order: ManagedOrder, *, reset: bool = False,
                        attempts: int | None = None) -> None:
        if reset:
            order.query_attempts = 0
        k = order.query_attempts if attempts is None else attempts
        delay = min(self.config.query_backoff_s * 2.0 ** min(k, 60),
                    self.config.max_query_backoff_s)
        order.retry_at = self.now() + pd.Timedelta(seconds=delay)

    def _text(self, value: object) -> str:
        """``str(value)`` with secrets masked (see ``redact``)."""
        text = str(value)
        return text if self._redact is None else self._redact(text)

    def _event(self, order: ManagedOrder, kind: str, detail: str = "") -> OrderEvent:
        """Record an event of ``order``; ``detail`` is masked here (see ``redact``)."""
        return self._append_event(order, kind, self._text(detail))

    def _append_event(self, order: ManagedOrder, kind: str, detail: str) -> OrderEvent:
        """Record an event whose ``detail`` is masked already."""
        event = OrderEvent(self.now(), order.client_order_id, kind, order.state, detail)
        self.events.append(event)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s [%s] %s", order.client_order_id, kind, order.state.value, detail)
        return event

    def _error(self, order: ManagedOrder, detail: str) -> None:
        event = self._event(order, "error", detail)
        log.error("order %s: %s", order.client_order_id, event.detail)
        self.errors.append(event)
