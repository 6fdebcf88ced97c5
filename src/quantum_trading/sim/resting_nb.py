"""Resting exits of the simulator step: stop-loss, trailing stop, take-profit and liquidation
against the bar's range (step 3 of :mod:`~quantum_trading.sim.engine_nb`'s order of events).

:func:`resting_due_nb` is the cheap check run on every bar (inlined): can this bar trigger any
of them? Only then :func:`resting_orders_nb` walks the bar: take-profits the bar opened
through fill at the open; every open position's price moves from the open toward its adverse
extreme along one path λ ∈ [0, 1]; stops (the nearer of stop-loss and trailing level, at the
open when gapped) and the liquidation point λ* are taken in λ order (a tie goes to
liquidation), λ* recomputed after each stop; then take-profits inside the bar fill at their
level. Prices in USDT.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from quantum_trading.sim.accounting_nb import apply_fill_nb
from quantum_trading.sim.costs_nb import flex_nb
from quantum_trading.sim.liquidation_nb import liquidate_cross_nb, liquidate_isolated_nb
from quantum_trading.sim.margin_nb import (
    liquidation_lambda_nb,
    path_margin_nb,
)
from quantum_trading.sim.orders_nb import execute_market_nb
from quantum_trading.sim.records import (
    A_CASH,
    MODE_CROSS,
    OT_STOP_LOSS,
    OT_TAKE_PROFIT,
    OT_TRAILING,
    P_BEST,
    P_MARGIN,
    P_SIZE,
    P_SL,
    P_TP,
    P_TRAIL_DIST,
    P_TRAIL_FRAC,
    W_LAM,
    W_PA,
    W_PO,
    W_STOP,
    W_STYPE,
)

__all__ = ["exit_nb", "resting_due_nb", "resting_orders_nb", "stop_level_nb", "stop_of_nb"]


@njit(cache=True, _nrt=False, inline="always")
def stop_of_nb(s: float, sl: float, trail_frac: float, trail_dist: float, best: float):
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
def stop_level_nb(pos: np.ndarray, i: int, s: float):
    """Effective stop of position ``i``: (level, OT_STOP_LOSS / OT_TRAILING); NaN if none."""
    return stop_of_nb(s, pos[i, P_SL], pos[i, P_TRAIL_FRAC], pos[i, P_TRAIL_DIST],
                       pos[i, P_BEST])


@njit(cache=True, _nrt=False)
def exit_nb(state, params, bars, t: int, i: int, otype: int, ref: float) -> None:
    s = state.pos[i, P_SIZE]
    if otype == OT_TAKE_PROFIT and params.tp_market == 0:
        fee = abs(s) * ref * params.maker_fee[i]
        apply_fill_nb(state, params, t, i, -s, ref, ref, fee, 0.0, 0.0, 0.0, 0.0, otype)
    else:
        execute_market_nb(state, params, bars, t, i, -s, ref, otype)


@njit(cache=True, _nrt=False)
def resting_orders_nb(state, params, bars, t: int) -> None:
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
            exit_nb(state, params, bars, t, i, OT_TAKE_PROFIT, o)
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
        level, stype = stop_level_nb(pos, i, s)
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
                exit_nb(state, params, bars, t, j, int(work[j, W_STYPE]), ref)
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
                exit_nb(state, params, bars, t, i, int(work[i, W_STYPE]), ref)
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
            exit_nb(state, params, bars, t, i, OT_TAKE_PROFIT, tp)


@njit(cache=True, _nrt=False, inline="always")
def resting_due_nb(pos: np.ndarray, work: np.ndarray, opens: np.ndarray, highs: np.ndarray,
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
        level, _ = stop_level_nb(pos, i, s)
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
