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

Outputs: per bar, the equity and margin ratio at the close (``out_equity``,
``out_margin_ratio``); cash, positions and the cumulative costs only change with a fill or a
funding settlement, so they are recorded as an account snapshot at the close of those bars
(``snap_bar`` / ``snap``; :class:`~quantum_trading.sim.result.SimResult` carries them forward).

Quiet bars: with one asset, no risk limits and nothing pending, :func:`simulate_nb` runs the
bars in which nothing can happen (no decision, no funding, no stop / take-profit / liquidation
/ time stop due, equity above 0) in a tight loop (:func:`_quiet_bars_nb`) that does exactly
what :func:`step_nb` does on them — mark to the close, write the outputs, move the trailing
reference — with the position held in registers; every other bar goes through
:func:`step_nb`. :func:`simulate_steps_nb` (``step_nb`` on every bar) is the reference the
tests compare it with, bit for bit.

Compilation: the kernels of the hot path are ``@njit(cache=True, _nrt=False)``. They never
allocate, and without numba's reference counting the state NamedTuples (dozens of arrays) pass
through calls for free; with it every call costs two atomic operations per array. The checks
run on every bar (``_resting_due_nb``, the margin and tier helpers, ``wants_order_nb``) are
inlined (``inline="always"``): a call that passes the state's arrays costs more than the check.
``step_nb`` is inlined into ``simulate_nb``; the one-bar API calls ``simulate_nb`` for a single
bar, so there is one compiled step.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from quantum_trading.sim.accounting_nb import apply_fill_nb
from quantum_trading.sim.costs_nb import flex_nb
from quantum_trading.sim.funding_nb import funding_payment_nb
from quantum_trading.sim.margin_nb import (
    liquidation_lambda_nb,
    maintenance_margin_nb,
    path_margin_nb,
)
from quantum_trading.sim.orders_nb import (
    execute_market_nb,
    fill_pending_nb,
    read_targets_nb,
    wants_order_nb,
)
from quantum_trading.sim.records import (
    A_CASH,
    A_EQUITY,
    A_FUNDING,
    A_INSURANCE,
    A_LIQ_FEE,
    A_REALIZED,
    C_BANKRUPT,
    C_BANKRUPT_BAR,
    C_FILLS,
    C_NEXT_BAR,
    C_ORDERS,
    C_SNAPS,
    C_TRADES,
    FILLS_PER_ASSET_STEP,
    MODE_CROSS,
    MODE_ISOLATED,
    N_COST,
    ORDERS_PER_ASSET_STEP,
    OT_BANKRUPTCY,
    OT_LIQUIDATION,
    OT_NONE,
    OT_STOP_LOSS,
    OT_TAKE_PROFIT,
    OT_TIME_STOP,
    OT_TRAILING,
    P_BEST,
    P_ENTRY,
    P_LAST,
    P_MARGIN,
    P_SIZE,
    P_SL,
    P_T_FUNDING,
    P_TP,
    P_TRAIL_DIST,
    P_TRAIL_FRAC,
    Q_DECISION_BAR,
    Q_ENTRY_BAR,
    Q_FLAGS,
    Q_PENDING,
    REBAL_ON_CHANGE,
    RISK_PER_ASSET_STEP,
    S_CASH,
    S_COST,
    S_POS,
    TRADES_PER_ASSET_STEP,
    W_LAM,
    W_PA,
    W_PO,
    W_STOP,
    W_STYPE,
)
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

_T_FEES = 1
_T_FUNDING = 5
_T_LIQ_FEE = 6
_T_INSURANCE = 7


@njit(cache=True, _nrt=False)
def _set_bankrupt_nb(state, t: int) -> None:
    state.counters[C_BANKRUPT] = 1
    state.counters[C_BANKRUPT_BAR] = t
    for i in range(state.pos.shape[0]):
        state.posi[i, Q_PENDING] = OT_NONE


@njit(cache=True, _nrt=False)
def _cover_negative_cash_nb(state) -> None:
    """Floor cash at 0; the shortfall goes to the insurance fund.

    Per asset it is split by the notional just closed (``work[:, W_STOP]``); without one, by
    what each asset drained from the wallet (fees, funding paid, liquidation fees), else
    evenly.
    """
    cash = state.acct[A_CASH]
    if cash >= 0.0:
        return
    loss = -cash
    state.acct[A_INSURANCE] += loss
    state.acct[A_CASH] = 0.0
    n = state.pos.shape[0]
    tot = state.asset_totals
    total = 0.0
    for i in range(n):
        total += state.work[i, W_STOP]
    if total > 0.0:
        for i in range(n):
            tot[i, _T_INSURANCE] += loss * state.work[i, W_STOP] / total
        return
    for i in range(n):
        total += tot[i, _T_FEES] + max(tot[i, _T_FUNDING], 0.0) + tot[i, _T_LIQ_FEE]
    for i in range(n):
        if total > 0.0:
            w = (tot[i, _T_FEES] + max(tot[i, _T_FUNDING], 0.0) + tot[i, _T_LIQ_FEE]) / total
        else:
            w = 1.0 / n
        tot[i, _T_INSURANCE] += loss * w


@njit(cache=True, _nrt=False)
def bankruptcy_close_nb(state, params, bars, t: int, at_close: bool) -> None:
    """Close every position of bar ``t`` at its open (``at_close``: its close) without costs,
    cover a negative cash balance from the insurance fund (equity floored at 0) and mark the
    account bankrupt; it never trades again.

    Called by :func:`step_nb` when equity at the open (after funding) or at the close is ≤ 0,
    and by the paper exchange at the same two moments. Prices from ``bars`` row ``t`` (USDT).
    """
    pos = state.pos
    for i in range(pos.shape[0]):
        state.work[i, W_STOP] = 0.0
        s = pos[i, P_SIZE]
        if s == 0.0:
            continue
        p = flex_nb(bars.close, t, i) if at_close else flex_nb(bars.open, t, i)
        state.work[i, W_STOP] = abs(s) * p
        apply_fill_nb(state, params, t, i, -s, p, p, 0.0, 0.0, 0.0, 0.0, 0.0, OT_BANKRUPTCY)
    _cover_negative_cash_nb(state)
    _set_bankrupt_nb(state, t)


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
    totals[i, _T_FUNDING] -= pay
    pos[i, P_T_FUNDING] -= pay
    if isolated:
        pos[i, P_MARGIN] += pay


@njit(cache=True, _nrt=False, inline="always")
def _stop_of_nb(s: float, sl: float, trail_frac: float, trail_dist: float, best: float):
    """Effective stop of a position of size ``s``: (level, OT_STOP_LOSS / OT_TRAILING); NaN if
    none. The trailing level is ``best·(1 ∓ trail_frac)`` or ``best ∓ trail_dist``."""
    d = 1.0 if s > 0.0 else -1.0
    tr = np.nan
    if not math.isnan(trail_frac):
        tr = best * (1.0 - d * trail_frac)
    elif not math.isnan(trail_dist):
        tr = best - d * trail_dist
    if math.isnan(tr):
        return sl, OT_STOP_LOSS
    if math.isnan(sl):
        return tr, OT_TRAILING
    # the stop nearer the price (hit first) wins; a tie counts as stop-loss
    if (s > 0.0 and tr > sl) or (s < 0.0 and tr < sl):
        return tr, OT_TRAILING
    return sl, OT_STOP_LOSS


@njit(cache=True, _nrt=False, inline="always")
def _stop_level_nb(pos: np.ndarray, i: int, s: float):
    """Effective stop of position ``i``: (level, OT_STOP_LOSS / OT_TRAILING); NaN if none."""
    return _stop_of_nb(s, pos[i, P_SL], pos[i, P_TRAIL_FRAC], pos[i, P_TRAIL_DIST],
                       pos[i, P_BEST])


@njit(cache=True, _nrt=False)
def _exit_nb(state, params, bars, t: int, i: int, otype: int, ref: float) -> None:
    s = state.pos[i, P_SIZE]
    if otype == OT_TAKE_PROFIT and params.tp_market == 0:
        fee = abs(s) * ref * params.maker_fee[i]
        apply_fill_nb(state, params, t, i, -s, ref, ref, fee, 0.0, 0.0, 0.0, 0.0, otype)
    else:
        execute_market_nb(state, params, bars, t, i, -s, ref, otype)


@njit(cache=True, _nrt=False)
def liquidate_cross_nb(state, params, t: int, lam: float) -> None:
    """Cross margin: liquidate every open position in bar ``t`` at point ``lam`` ∈ [0, 1] of
    its path ``work[:, W_PO] → work[:, W_PA]`` (open → adverse extreme, USDT).

    The liquidation fee (``liquidation_fee_rate`` × notional, split by notional) is capped at
    the equity left; a loss past equity goes to the insurance fund and bankrupts the account.
    ``lam`` is the margin solver's λ*
    (:func:`~quantum_trading.sim.margin_nb.liquidation_lambda_nb`).
    """
    pos = state.pos
    work = state.work
    n = pos.shape[0]
    total = 0.0
    e_after = state.acct[A_CASH]
    for i in range(n):
        s = pos[i, P_SIZE]
        work[i, W_STOP] = 0.0
        if s == 0.0:
            continue
        p = work[i, W_PO] + lam * (work[i, W_PA] - work[i, W_PO])
        work[i, W_LAM] = p  # liquidation price
        work[i, W_STOP] = abs(s) * p  # notional, the fee and insurance weights
        total += abs(s) * p
        e_after += s * (p - pos[i, P_ENTRY])
    fee_total = params.liquidation_fee_rate * total
    fee_capped = fee_total >= e_after
    if fee_capped:
        fee_total = e_after if e_after > 0.0 else 0.0
    for i in range(n):
        s = pos[i, P_SIZE]
        if s == 0.0:
            continue
        p = work[i, W_LAM]
        fee = fee_total * work[i, W_STOP] / total if total > 0.0 else 0.0
        apply_fill_nb(state, params, t, i, -s, p, p, 0.0, 0.0, 0.0, 0.0, fee, OT_LIQUIDATION)
    if fee_capped:
        rest = state.acct[A_CASH]  # ~0: rounding dust of the split fee, or a loss past equity
        if rest > 0.0:
            state.acct[A_LIQ_FEE] += rest
            for i in range(n):
                if total > 0.0:
                    state.asset_totals[i, _T_LIQ_FEE] += rest * work[i, W_STOP] / total
            state.acct[A_CASH] = 0.0
        _cover_negative_cash_nb(state)
        _set_bankrupt_nb(state, t)


@njit(cache=True, _nrt=False)
def liquidate_isolated_nb(state, params, t: int, i: int, lam: float) -> None:
    """Isolated margin: liquidate asset ``i``'s position alone in bar ``t`` at point ``lam`` of
    its path ``work[i, W_PO] → work[i, W_PA]`` (USDT), against its own margin; the fee is
    capped at the margin left and a loss past it is covered by the insurance fund."""
    pos = state.pos
    work = state.work
    s = pos[i, P_SIZE]
    p = work[i, W_PO] + lam * (work[i, W_PA] - work[i, W_PO])
    notional = abs(s) * p
    remaining = pos[i, P_MARGIN] + s * (p - pos[i, P_ENTRY])
    fee = params.liquidation_fee_rate * notional
    if fee > remaining:
        fee = remaining if remaining > 0.0 else 0.0
    apply_fill_nb(state, params, t, i, -s, p, p, 0.0, 0.0, 0.0, 0.0, fee, OT_LIQUIDATION)
    if remaining < 0.0:  # bar opened beyond the bankruptcy price: loss past the margin
        state.acct[A_CASH] += -remaining
        state.acct[A_INSURANCE] += -remaining
        state.asset_totals[i, _T_INSURANCE] += -remaining


@njit(cache=True, _nrt=False)
def _resting_nb(state, params, bars, t: int) -> None:
    pos = state.pos
    work = state.work
    n = pos.shape[0]
    # take-profits the bar opened through: filled at the open (a limit gets the better price)
    for i in range(n):
        s = pos[i, P_SIZE]
        if s == 0.0:
            continue
        tp = pos[i, P_TP]
        o = flex_nb(bars.open, t, i)
        if not math.isnan(tp) and ((s > 0.0 and o >= tp) or (s < 0.0 and o <= tp)):
            _exit_nb(state, params, bars, t, i, OT_TAKE_PROFIT, o)
    # the adverse path: start, end and where each stop is hit
    any_open = False
    for i in range(n):
        s = pos[i, P_SIZE]
        work[i, W_LAM] = np.inf
        if s == 0.0:
            continue
        any_open = True
        o = flex_nb(bars.open, t, i)
        a = flex_nb(bars.low, t, i) if s > 0.0 else flex_nb(bars.high, t, i)
        work[i, W_PO] = o
        work[i, W_PA] = a
        level, stype = _stop_level_nb(pos, i, s)
        work[i, W_STOP] = level
        work[i, W_STYPE] = stype
        if math.isnan(level):
            continue
        if s > 0.0:
            if o <= level:
                work[i, W_LAM] = 0.0
            elif a <= level:
                work[i, W_LAM] = (o - level) / (o - a)
        else:
            if o >= level:
                work[i, W_LAM] = 0.0
            elif a >= level:
                work[i, W_LAM] = (level - o) / (a - o)
    if not any_open:
        return
    if params.margin_mode == MODE_CROSS:
        lam_lo = 0.0
        while True:
            j = -1
            best = np.inf
            for i in range(n):
                if pos[i, P_SIZE] != 0.0 and work[i, W_LAM] < best:
                    best = work[i, W_LAM]
                    j = i
            lam_star = liquidation_lambda_nb(lam_lo, state.acct[A_CASH], pos, work, params.tiers,
                                             params.n_tiers, -1, state.scratch)
            if j >= 0 and best < lam_star:
                ref = work[j, W_PO] if best == 0.0 else work[j, W_STOP]
                _exit_nb(state, params, bars, t, j, int(work[j, W_STYPE]), ref)
                work[j, W_LAM] = np.inf
                lam_lo = best
                continue
            if lam_star <= 1.0:
                liquidate_cross_nb(state, params, t, lam_star)
            break
    else:
        for i in range(n):
            if pos[i, P_SIZE] == 0.0:
                continue
            lam_star = liquidation_lambda_nb(0.0, pos[i, P_MARGIN], pos, work, params.tiers,
                                             params.n_tiers, i, state.scratch)
            if work[i, W_LAM] < lam_star:
                ref = work[i, W_PO] if work[i, W_LAM] == 0.0 else work[i, W_STOP]
                _exit_nb(state, params, bars, t, i, int(work[i, W_STYPE]), ref)
            elif lam_star <= 1.0:
                liquidate_isolated_nb(state, params, t, i, lam_star)
    # take-profits inside the bar (after the adverse path: stop first when both are inside)
    for i in range(n):
        s = pos[i, P_SIZE]
        if s == 0.0:
            continue
        tp = pos[i, P_TP]
        if math.isnan(tp):
            continue
        if (s > 0.0 and flex_nb(bars.high, t, i) >= tp) or (s < 0.0 and flex_nb(bars.low, t, i) <= tp):
            _exit_nb(state, params, bars, t, i, OT_TAKE_PROFIT, tp)


@njit(cache=True, _nrt=False, inline="always")
def _resting_due_nb(pos: np.ndarray, work: np.ndarray, opens: np.ndarray, highs: np.ndarray,
                    lows: np.ndarray, t: int, cash: float, tiers: np.ndarray,
                    n_tiers: np.ndarray, isolated: bool) -> bool:
    """Cheap check whether this bar can trigger a stop, take-profit or liquidation.

    Also fills the path start/end (``W_PO``, ``W_PA``) of every open position.
    """
    due = False
    for i in range(pos.shape[0]):
        s = pos[i, P_SIZE]
        if s == 0.0:
            continue
        o = flex_nb(opens, t, i)
        hi = flex_nb(highs, t, i)
        lo = flex_nb(lows, t, i)
        work[i, W_PO] = o
        work[i, W_PA] = lo if s > 0.0 else hi
        level, _ = _stop_level_nb(pos, i, s)
        tp = pos[i, P_TP]
        if s > 0.0:
            if lo <= level or hi >= tp:
                due = True
        elif hi >= level or lo <= tp:
            due = True
        if isolated and not due:
            if path_margin_nb(1.0, pos[i, P_MARGIN], pos, work, tiers, n_tiers, i) <= 0.0:
                due = True
    if not due and not isolated:
        due = path_margin_nb(1.0, cash, pos, work, tiers, n_tiers, -1) <= 0.0
    return due


@njit(cache=True, _nrt=False, inline="always")
def _quiet_bars_nb(state, bars, signals, params, t: int, t_stop: int) -> int:
    """One asset, no risk limits, nothing pending: step bars ``t, t + 1, …`` while nothing
    happens in them, and return the first bar (``< t_stop``) that needs :func:`step_nb`.

    A bar is quiet when no funding is settled on a position, equity at the open and at the
    close stays above 0, no stop, take-profit or liquidation is due (the same tests as
    :func:`_resting_due_nb`) and no time stop falls due. For such a bar :func:`step_nb` only
    marks the position to the close, writes the per-bar outputs, moves the trailing reference
    and reads the decision; this loop does exactly that, with the same arithmetic in the same
    order and the position in registers (bit-identical: ``tests/sim`` compares it with
    :func:`simulate_steps_nb`), and stops after a bar whose decision makes an order. Any other
    bar returns to the full step before it is touched.
    """
    pos = state.pos
    acct = state.acct
    s = pos[0, P_SIZE]
    e = pos[0, P_ENTRY]
    cash = acct[A_CASH]
    margin = pos[0, P_MARGIN]
    sl = pos[0, P_SL]
    tp = pos[0, P_TP]
    trail_frac = pos[0, P_TRAIL_FRAC]
    trail_dist = pos[0, P_TRAIL_DIST]
    best = pos[0, P_BEST]
    isolated = params.margin_mode == MODE_ISOLATED
    tiers = params.tiers[0]
    n_tiers = params.n_tiers[0]
    time_stop = params.time_stop_bars[0]
    entry_bar = state.posi[0, Q_ENTRY_BAR]
    last = state.last_target[0]
    on_change = params.rebalance == REBAL_ON_CHANGE
    out_equity = state.out_equity
    out_mr = state.out_margin_ratio
    u = t
    c = 0.0
    equity = 0.0
    decided = False
    while u < t_stop:
        raw = flex_nb(signals.target, u, 0)
        wants_order = not math.isnan(raw) and not (on_change and raw == last)
        hi = 0.0
        lo = 0.0
        if s != 0.0:
            rate = flex_nb(bars.funding_rate, u, 0)
            if not (math.isnan(rate) or rate == 0.0):
                break  # funding
            o = flex_nb(bars.open, u, 0)
            eq_open = cash
            eq_open += s * (o - e)
            if eq_open <= 0.0:
                break  # bankrupt at the open
            hi = flex_nb(bars.high, u, 0)
            lo = flex_nb(bars.low, u, 0)
            level, _ = _stop_of_nb(s, sl, trail_frac, trail_dist, best)
            if s > 0.0:
                if lo <= level or hi >= tp:
                    break  # stop or take-profit
                a = lo
            else:
                if hi >= level or lo <= tp:
                    break
                a = hi
            p = o + 1.0 * (a - o)  # path_margin_nb at λ = 1
            f = margin if isolated else cash
            f += s * (p - e)
            f -= maintenance_margin_nb(tiers, n_tiers, abs(s) * p)
            if f <= 0.0:
                break  # liquidation
            if time_stop > 0 and u - entry_bar + 1 >= time_stop:
                break  # time stop at this close
        elif cash <= 0.0:
            break  # bankrupt at the open
        c = flex_nb(bars.close, u, 0)
        upnl = 0.0
        mm = 0.0
        if s != 0.0:
            upnl += s * (c - e)
            mm += maintenance_margin_nb(tiers, n_tiers, abs(s) * c)
        eq_close = cash + upnl
        if eq_close <= 0.0:
            break  # bankrupt at the close
        equity = eq_close
        out_equity[u] = equity
        out_mr[u] = mm / equity
        if s > 0.0:
            if hi > best:
                best = hi
        elif s < 0.0:
            if lo < best:
                best = lo
        u += 1
        if wants_order:
            decided = True
            break  # this close's decision makes an order: the next open needs the full step
    if u > t:
        pos[0, P_LAST] = c
        pos[0, P_BEST] = best
        acct[A_EQUITY] = equity
        state.counters[C_NEXT_BAR] = u
        if decided:
            read_targets_nb(state.posi, state.pend, state.last_target, params, signals, u - 1)
    return u


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
            if _resting_due_nb(pos, state.work, bars.open, bars.high, bars.low, t, acct[A_CASH],
                               params.tiers, params.n_tiers, isolated):
                _resting_nb(state, params, bars, t)
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
                t = _quiet_bars_nb(state, bars, signals, params, t, stop)
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
