"""The simulator's quiet-bar loop (:func:`quiet_bars_nb`), used by
:func:`~quantum_trading.sim.engine_nb.simulate_nb` for the bars in which nothing can happen.
"""

from __future__ import annotations

import math

from numba import njit

from quantum_trading.sim.costs_nb import flex_nb
from quantum_trading.sim.margin_nb import maintenance_margin_nb
from quantum_trading.sim.orders_nb import read_targets_nb
from quantum_trading.sim.records import (
    A_CASH,
    A_EQUITY,
    C_NEXT_BAR,
    MODE_ISOLATED,
    P_BEST,
    P_ENTRY,
    P_LAST,
    P_MARGIN,
    P_SIZE,
    P_SL,
    P_TP,
    P_TRAIL_DIST,
    P_TRAIL_FRAC,
    Q_ENTRY_BAR,
    REBAL_ON_CHANGE,
)
from quantum_trading.sim.resting_nb import stop_of_nb

__all__ = ["quiet_bars_nb"]


@njit(cache=True, _nrt=False, inline="always")
def quiet_bars_nb(state, bars, signals, params, t: int, t_stop: int) -> int:
    """One asset, no risk limits, nothing pending: step bars ``t, t + 1, …`` while nothing
    happens in them, and return the first bar (``< t_stop``) that needs the full step
    (:func:`~quantum_trading.sim.engine_nb.step_nb`).

    A bar is quiet when no funding is settled on a position, equity at the open and at the
    close stays above 0, no stop, take-profit or liquidation is due (the same tests as
    :func:`~quantum_trading.sim.resting_nb.resting_due_nb`) and no time stop falls due. For
    such a bar the full step only marks the position to the close, writes the per-bar
    outputs, moves the trailing reference and reads the decision; this loop does exactly
    that, with the same arithmetic in the same order and the position in registers
    (bit-identical: ``tests/sim`` compares it with
    :func:`~quantum_trading.sim.engine_nb.simulate_steps_nb`), and stops after a bar whose
    decision makes an order. Any other bar returns to the full step before it is touched.
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
            level, _ = stop_of_nb(s, sl, trail_frac, trail_dist, best)
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
