"""Numba kernels of market orders: decisions at a close, sizing and fills at the next open.

Timing: :func:`read_targets_nb` runs at bar t's close and turns ``target[t]`` into a pending
order; :func:`fill_pending_nb` runs at bar t+1's open and fills it.

Sizing at the fill: desired units ``u = target · equity_open / p`` with ``p`` the open (or,
with ``size_with_costs``, the cost-adjusted fill price times ``1 + taker fee``, as
backtesting.py and vectorbt size cash-limited orders), capped at the tier notional allowed
by the leverage, then rounded toward zero to the lot size. The order is ``u − position``
(exactly ``−position`` when ``u`` is 0). Orders that add exposure need ``notional ≥
min_notional`` (reduce-only orders are exempt) and available margin: reductions fill
first, then all exposure-adding orders are scaled down together so that the initial margin
``Σ |size|·open / leverage`` stays within equity.

Reversals (a target of the opposite sign): with ``reversal_sizing="net"`` one order and one
fill as above. With ``"after_close"`` (backtesting.py's broker) the new side is sized as an
entry from flat from the equity left after the closing leg (:func:`_equity_after_close_nb`),
and the order fills as two fills, the close then the new side; with ``size_with_costs`` new
positions use backtesting.py's arithmetic, ``floor(E·|f|·(1 − ε) / (p_fill + fee per unit))``
lots.

Risk checks (only when ``params.risk`` is enabled; :mod:`~quantum_trading.sim.risk_nb`): every
market order that would be sent (not a no-change, not skipped by the ``every_bar`` deadband or
the minimum notional) passes :func:`~quantum_trading.sim.risk_nb.risk_check_nb` — orders that
reduce exposure first (always approved), then those that add exposure, in asset order, each
seeing the positions the orders before it leave. A rejected order makes no order record
(its risk decision is recorded); a resized one fills the approved size (the order record keeps
the requested size), then the minimum-notional and margin caps apply as usual. Time stops are
not checked.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from numba import njit

from quantum_trading.sim.accounting_nb import apply_fill_nb, write_order_nb
from quantum_trading.sim.costs_nb import flex_nb, impact_frac_nb
from quantum_trading.sim.lots_nb import round_lot_nb, trunc_lot_nb
from quantum_trading.sim.records import (
    A_CASH,
    CAP_LEVERAGE,
    CAP_MARGIN,
    CAP_SHORT,
    CAP_TIER,
    D_SL_DIST,
    D_SL_FRAC,
    D_SL_PRICE,
    D_TARGET,
    D_TP_DIST,
    D_TP_FRAC,
    D_TP_PRICE,
    D_TRAIL_DIST,
    D_TRAIL_FRAC,
    OT_MARKET,
    OT_NONE,
    OT_TIME_STOP,
    P_ENTRY,
    P_SIZE,
    Q_DECISION_BAR,
    Q_FLAGS,
    Q_PENDING,
    REBAL_EVERY_BAR,
    REBAL_ON_CHANGE,
    REVERSAL_AFTER_CLOSE,
    ST_FILLED,
    ST_MARGIN,
    ST_MIN_NOTIONAL,
    ST_NO_CHANGE,
    W_CLASS,
    W_FLAGS,
    W_Q,
    W_REQ,
    W_TYPE,
    W_UNITS,
)
from quantum_trading.sim.risk_nb import risk_check_nb

__all__ = [
    "execute_market_nb",
    "fill_pending_nb",
    "read_targets_nb",
    "round_lot_nb",
    "trunc_lot_nb",
    "wants_order_nb",
]

_MARGIN_TOL = 1e-9  # relative tolerance of the available-margin check
_DUST = 1e-9  # orders smaller than this fraction of the position are no change
_BT_SIZE = 1.0 - sys.float_info.epsilon  # backtesting.py's default order size (all of the margin)


@njit(cache=True, _nrt=False)
def execute_market_nb(state, params, bars, t: int, i: int, q: float, ref: float, otype: int) -> float:
    """Fill ``q`` units (signed) of asset ``i`` as a market order at reference price ``ref``.

    Costs: half-spread, slippage and impact move the price against the order; the taker fee
    is charged on the fill price. Returns the fill price.
    """
    a = abs(q)
    notional = a * ref
    imp = impact_frac_nb(notional, flex_nb(bars.sigma, t, i), flex_nb(bars.volume_usd, t, i),
                         params.impact_k[i], params.max_impact_frac)
    hs = params.half_spread[i]
    sl = params.slippage[i]
    side = 1.0 if q > 0.0 else -1.0
    price = ref * (1.0 + side * (hs + sl + imp))
    fee = a * price * params.taker_fee[i]
    apply_fill_nb(state, params, t, i, q, price, ref, fee, notional * hs, notional * sl,
                  notional * imp, 0.0, otype)
    return price


@njit(cache=True, _nrt=False, inline="always")
def _is_reduce_nb(u: float, cur: float) -> bool:
    return u == 0.0 or (cur != 0.0 and (u > 0.0) == (cur > 0.0) and abs(u) < abs(cur))


@njit(cache=True, _nrt=False)
def _equity_after_close_nb(state, params, bars, t: int, i: int, equity: float, cur: float) -> float:
    """Equity left once asset ``i``'s position is closed at this open (``reversal_sizing=
    "after_close"``): its closing fill booked exactly as :func:`execute_market_nb` and
    :func:`~quantum_trading.sim.accounting_nb.apply_fill_nb` will book it (fill price with
    spread, slippage and impact; taker fee), plus the other assets' unrealised PnL at the open.
    ``equity`` (the equity at the open) when flat."""
    if cur == 0.0:
        return equity
    p = flex_nb(bars.open, t, i)
    a = abs(cur)
    side = -1.0 if cur > 0.0 else 1.0
    imp = impact_frac_nb(a * p, flex_nb(bars.sigma, t, i), flex_nb(bars.volume_usd, t, i),
                         params.impact_k[i], params.max_impact_frac)
    price = p * (1.0 + side * (params.half_spread[i] + params.slippage[i] + imp))
    fee = a * price * params.taker_fee[i]
    realized = a * (price - state.pos[i, P_ENTRY]) * (1.0 if cur > 0.0 else -1.0)
    eq = state.acct[A_CASH] + (realized - fee - 0.0)
    pos = state.pos
    for j in range(pos.shape[0]):
        s = pos[j, P_SIZE]
        if j != i and s != 0.0:
            eq += s * (flex_nb(bars.open, t, j) - pos[j, P_ENTRY])
    return eq


@njit(cache=True, _nrt=False, inline="always")
def _desired_units_nb(state, params, bars, t: int, i: int, f: float, equity: float, cur: float):
    p = flex_nb(bars.open, t, i)
    flags = 0
    if f == 0.0:
        return 0.0, flags
    lot = params.lot_size[i]
    if params.reversal_sizing == REVERSAL_AFTER_CLOSE and (cur == 0.0 or (f > 0.0) != (cur > 0.0)):
        # a new position (from flat, or the far side of a reversal after its closing leg):
        # backtesting.py's broker sizes it from the equity left after the close
        eq = _equity_after_close_nb(state, params, bars, t, i, equity, cur)
        if params.size_with_costs != 0:
            side = 1.0 if f > 0.0 else -1.0
            imp = impact_frac_nb(abs(f * eq / p) * p, flex_nb(bars.sigma, t, i),
                                 flex_nb(bars.volume_usd, t, i), params.impact_k[i],
                                 params.max_impact_frac)
            pf = p * (1.0 + side * (params.half_spread[i] + params.slippage[i] + imp))
            # its arithmetic: int(margin × size // (price + commission(size, price) / size))
            size = abs(f) * _BT_SIZE
            per_unit = pf + (size * pf * params.taker_fee[i]) / size
            x = eq * size
            if not (x > 0.0):
                return 0.0, flags
            units = (x // (per_unit * lot)) * lot if lot > 0.0 else x / per_unit
            u = units if f > 0.0 else -units
            cap = params.max_notional[i]
            if abs(u) * p > cap:
                u = trunc_lot_nb(cap / p if u > 0.0 else -cap / p, lot)
                flags |= CAP_TIER
            return u, flags
        equity = eq
        cur = 0.0
    ref = p
    if params.size_with_costs != 0:
        d0 = f * equity / p - cur
        side = 1.0 if d0 > 0.0 else -1.0
        if d0 == 0.0:
            side = 1.0 if f > 0.0 else -1.0
        imp = impact_frac_nb(abs(d0) * p, flex_nb(bars.sigma, t, i), flex_nb(bars.volume_usd, t, i),
                             params.impact_k[i], params.max_impact_frac)
        pf = p * (1.0 + side * (params.half_spread[i] + params.slippage[i] + imp))
        ref = pf * (1.0 + params.taker_fee[i])
    u = f * equity / ref
    cap = params.max_notional[i]
    if abs(u) * p > cap:
        u = cap / p if u > 0.0 else -cap / p
        flags |= CAP_TIER
    return trunc_lot_nb(u, lot), flags


@njit(cache=True, _nrt=False)
def _risk_check_adds_nb(state, params, bars, t: int, equity: float) -> int:
    """Risk-check the orders that add exposure (``W_CLASS == 2``) in asset order; apply
    rejections and resizes to the work rows. Returns how many still add exposure."""
    pos = state.pos
    work = state.work
    n_inc = 0
    for i in range(pos.shape[0]):
        if work[i, W_CLASS] != 2.0:
            continue
        q = work[i, W_REQ]
        qa = risk_check_nb(state, params, t, i, q, equity)
        if qa == q:
            n_inc += 1
            continue
        if qa == 0.0:
            work[i, W_CLASS] = 0.0  # rejected: no order is sent (the decision is recorded)
            continue
        cur = pos[i, P_SIZE]
        ua = 0.0 if qa == -cur else cur + qa
        work[i, W_UNITS] = ua
        work[i, W_Q] = qa
        if _is_reduce_nb(ua, cur):
            work[i, W_CLASS] = 1.0  # a flip cut down to a close
        elif abs(qa) * flex_nb(bars.open, t, i) < params.min_notional[i]:
            work[i, W_CLASS] = 0.0
            write_order_nb(state, t, state.posi[i, Q_DECISION_BAR], i, int(work[i, W_TYPE]),
                           ST_MIN_NOTIONAL, int(work[i, W_FLAGS]), state.pend[i, D_TARGET],
                           equity, q, 0.0, np.nan)
        else:
            n_inc += 1
    return n_inc


@njit(cache=True, _nrt=False)
def fill_pending_nb(state, params, bars, t: int, equity: float) -> None:
    """Fill the orders decided at bar ``t − 1``'s close at bar ``t``'s open.

    ``equity`` is the equity marked at the open (after funding). See the module docstring
    for sizing, minimum notional and the margin cap.
    """
    pos = state.pos
    posi = state.posi
    work = state.work
    n = pos.shape[0]
    n_inc = 0
    risk_on = params.risk.enabled != 0
    for i in range(n):
        work[i, W_CLASS] = 0.0
        ptype = posi[i, Q_PENDING]
        if ptype == OT_NONE:
            continue
        posi[i, Q_PENDING] = OT_NONE
        p = flex_nb(bars.open, t, i)
        cur = pos[i, P_SIZE]
        dec = posi[i, Q_DECISION_BAR]
        f = state.pend[i, D_TARGET]
        flags = posi[i, Q_FLAGS]
        if ptype == OT_TIME_STOP:
            if cur == 0.0:
                continue
            u = 0.0
        else:
            u, more = _desired_units_nb(state, params, bars, t, i, f, equity, cur)
            flags |= more
        delta = -cur if u == 0.0 else round_lot_nb(u - cur, params.lot_size[i])
        if abs(delta) <= _DUST * abs(cur):
            delta = 0.0  # float dust of re-targeting an unchanged position (lot size 0)
        if params.rebalance == REBAL_EVERY_BAR and ptype == OT_MARKET:
            if delta == 0.0:
                continue
            if u != 0.0 and abs(delta) * p < params.min_rebalance_frac * equity:
                continue
        if delta == 0.0:
            write_order_nb(state, t, dec, i, ptype, ST_NO_CHANGE, flags, f, equity, 0.0, 0.0, np.nan)
            continue
        reduce = _is_reduce_nb(u, cur)
        q_exec = delta
        if reduce and risk_on and ptype == OT_MARKET:
            q_exec = risk_check_nb(state, params, t, i, delta, equity)  # approved: reduces risk
            if q_exec == 0.0:
                continue
        if not reduce and abs(delta) * p < params.min_notional[i]:
            write_order_nb(state, t, dec, i, ptype, ST_MIN_NOTIONAL, flags, f, equity, delta, 0.0,
                           np.nan)
            continue
        work[i, W_UNITS] = u
        work[i, W_REQ] = delta
        work[i, W_Q] = q_exec
        work[i, W_FLAGS] = flags
        work[i, W_TYPE] = ptype
        if reduce:
            work[i, W_CLASS] = 1.0
        else:
            work[i, W_CLASS] = 2.0
            n_inc += 1
    if risk_on and n_inc > 0:
        n_inc = _risk_check_adds_nb(state, params, bars, t, equity)
    # 1) orders that reduce exposure
    for i in range(n):
        if work[i, W_CLASS] != 1.0:
            continue
        q = work[i, W_Q]
        price = execute_market_nb(state, params, bars, t, i, q, flex_nb(bars.open, t, i),
                                  int(work[i, W_TYPE]))
        write_order_nb(state, t, posi[i, Q_DECISION_BAR], i, int(work[i, W_TYPE]), ST_FILLED,
                       int(work[i, W_FLAGS]), state.pend[i, D_TARGET], equity, work[i, W_REQ], q,
                       price)
    if n_inc == 0:
        return
    # 2) orders that add exposure, scaled together to the available margin
    eq2 = state.acct[A_CASH]
    used = 0.0
    req = 0.0
    for i in range(n):
        s = pos[i, P_SIZE]
        p = flex_nb(bars.open, t, i)
        if s != 0.0:
            eq2 += s * (p - pos[i, P_ENTRY])
        lev = params.leverage[i]
        if work[i, W_CLASS] == 2.0:
            u = work[i, W_UNITS]
            kept = abs(s) if (s != 0.0 and (s > 0.0) == (u > 0.0)) else 0.0
            used += kept * p / lev
            req += (abs(u) - kept) * p / lev
        elif s != 0.0:
            used += abs(s) * p / lev
    avail = eq2 - used
    capped = req > 0.0 and (avail <= 0.0 or req > avail * (1.0 + _MARGIN_TOL))
    scale = 1.0
    if capped:
        scale = avail / req if avail > 0.0 else 0.0
    for i in range(n):
        if work[i, W_CLASS] != 2.0:
            continue
        s = pos[i, P_SIZE]
        p = flex_nb(bars.open, t, i)
        u = work[i, W_UNITS]
        flags = int(work[i, W_FLAGS])
        ptype = int(work[i, W_TYPE])
        dec = posi[i, Q_DECISION_BAR]
        f = state.pend[i, D_TARGET]
        q = work[i, W_Q]
        if capped:
            lot = params.lot_size[i]
            kept = abs(s) if (s != 0.0 and (s > 0.0) == (u > 0.0)) else 0.0
            na = trunc_lot_nb(kept + scale * (abs(u) - kept), lot)
            u = na if u > 0.0 else -na
            flags |= CAP_MARGIN
            q = -s if u == 0.0 else round_lot_nb(u - s, lot)
            if q == 0.0:
                write_order_nb(state, t, dec, i, ptype, ST_MARGIN, flags, f, equity,
                               work[i, W_REQ], 0.0, np.nan)
                continue
            if not _is_reduce_nb(u, s) and abs(q) * p < params.min_notional[i]:
                write_order_nb(state, t, dec, i, ptype, ST_MIN_NOTIONAL, flags, f, equity,
                               work[i, W_REQ], 0.0, np.nan)
                continue
        if (params.reversal_sizing == REVERSAL_AFTER_CLOSE and s != 0.0 and u != 0.0
                and (u > 0.0) != (s > 0.0)):
            # a reversal in two fills, as backtesting.py: close, then open the new side
            p_close = execute_market_nb(state, params, bars, t, i, -s, p, ptype)
            price = execute_market_nb(state, params, bars, t, i, u, p, ptype)
            if p_close != price:  # impact differs by leg: the order's average price
                price = (abs(s) * p_close + abs(u) * price) / (abs(s) + abs(u))
        else:
            price = execute_market_nb(state, params, bars, t, i, q, p, ptype)
        write_order_nb(state, t, dec, i, ptype, ST_FILLED, flags, f, equity, work[i, W_REQ], q,
                       price)


@njit(cache=True, _nrt=False, inline="always")
def wants_order_nb(target: np.ndarray, last_target: np.ndarray, rebalance: int, t: int) -> bool:
    """Whether :func:`read_targets_nb` would create any order at bar ``t`` (cheap check)."""
    for i in range(last_target.shape[0]):
        raw = flex_nb(target, t, i)
        if math.isnan(raw):
            continue
        if rebalance == REBAL_ON_CHANGE and raw == last_target[i]:
            continue
        return True
    return False


@njit(cache=True, _nrt=False)
def read_targets_nb(posi: np.ndarray, pend: np.ndarray, last_target: np.ndarray, params, sig,
                    t: int) -> None:
    """Turn ``target[t]`` (decided at bar t's close) into pending orders for bar t+1's open.

    ``on_change``: only a target different from the last non-NaN one makes an order
    (edge-triggered). ``every_bar``: every non-NaN target does (the deadband is applied at the
    fill). NaN never does. A pending time-stop exit takes precedence over a new target (which
    then counts as seen). Caps: short targets become 0 in a long-only account; ``|target|``
    is capped at the asset's leverage.
    """
    for i in range(last_target.shape[0]):
        raw = flex_nb(sig.target, t, i)
        if math.isnan(raw):
            continue
        if params.rebalance == REBAL_ON_CHANGE:
            last = last_target[i]
            if not math.isnan(last) and raw == last:
                continue
        last_target[i] = raw
        if posi[i, Q_PENDING] == OT_TIME_STOP:
            continue
        f = raw
        flags = 0
        if params.allow_short == 0 and f < 0.0:
            f = 0.0
            flags |= CAP_SHORT
        lev = params.leverage[i]
        if f > lev:
            f = lev
            flags |= CAP_LEVERAGE
        elif f < -lev:
            f = -lev
            flags |= CAP_LEVERAGE
        posi[i, Q_PENDING] = OT_MARKET
        posi[i, Q_DECISION_BAR] = t
        posi[i, Q_FLAGS] = flags
        pend[i, D_TARGET] = f
        pend[i, D_SL_FRAC] = flex_nb(sig.sl_frac, t, i)
        pend[i, D_SL_DIST] = flex_nb(sig.sl_dist, t, i)
        pend[i, D_SL_PRICE] = flex_nb(sig.sl_price, t, i)
        pend[i, D_TP_FRAC] = flex_nb(sig.tp_frac, t, i)
        pend[i, D_TP_DIST] = flex_nb(sig.tp_dist, t, i)
        pend[i, D_TP_PRICE] = flex_nb(sig.tp_price, t, i)
        pend[i, D_TRAIL_FRAC] = flex_nb(sig.trail_frac, t, i)
        pend[i, D_TRAIL_DIST] = flex_nb(sig.trail_dist, t, i)
