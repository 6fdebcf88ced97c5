"""Numba kernels that book one fill: position, cash, cost totals, trade and fill records.

Accounting (all USDT):

* ``cash`` is the wallet balance: initial cash + realised PnL − fees − funding paid −
  liquidation fees + insurance cover. Equity = cash + unrealised PnL (``Σ s·(price − entry)``).
* Realised PnL of a fill that closes ``c`` units of a position with average entry ``e`` at fill
  price ``p`` is ``c·(p − e)·sign(position)``. Fill prices carry spread, slippage and impact,
  so those costs are inside realised PnL; they are also accumulated apart.
* Entry price is the size-weighted average of opening fills; a reduction keeps it; a flip
  (long → short or back) closes the trade and opens a new one at the fill price.
* Isolated margin: an opening fill adds ``|q|·p / leverage``; a reduction releases the
  closed share; fees are paid from the wallet, funding from the position's margin.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from quantum_trading.sim.records import (
    A_CASH,
    A_FEES,
    A_IMPACT,
    A_LIQ_FEE,
    A_REALIZED,
    A_SLIPPAGE,
    A_SPREAD,
    C_FILLS,
    C_ORDERS,
    C_TRADES,
    D_SL_DIST,
    D_SL_FRAC,
    D_SL_PRICE,
    D_TP_DIST,
    D_TP_FRAC,
    D_TP_PRICE,
    D_TRAIL_DIST,
    D_TRAIL_FRAC,
    EXIT_OPEN,
    P_BEST,
    P_ENTRY,
    P_LAST,
    P_MARGIN,
    P_SIZE,
    P_SL,
    P_T_COSTS,
    P_T_ENTRY_NOTIONAL,
    P_T_ENTRY_QTY,
    P_T_EXIT_NOTIONAL,
    P_T_EXIT_QTY,
    P_T_FEES,
    P_T_FUNDING,
    P_T_LIQ_FEE,
    P_T_MAX_SIZE,
    P_T_REALIZED,
    P_TP,
    P_TRAIL_DIST,
    P_TRAIL_FRAC,
    Q_ENTRY_BAR,
    TOT_FEES,
    TOT_IMPACT,
    TOT_LIQ_FEE,
    TOT_REALIZED,
    TOT_SLIPPAGE,
    TOT_SPREAD,
)

__all__ = ["apply_fill_nb", "open_trades_nb", "write_order_nb"]



@njit(cache=True, _nrt=False, inline="always")
def _set_exit_levels_nb(state, i: int, direction: float, price: float) -> None:
    pos = state.pos
    pend = state.pend
    # stop-loss: price level, else fraction of the entry fill, else distance
    if not math.isnan(pend[i, D_SL_PRICE]):
        pos[i, P_SL] = pend[i, D_SL_PRICE]
    elif not math.isnan(pend[i, D_SL_FRAC]):
        pos[i, P_SL] = price * (1.0 - direction * pend[i, D_SL_FRAC])
    elif not math.isnan(pend[i, D_SL_DIST]):
        pos[i, P_SL] = price - direction * pend[i, D_SL_DIST]
    else:
        pos[i, P_SL] = np.nan
    if not math.isnan(pend[i, D_TP_PRICE]):
        pos[i, P_TP] = pend[i, D_TP_PRICE]
    elif not math.isnan(pend[i, D_TP_FRAC]):
        pos[i, P_TP] = price * (1.0 + direction * pend[i, D_TP_FRAC])
    elif not math.isnan(pend[i, D_TP_DIST]):
        pos[i, P_TP] = price + direction * pend[i, D_TP_DIST]
    else:
        pos[i, P_TP] = np.nan
    pos[i, P_TRAIL_FRAC] = pend[i, D_TRAIL_FRAC]
    pos[i, P_TRAIL_DIST] = pend[i, D_TRAIL_DIST]
    pos[i, P_BEST] = price


@njit(cache=True, _nrt=False, inline="always")
def _write_trade_nb(state, rec, i: int, exit_bar: int, exit_reason: int, is_open: int,
                    extra_pnl: float, exit_price: float) -> None:
    """Write asset ``i``'s trade into the trade_dt record ``rec`` (closed at ``exit_price``,
    or still open and valued there with ``extra_pnl`` of unrealised PnL)."""
    pos = state.pos
    rec["asset"] = i
    rec["direction"] = 1 if pos[i, P_T_MAX_SIZE] > 0 else -1
    rec["entry_bar"] = state.posi[i, Q_ENTRY_BAR]
    rec["exit_bar"] = exit_bar
    rec["entry_price"] = pos[i, P_T_ENTRY_NOTIONAL] / pos[i, P_T_ENTRY_QTY]
    rec["exit_price"] = exit_price
    rec["size"] = abs(pos[i, P_T_MAX_SIZE])
    rec["entry_size"] = pos[i, P_T_ENTRY_QTY]
    gross = pos[i, P_T_REALIZED] + extra_pnl
    rec["gross_pnl_usd"] = gross
    rec["fees_usd"] = pos[i, P_T_FEES]
    rec["funding_usd"] = pos[i, P_T_FUNDING]
    rec["costs_usd"] = pos[i, P_T_COSTS]
    rec["liquidation_fee_usd"] = pos[i, P_T_LIQ_FEE]
    rec["pnl_usd"] = gross - pos[i, P_T_FEES] - pos[i, P_T_FUNDING] - pos[i, P_T_LIQ_FEE]
    rec["exit_reason"] = exit_reason
    rec["is_open"] = is_open


@njit(cache=True, _nrt=False, inline="always")
def _reset_trade_nb(pos: np.ndarray, i: int) -> None:
    for c in range(P_T_ENTRY_QTY, P_T_MAX_SIZE + 1):
        pos[i, c] = 0.0


@njit(cache=True, _nrt=False)
def apply_fill_nb(
    state, params, t: int, i: int, q: float, price: float, ref_price: float, fee: float,
    spread_usd: float, slippage_usd: float, impact_usd: float, liq_fee: float, otype: int,
) -> None:
    """Book a fill of ``q`` units (signed) of asset ``i`` at ``price`` in bar ``t``.

    Closing a position exactly requires ``q == -size`` (the caller passes it so). A fill
    that opens a position (from flat or through a flip) sets its stop-loss, take-profit and
    trailing levels from the pending order's values captured at the decision bar.
    """
    pos = state.pos
    acct = state.acct
    tot = state.asset_totals
    cur = pos[i, P_SIZE]
    a = abs(q)
    if a == 0.0:
        return
    closed = 0.0
    if cur != 0.0 and (cur > 0.0) != (q > 0.0):
        closed = a if a < abs(cur) else abs(cur)
    opened = a - closed
    realized = 0.0
    if closed > 0.0:
        realized = closed * (price - pos[i, P_ENTRY]) * (1.0 if cur > 0.0 else -1.0)
    costs = spread_usd + slippage_usd + impact_usd
    acct[A_CASH] += realized - fee - liq_fee
    acct[A_REALIZED] += realized
    acct[A_FEES] += fee
    acct[A_SPREAD] += spread_usd
    acct[A_SLIPPAGE] += slippage_usd
    acct[A_IMPACT] += impact_usd
    acct[A_LIQ_FEE] += liq_fee
    tot[i, TOT_REALIZED] += realized
    tot[i, TOT_FEES] += fee
    tot[i, TOT_SPREAD] += spread_usd
    tot[i, TOT_SLIPPAGE] += slippage_usd
    tot[i, TOT_IMPACT] += impact_usd
    tot[i, TOT_LIQ_FEE] += liq_fee

    new = cur + q
    if closed > 0.0:
        w = closed / a
        pos[i, P_T_EXIT_QTY] += closed
        pos[i, P_T_EXIT_NOTIONAL] += closed * price
        pos[i, P_T_REALIZED] += realized
        pos[i, P_T_FEES] += fee * w
        pos[i, P_T_COSTS] += costs * w
        pos[i, P_T_LIQ_FEE] += liq_fee * w
        if closed >= abs(cur):
            k = state.counters[C_TRADES]
            _write_trade_nb(state, state.trades[k], i, t, otype, 0, 0.0,
                            pos[i, P_T_EXIT_NOTIONAL] / pos[i, P_T_EXIT_QTY])
            state.counters[C_TRADES] = k + 1
            _reset_trade_nb(pos, i)
            pos[i, P_MARGIN] = 0.0
            pos[i, P_SL] = np.nan
            pos[i, P_TP] = np.nan
            pos[i, P_TRAIL_FRAC] = np.nan
            pos[i, P_TRAIL_DIST] = np.nan
            pos[i, P_BEST] = np.nan
            state.posi[i, Q_ENTRY_BAR] = -1
            if opened == 0.0:
                new = 0.0
        else:
            pos[i, P_MARGIN] *= (abs(cur) - closed) / abs(cur)
    if opened > 0.0:
        w = opened / a
        if closed > 0.0 or cur == 0.0:  # a new trade (from flat, or the far side of a flip)
            direction = 1.0 if q > 0.0 else -1.0
            pos[i, P_ENTRY] = price
            pos[i, P_MARGIN] = opened * price / params.leverage[i]
            state.posi[i, Q_ENTRY_BAR] = t
            _set_exit_levels_nb(state, i, direction, price)
        else:  # scale-in
            pos[i, P_ENTRY] = (abs(cur) * pos[i, P_ENTRY] + opened * price) / (abs(cur) + opened)
            pos[i, P_MARGIN] += opened * price / params.leverage[i]
        pos[i, P_T_ENTRY_QTY] += opened
        pos[i, P_T_ENTRY_NOTIONAL] += opened * price
        pos[i, P_T_FEES] += fee * w
        pos[i, P_T_COSTS] += costs * w
        pos[i, P_T_LIQ_FEE] += liq_fee * w
    pos[i, P_SIZE] = new
    if abs(new) > abs(pos[i, P_T_MAX_SIZE]):
        pos[i, P_T_MAX_SIZE] = new
    if new == 0.0:
        pos[i, P_ENTRY] = 0.0

    k = state.counters[C_FILLS]
    rec = state.fills[k]
    rec["bar"] = t
    rec["asset"] = i
    rec["order_type"] = otype
    rec["side"] = 1 if q > 0.0 else -1
    rec["size"] = a
    rec["price"] = price
    rec["ref_price"] = ref_price
    rec["notional_usd"] = a * price
    rec["fee_usd"] = fee
    rec["spread_usd"] = spread_usd
    rec["slippage_usd"] = slippage_usd
    rec["impact_usd"] = impact_usd
    rec["liquidation_fee_usd"] = liq_fee
    rec["realized_pnl_usd"] = realized
    rec["position_after"] = new
    rec["cash_after_usd"] = acct[A_CASH]
    state.counters[C_FILLS] = k + 1


@njit(cache=True, _nrt=False, inline="always")
def write_order_nb(
    state, t: int, decision_bar: int, i: int, otype: int, status: int, flags: int,
    target: float, equity: float, requested: float, filled: float, price: float,
) -> None:
    """Append one order record."""
    k = state.counters[C_ORDERS]
    rec = state.orders[k]
    rec["bar"] = t
    rec["decision_bar"] = decision_bar
    rec["asset"] = i
    rec["order_type"] = otype
    rec["status"] = status
    rec["cap_flags"] = flags
    rec["target_frac"] = target
    rec["equity_usd"] = equity
    rec["requested_size"] = requested
    rec["filled_size"] = filled
    rec["price"] = price
    state.counters[C_ORDERS] = k + 1


@njit(cache=True, _nrt=False)
def open_trades_nb(state, last_bar: int, out: np.ndarray) -> int:
    """Write the trades still open into ``out`` (valued at each asset's last close).

    Does not change the state, so a one-step simulation can go on afterwards. Returns the
    number of records written (at most one per asset).
    """
    pos = state.pos
    m = 0
    for i in range(pos.shape[0]):
        s = pos[i, P_SIZE]
        if s == 0.0:
            continue
        last = pos[i, P_LAST]
        _write_trade_nb(state, out[m], i, last_bar, EXIT_OPEN, 1, s * (last - pos[i, P_ENTRY]),
                        last)
        m += 1
    return m
