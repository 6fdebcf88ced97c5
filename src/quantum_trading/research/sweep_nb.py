"""Kernels of the batched parameter sweep: targets of many parameter sets, then the simulator
on each, in parallel over cores.

Two stages per batch of K parameter sets (vectorbt's split: arrays in, arrays out):

1. a strategy's *target builder* fills ``targets[K, T]`` (one contiguous row per parameter set)
   from indicator tables computed once per distinct parameter value
   (:func:`ema_cross_targets_nb`, :func:`breakout_targets_nb`), turning events into
   positions with the library's own state machine
   (:func:`~quantum_trading.strategies.positions_nb.position_from_entries_exits_nb`);
2. :func:`sweep_slot_nb` runs **the simulator's own loop**
   (:func:`~quantum_trading.sim.engine_nb.simulate_nb`, i.e. the one ``step_nb``) on each row,
   one worker slot per core (GIL released, one thread each), each slot reusing one
   preallocated state reset from a fresh template, and reduces the run to the numbers the backtest's statistics need
   (:data:`STAT_FIELDS`). Record buffers are drained (folded into the sums, counters reset)
   whenever the simulator stops for room, so memory stays bounded whatever the trade count.

Sums that the statistics take with numpy are taken here with numpy's own pairwise summation
(:func:`pairwise_sum_nb`), in the same order, so the swept statistics equal
:class:`~quantum_trading.backtest.Backtest`'s bit for bit (power-based moments to ~1 ulp).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from quantum_trading.sim.accounting_nb import open_trades_nb
from quantum_trading.sim.engine_nb import simulate_nb
from quantum_trading.sim.records import (
    A_REALIZED,
    C_FILLS,
    C_ORDERS,
    C_SNAPS,
    C_TRADES,
    N_COST,
    OT_LIQUIDATION,
)
from quantum_trading.sim.risk_nb import RD_REJECT, RD_RESIZE, RI_ENABLED, RI_N_DECISIONS
from quantum_trading.sim.state import SignalArrays
from quantum_trading.strategies.positions_nb import position_from_entries_exits_nb

__all__ = [
    "DIR_BOTH",
    "DIR_LONG",
    "DIR_SHORT",
    "N_STATS",
    "STAT_FIELDS",
    "breakout_targets_nb",
    "ema_cross_targets_nb",
    "pairwise_sum_nb",
    "sweep_slot_nb",
]

DIR_LONG = 0
DIR_SHORT = 1
DIR_BOTH = 2

STAT_FIELDS: tuple[str, ...] = (
    "final_equity",  # equity at the last close
    "peak_equity",  # highest close equity
    "sum_returns",  # pairwise Σ r over the T-1 bar returns
    "n_returns",
    "sum_sq_dev",  # pairwise Σ (r - mean)²
    "sum_neg_sq",  # pairwise Σ min(r, 0)²
    "sum_cube_dev",  # pairwise Σ (r - mean)³
    "sum_quart_dev",  # pairwise Σ (r - mean)⁴
    "min_drawdown",  # min_t E_t / peak_t - 1 (fraction, <= 0)
    "n_trades",  # closed trades + the trade still open at the end
    "n_wins",
    "n_losses",
    "gross_profit",  # pairwise Σ pnl over winners, in trade order
    "gross_loss",  # pairwise Σ -pnl over losers
    "sum_pnl",  # pairwise Σ pnl
    "held_bars",  # bars with a position held at some time in the bar
    "traded_notional",  # pairwise Σ |fill notional| in fill order
    "sum_equity",  # pairwise Σ E_t
    "n_liquidations",
    "n_risk_resized",
    "n_risk_rejected",
    "cum_costs",  # first of N_COST columns: the simulator's cost totals at the end
)
"""Columns of :func:`sweep_slot_nb`'s ``out_stats`` (the last name starts ``N_COST`` columns
in :data:`~quantum_trading.sim.records.COST_COLUMNS` order)."""

N_STATS = len(STAT_FIELDS) - 1 + N_COST

(S_FINAL, S_PEAK, S_SUM_R, S_N_R, S_SS_DEV, S_NEG_SQ, S_CUBE, S_QUART, S_MIN_DD, S_TRADES,
 S_WINS, S_LOSSES, S_GROSS_WIN, S_GROSS_LOSS, S_SUM_PNL, S_HELD, S_NOTIONAL, S_SUM_EQ, S_N_LIQ,
 S_RESIZED, S_REJECTED, S_COSTS) = range(len(STAT_FIELDS))


# --------------------------------------------------------------------------------------------
# numpy's pairwise summation
# --------------------------------------------------------------------------------------------

@njit(cache=True)
def _block_sum_nb(a: np.ndarray, lo: int, n: int) -> float:
    """numpy's pairwise-sum leaf: up to 128 values, 8 interleaved partial sums."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = 8
    m = n - n % 8
    while i < m:
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True)
def pairwise_sum_nb(a: np.ndarray, lo: int, n: int) -> float:
    """``a[lo:lo+n].sum()`` exactly as numpy computes it for a contiguous float64 array:
    blocks of up to 128 values summed with 8 interleaved partial sums, larger ranges split
    in two (the first half a multiple of 8) and the halves added — so results match
    ``np.sum`` / ``np.mean`` / ``np.std`` bit for bit. (An explicit stack instead of
    recursion: numba's on-disk cache mishandles recursive functions.)

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=1000)
    >>> bool(0.0 + pairwise_sum_nb(x, 0, 1000) == x.sum())
    True
    """
    if n <= 128:
        return _block_sum_nb(a, lo, n)
    los = np.empty(64, dtype=np.int64)
    ns = np.empty(64, dtype=np.int64)
    lefts = np.empty(64)
    stage = np.empty(64, dtype=np.int64)  # 0: left half pending, 1: left sum in lefts
    sp = 0
    los[0] = lo
    ns[0] = n
    stage[0] = 0
    while True:
        size = ns[sp]
        if size > 128:  # descend into the left half
            half = size // 2
            half -= half % 8
            sp += 1
            los[sp] = los[sp - 1]
            ns[sp] = half
            stage[sp] = 0
            continue
        v = _block_sum_nb(a, los[sp], size)
        sp -= 1
        while True:  # hand the sum up: a left half waits for its right half
            if sp < 0:
                return v
            if stage[sp] == 0:
                lefts[sp] = v
                stage[sp] = 1
                half = ns[sp] // 2
                half -= half % 8
                sp += 1
                los[sp] = los[sp - 1] + half
                ns[sp] = ns[sp - 1] - half
                stage[sp] = 0
                break
            v = lefts[sp] + v
            sp -= 1


@njit(cache=True)
def _np_sum_nb(a: np.ndarray, n: int) -> float:
    """``np.sum(a[:n])`` (the reduction starts from 0.0)."""
    return 0.0 + pairwise_sum_nb(a, 0, n)


# --------------------------------------------------------------------------------------------
# Stage 1: targets
# --------------------------------------------------------------------------------------------

@njit(cache=True, parallel=True)
def ema_cross_targets_nb(ema_table: np.ndarray, fast_row: np.ndarray, slow_row: np.ndarray,
                         direction: np.ndarray, size: np.ndarray, ready: np.ndarray,
                         n_chunks: int, out: np.ndarray) -> None:
    """Targets of the EMA-cross rule (``trend_following``) for K parameter sets.

    ``ema_table[j]``: EMA of the close for the j-th distinct period; ``fast_row[k]`` /
    ``slow_row[k]``: rows of set k; ``direction[k]``: ``DIR_LONG/SHORT/BOTH``; ``size[k]``;
    ``ready[t]``: extra readiness (ATR > 0 for ATR stops, else all True); ``n_chunks``:
    parallel chunks (each reuses its event buffers). Writes ``out[k, t]``, the target decided
    at bar t's close — the strategy's own rule: with ``d = EMA_fast − EMA_slow``, long entry
    ``d[t] > 0 >= d[t−1]``, long exit ``d[t] < 0``, short entry ``d[t] < 0 <= d[t−1]``, short
    exit ``d[t] > 0``; entries only where d exists.
    """
    n_sets, n_bars = out.shape
    for c in prange(n_chunks):
        le = np.empty(n_bars, dtype=np.bool_)
        lx = np.empty(n_bars, dtype=np.bool_)
        se = np.empty(n_bars, dtype=np.bool_)
        sx = np.empty(n_bars, dtype=np.bool_)
        for k in range(c, n_sets, n_chunks):
            f = ema_table[fast_row[k]]
            s = ema_table[slow_row[k]]
            can_long = direction[k] != DIR_SHORT
            can_short = direction[k] != DIR_LONG
            prev = np.nan
            for t in range(n_bars):
                d = f[t] - s[t]
                ok = (not math.isnan(d)) and ready[t]
                le[t] = can_long and ok and d > 0.0 and prev <= 0.0
                lx[t] = d < 0.0
                se[t] = can_short and ok and d < 0.0 and prev >= 0.0
                sx[t] = d > 0.0
                prev = d
            pos = position_from_entries_exits_nb(le, lx, se, sx)
            sz = size[k]
            row = out[k]
            for t in range(n_bars):
                row[t] = pos[t] * sz + 0.0


@njit(cache=True, parallel=True)
def breakout_targets_nb(close: np.ndarray, volume: np.ndarray, upper: np.ndarray,
                        lower: np.ndarray, vol_mean: np.ndarray, entry_row: np.ndarray,
                        exit_row: np.ndarray, vol_row: np.ndarray, volume_factor: np.ndarray,
                        direction: np.ndarray, size: np.ndarray, ready: np.ndarray,
                        n_chunks: int, out: np.ndarray) -> None:
    """Targets of the volume-confirmed breakout rule (``momentum_breakout``) for K sets.

    ``upper[j]`` / ``lower[j]``: the Donchian channel of the j-th distinct window **shifted one
    bar** (the prior window's high / low); ``vol_mean[j]``: the prior mean volume of the j-th
    distinct period (shifted); ``entry_row`` / ``exit_row`` / ``vol_row``: rows of each set.
    The strategy's rule: long entry ``close > prior high(lookback)`` and ``volume >
    volume_factor × prior mean``, long exit ``close < prior low(exit_lookback)``, shorts
    mirrored; entries only once both channels and the volume mean exist.
    """
    n_sets, n_bars = out.shape
    for c in prange(n_chunks):
        le = np.empty(n_bars, dtype=np.bool_)
        lx = np.empty(n_bars, dtype=np.bool_)
        se = np.empty(n_bars, dtype=np.bool_)
        sx = np.empty(n_bars, dtype=np.bool_)
        for k in range(c, n_sets, n_chunks):
            eu = upper[entry_row[k]]
            el = lower[entry_row[k]]
            xu = upper[exit_row[k]]
            xl = lower[exit_row[k]]
            vm = vol_mean[vol_row[k]]
            vf = volume_factor[k]
            can_long = direction[k] != DIR_SHORT
            can_short = direction[k] != DIR_LONG
            for t in range(n_bars):
                c_t = close[t]
                heavy = volume[t] > vf * vm[t]
                ok = (ready[t] and not math.isnan(eu[t]) and not math.isnan(xu[t])
                      and not math.isnan(vm[t]))
                le[t] = can_long and ok and c_t > eu[t] and heavy
                lx[t] = c_t < xl[t]
                se[t] = can_short and ok and c_t < el[t] and heavy
                sx[t] = c_t > xu[t]
            pos = position_from_entries_exits_nb(le, lx, se, sx)
            sz = size[k]
            row = out[k]
            for t in range(n_bars):
                row[t] = pos[t] * sz + 0.0


# --------------------------------------------------------------------------------------------
# Stage 2: the simulator on every row
# --------------------------------------------------------------------------------------------

@njit(cache=True)
def _copy_nb(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` for same-shape contiguous arrays (a flat loop compiles fast)."""
    d = dst.reshape(-1)
    s = src.reshape(-1)
    for i in range(d.shape[0]):
        d[i] = s[i]


@njit(cache=True)
def _reset_state_nb(st, tpl) -> None:
    """Make ``st`` a fresh state again: copy every array of the fresh template ``tpl`` that
    the kernel reads before writing (record buffers and per-bar outputs are write-first)."""
    _copy_nb(st.acct, tpl.acct)
    _copy_nb(st.counters, tpl.counters)
    _copy_nb(st.pos, tpl.pos)
    _copy_nb(st.posi, tpl.posi)
    _copy_nb(st.pend, tpl.pend)
    _copy_nb(st.last_target, tpl.last_target)
    _copy_nb(st.asset_totals, tpl.asset_totals)
    _copy_nb(st.scratch, tpl.scratch)
    _copy_nb(st.work, tpl.work)
    _copy_nb(st.risk.acct, tpl.risk.acct)
    _copy_nb(st.risk.ints, tpl.risk.ints)
    _copy_nb(st.risk.forced, tpl.risk.forced)
    _copy_nb(st.risk.proj, tpl.risk.proj)
    _copy_nb(st.risk.prices, tpl.risk.prices)


@njit(cache=True)
def _drain_nb(st, spans: np.ndarray, pnl: np.ndarray, n_pnl: int, notional: np.ndarray,
              n_fill: int, counts: np.ndarray) -> tuple[int, int]:
    """Fold the records written so far into the buffers and counts, then empty them."""
    nf = st.counters[C_FILLS]
    for j in range(nf):
        rec = st.fills[j]
        notional[n_fill] = abs(rec["notional_usd"])
        n_fill += 1
        if rec["order_type"] == OT_LIQUIDATION:
            counts[0] += 1
    nt = st.counters[C_TRADES]
    for j in range(nt):
        rec = st.trades[j]
        pnl[n_pnl] = rec["pnl_usd"]
        spans[2 * n_pnl] = rec["entry_bar"]
        spans[2 * n_pnl + 1] = rec["exit_bar"]
        n_pnl += 1
    rs = st.risk
    if rs.ints[RI_ENABLED] != 0:
        nd = rs.ints[RI_N_DECISIONS]
        for j in range(nd):
            action = rs.decisions[j]["action"]
            if action == RD_RESIZE:
                counts[1] += 1
            elif action == RD_REJECT:
                counts[2] += 1
        rs.ints[RI_N_DECISIONS] = 0
    st.counters[C_FILLS] = 0
    st.counters[C_ORDERS] = 0
    st.counters[C_TRADES] = 0
    st.counters[C_SNAPS] = 0  # account snapshots: not needed here (equity is per bar)
    return n_pnl, n_fill


@njit(cache=True)
def _finish_nb(st, n_bars: int, spans: np.ndarray, pnl: np.ndarray, n_pnl: int,
               notional: np.ndarray, n_fill: int, counts: np.ndarray, scratch: np.ndarray,
               sample_idx: np.ndarray, out: np.ndarray, samples: np.ndarray) -> None:
    """The statistics' ingredients of one finished run (see :data:`STAT_FIELDS`)."""
    eq = st.out_equity
    n_r = n_bars - 1
    r = scratch[:n_r]
    a1 = scratch[n_r : 2 * n_r]
    a2 = scratch[2 * n_r : 3 * n_r]
    a3 = scratch[3 * n_r : 4 * n_r]
    # equity: peak and drawdown (metrics.drawdown); per-bar returns (metrics.bar_returns)
    peak = -np.inf
    min_dd = np.inf
    for t in range(n_bars):
        e = eq[t]
        if e > peak:
            peak = e
        dd = e / peak - 1.0 if peak > 0.0 else 0.0
        if dd < min_dd:
            min_dd = dd
        if t < n_r:
            rr = eq[t + 1] / e - 1.0 if e > 0.0 else 0.0
            r[t] = rr
            neg = min(rr, 0.0)
            a1[t] = neg * neg
    out[S_FINAL] = eq[n_bars - 1]
    out[S_PEAK] = peak
    out[S_MIN_DD] = min_dd
    out[S_SUM_EQ] = _np_sum_nb(eq, n_bars)
    for j in range(sample_idx.shape[0]):
        samples[j] = eq[sample_idx[j]]
    # moments of the returns, each sum in numpy's pairwise order (sharpe / sortino / moments)
    s = _np_sum_nb(r, n_r)
    out[S_SUM_R] = s
    out[S_N_R] = n_r
    out[S_NEG_SQ] = _np_sum_nb(a1, n_r)
    mean = s / n_r
    for t in range(n_r):
        d = r[t] - mean
        d2 = d * d
        a1[t] = d2
        a2[t] = d2 * d
        a3[t] = d2 * d2
    out[S_SS_DEV] = _np_sum_nb(a1, n_r)
    out[S_CUBE] = _np_sum_nb(a2, n_r)
    out[S_QUART] = _np_sum_nb(a3, n_r)
    # trades, in entry order (one asset's trades follow one another), and exposure: the bars
    # entry..exit of every trade, counted once (metrics.exposure_time_pct)
    wins = 0
    losses = 0
    for j in range(n_pnl):
        p = pnl[j]
        if p > 0.0:
            scratch[wins] = p
            wins += 1
    out[S_GROSS_WIN] = _np_sum_nb(scratch, wins)
    for j in range(n_pnl):
        p = pnl[j]
        if p < 0.0:
            scratch[losses] = -p
            losses += 1
    out[S_GROSS_LOSS] = _np_sum_nb(scratch, losses)
    out[S_SUM_PNL] = _np_sum_nb(pnl, n_pnl)
    out[S_TRADES] = n_pnl
    out[S_WINS] = wins
    out[S_LOSSES] = losses
    held = 0
    covered = -1  # last bar counted
    for j in range(n_pnl):
        a = spans[2 * j]
        b = spans[2 * j + 1]
        if a > covered:
            held += b - a + 1
        elif b > covered:
            held += b - covered
        if b > covered:
            covered = b
    out[S_HELD] = held
    out[S_NOTIONAL] = _np_sum_nb(notional, n_fill)
    out[S_N_LIQ] = counts[0]
    out[S_RESIZED] = counts[1]
    out[S_REJECTED] = counts[2]
    for c in range(N_COST):
        out[S_COSTS + c] = st.acct[A_REALIZED + c]  # cumulative at the last close


@njit(cache=True, nogil=True)
def sweep_slot_nb(st, template, bars, signals, params, targets: np.ndarray, first: int,
                  step: int, sample_idx: np.ndarray, spans: np.ndarray, pnl: np.ndarray,
                  notional: np.ndarray, scratch: np.ndarray, open_rec: np.ndarray,
                  out_stats: np.ndarray, out_samples: np.ndarray) -> None:
    """Simulate rows ``first, first + step, …`` of ``targets`` with
    :func:`~quantum_trading.sim.engine_nb.simulate_nb`, one after the other on one state.

    Runs without the GIL: one Python thread per worker slot calls it with its own state and
    buffers (``first`` = slot number, ``step`` = number of slots), so the slots run in
    parallel on separate cores.

    Parameters
    ----------
    st:
        The slot's :class:`~quantum_trading.sim.state.SimState` (one asset, per-bar outputs
        for ``T`` bars); reset from ``template`` (a fresh state, never stepped) before each row.
    bars, signals, params:
        The prepared simulator inputs (:func:`~quantum_trading.sim.prepare`); ``signals``
        provides the stop arrays, its target is replaced by each row.
    targets:
        ``[K, T]`` read-only targets, one row per parameter set.
    sample_idx:
        Bars whose equity is copied into ``out_samples`` (for returns matrices).
    spans, pnl, notional, scratch, open_rec:
        The slot's work buffers: room for every trade (entry and exit bar, int64, two per
        trade; PnL, float64) and every fill notional (float64) the run can make (the
        simulator's most records per step × T, + 2); float64 ``scratch`` of at least
        ``max(4T, len(pnl))``; a one-record ``trade_dt`` array.
    out_stats, out_samples:
        ``[K, N_STATS]`` and ``[K, len(sample_idx)]`` outputs (only this slot's rows written).
    """
    n_sets, n_bars = targets.shape
    counts = np.zeros(3, dtype=np.int64)
    for k in range(first, n_sets, step):
        _reset_state_nb(st, template)
        for j in range(3):
            counts[j] = 0
        sig = SignalArrays(targets[k].reshape((n_bars, 1)), signals.sl_frac, signals.sl_dist,
                           signals.sl_price, signals.tp_frac, signals.tp_dist,
                           signals.tp_price, signals.trail_frac, signals.trail_dist)
        n_pnl = 0
        n_fill = 0
        t = 0
        while True:
            t = simulate_nb(st, bars, sig, params, t, n_bars)
            n_pnl, n_fill = _drain_nb(st, spans, pnl, n_pnl, notional, n_fill, counts)
            if t >= n_bars:
                break
        m = open_trades_nb(st, n_bars - 1, open_rec)
        for j in range(m):
            rec = open_rec[j]
            pnl[n_pnl] = rec["pnl_usd"]
            spans[2 * n_pnl] = rec["entry_bar"]
            spans[2 * n_pnl + 1] = rec["exit_bar"]
            n_pnl += 1
        _finish_nb(st, n_bars, spans, pnl, n_pnl, notional, n_fill, counts, scratch, sample_idx,
                   out_stats[k], out_samples[k])
