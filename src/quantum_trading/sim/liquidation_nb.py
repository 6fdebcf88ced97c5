"""Bankruptcy and liquidation: how the simulator step (:mod:`~quantum_trading.sim.engine_nb`)
and the paper exchange close positions when the margin runs out.

* :func:`bankruptcy_close_nb`: equity at the open (after funding) or at the close ≤ 0 —
  everything closed at that price without costs, a negative cash balance covered by the
  insurance fund, the account never trades again.
* :func:`liquidate_cross_nb` / :func:`liquidate_isolated_nb`: the liquidation point λ* of the
  bar's adverse path (:func:`~quantum_trading.sim.margin_nb.liquidation_lambda_nb`) reached —
  every position (cross) or the one position (isolated) closed there with the liquidation fee,
  capped at what is left; a loss past it goes to the insurance fund.

Prices in USDT; ``t`` is the bar; ``state`` / ``params`` / ``bars`` as for
:func:`~quantum_trading.sim.engine_nb.step_nb`.
"""

from __future__ import annotations

from numba import njit

from quantum_trading.sim.accounting_nb import apply_fill_nb
from quantum_trading.sim.costs_nb import flex_nb
from quantum_trading.sim.records import (
    A_CASH,
    A_INSURANCE,
    A_LIQ_FEE,
    C_BANKRUPT,
    C_BANKRUPT_BAR,
    OT_BANKRUPTCY,
    OT_LIQUIDATION,
    OT_NONE,
    P_ENTRY,
    P_MARGIN,
    P_SIZE,
    Q_PENDING,
    TOT_FEES,
    TOT_FUNDING,
    TOT_INSURANCE,
    TOT_LIQ_FEE,
    W_LAM,
    W_PA,
    W_PO,
    W_STOP,
)

__all__ = [
    "bankruptcy_close_nb",
    "cover_negative_cash_nb",
    "liquidate_cross_nb",
    "liquidate_isolated_nb",
    "set_bankrupt_nb",
]


@njit(cache=True, _nrt=False)
def set_bankrupt_nb(state, t: int) -> None:
    state.counters[C_BANKRUPT] = 1
    state.counters[C_BANKRUPT_BAR] = t
    for i in range(state.pos.shape[0]):
        state.posi[i, Q_PENDING] = OT_NONE


@njit(cache=True, _nrt=False)
def cover_negative_cash_nb(state) -> None:
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
            tot[i, TOT_INSURANCE] += loss * state.work[i, W_STOP] / total
        return
    for i in range(n):
        total += tot[i, TOT_FEES] + max(tot[i, TOT_FUNDING], 0.0) + tot[i, TOT_LIQ_FEE]
    for i in range(n):
        if total > 0.0:
            w = (tot[i, TOT_FEES] + max(tot[i, TOT_FUNDING], 0.0) + tot[i, TOT_LIQ_FEE]) / total
        else:
            w = 1.0 / n
        tot[i, TOT_INSURANCE] += loss * w


@njit(cache=True, _nrt=False)
def bankruptcy_close_nb(state, params, bars, t: int, at_close: bool) -> None:
    """Close every position of bar ``t`` at its open (``at_close``: its close) without costs,
    cover a negative cash balance from the insurance fund (equity floored at 0) and mark the
    account bankrupt; it never trades again.

    Called by :func:`~quantum_trading.sim.engine_nb.step_nb` when equity at the open (after
    funding) or at the close is ≤ 0, and by the paper exchange at the same two moments. Prices from ``bars`` row ``t`` (USDT).
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
    cover_negative_cash_nb(state)
    set_bankrupt_nb(state, t)


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
                    state.asset_totals[i, TOT_LIQ_FEE] += rest * work[i, W_STOP] / total
            state.acct[A_CASH] = 0.0
        cover_negative_cash_nb(state)
        set_bankrupt_nb(state, t)


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
        state.asset_totals[i, TOT_INSURANCE] += -remaining
