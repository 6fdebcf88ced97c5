"""The RL environment's step on the simulator kernel (numba): one call per agent step.

Timing. The agent decides at bar ``t``'s close from what is known then: the market features of
bars ``<= t`` and the account after ``t``'s close. The simulator's bar step is
:func:`~quantum_trading.sim.engine_nb.step_nb` = :func:`~quantum_trading.sim.engine_nb.bar_nb`
(fills at the open, stops and liquidation, mark to the close) then
:func:`~quantum_trading.sim.engine_nb.close_decision_nb` (the decision at the close, then the
risk check of the close). The environment calls the same two kernels with the agent in
between:

1. ``bar_nb(t)``: the account at ``t``'s close is the observation;
2. when the action comes, ``close_decision_nb(t)`` with the action as the target (and stop
   distance) decided at that close, then ``bar_nb(t + 1)`` (its open fills the order) for the
   next observation.

So every bar runs exactly once and through exactly the code of
:func:`quantum_trading.sim.simulate`: replaying the same targets through a backtest gives the
same numbers, bar for bar (tested).

Per-env scalars live in small arrays (``ctl`` float64 ``F_*``, ``ctli`` int64 ``I_*``;
shared settings ``cfg`` ``C_*``) so that one kernel serves the single env and the batch loop
(:mod:`quantum_trading.rl.batch_nb`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, uint64

from quantum_trading.sim.engine_nb import bar_nb, close_decision_nb
from quantum_trading.sim.records import (
    A_EQUITY,
    A_FEES,
    A_FUNDING,
    C_BANKRUPT,
    C_FILLS,
    C_ORDERS,
    C_SNAPS,
    C_TRADES,
    FILLS_PER_ASSET_STEP,
    ORDERS_PER_ASSET_STEP,
    OT_LIQUIDATION,
    P_ENTRY,
    P_LAST,
    P_SIZE,
    RISK_PER_ASSET_STEP,
    TRADES_PER_ASSET_STEP,
)
from quantum_trading.sim.risk_nb import RI_ENABLED, RI_N_DECISIONS
from quantum_trading.sim.state import BarArrays

__all__ = [
    "C_DD_PEN",
    "C_ETA",
    "C_INIT",
    "C_MAX_LEV",
    "C_MODE",
    "C_REWARD",
    "C_TO_PEN",
    "F_DD",
    "F_DSR_A",
    "F_DSR_B",
    "F_EQ_PREV",
    "F_PEAK",
    "F_REWARD",
    "F_TURNOVER",
    "I_BAD",
    "I_K",
    "I_LIQUIDATED",
    "I_RING",
    "I_T",
    "I_T0",
    "I_TERMINATED",
    "I_TRUNCATED",
    "I_T_END",
    "N_CFG",
    "N_CTL",
    "N_CTLI",
    "N_INFO",
    "RC_BAD_ACTION",
    "RC_NEED_ROOM",
    "RC_OK",
    "RC_POOL_FULL",
    "V_BANKRUPT",
    "V_BAR",
    "V_EQUITY",
    "V_FEES",
    "V_FUNDING",
    "V_LIQUIDATED",
    "V_REWARD",
    "V_TERMINATED",
    "V_TRUNCATED",
    "V_TURNOVER",
    "SavedState",
    "bars_of_nb",
    "env_reset_nb",
    "env_reset_obs_nb",
    "env_step_nb",
    "gather_obs_nb",
    "observe_nb",
]

# ctl: per-env float64
F_EQ_PREV = 0  # equity at the last observed close (USDT)
F_PEAK = 1  # peak equity of the episode (USDT)
F_DD = 2  # drawdown at the last observed close (fraction)
F_DSR_A = 3  # differential Sharpe: EMA of returns
F_DSR_B = 4  # differential Sharpe: EMA of squared returns
F_REWARD = 5  # reward of the last step
F_TURNOVER = 6  # traded notional of the last step / equity
N_CTL = 7
# ctli: per-env int64
I_T = 0  # bar of the current observation (decision bar)
I_T_END = 1  # last bar of the episode (truncation)
I_RING = 2  # start row of the account window in the ring buffer
I_K = 3  # account rows written this episode
I_TERMINATED = 4
I_TRUNCATED = 5
I_LIQUIDATED = 6
I_BAD = 7  # first bad action element (RC_BAD_ACTION)
I_T0 = 8  # first bar of the episode (its decisions are in rows I_T0 .. I_T of the buffers)
N_CTLI = 9
# cfg: shared float64
C_REWARD = 0  # 0 log equity, 1 differential Sharpe
C_ETA = 1  # differential Sharpe EMA rate
C_DD_PEN = 2  # drawdown penalty per unit of drawdown increase
C_TO_PEN = 3  # turnover penalty per unit of traded notional / equity
C_MAX_LEV = 4  # target at action ±1 (multiple of equity)
C_MODE = 5  # 0 target, 1 multi_head
C_INIT = 6  # initial cash (USDT)
N_CFG = 7
# info vector written after each step (V_*)
V_EQUITY = 0  # equity at the observed close (USDT)
V_FEES = 1  # fees paid this episode (USDT)
V_FUNDING = 2  # funding paid this episode (USDT, negative = received)
V_TURNOVER = 3
V_REWARD = 4
V_BAR = 5
V_TERMINATED = 6
V_TRUNCATED = 7
V_LIQUIDATED = 8
V_BANKRUPT = 9
N_INFO = 10
# return codes
RC_OK = 0
RC_NEED_ROOM = 1  # grow the record buffers and call again
RC_BAD_ACTION = 2  # ctli[I_BAD] = first bad element
RC_POOL_FULL = 3  # every row of the observation pool is used (nothing changed)

_EQ_FLOOR = 1e-9  # equity floor for log rewards, as a fraction of the initial cash
_CLIP = 10.0  # = spec.OBS_CLIP


class SavedState(NamedTuple):
    """The account part of a :class:`~quantum_trading.sim.state.SimState` (what one bar step
    changes besides the append-only records and per-bar outputs): the fresh account a reset
    restores; per env, its ``pos`` holds the positions before the last step (for turnover)."""

    acct: np.ndarray
    counters: np.ndarray
    pos: np.ndarray
    posi: np.ndarray
    pend: np.ndarray
    last_target: np.ndarray
    asset_totals: np.ndarray
    risk_acct: np.ndarray
    risk_ints: np.ndarray
    risk_forced: np.ndarray


@njit(cache=True, _nrt=False, inline="always")
def _copy1_nb(dst: np.ndarray, src: np.ndarray) -> None:
    for k in range(src.shape[0]):
        dst[k] = src[k]


@njit(cache=True, _nrt=False, inline="always")
def _copy2_nb(dst: np.ndarray, src: np.ndarray) -> None:
    for a in range(src.shape[0]):
        for b in range(src.shape[1]):
            dst[a, b] = src[a, b]


@njit(cache=True, _nrt=False)
def restore_nb(state, saved) -> None:
    """Copy ``saved`` back into the account part of ``state``."""
    _copy1_nb(state.acct, saved.acct)
    _copy1_nb(state.counters, saved.counters)
    _copy2_nb(state.pos, saved.pos)
    _copy2_nb(state.posi, saved.posi)
    _copy2_nb(state.pend, saved.pend)
    _copy1_nb(state.last_target, saved.last_target)
    _copy2_nb(state.asset_totals, saved.asset_totals)
    _copy1_nb(state.risk.acct, saved.risk_acct)
    _copy1_nb(state.risk.ints, saved.risk_ints)
    _copy1_nb(state.risk.forced, saved.risk_forced)


@njit(cache=True, _nrt=False)
def room_nb(state, t: int, steps: int) -> bool:
    """Whether ``steps`` bar steps from bar ``t`` fit in the state's buffers (the limits
    :func:`~quantum_trading.sim.engine_nb.simulate_nb` checks)."""
    n = state.pos.shape[0]
    c = state.counters
    if state.fills.shape[0] - c[C_FILLS] < steps * FILLS_PER_ASSET_STEP * n:
        return False
    if state.orders.shape[0] - c[C_ORDERS] < steps * ORDERS_PER_ASSET_STEP * n:
        return False
    if state.trades.shape[0] - c[C_TRADES] < steps * TRADES_PER_ASSET_STEP * n:
        return False
    if state.snap.shape[0] - c[C_SNAPS] < steps or state.out_equity.shape[0] < t + steps:
        return False
    rs = state.risk
    if rs.ints[RI_ENABLED] != 0:
        if rs.decisions.shape[0] - rs.ints[RI_N_DECISIONS] < steps * RISK_PER_ASSET_STEP * n:
            return False
        if rs.out.shape[0] < t + steps:
            return False
    return True


@njit(cache=True, _nrt=False)
def _account_row_nb(state, t: int, ctl, ctli, cfg, ring) -> None:
    """Append the account after bar ``t``'s close to the ring buffer (two copies, so the last
    ``account_window`` rows are always contiguous) and update peak and drawdown."""
    aw = ring.shape[0] // 2
    n = state.pos.shape[0]
    e = state.acct[A_EQUITY]
    e0 = cfg[C_INIT]
    peak = max(ctl[F_PEAK], e)
    dd = 1.0 - e / peak if peak > 0.0 else 0.0
    ctl[F_PEAK] = peak
    ctl[F_DD] = dd
    p = ctli[I_K] % aw
    le = math.log(e / e0) if e > 0.0 else -_CLIP
    vals0 = min(max(le, -_CLIP), _CLIP)
    mr = state.out_margin_ratio[t] if e > 0.0 else 0.0
    vals1 = min(max(mr, -_CLIP), _CLIP)
    for r in (p, p + aw):
        ring[r, 0] = vals0
        ring[r, 1] = vals1
        ring[r, 2] = dd
    for i in range(n):
        s = state.pos[i, P_SIZE]
        notional = 0.0
        upnl = 0.0
        if s != 0.0 and e > 0.0:
            c = state.pos[i, P_LAST]
            notional = min(max(s * c / e, -_CLIP), _CLIP)
            upnl = min(max(s * (c - state.pos[i, P_ENTRY]) / e, -_CLIP), _CLIP)
        ring[p, 3 + i] = notional
        ring[p + aw, 3 + i] = notional
        ring[p, 3 + n + i] = upnl
        ring[p + aw, 3 + n + i] = upnl
    ctli[I_K] += 1
    ctli[I_RING] = p + 1


@njit(cache=True, _nrt=False, inline="always")
def _index_ok_nb(v: float, size: int) -> bool:
    return v >= 0.0 and v < size and v == math.floor(v)


@njit(cache=True, _nrt=False)
def _decide_nb(t: int, act, tgt, sld, atr, cfg, sizes, stops, ctli) -> bool:
    """Write the action as the target (and stop distance) decided at bar ``t``'s close."""
    n = tgt.shape[1]
    lev = cfg[C_MAX_LEV]
    if cfg[C_MODE] == 0.0:
        for i in range(n):
            a = act[i]
            if not math.isfinite(a):
                ctli[I_BAD] = i
                return False
            tgt[t, i] = min(max(a, -1.0), 1.0) * lev
        return True
    n_size = sizes.shape[0]
    n_stop = stops.shape[0]
    for i in range(n):
        d = act[3 * i]
        k = act[3 * i + 1]
        j = act[3 * i + 2]
        bad = -1
        if not _index_ok_nb(j, n_stop):
            bad = 2
        if not _index_ok_nb(k, n_size):
            bad = 1
        if not _index_ok_nb(d, 3):
            bad = 0
        if bad >= 0:
            ctli[I_BAD] = 3 * i + bad
            return False
        tgt[t, i] = (d - 1.0) * sizes[int(k)] * lev
        mult = stops[int(j)]
        dist = mult * atr[t, i]
        sld[t, i] = dist if mult > 0.0 and dist > 0.0 else np.nan
    return True


@njit(cache=True, _nrt=False)
def env_reset_nb(state, fresh, bars, params, tgt, sld, ctl, ctli, cfg, ring, t0: int,
                 t_end: int) -> int:
    """Start an episode at bar ``t0`` (flat, initial cash): clear the decision buffers, fill
    the account window with the flat account, step bar ``t0`` up to its close (the first
    observation; no decision yet). The episode is truncated when the observation reaches
    bar ``t_end``.

    The buffers are NaN outside an episode's rows: only the rows the last episode decided in
    (``ctli[I_T0] .. ctli[I_T]``) are cleared, not the whole data length (an auto-reset of a
    batched env on long data would otherwise write every bar)."""
    restore_nb(state, fresh)
    hi = min(ctli[I_T], tgt.shape[0] - 1)
    for a in range(ctli[I_T0], hi + 1):
        for b in range(tgt.shape[1]):
            tgt[a, b] = np.nan
    if sld.shape[0] == tgt.shape[0]:  # multi_head: a stop distance per decision
        for a in range(ctli[I_T0], hi + 1):
            for b in range(sld.shape[1]):
                sld[a, b] = np.nan
    if not room_nb(state, t0, 1):
        return RC_NEED_ROOM
    for a in range(ring.shape[0]):
        for b in range(ring.shape[1]):
            ring[a, b] = 0.0
    e0 = cfg[C_INIT]
    ctl[F_EQ_PREV] = e0
    ctl[F_PEAK] = e0
    ctl[F_DD] = 0.0
    ctl[F_DSR_A] = 0.0
    ctl[F_DSR_B] = 0.0
    ctl[F_REWARD] = 0.0
    ctl[F_TURNOVER] = 0.0
    ctli[I_K] = 0
    ctli[I_T] = t0
    ctli[I_T0] = t0
    ctli[I_T_END] = t_end
    ctli[I_TERMINATED] = 0
    ctli[I_TRUNCATED] = 0
    ctli[I_LIQUIDATED] = 0
    ctli[I_BAD] = -1
    bar_nb(state, t0, bars, params)
    _account_row_nb(state, t0, ctl, ctli, cfg, ring)
    ctl[F_EQ_PREV] = state.acct[A_EQUITY]
    return RC_OK


@njit(cache=True, _nrt=False)
def env_step_nb(state, prev_pos, bars, signals, params, tgt, sld, atr, act, ctl, ctli, cfg,
                sizes, stops, ring) -> int:
    """One agent step: the action is the decision at the close of bar ``t = ctli[I_T]``.

    Writes the target (``act`` × max leverage, or the multi-head decoding with its ATR stop)
    into row ``t`` of ``tgt`` / ``sld`` (the writable memory behind ``signals.target`` /
    ``signals.sl_dist``), ends bar ``t`` with it (:func:`close_decision_nb`), steps bar
    ``t + 1`` to its close (its open fills the order) and appends the account at ``t + 1``'s
    close. ``prev_pos`` (``[N, ≥ 1]``, scratch): column ``P_SIZE`` receives the positions
    before the step (for the turnover). Sets the reward (``ctl[F_REWARD]``), turnover,
    liquidation / termination /
    truncation flags and ``ctli[I_T] = t + 1``. Returns :data:`RC_OK`,
    :data:`RC_NEED_ROOM` (nothing changed; grow the buffers) or :data:`RC_BAD_ACTION`.
    """
    t = ctli[I_T]
    if not room_nb(state, t + 1, 1):
        return RC_NEED_ROOM
    if not _decide_nb(t, act, tgt, sld, atr, cfg, sizes, stops, ctli):
        return RC_BAD_ACTION
    n = state.pos.shape[0]
    for i in range(n):
        prev_pos[i, P_SIZE] = state.pos[i, P_SIZE]
    close_decision_nb(state, t, bars, signals, params, state.acct[A_EQUITY])
    nf = state.counters[C_FILLS]
    bar_nb(state, t + 1, bars, params)
    e = state.acct[A_EQUITY]
    liquidated = False
    for k in range(nf, state.counters[C_FILLS]):
        if state.fills[k]["order_type"] == OT_LIQUIDATION:
            liquidated = True
    turnover = 0.0
    if e > 0.0:
        for i in range(n):
            turnover += abs(state.pos[i, P_SIZE] - prev_pos[i, P_SIZE]) * state.pos[i, P_LAST]
        turnover /= e
    dd_prev = ctl[F_DD]
    _account_row_nb(state, t + 1, ctl, ctli, cfg, ring)
    e_prev = ctl[F_EQ_PREV]
    floor = _EQ_FLOOR * cfg[C_INIT]
    if cfg[C_REWARD] == 0.0:
        reward = math.log(max(e, floor) / max(e_prev, floor))
    else:
        ret = e / e_prev - 1.0 if e_prev > 0.0 else 0.0
        a = ctl[F_DSR_A]
        b = ctl[F_DSR_B]
        var = b - a * a
        reward = 0.0
        if var > 1e-12:
            reward = (b * (ret - a) - 0.5 * a * (ret * ret - b)) / var ** 1.5
            reward = min(max(reward, -_CLIP), _CLIP)
        eta = cfg[C_ETA]
        ctl[F_DSR_A] = a + eta * (ret - a)
        ctl[F_DSR_B] = b + eta * (ret * ret - b)
    reward -= cfg[C_DD_PEN] * max(ctl[F_DD] - dd_prev, 0.0)
    reward -= cfg[C_TO_PEN] * turnover
    ctl[F_REWARD] = reward
    ctl[F_TURNOVER] = turnover
    ctl[F_EQ_PREV] = e
    ctli[I_T] = t + 1
    bankrupt = state.counters[C_BANKRUPT] != 0
    ctli[I_LIQUIDATED] = 1 if liquidated else 0
    ctli[I_TERMINATED] = 1 if (bankrupt or liquidated) else 0
    ctli[I_TRUNCATED] = 1 if (ctli[I_TERMINATED] == 0 and t + 1 >= ctli[I_T_END]) else 0
    return RC_OK


@njit(cache=True, _nrt=False)
def gather_obs_nb(feats, t: int, ring, start: int, out_market, out_account) -> None:
    """Copy the market window ``feats[t − window + 1 .. t]`` and the account window
    ``ring[start .. start + account_window)`` into the output buffers.

    Both windows are contiguous rows of C-contiguous arrays, so each is one flat copy; the
    indices are unsigned so that numba emits no negative-index wrap-around per element
    (which kept LLVM from vectorising the copy: 2.5× slower)."""
    w = out_market.shape[0]
    src = feats.reshape(feats.size)
    dst = out_market.reshape(out_market.size)
    base = uint64((t - w + 1) * feats.shape[1] * feats.shape[2])
    for k in range(uint64(dst.shape[0])):
        dst[k] = src[base + k]
    src = ring.reshape(ring.size)
    dst = out_account.reshape(out_account.size)
    base = uint64(start * ring.shape[1])
    for k in range(uint64(dst.shape[0])):
        dst[k] = src[base + k]


@njit(cache=True, _nrt=False, inline="always")
def _info_nb(state, t: int, ctl, ctli, info) -> None:
    info[V_EQUITY] = state.acct[A_EQUITY]
    info[V_FEES] = state.acct[A_FEES]
    info[V_FUNDING] = state.acct[A_FUNDING]
    info[V_TURNOVER] = ctl[F_TURNOVER]
    info[V_REWARD] = ctl[F_REWARD]
    info[V_BAR] = t
    info[V_TERMINATED] = ctli[I_TERMINATED]
    info[V_TRUNCATED] = ctli[I_TRUNCATED]
    info[V_LIQUIDATED] = ctli[I_LIQUIDATED]
    info[V_BANKRUPT] = state.counters[C_BANKRUPT]


@njit(cache=True, _nrt=False, inline="always")
def bars_of_nb(pack):
    """:class:`~quantum_trading.sim.state.BarArrays` as views of ``pack [8, T, N]`` (the
    fields in order), so one array crosses into the kernel instead of eight."""
    return BarArrays(pack[0], pack[1], pack[2], pack[3], pack[4], pack[5], pack[6], pack[7])


@njit(cache=True, _nrt=False, inline="always")
def observe_nb(state, ctl, ctli, ring, feats, pool_market, pool_account, pool_pos, info,
                slot) -> None:
    """Write the observation of bar ``ctli[I_T]`` into row ``slot[0]`` of the pools (market
    window, account window, positions), the step's numbers into ``info``, and advance
    ``slot[0]``."""
    k = slot[0]
    t = ctli[I_T]
    gather_obs_nb(feats, t, ring, ctli[I_RING], pool_market[k], pool_account[k])
    for i in range(state.pos.shape[0]):
        pool_pos[k, i] = state.pos[i, P_SIZE]
    _info_nb(state, t, ctl, ctli, info)
    slot[0] = k + 1


@njit(cache=True, _nrt=False)
def env_reset_obs_nb(state, fresh, bars_pack, params, tgt, sld, ctl, ctli, cfg, ring, t0: int,
                     t_end: int, feats, pool_market, pool_account, pool_pos, info, slot) -> int:
    """:func:`env_reset_nb` on the single env's arguments (the bars as one ``[8, T, N]``
    array), then the first observation, positions and info vector into row ``slot[0]`` of the
    pools (:func:`observe_nb`), as :func:`~quantum_trading.rl.packed.env_step_packed_nb`
    does after a step; :data:`RC_POOL_FULL` (nothing done) when the pool has no row left."""
    if slot[0] >= pool_market.shape[0]:
        return RC_POOL_FULL
    code = env_reset_nb(state, fresh, bars_of_nb(bars_pack), params, tgt, sld, ctl, ctli, cfg,
                        ring, t0, t_end)
    if code == RC_OK:
        observe_nb(state, ctl, ctli, ring, feats, pool_market, pool_account, pool_pos, info,
                    slot)
    return code
