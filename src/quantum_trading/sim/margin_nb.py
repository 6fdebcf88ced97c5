"""Numba kernels of margin: Binance-style tiers, leverage caps and liquidation prices.

Tiers are rows ``(notional_floor_usd, max_leverage, maintenance_rate, maintenance_amount_usd)``
(per asset, padded with ``+inf`` floors). Maintenance margin of notional ``N`` in tier ``k``
is ``N·rate_k − amount_k`` (continuous in ``N``).

Liquidation along one price path
--------------------------------
Within a bar every open position's price is moved from its path start (the open) toward its
adverse extreme (the low for longs, the high for shorts) along one parameter λ ∈ [0, 1]:
``P_i(λ) = o_i + λ·(a_i − o_i)``. The margin balance minus maintenance,

``f(λ) = base + Σ_i s_i·(P_i(λ) − e_i) − Σ_i mm_i(|s_i|·P_i(λ))``,

is continuous, piecewise linear (kinks where a notional crosses a tier floor) and
non-increasing in λ. ``base`` is the wallet balance (cross margin: all positions) or the
position's isolated margin (isolated: one position). The first λ* with ``f(λ*) ≤ 0`` gives
each position's liquidation price ``P_i(λ*)``; λ* = 0 means the bar opened beyond it. For a
single position this is Binance's liquidation-price formula (:func:`liquidation_price_nb`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from quantum_trading.sim.records import P_ENTRY, P_SIZE, W_PA, W_PO

__all__ = [
    "liquidation_lambda_nb",
    "liquidation_price_nb",
    "maintenance_margin_nb",
    "max_notional_nb",
    "path_margin_nb",
    "tier_index_nb",
]


@njit(cache=True, _nrt=False, inline="always")
def tier_index_nb(tiers: np.ndarray, n_tiers: int, notional_usd: float) -> int:
    """Tier (0-based) of an absolute notional: the last tier whose floor is ``<= notional``."""
    k = 0
    while k + 1 < n_tiers and tiers[k + 1, 0] <= notional_usd:
        k += 1
    return k


@njit(cache=True, _nrt=False, inline="always")
def maintenance_margin_nb(tiers: np.ndarray, n_tiers: int, notional_usd: float) -> float:
    """Maintenance margin (USDT) of a position of absolute notional ``notional_usd``.

    >>> tiers = np.array([[0.0, 125.0, 0.004, 0.0], [50_000.0, 100.0, 0.005, 50.0]])
    >>> maintenance_margin_nb(tiers, 2, 100_000.0)
    450.0
    """
    k = tier_index_nb(tiers, n_tiers, notional_usd)
    mm = notional_usd * tiers[k, 2] - tiers[k, 3]
    return mm if mm > 0.0 else 0.0


@njit(cache=True, _nrt=False)
def max_notional_nb(tiers: np.ndarray, n_tiers: int, leverage: float) -> float:
    """Largest notional allowed at ``leverage``: the floor of the first tier whose max
    leverage is below it (``inf`` if none)."""
    for k in range(n_tiers):
        if tiers[k, 1] < leverage:
            return tiers[k, 0]
    return np.inf


@njit(cache=True, _nrt=False)
def liquidation_price_nb(
    wallet_usd: float, size: float, entry_price: float, maintenance_rate: float,
    maintenance_amount_usd: float,
) -> float:
    """Binance's liquidation price of one position (one tier, no other positions).

    ``LP = (WB + cum − s·EP) / (|s|·mmr − s)`` with ``WB`` the wallet balance (cross) or
    isolated margin, ``s`` the signed size and ``EP`` the entry price.

    >>> round(liquidation_price_nb(3_000.0, 1.0, 30_000.0, 0.004, 0.0), 4)
    27108.4337
    """
    return (wallet_usd + maintenance_amount_usd - size * entry_price) / (
        abs(size) * maintenance_rate - size
    )


@njit(cache=True, _nrt=False, inline="always")
def path_margin_nb(
    lam: float, base: float, pos: np.ndarray, work: np.ndarray, tiers: np.ndarray,
    n_tiers: np.ndarray, only: int,
) -> float:
    """``f(λ)``: margin balance minus maintenance at path point λ (see module docstring).

    ``only`` = −1 sums every open position (cross), else only asset ``only`` (isolated).
    """
    f = base
    lo = 0 if only < 0 else only
    hi = pos.shape[0] if only < 0 else only + 1
    for i in range(lo, hi):
        s = pos[i, P_SIZE]
        if s == 0.0:
            continue
        p = work[i, W_PO] + lam * (work[i, W_PA] - work[i, W_PO])
        f += s * (p - pos[i, P_ENTRY])
        f -= maintenance_margin_nb(tiers[i], n_tiers[i], abs(s) * p)
    return f


@njit(cache=True, _nrt=False)
def liquidation_lambda_nb(
    lam_lo: float, base: float, pos: np.ndarray, work: np.ndarray, tiers: np.ndarray,
    n_tiers: np.ndarray, only: int, scratch: np.ndarray,
) -> float:
    """First λ in ``[lam_lo, 1]`` with ``f(λ) ≤ 0``, or ``inf`` if the margin holds.

    Exact for the piecewise-linear ``f``: the kinks (tier floors crossed along the path) are
    collected and sorted, the segment where ``f`` changes sign is found and solved linearly.
    """
    if path_margin_nb(1.0, base, pos, work, tiers, n_tiers, only) > 0.0:
        return np.inf  # f is non-increasing: it holds at the worst point of the bar
    f_lo = path_margin_nb(lam_lo, base, pos, work, tiers, n_tiers, only)
    if f_lo <= 0.0:
        return lam_lo
    m = 0
    lo = 0 if only < 0 else only
    hi = pos.shape[0] if only < 0 else only + 1
    for i in range(lo, hi):
        s = abs(pos[i, P_SIZE])
        d = work[i, W_PA] - work[i, W_PO]
        if s == 0.0 or d == 0.0:
            continue
        for k in range(1, n_tiers[i]):
            lam = (tiers[i, k, 0] / s - work[i, W_PO]) / d
            if lam_lo < lam < 1.0:
                scratch[m] = lam
                m += 1
    # insertion sort (m is small)
    for a in range(1, m):
        v = scratch[a]
        b = a - 1
        while b >= 0 and scratch[b] > v:
            scratch[b + 1] = scratch[b]
            b -= 1
        scratch[b + 1] = v
    scratch[m] = 1.0
    la = lam_lo
    fa = f_lo
    for a in range(m + 1):
        lb = scratch[a]
        fb = path_margin_nb(lb, base, pos, work, tiers, n_tiers, only)
        if fb <= 0.0:
            lam = la + fa * (lb - la) / (fa - fb)
            if lam < la:
                lam = la
            if lam > lb:
                lam = lb
            return lam
        la = lb
        fa = fb
    return 1.0



