"""Many environments in one numba call: the loop of
:class:`~quantum_trading.rl.vec_env.PerpetualFuturesVecEnv`.

Each env's :class:`~quantum_trading.sim.state.SimState` is the row ``i`` of stacked arrays
(:mod:`quantum_trading.rl._storage`); :func:`batch_step_nb` builds those row views and calls
the single environment's step, :func:`~quantum_trading.rl.env_nb.env_step_nb` — itself the
simulator's bar step (``close_decision_nb`` + ``bar_nb`` of :mod:`quantum_trading.sim.engine_nb`)
— for every env, then
copies each observation (market window, account window) into the output buffers. There is no
other step: a batched env and ``n`` single envs given the same actions produce the same
numbers (tested).
"""

from __future__ import annotations

from numba import njit

from quantum_trading.rl.env_nb import (
    I_RING,
    I_T,
    RC_OK,
    env_reset_nb,
    env_step_nb,
    gather_obs_nb,
)
from quantum_trading.sim.risk_nb import RiskState
from quantum_trading.sim.state import SignalArrays, SimState

__all__ = ["batch_reset_nb", "batch_step_nb", "state_at_nb"]


@njit(cache=True, _nrt=False, inline="always")
def state_at_nb(s, i: int):
    """Env ``i``'s SimState: row views of the stacked state ``s``."""
    r = s.risk
    return SimState(s.acct[i], s.counters[i], s.pos[i], s.posi[i], s.pend[i], s.last_target[i],
                    s.asset_totals[i], s.fills[i], s.orders[i], s.trades[i], s.out_equity[i],
                    s.out_margin_ratio[i], s.snap_bar[i], s.snap[i], s.scratch[i], s.work[i],
                    RiskState(r.acct[i], r.ints[i], r.forced[i], r.proj[i], r.prices[i],
                              r.decisions[i], r.out[i]))


@njit(cache=True, _nrt=False, inline="always")
def _signals_at_nb(sig, tgt_ro, sld_ro, i: int):
    return SignalArrays(tgt_ro[i], sig.sl_frac, sld_ro[i], sig.sl_price, sig.tp_frac,
                        sig.tp_dist, sig.tp_price, sig.trail_frac, sig.trail_dist)


@njit(cache=True, _nrt=False, nogil=True)
def batch_step_nb(states, prev_pos, bars, sig, params, tgt_w, tgt_ro, sld_w, sld_ro, atr, acts,
                  ctl, ctli, cfg, sizes, stops, rings, feats, active, codes, out_market,
                  out_account, lo: int, hi: int) -> int:
    """Step every env ``i`` in ``[lo, hi)`` with ``active[i] != 0`` by its action ``acts[i]``;
    write its return code into ``codes[i]`` and, on success, its observation into
    ``out_market[i]`` / ``out_account[i]``. Returns the number of envs that did not succeed.

    Env ``i`` reads the shared inputs and writes only its own rows, so disjoint ranges may run
    at once on several threads (the GIL is released)."""
    failed = 0
    for i in range(lo, hi):
        if active[i] == 0:
            continue
        code = env_step_nb(state_at_nb(states, i), prev_pos[i], bars,
                           _signals_at_nb(sig, tgt_ro, sld_ro, i), params, tgt_w[i], sld_w[i],
                           atr, acts[i], ctl[i], ctli[i], cfg, sizes, stops, rings[i])
        codes[i] = code
        if code == RC_OK:
            gather_obs_nb(feats, ctli[i, I_T], rings[i], ctli[i, I_RING], out_market[i],
                          out_account[i])
        else:
            failed += 1
    return failed


@njit(cache=True, _nrt=False, nogil=True)
def batch_reset_nb(states, fresh, bars, params, tgt_w, sld_w, ctl, ctli, cfg, rings, feats,
                   starts, ends, active, codes, out_market, out_account, lo: int,
                   hi: int) -> int:
    """Start a new episode at bar ``starts[i]`` (truncated at ``ends[i]``) for every env ``i``
    in ``[lo, hi)`` with ``active[i] != 0`` and gather its first observation; codes, result
    and threading as :func:`batch_step_nb`."""
    failed = 0
    for i in range(lo, hi):
        if active[i] == 0:
            continue
        code = env_reset_nb(state_at_nb(states, i), fresh, bars, params, tgt_w[i], sld_w[i],
                            ctl[i], ctli[i], cfg, rings[i], starts[i], ends[i])
        codes[i] = code
        if code == RC_OK:
            gather_obs_nb(feats, ctli[i, I_T], rings[i], ctli[i, I_RING], out_market[i],
                          out_account[i])
        else:
            failed += 1
    return failed
