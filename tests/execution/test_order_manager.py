"""OrderManager: state machine, idempotent submit, timeouts, stale orders, risk."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from quantum_trading.domain import Side
from quantum_trading.errors import ConfigError
from quantum_trading.execution.config import OrderManagerConfig
from quantum_trading.execution.models import (
    ExchangeOrder,
    LiveOrderStatus,
    LiveOrderType,
    OrderRequest,
)
from quantum_trading.execution.order_manager import (
    TERMINAL_STATES,
    TRANSITIONS,
    ManagedOrder,
    OrderManager,
    OrderState,
    is_legal_transition,
)
from quantum_trading.risk import RiskConfig, RiskEngine

from ._fake_exchange import SYMBOL, FakeExchange

S = OrderState


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def make(config: OrderManagerConfig | None = None, risk: RiskEngine | None = None,
         ) -> tuple[FakeExchange, OrderManager]:
    ex = FakeExchange()
    return ex, OrderManager(ex, clock=ex.clock, config=config, risk=risk)


def market(amount: float = 1.0, side: Side = Side.BUY, **kw: Any) -> OrderRequest:
    return OrderRequest(symbol=SYMBOL, side=side, order_type=LiveOrderType.MARKET, amount=amount,
                        **kw)


def limit(price: float, amount: float = 1.0, side: Side = Side.BUY, **kw: Any) -> OrderRequest:
    return OrderRequest(symbol=SYMBOL, side=side, order_type=LiveOrderType.LIMIT, amount=amount,
                        price=price, **kw)


# -- the table ---------------------------------------------------------------------------------
EXPECTED = {
    S.NEW: {S.UNKNOWN, S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED},
    S.UNKNOWN: {S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED},
    S.OPEN: {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED, S.EXPIRED},
    S.PARTIALLY_FILLED: {S.FILLED, S.PENDING_CANCEL, S.CANCELLED, S.EXPIRED},
    S.PENDING_CANCEL: {S.FILLED, S.CANCELLED, S.EXPIRED},
}


def test_transition_table_is_exactly_the_documented_one() -> None:
    for a in OrderState:
        for b in OrderState:
            assert is_legal_transition(a, b) == (b in EXPECTED.get(a, set())), (a, b)
    assert {s for s in OrderState if not TRANSITIONS[s]} == TERMINAL_STATES


def _placed(om: OrderManager, state: OrderState, filled: float = 0.0) -> ManagedOrder:
    order = ManagedOrder(request=limit(99.9, amount=2.0), created_at=om.now(), state=state,
                         filled=filled, average_price=99.0 if filled else None)
    order.root_id = order.client_order_id
    om._orders[order.client_order_id] = order  # a record in a given state, for the table test
    om._chains[order.root_id] = [order]
    return order


def _snap(order: ManagedOrder, status: LiveOrderStatus, filled: float) -> ExchangeOrder:
    now = pd.Timestamp("2024-01-01", tz="UTC")
    return ExchangeOrder(id="x1", client_order_id=order.client_order_id, symbol=SYMBOL,
                         side=Side.BUY, order_type=LiveOrderType.LIMIT, status=status, amount=2.0,
                         filled=filled, price=99.0, stop_price=None,
                         average_price=99.0 if filled else None, reduce_only=False,
                         created_at=now, updated_at=now)


# exchange status (and filled) → the state it asks for
REPORTS = [(LiveOrderStatus.OPEN, 0.0, S.OPEN), (LiveOrderStatus.PARTIALLY_FILLED, 1.0,
           S.PARTIALLY_FILLED), (LiveOrderStatus.FILLED, 2.0, S.FILLED),
           (LiveOrderStatus.CANCELLED, 1.0, S.CANCELLED), (LiveOrderStatus.REJECTED, 0.0,
           S.REJECTED), (LiveOrderStatus.EXPIRED, 1.0, S.EXPIRED)]


@pytest.mark.parametrize("start", list(OrderState))
@pytest.mark.parametrize(("status", "filled", "target"), REPORTS)
def test_exchange_updates_follow_the_table(start: OrderState, status: LiveOrderStatus,
                                           filled: float, target: OrderState,
                                           caplog: pytest.LogCaptureFixture) -> None:
    _, om = make()
    before = 1.0 if start in (S.PARTIALLY_FILLED, S.PENDING_CANCEL) else 0.0
    before = 2.0 if start is S.FILLED else before
    order = _placed(om, start, filled=min(before, filled) if start is not S.FILLED else 2.0)
    if start is S.PENDING_CANCEL and target in (S.OPEN, S.PARTIALLY_FILLED):
        target = S.PENDING_CANCEL  # a live report while a cancel is pending keeps it pending
    legal = target is start or is_legal_transition(start, target)
    if start in TERMINAL_STATES and target is start:
        legal = filled <= order.filled  # a terminal order may not gain fills
    with caplog.at_level(logging.ERROR):
        ok = om.apply_update(_snap(order, status, filled))
    assert ok == legal
    if legal:
        assert order.state is target
        assert order.filled == max(filled, order.filled)
    else:
        assert order.state is start  # refused, not applied
        assert om.errors and "refused" in om.errors[-1].detail
        assert "refused" in caplog.text


def test_fill_going_backwards_is_refused() -> None:
    _, om = make()
    order = _placed(om, S.PARTIALLY_FILLED, filled=1.5)
    assert not om.apply_update(_snap(order, LiveOrderStatus.PARTIALLY_FILLED, 1.0))
    assert order.filled == 1.5 and order.state is S.PARTIALLY_FILLED


def test_internal_transitions_unknown_and_pending_cancel() -> None:
    async def go() -> None:
        ex, om = make()
        ex.fail_next("create_order", after=True)
        o = await om.submit(limit(99.9))
        assert o.state is S.UNKNOWN  # NEW → UNKNOWN
        ex.advance(2)
        await om.poll()
        assert o.state is S.OPEN  # UNKNOWN → OPEN
        ex.fail_next("cancel_order", after=False)
        await om.cancel(o.client_order_id)
        assert o.state is S.PENDING_CANCEL  # OPEN → PENDING_CANCEL, not confirmed
        ex.advance(2)
        await om.poll()
        assert o.state is S.CANCELLED  # PENDING_CANCEL → CANCELLED after the retry
        assert [h[2] for h in o.history] == [S.UNKNOWN, S.OPEN, S.PENDING_CANCEL, S.CANCELLED]
    run(go())


# -- submit -----------------------------------------------------------------------------------
def test_market_order_fills_and_records_events() -> None:
    async def go() -> None:
        ex, om = make()
        o = await om.submit_market(SYMBOL, Side.BUY, 2.0, tag="t")
        assert o.state is S.FILLED and o.filled == 2.0 and o.average_price == 100.05
        assert o.client_order_id.startswith("qt-") and o.tag == "t"
        kinds = [e.kind for e in om.events if e.client_order_id == o.client_order_id]
        assert kinds[:2] == ["created", "sent"] and "fill" in kinds
        assert ex.pos[SYMBOL][0] == 2.0
    run(go())


def test_submit_is_idempotent_by_client_order_id() -> None:
    async def go() -> None:
        ex, om = make()
        req = limit(99.9)
        a = await om.submit(req)
        b = await om.submit(req)
        assert a is b and ex.create_calls[req.client_order_id] == 1 and len(ex.orders) == 1
    run(go())


def test_partial_fills_are_tracked() -> None:
    async def go() -> None:
        ex, om = make()
        o = await om.submit(limit(99.9, amount=3.0))
        assert o.state is S.OPEN
        ex.fill(o.client_order_id, 1.0, 99.0)
        await om.poll()
        assert o.state is S.PARTIALLY_FILLED and o.filled == 1.0 and o.remaining == 2.0
        ex.fill(o.client_order_id, 0.5, 98.0)
        await om.poll()
        assert o.state is S.PARTIALLY_FILLED and o.filled == 1.5
        assert o.average_price == pytest.approx((99.0 + 0.5 * 98.0) / 1.5)
        ex.fill(o.client_order_id, 1.5, 99.0)
        await om.poll()
        assert o.state is S.FILLED and o.filled == 3.0
        fills = [e for e in om.events if e.kind == "fill"]
        assert len(fills) == 3
    run(go())


def test_exchange_reject_is_a_rejected_order() -> None:
    async def go() -> None:
        ex, om = make()
        ex.reject_next("min notional")
        o = await om.submit(market())
        assert o.state is S.REJECTED and "min notional" in o.reason
    run(go())


# -- timeouts ---------------------------------------------------------------------------------
def test_lost_response_is_found_by_client_id_and_never_sent_twice() -> None:
    async def go() -> None:
        ex, om = make()
        ex.fail_next("create_order", after=True)  # created, answer lost
        o = await om.submit(market())
        assert o.state is S.UNKNOWN and len(ex.orders) == 1
        await om.poll()  # not due yet (backoff 1 s)
        assert o.state is S.UNKNOWN
        ex.advance(1.0)
        await om.poll()
        assert o.state is S.FILLED and o.filled == 1.0
        assert ex.create_calls[o.client_order_id] == 1 and len(ex.orders) == 1
        assert om.unresolved() == []
    run(go())


def test_lost_request_is_sent_again_under_the_same_id() -> None:
    async def go() -> None:
        ex, om = make()
        ex.fail_next("create_order", after=False)  # never reached the exchange
        o = await om.submit(market())
        assert o.state is S.UNKNOWN and not ex.orders
        ex.advance(1.0)
        await om.poll()  # NotFound → resend, same id
        assert o.state is S.FILLED and ex.create_calls[o.client_order_id] == 2
        assert list(ex.orders) == [o.client_order_id] and o.submit_attempts == 2
    run(go())


def test_order_never_seen_is_rejected_after_max_submit_attempts() -> None:
    async def go() -> None:
        ex, om = make(OrderManagerConfig(max_submit_attempts=2))
        ex.fail_next("create_order", after=False, times=5)
        o = await om.submit(market())
        for _ in range(4):
            ex.advance(60)
            await om.poll()
        assert o.state is S.REJECTED and "after 2 sends" in o.reason
        assert ex.create_calls[o.client_order_id] == 2 and not ex.orders
    run(go())


def test_queries_back_off_and_unresolved_orders_stay_tracked() -> None:
    async def go() -> None:
        cfg = OrderManagerConfig(query_backoff_s=1.0, max_query_backoff_s=4.0,
                                 max_query_attempts=3)
        ex, om = make(cfg)
        ex.fail_next("create_order", after=True)
        ex.fail_next("fetch_order", after=False, times=4)
        o = await om.submit(market())
        t0 = om.now()
        delays = []
        for _ in range(40):  # step the clock 0.5 s and record when queries happen
            ex.advance(0.5)
            before = o.query_attempts
            await om.poll()
            if o.query_attempts != before or o.state is not S.UNKNOWN:
                delays.append((om.now() - t0).total_seconds())
            if o.state is not S.UNKNOWN:
                break
        # waits 1 s, then 2, 4, 4 (capped at 4), 4: queries at 1, 3, 7, 11, 15 s
        assert delays == [1.0, 3.0, 7.0, 11.0, 15.0]
        assert any("unresolved after 3 queries" in e.detail for e in om.errors)
        assert o.state is S.FILLED and ex.create_calls[o.client_order_id] == 1
    run(go())


def test_cancel_of_an_order_that_never_arrived_ends_cancelled_without_resend() -> None:
    async def go() -> None:
        ex, om = make()
        ex.fail_next("create_order", after=False)
        o = await om.submit(limit(99.9))
        await om.cancel(o.client_order_id)
        ex.advance(1.0)
        await om.poll()
        assert o.state is S.CANCELLED and ex.create_calls[o.client_order_id] == 1
    run(go())


def test_cancel_requested_while_unknown_is_applied_once_found() -> None:
    async def go() -> None:
        ex, om = make()
        ex.fail_next("create_order", after=True)
        o = await om.submit(limit(99.9))
        await om.cancel(o.client_order_id)
        ex.advance(1.0)
        await om.poll()
        assert o.state is S.CANCELLED
        assert ex.orders[o.client_order_id].status is LiveOrderStatus.CANCELLED
    run(go())


def test_cancel_response_lost_is_resolved_by_sync() -> None:
    async def go() -> None:
        ex, om = make()
        o = await om.submit(limit(99.9))
        ex.fail_next("cancel_order", after=True)
        await om.cancel(o.client_order_id)
        assert o.state is S.PENDING_CANCEL
        await om.poll()  # the exchange no longer lists it → fetched → cancelled
        assert o.state is S.CANCELLED
    run(go())


def test_fill_racing_a_cancel_ends_filled() -> None:
    async def go() -> None:
        ex, om = make()
        o = await om.submit(limit(99.9))
        ex.fail_next("cancel_order", after=False)
        await om.cancel(o.client_order_id)
        ex.set_quote(98.9, 98.95)  # crosses: filled before the cancel arrives
        await om.poll()
        assert o.state is S.FILLED and o.filled == 1.0
    run(go())


# -- stale limit orders ------------------------------------------------------------------------
def test_stale_by_age_is_repriced_then_escalated_to_market() -> None:
    async def go() -> None:
        ex, om = make(OrderManagerConfig(max_reprices=2))
        o = await om.submit(limit(99.9, amount=2.0))
        ex.fill(o.client_order_id, 0.5)
        ex.advance(30)
        await om.poll()
        assert o.state is S.PARTIALLY_FILLED  # 30 s is not older than 30 s
        ex.set_quote(99.94, 100.04)
        ex.advance(1)
        await om.poll()
        assert o.state is S.CANCELLED and o.replaced_by is not None
        r1 = om.get(o.replaced_by)
        assert r1.request.price == 99.94 and r1.amount == 1.5 and r1.root_id == o.client_order_id
        assert r1.reprices == 1 and r1.state is S.OPEN
        ex.advance(31)
        await om.poll()
        r2 = om.get(r1.replaced_by)
        assert r2.reprices == 2 and r2.request.order_type is LiveOrderType.LIMIT
        ex.advance(31)
        await om.poll()
        r3 = om.get(r2.replaced_by)
        assert r3.request.order_type is LiveOrderType.MARKET and r3.state is S.FILLED
        chain = om.chain_fill(o.client_order_id)
        assert chain.done and chain.filled == pytest.approx(2.0)
        assert chain.client_order_ids == tuple(x.client_order_id for x in (o, r1, r2, r3))
        assert chain.average_price == pytest.approx((0.5 * 99.9 + 1.5 * 100.04) / 2.0)
    run(go())


def test_stale_by_price_move_is_repriced_at_the_touch() -> None:
    async def go() -> None:
        ex, om = make()
        o = await om.submit(limit(99.9))
        ex.set_quote(100.10, 100.20)  # mid 100.15: 0.25 % above the order
        await om.poll()
        assert o.state is S.CANCELLED
        new = om.get(o.replaced_by)
        assert new.request.price == 100.10 and new.state is S.OPEN
        assert any(e.kind == "stale" and "from mid" in e.detail for e in om.events)
        ex.set_quote(100.0, 100.2)  # mid 100.1: 0.1 % away, not stale
        await om.poll()
        assert new.state is S.OPEN
        # on_tick uses the ticker it is given (here: a quote the exchange has not shown yet)
        ticker = replace(await ex.ticker(SYMBOL), bid=100.4, ask=100.5)
        events = await om.on_tick(ticker)
        assert new.state is S.CANCELLED and om.get(new.replaced_by).request.price == 100.4
        assert {e.kind for e in events} >= {"stale", "reprice"}
    run(go())


def test_stale_policy_market_and_cancel_and_keep() -> None:
    async def go() -> None:
        ex, om = make(OrderManagerConfig(on_stale="market"))
        o = await om.submit(limit(99.9, amount=2.0, side=Side.BUY))
        ex.fill(o.client_order_id, 0.5)
        ex.advance(31)
        await om.poll()
        m = om.get(o.replaced_by)
        assert m.request.order_type is LiveOrderType.MARKET and m.amount == 1.5
        assert m.state is S.FILLED and ex.pos[SYMBOL][0] == pytest.approx(2.0)

        ex, om = make(OrderManagerConfig(on_stale="cancel"))
        o = await om.submit(limit(99.9))
        ex.advance(31)
        await om.poll()
        assert o.state is S.CANCELLED and o.replaced_by is None and len(om.orders) == 1
        assert om.chain_fill(o.client_order_id).done

        ex, om = make()
        o = await om.submit_limit(SYMBOL, Side.SELL, 1.0, 105.0, on_stale="keep")
        ex.advance(3600)
        await om.poll()
        assert o.state is S.OPEN
    run(go())


def test_reprice_exhausted_can_cancel() -> None:
    async def go() -> None:
        ex, om = make(OrderManagerConfig(max_reprices=0, on_reprices_exhausted="cancel"))
        o = await om.submit(limit(99.9))
        ex.advance(31)
        await om.poll()
        assert o.state is S.CANCELLED and o.replaced_by is None
    run(go())


# -- risk ---------------------------------------------------------------------------------------
def test_risk_resize_reject_and_reduce_only_bypass() -> None:
    async def go() -> None:
        risk = RiskEngine(RiskConfig(max_position_frac=0.1), symbols=[SYMBOL])
        ex, om = make(risk=risk)
        risk.update(om.now(), 100_000.0)
        o = await om.submit(market(150.0))  # cap: 10 % of 100k at 100 → 100 units
        assert o.risk_decision is not None and o.risk_decision.action.label == "resize"
        assert o.amount == pytest.approx(o.risk_decision.approved_size) and o.state is S.FILLED
        assert ex.pos[SYMBOL][0] == pytest.approx(o.amount)
        o2 = await om.submit(market(10.0))  # already at the cap
        assert o2.state is S.REJECTED and "risk" in o2.reason and not ex.create_calls[
            o2.client_order_id]
        n = len(risk.decisions)
        o3 = await om.submit(market(5.0, side=Side.SELL, reduce_only=True))
        assert o3.state is S.FILLED and len(risk.decisions) == n  # reduce-only: not checked
        risk.halt(om.now(), equity_usd=100_000.0)
        o4 = await om.submit(limit(99.9, amount=1.0))
        assert o4.state is S.REJECTED and o4.risk_decision.action.label == "reject"
    run(go())


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError, match="max_order_age_s"):
        OrderManagerConfig(max_order_age_s=0)
    with pytest.raises(ValidationError, match="extra"):
        OrderManagerConfig(max_age=3)
    with pytest.raises(ValidationError):
        OrderManagerConfig(query_backoff_s=10, max_query_backoff_s=5)
    with pytest.raises(ValidationError):
        OrderManagerConfig(on_stale="keep")
    cfg = OrderManagerConfig()
    with pytest.raises(ValidationError):
        cfg.max_reprices = 5  # frozen


# -- property: never lose, never duplicate --------------------------------------------------
FAULT = st.sampled_from([None, None, "before", "after"])
ACTIONS = st.one_of(
    st.tuples(st.just("market"), st.sampled_from([Side.BUY, Side.SELL]),
              st.floats(0.1, 3.0), FAULT),
    st.tuples(st.just("limit"), st.sampled_from([Side.BUY, Side.SELL]),
              st.floats(-0.5, 0.5), FAULT),
    st.tuples(st.just("fault"), st.sampled_from(["create_order", "cancel_order", "fetch_order",
                                                 "open_orders"]), st.booleans()),
    st.tuples(st.just("move"), st.floats(-0.6, 0.6)),
    st.tuples(st.just("partial"), st.integers(0, 50), st.floats(0.1, 0.9)),
    st.tuples(st.just("cancel"), st.integers(0, 50), FAULT),
    st.tuples(st.just("advance"), st.floats(0.1, 40.0)),
    st.tuples(st.just("poll")),
    st.tuples(st.just("reject")),
)


def _check_known(ex: FakeExchange, om: OrderManager) -> None:
    assert set(ex.orders) <= set(om.orders)  # stored before sent: the exchange has nothing more
    for cid, n in ex.create_calls.items():
        assert n <= 1 + ex.not_found[cid]  # sent again only after "never seen"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ACTIONS, max_size=40))
def test_manager_never_loses_or_duplicates_an_order(actions: list[tuple]) -> None:
    async def go() -> None:
        ex, om = make()
        for act in actions:
            kind = act[0]
            if kind in ("market", "limit", "cancel") and act[-1] is not None:
                ex.fail_next("create_order" if kind != "cancel" else "cancel_order",
                             after=act[-1] == "after")
            if kind == "market":
                await om.submit_market(SYMBOL, act[1], round(act[2], 3))
            elif kind == "limit":
                bid, ask = ex.quotes[SYMBOL]
                mid = 0.5 * (bid + ask)
                await om.submit_limit(SYMBOL, act[1], 1.0, round(mid * (1 + act[2] / 100), 2))
            elif kind == "fault":
                ex.fail_next(act[1], after=act[2])
            elif kind == "move":
                bid, ask = ex.quotes[SYMBOL]
                f = 1 + act[1] / 100
                ex.set_quote(round(bid * f, 2), round(bid * f, 2) + 0.1)
            elif kind == "partial":
                live = [o for o in ex.orders.values() if o.status in
                        (LiveOrderStatus.OPEN, LiveOrderStatus.PARTIALLY_FILLED)]
                if live:
                    o = live[act[1] % len(live)]
                    ex.fill(o.client_order_id, o.remaining * act[2])
            elif kind == "cancel":
                mine = list(om.orders)
                if mine:
                    await om.cancel(mine[act[1] % len(mine)])
            elif kind == "advance":
                ex.advance(act[1])
            elif kind == "poll":
                await om.poll()
            else:
                ex.reject_next()
            _check_known(ex, om)
        ex.clear_faults()
        for _ in range(30):  # quiesce: no more faults, time passes, the manager polls
            ex.advance(40)
            await om.poll()
            if all(o.is_terminal for o in om.orders.values()):
                break
        _check_known(ex, om)
        for cid, o in om.orders.items():
            theirs = ex.orders.get(cid)
            if o.is_terminal:
                assert theirs is None or theirs.status.value == o.state.value
                if theirs is not None:
                    assert theirs.filled == pytest.approx(o.filled)
            else:  # open and known to the exchange in the same state
                assert theirs is not None and o.state.value == theirs.status.value
        assert not om.unresolved()
    run(go())


def test_stale_limit_repriced_on_the_tick_grid_of_the_paper_exchange() -> None:
    from quantum_trading.domain import BINANCE_BTCUSDT_PERP
    from quantum_trading.execution.paper import PaperExchange
    from quantum_trading.sim.config import CostsConfig

    async def go() -> None:
        paper = PaperExchange([BINANCE_BTCUSDT_PERP], timeframe="1m",
                              costs=CostsConfig(default_funding_rate=0.0, half_spread_bps=0.3))
        t0 = pd.Timestamp("2024-01-01", tz="UTC")
        flat = {"open": 30_000.0, "high": 30_010.0, "low": 29_995.0, "close": 30_000.0,
                "volume": 100.0}
        await paper.on_bar(SYMBOL, flat, time=t0)
        om = OrderManager(paper, clock=lambda: paper.now)
        price = await om.passive_price(SYMBOL, Side.BUY)
        assert price == 29_999.1  # bid 30 000 × (1 − 0.3 bp), on the 0.1 tick
        o = await om.submit_limit(SYMBOL, Side.BUY, 0.01, 29_990.0)
        assert o.state is S.OPEN
        up = {"open": 30_020.0, "high": 30_040.0, "low": 30_015.0, "close": 30_030.0,
              "volume": 100.0}
        await paper.on_bar(SYMBOL, up, time=t0 + pd.Timedelta(minutes=1))
        await om.poll()  # 60 s old and 0.13 % away: cancelled, re-priced at the bid
        assert o.state is S.CANCELLED
        new = om.get(o.replaced_by)
        assert new.state is S.OPEN and new.request.price == 30_029.0  # bid 30 029.099 → 0.1 tick
        await paper.on_bar(SYMBOL, {**up, "low": 30_000.0, "close": 30_010.0},
                           time=t0 + pd.Timedelta(minutes=2))
        await om.poll()  # traded through: filled at its price as a maker
        assert new.state is S.FILLED and new.average_price == 30_029.0
        assert om.chain_fill(o.client_order_id).filled == pytest.approx(0.01)
    run(go())


# -- what the trader needs at a bar close ------------------------------------------------------
def test_cancel_drops_a_replacement_not_sent_yet() -> None:
    async def go() -> None:
        ex, om = make()
        o = await om.submit(limit(99.9))
        ex.advance(31)
        ex.fail_next("ticker", times=2)  # stale by age; no quote to re-price at: deferred
        await om.poll()
        assert o.state is S.CANCELLED and om.pending_followups() == [o]
        assert om.pending_followups("ETH/USDT:USDT") == []
        assert (await om.cancel(o.client_order_id, reason="superseded")) is o
        assert om.pending_followups() == [] and not o.pending_followup
        assert any(e.kind == "followup_dropped" for e in om.events)
        await om.poll()
        assert o.replaced_by is None and len(om.orders) == 1  # nothing was sent
    run(go())


def test_resolve_unknown_queries_at_once_whatever_the_backoff() -> None:
    async def go() -> None:
        ex, om = make(OrderManagerConfig(query_backoff_s=60.0, max_query_backoff_s=60.0))
        ex.fail_next("create_order", after=True)  # it arrived; the answer was lost
        o = await om.submit(market(1.0))
        assert o.state is S.UNKNOWN and om.unresolved() == [o]
        await om.poll()
        assert o.state is S.UNKNOWN  # its next query is due in 60 s
        events = await om.resolve_unknown()
        assert o.state is S.FILLED and om.unresolved() == []
        assert [e.kind for e in events][:1] == ["query"]
        assert ex.create_calls[o.client_order_id] == 1  # found, not sent again
    run(go())


def test_exchange_error_text_is_redacted_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-live-0123456789abcdef"

    async def go() -> OrderManager:
        ex = FakeExchange()
        om = OrderManager(ex, clock=ex.clock, redact=lambda t: t.replace(secret, "***"))
        ex.reject_next(f"bad signature for key {secret}")
        await om.submit(market(1.0))
        ex.fail_next("create_order", after=False)
        await om.submit(market(1.0))
        return om

    with caplog.at_level(logging.DEBUG, logger="quantum_trading.execution.order_manager"):
        om = run(go())
    rejected = [o for o in om.orders.values() if o.state is S.REJECTED]
    assert rejected and "key ***" in rejected[0].reason
    texts = [r.getMessage() for r in caplog.records] + [e.detail for e in om.events] + [
        str(h) for o in om.orders.values() for h in o.history] + [om.order_frame().to_csv()]
    assert any("key ***" in t for t in texts) and not any(secret in t for t in texts)
    fake = FakeExchange()
    with pytest.raises(ConfigError, match="redact must be a callable"):
        OrderManager(fake, clock=fake.clock, redact="no")  # type: ignore[arg-type]


def test_client_order_ids_do_not_repeat_whatever_seeds_the_global_random() -> None:
    """Ids come from the module's own generator (seeded from the OS): a program that seeds
    Python's global ``random`` for reproducibility does not make a restart reuse ids; a
    forked child draws other ids than its parent."""
    import os
    import random

    from quantum_trading.execution.models import new_client_order_id

    random.seed(0)
    first = new_client_order_id("t")
    random.seed(0)
    again = new_client_order_id("t")
    assert first != again and first.startswith("t-") and len(first) == 26
    assert len({new_client_order_id() for _ in range(50_000)}) == 50_000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send one id and leave at once
        os.write(write, new_client_order_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert child != new_client_order_id() and len(child) == 27
