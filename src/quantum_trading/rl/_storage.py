"""Simulator states of one or many environments in stacked arrays (leading env axis).

The single environment and the batched one keep their :class:`~quantum_trading.sim.state.SimState`
the same way: every field is an array ``[n_envs, ...]`` and env ``i``'s state is the
NamedTuple of the row views ``field[i]`` (C-contiguous, so the kernels see exactly the types
:func:`~quantum_trading.sim.state.new_state` gives and one compiled kernel serves both). The
batch kernel builds those views itself (:func:`quantum_trading.rl.batch_nb.state_at_nb`).

The per-bar outputs (``out_equity``, ``out_margin_ratio``, risk ``out``) have a row per bar of
the data (the kernel indexes them by bar); the record buffers (fills, orders, trades, account
snapshots, risk decisions) start small, are reused by every episode and are doubled by
:func:`grow` when a step could overflow them (the kernel says so before it steps).
"""

from __future__ import annotations

import numpy as np

from quantum_trading.rl.env_nb import SavedState
from quantum_trading.sim.risk_nb import RiskState
from quantum_trading.sim.state import SimState, new_state

__all__ = ["alloc_states", "fresh_saved", "grow", "state_view"]

_RECORDS = ("fills", "orders", "trades")


def fresh_saved(n_assets: int, initial_cash_usd: float, *, n_tiers_max: int, risk: bool,
                risk_multiplier: float) -> SavedState:
    """The account part of a fresh state (flat, ``initial_cash_usd``): what a reset restores."""
    st = new_state(n_assets, initial_cash_usd, n_bars=1, n_tiers_max=n_tiers_max, risk=risk,
                   risk_multiplier=risk_multiplier)
    return SavedState(acct=st.acct, counters=st.counters, pos=st.pos, posi=st.posi,
                      pend=st.pend, last_target=st.last_target, asset_totals=st.asset_totals,
                      risk_acct=st.risk.acct, risk_ints=st.risk.ints,
                      risk_forced=st.risk.forced)


def alloc_states(n_envs: int, n_assets: int, initial_cash_usd: float, *, n_bars: int,
                 n_tiers_max: int, risk: bool, risk_multiplier: float,
                 capacity: int = 256) -> SimState:
    """Stacked states of ``n_envs`` fresh accounts over ``n_bars`` bars of data, with room
    for ``capacity`` records of each kind (per asset) before the first :func:`grow`."""
    one = new_state(n_assets, initial_cash_usd, n_bars=1, n_tiers_max=n_tiers_max, risk=risk,
                    risk_multiplier=risk_multiplier)
    cap = max(int(capacity), 8) * n_assets

    def rep(a: np.ndarray) -> np.ndarray:
        return np.repeat(a[None], n_envs, axis=0)

    rs = one.risk
    risk_state = RiskState(
        acct=rep(rs.acct), ints=rep(rs.ints), forced=rep(rs.forced), proj=rep(rs.proj),
        prices=rep(rs.prices),
        decisions=np.empty((n_envs, cap if risk else 0), dtype=rs.decisions.dtype),
        out=np.empty((n_envs, n_bars if risk else 1, rs.out.shape[1])))
    return SimState(
        acct=rep(one.acct), counters=rep(one.counters), pos=rep(one.pos), posi=rep(one.posi),
        pend=rep(one.pend), last_target=rep(one.last_target),
        asset_totals=rep(one.asset_totals),
        fills=np.empty((n_envs, cap), dtype=one.fills.dtype),
        orders=np.empty((n_envs, cap), dtype=one.orders.dtype),
        trades=np.empty((n_envs, cap), dtype=one.trades.dtype),
        out_equity=np.empty((n_envs, n_bars)), out_margin_ratio=np.empty((n_envs, n_bars)),
        snap_bar=np.empty((n_envs, max(int(capacity), 8)), dtype=np.int64),
        snap=np.empty((n_envs, max(int(capacity), 8), one.snap.shape[1])),
        scratch=rep(one.scratch), work=rep(one.work), risk=risk_state)


def state_view(states: SimState, i: int) -> SimState:
    """Env ``i``'s :class:`SimState`: row views of the stacked arrays (shared memory)."""
    rs = states.risk
    return SimState(*(a[i] for a in states[:-1]), risk=RiskState(*(a[i] for a in rs)))


def _doubled(a: np.ndarray) -> np.ndarray:
    out = np.empty((a.shape[0], 2 * max(a.shape[1], 1), *a.shape[2:]), dtype=a.dtype)
    out[:, : a.shape[1]] = a
    return out


def grow(states: SimState) -> SimState:
    """The stacked states with every record buffer doubled (contents kept)."""
    changes = {name: _doubled(getattr(states, name)) for name in (*_RECORDS, "snap", "snap_bar")}
    rs = states.risk
    if rs.decisions.shape[1] > 0:
        changes["risk"] = rs._replace(decisions=_doubled(rs.decisions))
    return states._replace(**changes)
