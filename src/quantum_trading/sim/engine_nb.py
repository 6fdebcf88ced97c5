"""The simulator step: one bar for every asset, and the whole-array loop over it.

:func:`step_nb` is the only implementation of the bar. :func:`simulate_nb` (backtests,
sweeps) is a loop over it, and :class:`quantum_trading.sim.Simulator` (RL env, paper
exchange) calls it one bar at a time, so both give identical results by construction.

Order of events in bar ``t`` (the contract of ``docs/simulator.md``):

1. **Funding** at the open if a settlement falls in the bar: the position held coming into
   the bar receives ``−size · mark · rate`` (mark = mark price, else the open).
   If equity at the open is then ≤ 0, the account is bankrupt: everything is closed at the
   open and nothing trades again.
2. **Market orders** decided at ``t − 1``'s close fill at the open (sizing, caps and costs in
   :mod:`~quantum_trading.sim.orders_nb`). A position opened here gets its stop-loss,
   take-profit and trailing levels from its entry fill price.
3. **Resting orders and liquidation** against the bar's range: take-profits the bar opened
   through fill at the open; then every open position's price moves from the open toward its
   adverse extreme along one path λ ∈ [0, 1] (see :mod:`~quantum_trading.sim.margin_nb`);
   stops (stop-loss or trailing, whichever is hit first; at the open when gapped) and the
   liquidation point λ* are taken in λ order (a tie goes to liquidation); after each stop λ* is
   recomputed. Cross margin liquidates every position at λ*; isolated margin liquidates each
   position alone against its own margin. Then take-profits inside the bar fill at their
   level (so a stop and a take-profit in one bar → the stop).
4. **Close**: positions are marked at the close. Equity ≤ 0 → bankruptcy (all closed at the
   close, loss beyond equity to the insurance fund). Per-bar outputs are written (and an
   account snapshot if a fill or funding changed the account in this bar). A position
   held ``time_stop_bars`` bars gets a time-stop exit for the next open; trailing levels
   move with this bar's high (longs) / low (shorts).
5. **Decision**: ``target[t]`` becomes a pending order for ``t + 1``.

With risk limits (``params.risk.enabled``, :mod:`~quantum_trading.sim.risk_nb`): after funding
in 1, the equity at the open is observed (day/week roll, peak, loss locks; a drawdown halt
flattens at this open) and every market order in 2 is checked before it fills; after the
decision in 5, the equity at the close is observed (a drawdown halt replaces the pending
orders with reduce-only closes for the next open) and the per-bar risk outputs are written.

Where the events live: funding here (:func:`settle_funding_nb`); market orders in
:mod:`~quantum_trading.sim.orders_nb`; resting exits (stops, take-profits, the adverse path) in
:mod:`~quantum_trading.sim.resting_nb`; liquidation and bankruptcy in
:mod:`~quantum_trading.sim.liquidation_nb` (re-exported here); the quiet-bar loop in
:mod:`~quantum_trading.sim.quiet_nb`.

Outputs: per bar, the equity and margin ratio at the close (``out_equity``,
``out_margin_ratio``); cash, positions and the cumulative costs only change with a fill or a
funding settlement, so they are recorded as an account snapshot at the close of those bars
(``snap_bar`` / ``snap``; :class:`~quantum_trading.sim.result.SimResult` carries them forward).

Quiet bars: with one asset, no risk limits and nothing pending, :func:`simulate_nb` runs the
bars in which nothing can happen (no decision, no funding, no stop / take-profit / liquidation
/ time stop due, equity above 0) in a tight loop
(:func:`~quantum_trading.sim.quiet_nb.quiet_bars_nb`) that does exactly
what :func:`step_nb` does on them — mark to the close, write the outputs, move the trailing
reference — with the position held in registers; every other bar goes through
:func:`step_nb`. :func:`simulate_steps_nb` (``step_nb`` on every bar) is the reference the
tests compare it with, bit for bit.

Compilation: the kernels of the hot path are ``@njit(cache=True, _nrt=False)``. They never
allocate, and without numba's reference counting the state NamedTuples (dozens of arrays) pass
through calls for free; with it every call costs two atomic operations per array. The checks
run on every bar (``resting_due_nb``, the margin and tier helpers, ``wants_order_nb``) are
inlined (``inline="always"``): a call that passes the state's arrays costs more than the check.
``step_nb`` is inlined into ``simulate_nb``; the one-bar API calls ``simulate_nb`` for a single
bar, so there is one compiled step.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from quantum_trading.sim.costs_nb import flex_nb
from quantum_trading.sim.funding_nb import funding_payment_nb
from quantum_trading.sim.liquidation_nb import (
    bankruptcy_close_nb,
    liquidate_cross_nb,
    liquidate_isolated_nb,
)
from quantum_trading.sim.margin_nb import maintenance_margin_nb
from quantum_trading.sim.orders_nb import (
    fill_pending_nb,
    read_targets_nb,
    wants_order_nb,
)
from quantum_trading.sim.quiet_nb import quiet_bars_nb
from quantum_trading.sim.records import (
    A_CASH,
    A_EQUITY,
    A_FUNDING,
    A_REALIZED,
    C_BANKRUPT,
    C_FILLS,
    C_NEXT_BAR,
    C_ORDERS,
    C_SNAPS,
    C_TRADES,
    FILLS_PER_ASSET_STEP,
    MODE_ISOLATED,
    N_COST,
    ORDERS_PER_ASSET_STEP,
    OT_NONE,
    OT_TIME_STOP,
    P_BEST,
    P_ENTRY,
    P_LAST,
    P_MARGIN,
    P_SIZE,
    P_T_FUNDING,
    Q_DECISION_BAR,
    Q_ENTRY_BAR,
    Q_FLAGS,
    Q_PENDING,
    RISK_PER_ASSET_STEP,
    S_CASH,
    S_COST,
    S_POS,
    TOT_FUNDING,
    TRADES_PER_ASSET_STEP,
)
from quantum_trading.sim.resting_nb import resting_due_nb, resting_orders_nb
from quantum_trading.sim.risk_nb import (
    RI_N_DECISIONS,
    risk_after_fill_nb,
    risk_close_nb,
    risk_open_nb,
)

__all__ = [
    "bankruptcy_close_nb",
    "bar_nb",
    "close_decision_nb",
    "liquidate_cross_nb",
    "liquidate_isolated_nb",
    "settle_funding_nb",
    "simulate_nb",
    "simulate_steps_nb",
    "step_nb",
]


@njit(cache=True, _nrt=False)
def settle_funding_nb(acct: np.ndarray, totals: np.ndarray, pos: np.ndarray, i: int,
                      mark: float, rate: float, isolated: bool) -> None:
    """Settle one funding payment on asset ``i``'s position at the open of the bar holding the
    settlement time: ``−size · mark · rate`` USDT (longs pay when ``rate`` > 0) goes to the
    cash (``acct``), the funding totals (``totals``, ``pos``) and, under isolated margin, the
    position's own margin. ``mark`` in USDT, ``rate`` a fraction per settlement."""
    pay = funding_payment_nb(pos[i, P_SIZE], mark, rate)
    acct[A_CASH] += pay
    acct[A_FUNDING] -= pay
    totals[i, TOT_FUNDING] -= pay
    pos[i, P_T_FUNDING] -= pay
    if isolated:
        pos[i, P_MARGIN] += pay


@njit(cache=True, _nrt=False)
def _snapshot_nb(state, t: int) -> None:
    """Record cash, cumulative costs and positions at bar ``t``'s close (they changed)."""
    k = state.counters[C_SNAPS]
    snap = state.snap
    acct = state.acct
    state.snap_bar[k] = t
    snap[k, S_CASH] = acct[A_CASH]
    for j in range(N_COST):
        snap[k, S_COST + j] = acct[A_REALIZED + j]
    for i in range(state.pos.shape[0]):
        snap[k, S_POS + i] = state.pos[i, P_SIZE]
    state.counters[C_SNAPS] = k + 1


@njit(cache=True, _nrt=False, inline="always")
def step_nb(state, t: int, bars, signals, params) -> None:
    """Simulate bar ``t`` for every asset (see the module docstring for the order of events):
    :func:`bar_nb` (open to close), then :func:`close_decision_nb` (the decision at the close
    and the risk check of the close).

    Parameters
    ----------
    state:
        :class:`~quantum_trading.sim.state.SimState`, updated in place. Needs room for 3 fills,
        2 trades and 1 order per asset, one account snapshot and an output row at ``t``
        (:func:`~quantum_trading.sim.state.ensure_capacity`).
    t:
        Bar index, written into records and outputs; steps must come in order.
    bars, signals:
        :class:`~quantum_trading.sim.state.BarArrays` / ``SignalArrays`` (flexible 2-D arrays;
        row ``t``, or row 0 for a length-1 first axis, is read).
    params:
        :class:`~quantum_trading.sim.state.SimParams`.
    """
    equity = bar_nb(state, t, bars, params)
    close_decision_nb(state, t, bars, signals, params, equity)


@njit(cache=True, _nrt=False, inline="always")
def bar_nb(state, t: int, bars, params) -> float:
    """Bar ``t`` from its open to its close, before any decision at the close: funding,
    the orders decided at ``t − 1`` filled at the open (risk-checked), resting orders and
    liquidation, mark to the close, bankruptcy, outputs and snapshot, time stops and trailing
    levels. Returns the equity at the close (USDT).

    The account it leaves is what a decision at ``t``'s close can see; the RL environment
    observes it, then calls :func:`close_decision_nb` with the decision. Room as
    :func:`step_nb`.

    Notes
    -----
    The common case (nothing pending, nothing triggered) runs inline; the helpers that need
    the whole state are only called when an event happens.
    """
    pos = state.pos
    posi = state.posi
    acct = state.acct
    n = pos.shape[0]
    isolated = params.margin_mode == MODE_ISOLATED
    risk_on = params.risk.enabled != 0
    fills_before = state.counters[C_FILLS]
    funded = False
    if state.counters[C_BANKRUPT] == 0:
        # 1) funding on the positions held into the bar
        for i in range(n):
            if pos[i, P_SIZE] == 0.0:
                continue
            rate = flex_nb(bars.funding_rate, t, i)
            if math.isnan(rate) or rate == 0.0:
                continue
            mark = flex_nb(bars.mark, t, i)
            if not (mark > 0.0):
                mark = flex_nb(bars.open, t, i)
            settle_funding_nb(acct, state.asset_totals, pos, i, mark, rate, isolated)
            funded = True
        equity = acct[A_CASH]
        pending = False
        for i in range(n):
            s = pos[i, P_SIZE]
            if s != 0.0:
                equity += s * (flex_nb(bars.open, t, i) - pos[i, P_ENTRY])
            if posi[i, Q_PENDING] != OT_NONE:
                pending = True
        if equity <= 0.0:
            bankruptcy_close_nb(state, params, bars, t, False)
        else:
            # 2) market orders decided at t-1 (risk: observe the open, check every order)
            if risk_on and risk_open_nb(state, params, bars, t, equity):
                pending = True
            if pending:
                fill_pending_nb(state, params, bars, t, equity)
            if risk_on:
                risk_after_fill_nb(state)
            # 3) resting orders and liquidation
            if resting_due_nb(pos, state.work, bars.open, bars.high, bars.low, t, acct[A_CASH],
                               params.tiers, params.n_tiers, isolated):
                resting_orders_nb(state, params, bars, t)
    # 4) close: mark to market, bankruptcy, outputs, time stops, trailing levels
    upnl = 0.0
    mm = 0.0
    for i in range(n):
        c = flex_nb(bars.close, t, i)
        pos[i, P_LAST] = c
        s = pos[i, P_SIZE]
        if s != 0.0:
            upnl += s * (c - pos[i, P_ENTRY])
            mm += maintenance_margin_nb(params.tiers[i], params.n_tiers[i], abs(s) * c)
    equity = acct[A_CASH] + upnl
    if state.counters[C_BANKRUPT] == 0 and equity <= 0.0:
        bankruptcy_close_nb(state, params, bars, t, True)
        equity = acct[A_CASH]
        mm = 0.0
    acct[A_EQUITY] = equity
    state.out_equity[t] = equity
    state.out_margin_ratio[t] = mm / equity if equity > 0.0 else 0.0
    if funded or state.counters[C_FILLS] != fills_before or state.counters[C_SNAPS] == 0:
        _snapshot_nb(state, t)
    if state.counters[C_BANKRUPT] == 0:
        for i in range(n):
            s = pos[i, P_SIZE]
            if s == 0.0:
                continue
            nb = params.time_stop_bars[i]
            if nb > 0 and t - posi[i, Q_ENTRY_BAR] + 1 >= nb:
                posi[i, Q_PENDING] = OT_TIME_STOP
                posi[i, Q_DECISION_BAR] = t
                posi[i, Q_FLAGS] = 0
            if s > 0.0:
                h = flex_nb(bars.high, t, i)
                if h > pos[i, P_BEST]:
                    pos[i, P_BEST] = h
            else:
                lo = flex_nb(bars.low, t, i)
                if lo < pos[i, P_BEST]:
                    pos[i, P_BEST] = lo
    return equity




@njit(cache=True, _nrt=False, inline="always")
def close_decision_nb(state, t: int, bars, signals, params, equity: float) -> None:
    """The end of bar ``t`` after :func:`bar_nb`: the strategy's decision at the close
    (``signals.target`` row ``t`` → pending orders for ``t + 1``'s open, unless bankrupt), then
    the risk check of the close (a drawdown halt replaces the decision with flattening orders)
    and the per-bar risk outputs. ``equity``: what :func:`bar_nb` returned."""
    if state.counters[C_BANKRUPT] == 0:
        if wants_order_nb(signals.target, state.last_target, params.rebalance, t):
            read_targets_nb(state.posi, state.pend, state.last_target, params, signals, t)
    if params.risk.enabled != 0:
        risk_close_nb(state, params, bars, t, equity)
    state.counters[C_NEXT_BAR] = t + 1


@njit(cache=True, _nrt=False)
def simulate_nb(state, bars, signals, params, t_start: int, t_end: int) -> int:
    """Step bars ``t_start .. t_end − 1``; stop early when a buffer is full.

    Returns the next bar to step: ``t_end`` when done, less when the record buffers or the
    per-bar outputs need to grow first (:func:`~quantum_trading.sim.state.ensure_capacity`,
    then call again from there). Identical to calling :func:`step_nb` bar by bar.

    >>> import pandas as pd
    >>> from quantum_trading.domain import Signals
    >>> from quantum_trading.sim import AccountConfig, CostsConfig, new_state, prepare
    >>> idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    >>> px = pd.DataFrame({"open": [1.0, 1, 2], "high": [1.0, 1, 2], "low": [1.0, 1, 2],
    ...                    "close": [1.0, 1, 2]}, index=idx)
    >>> p = prepare(px, Signals(pd.Series([1.0, None, None], index=idx)), instruments=None,
    ...             costs=CostsConfig(half_spread_bps=0, slippage_bps=0, taker_fee_bps=0),
    ...             account=AccountConfig())
    >>> st = new_state(1, 100.0, n_bars=3, n_tiers_max=1)
    >>> simulate_nb(st, p.bars, p.signals, p.params, 0, 3), float(st.out_equity[2])
    (3, 200.0)
    """
    n = state.pos.shape[0]
    t = t_start
    while t < t_end:
        # how many steps surely fit in the buffers (checked per chunk, not per bar)
        room = t_end - t
        room = min(room, (state.fills.shape[0] - state.counters[C_FILLS])
                   // (FILLS_PER_ASSET_STEP * n))
        room = min(room, (state.orders.shape[0] - state.counters[C_ORDERS])
                   // (ORDERS_PER_ASSET_STEP * n))
        room = min(room, (state.trades.shape[0] - state.counters[C_TRADES])
                   // (TRADES_PER_ASSET_STEP * n))
        room = min(room, state.snap.shape[0] - state.counters[C_SNAPS])
        room = min(room, state.out_equity.shape[0] - t)
        if params.risk.enabled != 0:
            room = min(room, (state.risk.decisions.shape[0] - state.risk.ints[RI_N_DECISIONS])
                       // (RISK_PER_ASSET_STEP * n))
            room = min(room, state.risk.out.shape[0] - t)
        if room <= 0:
            return t
        stop = t + room
        while t < stop:
            if (n == 1 and params.risk.enabled == 0 and state.counters[C_BANKRUPT] == 0
                    and state.posi[0, Q_PENDING] == OT_NONE and state.counters[C_SNAPS] > 0):
                t = quiet_bars_nb(state, bars, signals, params, t, stop)
                if t >= stop:
                    break
            step_nb(state, t, bars, signals, params)
            t += 1
    return t_end


@njit(cache=True, _nrt=False)
def simulate_steps_nb(state, bars, signals, params, t_start: int, t_end: int) -> int:
    """:func:`simulate_nb` without the quiet-bar shortcut: :func:`step_nb` on every bar.

    The reference the tests compare :func:`simulate_nb` with (bit for bit); same contract.
    """
    n = state.pos.shape[0]
    for t in range(t_start, t_end):
        if (
            state.fills.shape[0] - state.counters[C_FILLS] < FILLS_PER_ASSET_STEP * n
            or state.orders.shape[0] - state.counters[C_ORDERS] < ORDERS_PER_ASSET_STEP * n
            or state.trades.shape[0] - state.counters[C_TRADES] < TRADES_PER_ASSET_STEP * n
            or state.snap.shape[0] - state.counters[C_SNAPS] < 1
            or state.out_equity.shape[0] <= t
            or (params.risk.enabled != 0
                and (state.risk.decisions.shape[0] - state.risk.ints[RI_N_DECISIONS]
                     < RISK_PER_ASSET_STEP * n or state.risk.out.shape[0] <= t))
        ):
            return t
        step_nb(state, t, bars, signals, params)
    return t_end
