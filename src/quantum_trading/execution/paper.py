"""The paper exchange: the :class:`~quantum_trading.execution.protocol.Exchange` protocol on
live or replayed bars, filled and accounted by the simulator's kernels.

One simulator
-------------
Fill prices, fees, spread, slippage, impact, funding, margin and liquidation come from the
kernels of :mod:`quantum_trading.sim` (through :class:`~.paper_accounts.PaperAccount`), so a
market order sent after bar t's close fills at bar t+1's open exactly as the backtest fills it
(``tests/execution/test_paper.py`` checks fills and equity bit for bit against
:func:`quantum_trading.sim.simulate`).

Timing (replay and live alike)
------------------------------
The caller advances the exchange bar by bar: ``await paper.on_bar(symbol, bar)`` (or a
:class:`~.paper_replay.BarReplay`). Between two bars the exchange's clock stands at the last
bar's close (``paper.now``); quotes are that close ∓ the half-spread
(:class:`~quantum_trading.sim.CostsConfig`). Inside a bar, for the symbol's orders:

1. **funding** settles on the position held into the bar (rate from the bar's
   ``funding_rate``, the ``funding`` series, else the default schedule; mark = the bar's
   ``mark_price``, the ``mark`` series, else the open);
2. orders that take liquidity **at the open**, oldest first: market orders and marketable limit
   orders sent since the last bar (**a market order sent between bars fills at the next bar's
   open** with taker costs; a marketable limit only if that fill price respects its limit, else
   it rests as a maker order), and the unfilled rest of earlier ones; then conditional orders
   the bar **opened through** (stop/take-profit gap rule: filled at the open);
3. the **adverse path** of the position (open → low for a long, → high for a short): stops on
   that side and the liquidation point are taken in path order, as in the simulator (a stop
   before the liquidation point fills at its level; a tie goes to liquidation);
4. the other triggered conditional orders (nearest to the open first) at their trigger price,
   then resting limit orders the bar traded **through** (maker fee, at their price);
5. the close marks the positions (bankruptcy if equity ≤ 0).

Partial fills: with ``max_participation`` an order fills at most that fraction of the bar's
volume per bar (lot-rounded); the rest continues next bar (a market order or a triggered stop at
the next open, a limit order resting). Reduce-only orders fill at most the position and expire
when there is none; an order whose new exposure no longer fits the available margin when it
fills is rejected (expired if partly filled).

Positions opened inside a bar (by a stop or a limit) are checked for liquidation from the next
bar on. Liquidations and bankruptcy closes appear as filled orders with client ids
``autoclose-N`` (as Binance names them) and cancel the liquidated symbols' open orders.

Modules
-------
This module is the protocol face (orders in, account and market data out, bars in). The parts:
:mod:`~.paper_checks` (order-entry checks and the margin an order reserves; orders that only
reduce a position are exempt from the minimum notional), :mod:`~.paper_book` (orders, their
lifecycle and the incremental tally of reserved margin), :mod:`~.paper_matcher` (one bar
against the book) and :mod:`~.paper_accounts` (money and positions on the simulator's kernels).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantum_trading.domain import Instrument, Side
from quantum_trading.errors import ConfigError, DataError
from quantum_trading.execution.models import (
    Balance,
    ExchangeFill,
    ExchangeOrder,
    ExchangePosition,
    LiveOrderStatus,
    LiveOrderType,
    OrderBook,
    OrderRequest,
    Ticker,
    TimeInForce,
)
from quantum_trading.execution.paper_accounts import PaperAccount
from quantum_trading.execution.paper_book import (
    CONDITIONAL_TYPES,
    PaperBook,
    PaperOrder,
    bar_value,
)
from quantum_trading.execution.paper_checks import admit_order, rejected
from quantum_trading.execution.paper_matcher import FILL_COLUMNS, BarContext, BarMatcher
from quantum_trading.sim.config import AccountConfig, CostsConfig
from quantum_trading.sim.lots_nb import trunc_lot_nb

__all__ = ["MarginSummary", "PaperExchange"]


@dataclass(frozen=True)
class MarginSummary:
    """Account totals (USDT) as an exchange reports them.

    ``position_margin_usd``: initial margin of the positions; ``order_margin_usd``: initial
    margin reserved by open orders; ``free_usd`` = equity − both (≥ 0).
    """

    wallet_usd: float
    unrealized_pnl_usd: float
    equity_usd: float
    position_margin_usd: float
    order_margin_usd: float
    maintenance_margin_usd: float
    free_usd: float


class PaperExchange:
    """A paper-trading exchange with USDT-margined perpetuals (one-way mode).

    Parameters
    ----------
    instruments:
        The tradable contracts: dict symbol → :class:`~quantum_trading.domain.Instrument` or a
        sequence of them (tick/lot size, min notional, max leverage, tiers, fees).
    costs, account:
        The simulator's configs (fees, half-spread, slippage, impact, default funding;
        initial cash, margin mode, leverage per symbol, liquidation fee; ``allow_short``).
    timeframe:
        Bar length of the feed (``"1m"``, ``"1h"`` … or a Timedelta): settlement windows
        ``[open, open + timeframe)`` and the clock.
    max_participation:
        Cap of one order's fills per bar as a fraction of the bar's volume, in (0, 1]; None =
        no cap (as the backtest). Needs a ``volume`` in each bar.
    funding, mark:
        Funding settlements (rate stamped at its time) and mark prices per symbol (Series on a
        UTC index); used unless a bar carries ``funding_rate`` / ``mark_price``.
    fill_fraction:
        Fault-injection hook: called before each fill, returns the fraction (0, 1] of the
        fillable units to fill now (the rest continues later). None = always 1.
    name:
        The exchange name.

    Examples
    --------
    >>> import asyncio
    >>> from quantum_trading.domain import BINANCE_BTCUSDT_PERP
    >>> from quantum_trading.execution.models import OrderRequest, LiveOrderType
    >>> paper = PaperExchange([BINANCE_BTCUSDT_PERP], timeframe="1h",
    ...                       costs=CostsConfig(default_funding_rate=0.0))
    >>> t0 = pd.Timestamp("2024-01-01", tz="UTC")
    >>> bar = {"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.0, "volume": 10.0}
    >>> _ = paper.process_bar("BTC/USDT:USDT", bar, time=t0)
    >>> req = OrderRequest("BTC/USDT:USDT", Side.BUY, LiveOrderType.MARKET, 2.0,
    ...                    client_order_id="a")
    >>> asyncio.run(paper.create_order(req)).status  # waits for the next open
    <LiveOrderStatus.OPEN: 'open'>
    >>> _ = paper.process_bar("BTC/USDT:USDT", bar, time=t0 + pd.Timedelta("1h"))
    >>> order = asyncio.run(paper.fetch_order("BTC/USDT:USDT", client_order_id="a"))
    >>> order.status, round(order.average_price, 6)  # open 100 + 0.5 bp spread + 1 bp slippage
    (<LiveOrderStatus.FILLED: 'filled'>, 100.015)
    """

    def __init__(
        self,
        instruments: Mapping[str, Instrument] | Sequence[Instrument],
        *,
        costs: CostsConfig | None = None,
        account: AccountConfig | None = None,
        timeframe: str | pd.Timedelta = "1m",
        max_participation: float | None = None,
        funding: Mapping[str, pd.Series] | None = None,
        mark: Mapping[str, pd.Series] | None = None,
        fill_fraction: Callable[[], float] | None = None,
        name: str = "paper",
    ) -> None:
        insts = (
            list(instruments.values()) if isinstance(instruments, Mapping) else list(instruments)
        )
        if not insts or not all(isinstance(x, Instrument) for x in insts):
            raise ConfigError(
                "PaperExchange: instruments must be a non-empty sequence (or dict) of Instrument"
            )
        symbols = [x.symbol for x in insts]
        if len(set(symbols)) != len(symbols):
            raise ConfigError(f"PaperExchange: duplicate symbols in {symbols}")
        if max_participation is not None and not (0.0 < max_participation <= 1.0):
            raise ConfigError(
                f"PaperExchange: max_participation must be in (0, 1] or None, "
                f"got {max_participation!r}"
            )
        if isinstance(timeframe, str):
            from quantum_trading.data.timeframes import timeframe_to_timedelta

            timeframe = timeframe_to_timedelta(timeframe)
        self.timeframe = pd.Timedelta(timeframe)
        if self.timeframe <= pd.Timedelta(0):
            raise ConfigError(f"PaperExchange: timeframe must be positive, got {timeframe!r}")
        self.name = name
        self.instruments = {x.symbol: x for x in insts}
        self.acc = PaperAccount(insts, costs=costs, account=account)
        self.costs = self.acc.costs
        self.book = PaperBook()
        self.max_participation = max_participation
        self._index = {s: i for i, s in enumerate(symbols)}
        for sym in list(funding or {}) + list(mark or {}):
            self._i(sym)
        self.matcher = BarMatcher(
            self.book,
            self.acc,
            self.instruments,
            timeframe_ns=int(self.timeframe.value),
            max_participation=max_participation,
            fill_fraction=fill_fraction,
            funding={s: self._stamped(v, f"funding {s}") for s, v in (funding or {}).items()},
            mark={s: self._stamped(v, f"mark {s}") for s, v in (mark or {}).items()},
        )
        n = len(symbols)
        self._bar_no = [0] * n
        self._last_open_ns: list[int | None] = [None] * n
        self._history: list[list[tuple[int, float, float, float, float, float]]] = [
            [] for _ in range(n)
        ]
        self._now: pd.Timestamp | None = None
        self._lock = threading.RLock()

    @property
    def funding_payments(self) -> list[tuple[pd.Timestamp, str, float]]:
        """Funding settlements: (bar open time, symbol, cash received in USDT; < 0 = paid)."""
        return list(self.matcher.funding_payments)

    @staticmethod
    def _stamped(series: pd.Series, what: str) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(series, pd.Series) or not isinstance(series.index, pd.DatetimeIndex):
            raise ConfigError(f"PaperExchange {what}: expected a Series on a DatetimeIndex")
        if series.index.tz is None:
            raise DataError("index must be tz-aware UTC", source=what)
        if not series.index.is_monotonic_increasing:
            raise DataError("index must be sorted", source=what)
        return series.index.as_unit("ns").asi8.copy(), series.to_numpy(dtype=np.float64)

    # ------------------------------------------------------------------ clock and lookups
    @property
    def now(self) -> pd.Timestamp:
        """The exchange clock: the close time of the latest bar (wall clock before any bar)."""
        return self._now if self._now is not None else pd.Timestamp.now(tz="UTC")

    @property
    def lock(self) -> threading.RLock:
        """The exchange's lock: hold it to read :attr:`book` consistently while another thread
        feeds bars (every public method takes it)."""
        return self._lock

    @property
    def symbols(self) -> tuple[str, ...]:
        """The tradable symbols, in account order."""
        return self.acc.symbols

    def _i(self, symbol: str) -> int:
        i = self._index.get(symbol)
        if i is None:
            raise rejected(
                "unknown_symbol", f"paper: unknown symbol {symbol!r} (known: {list(self._index)})"
            )
        return i

    def quote(self, symbol: str) -> tuple[float, float, float]:
        """``(bid, ask, last)``: the last close ∓ the half-spread (NaN before the first bar)."""
        i = self._i(symbol)
        last = self.acc.last(i)
        hs = float(self.acc.params.half_spread[i])
        return last * (1.0 - hs), last * (1.0 + hs), last

    # ------------------------------------------------------------------ orders in
    async def create_order(
        self, request: OrderRequest, *, reuse_terminal_id: bool = False
    ) -> ExchangeOrder:
        """Submit an order; idempotent by ``client_order_id`` (an existing order is returned).

        With ``reuse_terminal_id`` a client id that only belongs to finished orders starts a
        new order (Binance's rule: ids are unique among *open* orders); an open order with the
        id is still returned as it is.

        Raises
        ------
        InvalidOrder
            Unknown symbol, size not a multiple of the lot size, price off the tick, notional
            under the minimum (orders that only reduce the position are exempt), reduce-only
            that would increase the position, a short in a long-only account, a position above
            the tier cap of the leverage, no price yet, or a bankrupt account
            (:func:`~.paper_checks.admit_order`).
        InsufficientFunds
            The order's new exposure needs more initial margin than is free (equity − position
            margin − the margin open orders reserve, an O(symbols) tally).
        """
        with self._lock:
            known = self.book.by_client_id.get(request.client_order_id)
            if known is not None and (known.is_open or not reuse_terminal_id):
                return known.snapshot()
            return self._submit(request).snapshot()

    def _submit(self, req: OrderRequest) -> PaperOrder:
        i = self._i(req.symbol)
        bid, ask, last = self.quote(req.symbol)
        reserve = admit_order(
            req,
            self.instruments[req.symbol],
            self.acc,
            i,
            last=last,
            free_margin_usd=lambda: self._margin().free_usd,
        )
        otype = req.order_type
        conditional = otype in CONDITIONAL_TYPES
        now = self.now
        order = PaperOrder(
            id=self.book.next_order_id(),
            client_order_id=req.client_order_id,
            symbol=req.symbol,
            side=req.side,
            order_type=otype,
            amount=req.amount,
            price=req.price if otype is LiveOrderType.LIMIT else None,
            stop_price=req.stop_price if conditional else None,
            reduce_only=req.reduce_only,
            time_in_force=req.time_in_force,
            created_at=now,
            updated_at=now,
            reserve_usd=reserve,
        )
        if otype is LiveOrderType.MARKET:
            order.at_open = True
        elif otype is LiveOrderType.LIMIT:
            marketable = (req.price >= ask) if req.side is Side.BUY else (req.price <= bid)
            if marketable and req.time_in_force is TimeInForce.POST_ONLY:
                order.status = LiveOrderStatus.EXPIRED  # would take liquidity
            elif not marketable and req.time_in_force is TimeInForce.IOC:
                order.status = LiveOrderStatus.EXPIRED  # nothing to take now
            order.at_open = marketable
        self.book.add(order)
        return order

    async def cancel_order(self, symbol: str, *, client_order_id: str) -> ExchangeOrder:
        """Cancel by client order id; a finished order is returned unchanged.

        Raises :class:`~quantum_trading.execution.errors.OrderNotFound` for an unknown id.
        """
        with self._lock:
            order = self.book.get(client_order_id, symbol)
            order.finish(LiveOrderStatus.CANCELLED, self.now)
            return order.snapshot()

    async def fetch_order(self, symbol: str, *, client_order_id: str) -> ExchangeOrder:
        """The order's current state (:class:`OrderNotFound` if never seen)."""
        with self._lock:
            return self.book.get(client_order_id, symbol).snapshot()

    async def open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        """Orders not yet terminal, oldest first."""
        with self._lock:
            if symbol is not None:
                self._i(symbol)
            return [o.snapshot() for o in self.book.open_orders(symbol)]

    def all_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        """Every order (terminal ones included), oldest first."""
        with self._lock:
            return [
                o.snapshot()
                for o in self.book.orders.values()
                if symbol is None or o.symbol == symbol
            ]

    def order_record(self, client_order_id: str, symbol: str | None = None) -> PaperOrder:
        """The mutable record behind an order (for adapters such as the local exchange)."""
        return self.book.get(client_order_id, symbol)

    async def fills(self, symbol: str, *, since: pd.Timestamp | None = None) -> list[ExchangeFill]:
        """Executions on ``symbol`` at or after ``since`` (oldest first)."""
        with self._lock:
            self._i(symbol)
            return self.book.fills_since(symbol, since)

    # ------------------------------------------------------------------ account out
    def _margin(self) -> MarginSummary:
        eq = self.acc.equity()
        upnl = eq - self.acc.cash_usd
        used = self.acc.used_margin()
        orders = self.book.reserved_usd()
        mm = sum(self.acc.maintenance_margin(i) for i in range(len(self.symbols)))
        return MarginSummary(
            self.acc.cash_usd, upnl, eq, used, orders, mm, max(eq - used - orders, 0.0)
        )

    def order_margin_by_symbol(self) -> dict[str, float]:
        """Initial margin (USDT) reserved by open orders, per symbol with any (O(symbols): the
        book's incremental tally)."""
        with self._lock:
            return self.book.reserves.by_symbol()

    def margin_summary(self) -> MarginSummary:
        """Wallet, unrealised PnL, equity, margins and free margin (USDT) at the marks."""
        with self._lock:
            return self._margin()

    async def balance(self) -> Balance:
        """Wallet (cash incl. realised PnL, fees, funding), free margin and equity in USDT."""
        m = self.margin_summary()
        return Balance(wallet_usd=m.wallet_usd, free_usd=m.free_usd, equity_usd=m.equity_usd)

    async def positions(self) -> dict[str, ExchangePosition]:
        """Open positions (marked at the last close), by symbol."""
        with self._lock:
            out = {}
            for sym, i in self._index.items():
                s = self.acc.size(i)
                if s == 0.0:
                    continue
                mark, entry = self.acc.last(i), self.acc.entry(i)
                out[sym] = ExchangePosition(
                    sym,
                    s,
                    entry,
                    mark,
                    s * (mark - entry),
                    self.acc.leverage(i),
                    self.acc.liquidation_price(i),
                )
            return out

    async def markets(self) -> dict[str, Instrument]:
        """The tradable instruments."""
        return dict(self.instruments)

    async def set_leverage(self, symbol: str, leverage: float) -> None:
        """Set ``symbol``'s leverage (1 … the instrument's max; the open position must stay
        under the tier cap of the new leverage, else :class:`InvalidOrder`)."""
        with self._lock:
            i = self._i(symbol)
            inst = self.instruments[symbol]
            if not (1.0 <= float(leverage) <= inst.max_leverage):
                raise rejected(
                    "leverage",
                    f"paper {symbol}: leverage {leverage} is not in [1, {inst.max_leverage}]",
                )
            notional = abs(self.acc.size(i)) * self.acc.last(i) if self.acc.size(i) else 0.0
            if notional > inst.max_notional_usd(float(leverage)):
                raise rejected(
                    "max_position",
                    f"paper {symbol}: position notional {notional:.2f} USDT is "
                    f"above the maximum at leverage {leverage}",
                )
            self.acc.set_leverage(i, float(leverage))

    def leverage(self, symbol: str) -> float:
        """``symbol``'s leverage setting."""
        return self.acc.leverage(self._i(symbol))

    # ------------------------------------------------------------------ market data out
    async def ticker(self, symbol: str) -> Ticker:
        """Best bid/ask (last close ∓ half-spread) and last price, at :attr:`now`."""
        with self._lock:
            bid, ask, last = self.quote(symbol)
            if math.isnan(last):
                raise rejected("no_price", f"paper {symbol}: no market data yet")
            return Ticker(symbol, bid, ask, last, self.now)

    async def order_book(self, symbol: str, *, depth: int = 20) -> OrderBook:
        """A synthetic ladder: ``depth`` levels each side from the quotes, one step apart
        (``max(tick, 1 bp of the price)``), sizes growing with the level from 1 % of the last
        bar's volume (at least one lot)."""
        with self._lock:
            i = self._i(symbol)
            bid, ask, last = self.quote(symbol)
            if math.isnan(last):
                raise rejected("no_price", f"paper {symbol}: no market data yet")
            inst = self.instruments[symbol]
            step = max(inst.tick_size, last * 1e-4)
            vol = self._history[i][-1][5] if self._history[i] else 0.0
            base = max(float(trunc_lot_nb(0.01 * vol, inst.lot_size)), inst.lot_size or 0.001)
            bids = tuple((bid - k * step, base * (k + 1)) for k in range(depth))
            asks = tuple((ask + k * step, base * (k + 1)) for k in range(depth))
            return OrderBook(symbol, bids, asks, self.now)

    async def ohlcv(
        self,
        symbol: str,
        timeframe: str,
        *,
        since: pd.Timestamp | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """The bars received so far (only the feed's own timeframe)."""
        from quantum_trading.data.timeframes import timeframe_to_timedelta

        if timeframe_to_timedelta(timeframe) != self.timeframe:
            raise ConfigError(
                f"paper: only the feed's timeframe ({self.timeframe}) is served, got {timeframe!r}"
            )
        with self._lock:
            history = self._history[self._i(symbol)]
            first = 0 if since is None else bisect.bisect_left(history, (int(since.value),))
            rows = history[first:] if limit is None else history[first : first + limit]
        frame = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close", "volume"])
        frame["date"] = pd.to_datetime(frame["date"].astype("int64"), unit="ns", utc=True)
        return frame.set_index("date")

    async def funding_rate(self, symbol: str) -> tuple[float, pd.Timestamp]:
        """The last settled rate (the default rate before any) and the next settlement time."""
        with self._lock:
            self._i(symbol)
            rate = self.matcher.last_rate.get(symbol, self.costs.default_funding_rate)
            period = pd.Timedelta(hours=self.costs.funding_interval_h)
            return rate, self.now.ceil(period)

    async def close(self) -> None:
        """Nothing to release."""

    # ------------------------------------------------------------------ records
    def fill_frame(self) -> pd.DataFrame:
        """Every fill with the simulator's cost breakdown, one row a fill: ``time symbol
        fill_id order_id client_order_id live_type`` (the order's :class:`LiveOrderType`),
        ``order_type`` (the simulator's name: market / stop_loss / take_profit / liquidation /
        bankruptcy), ``is_maker`` and the simulator's fill-record fields ``side size price
        ref_price notional_usd fee_usd spread_usd slippage_usd impact_usd liquidation_fee_usd
        realized_pnl_usd position_after cash_after_usd``."""
        with self._lock:
            return pd.DataFrame(
                self.matcher.records,
                columns=[
                    "time",
                    "symbol",
                    "fill_id",
                    "order_id",
                    "client_order_id",
                    "live_type",
                    "order_type",
                    "is_maker",
                    *FILL_COLUMNS,
                ],
            )

    # ------------------------------------------------------------------ bars in
    async def on_bar(
        self,
        symbol: str,
        bar: Mapping[str, object] | pd.Series,
        *,
        time: pd.Timestamp | None = None,
    ) -> list[ExchangeFill]:
        """Process one closed bar of ``symbol`` (see the module docstring for the order of
        events). Returns the fills it made."""
        return self.process_bar(symbol, bar, time=time)

    def process_bar(
        self,
        symbol: str,
        bar: Mapping[str, object] | pd.Series,
        *,
        time: pd.Timestamp | None = None,
    ) -> list[ExchangeFill]:
        """Synchronous :meth:`on_bar` (thread-safe), for drivers outside an event loop.

        ``bar``: ``open high low close`` (+ ``volume``, ``funding_rate``, ``mark_price``);
        ``time``: the bar's open time (UTC; default ``bar["time"]`` or a Series' name).
        """
        with self._lock:
            i = self._i(symbol)
            if time is None:
                time = bar.get("time") if isinstance(bar, Mapping) else getattr(bar, "name", None)
            if time is None:
                raise DataError(f"paper {symbol}: bar without a time")
            stamp = pd.Timestamp(time)  # type: ignore[arg-type]
            if stamp.tz is None:
                raise DataError(f"paper {symbol}: bar time must be tz-aware UTC")
            t_ns = int(stamp.as_unit("ns").value)
            last = self._last_open_ns[i]
            if last is not None and t_ns <= last:
                raise DataError(f"paper {symbol}: bar at {stamp} is not after the previous one")
            o, h, lo, c = (bar_value(bar, k) for k in ("open", "high", "low", "close"))
            v = bar_value(bar, "volume")
            if not (0.0 < lo <= min(o, c) and max(o, c) <= h and math.isfinite(h)):
                raise DataError(
                    f"paper {symbol}: bar at {stamp} needs finite prices > 0 with "
                    "low <= open, close <= high"
                )
            if self.max_participation is not None and not (v >= 0.0):
                raise DataError(
                    f"paper {symbol}: bar at {stamp} has no volume (needed by max_participation)"
                )
            bar_no = self._bar_no[i]
            self.acc.set_bar(i, o, h, lo, c)
            self.acc.set_impact_inputs(i, bar_no)
            ctx = BarContext(i, symbol, bar_no, stamp, o, h, lo, c, v)
            self.matcher.bar_fills = []
            self.matcher.run(ctx, bar)
            self.matcher.close(ctx)
            self.acc.push_history(i, bar_no, c, v if math.isfinite(v) else 0.0)
            self._bar_no[i] = bar_no + 1
            self._last_open_ns[i] = t_ns
            self._history[i].append((t_ns, o, h, lo, c, v))
            close_time = stamp + self.timeframe
            self._now = close_time if self._now is None else max(self._now, close_time)
            return list(self.matcher.bar_fills)
