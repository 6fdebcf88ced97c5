"""Evaluate parameter sets of a sweep job: batched numba kernels, or one Backtest per set.

:func:`evaluate_chunk` is what a worker (this process, a pool process or a Ray task) runs on
a slice of a :class:`~quantum_trading.research.sweep_job.SweepJob`'s parameter sets. Batched
(``job.batched``): the targets of a batch of sets come from the strategy's builder
(:mod:`~quantum_trading.research.sweep_signals`), then **the simulator's own kernel loop**
(:func:`~quantum_trading.sim.engine_nb.simulate_nb`) runs each target row, one thread per
core with the GIL released, each reusing one simulator state, and reduces each run to the
numbers of the backtest statistics (:mod:`~quantum_trading.research.sweep_nb`). Otherwise one
:class:`~quantum_trading.backtest.Backtest` per set.

Either way a set's row equals ``Backtest(...).run().stats`` for
:data:`~quantum_trading.research.sweep_job.TABLE_STATS` (tested to 1e-12; all sums in numpy's
pairwise order), with the simulator's timing: targets decided at bar t's close fill at bar
t+1's open. Cost: about 25 ns per bar and parameter set on one core, batched.

>>> from quantum_trading.data import generate_market
>>> from quantum_trading.research.sweep_job import make_job
>>> bars = generate_market(n_assets=1, n_bars=600, seed=3).ohlcv["BTC/USDT:USDT"]
>>> job = make_job(bars, "trend_following", {"fast": [10, 20], "slow": [50]})
>>> chunk = evaluate_chunk(job, [1], n_threads=1)
>>> chunk.indices.tolist(), chunk.stats.shape[0], chunk.samples.shape
([1], 1, (1, 600))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from quantum_trading.backtest import metrics as m
from quantum_trading.data.timeframes import YEAR
from quantum_trading.domain import Signals
from quantum_trading.research import sweep_nb as k
from quantum_trading.research.sweep_job import TABLE_STATS, SweepJob
from quantum_trading.research.sweep_signals import batch_signals_for
from quantum_trading.sim import new_state, prepare
from quantum_trading.sim.records import FILLS_PER_ASSET_STEP, TRADES_PER_ASSET_STEP, trade_dt
from quantum_trading.sim.state import SimState, risk_params

__all__ = ["ChunkResult", "evaluate_chunk"]

_MAX_TARGET_BYTES = 8 * 2**20  # one batch of targets (small: still in cache when simulated)
_RECORD_CAPACITY = 4096  # fills / orders / trades per slot before a drain


@dataclass(frozen=True, eq=False)
class ChunkResult:
    """Statistics of some parameter sets of a job (rows in the order of ``indices``)."""

    indices: np.ndarray
    stats: np.ndarray  # [n, len(TABLE_STATS)] float64
    per_bar_sharpe: np.ndarray  # [n]
    samples: np.ndarray  # [n, len(sample_idx)] equity at the sampled bars


def _stats_row(raw: np.ndarray, initial: float, ppy: float, years: float
               ) -> tuple[list[float], float]:
    """TABLE_STATS values from one row of :func:`~.sweep_nb.sweep_sim_nb`'s output, with the
    formulas of :mod:`quantum_trading.backtest.metrics` (same operations, same order); and
    the per-bar Sharpe ratio."""
    final, peak = float(raw[k.S_FINAL]), float(raw[k.S_PEAK])
    n_r = int(raw[k.S_N_R])
    sqrt_p = math.sqrt(ppy)
    sharpe = sortino = vol = sr_bar = psr = math.nan
    if n_r >= 2:
        mean = float(raw[k.S_SUM_R]) / n_r
        sd = math.sqrt(float(raw[k.S_SS_DEV]) / (n_r - 1))
        vol = 100.0 * sd * sqrt_p
        if sd > 0:
            sharpe = mean / sd * sqrt_p
            sr_bar = mean / sd * math.sqrt(1.0)
        dd = math.sqrt(float(raw[k.S_NEG_SQ]) / n_r)
        sortino = (math.inf if mean > 0 else math.nan) if dd == 0.0 else mean / dd * sqrt_p
        m2 = float(raw[k.S_SS_DEV]) / n_r
        if m2 > 0:
            skew = float(raw[k.S_CUBE]) / n_r / m2**1.5
            kurt = float(raw[k.S_QUART]) / n_r / m2**2
        else:
            skew = kurt = math.nan
        psr = m.psr_from_moments(sr_bar, n_r, skew, kurt, 0.0)
    ret = 100.0 * (final / initial - 1.0) if initial > 0 else math.nan
    if years <= 0 or initial <= 0:
        cagr = math.nan
    else:
        cagr = 100.0 * ((max(final, 0.0) / initial) ** (1.0 / years) - 1.0)
    max_dd = 100.0 * float(raw[k.S_MIN_DD])
    n_tr = int(raw[k.S_TRADES])
    wins, losses = int(raw[k.S_WINS]), int(raw[k.S_LOSSES])
    gain, loss = float(raw[k.S_GROSS_WIN]), float(raw[k.S_GROSS_LOSS])
    win_rate = 100.0 * (wins / n_tr) if n_tr else math.nan
    if loss == 0.0:
        pf = math.inf if gain > 0 else math.nan
    else:
        pf = gain / loss
    payoff = (gain / wins) / abs(-loss / losses) if wins and losses else math.nan
    expectancy = float(raw[k.S_SUM_PNL]) / n_tr if n_tr else math.nan
    n_bars = n_r + 1
    exposure = 100.0 * (float(raw[k.S_HELD]) / n_bars)
    mean_eq = float(raw[k.S_SUM_EQ]) / n_bars
    turnover = float(raw[k.S_NOTIONAL]) / mean_eq if mean_eq > 0 else math.nan
    costs = raw[k.S_COSTS:]
    values = [ret, cagr, sharpe, sortino, m.calmar_ratio(cagr, max_dd), max_dd, vol, n_tr,
              win_rate, pf, payoff, expectancy, exposure, turnover, final, peak,
              float(costs[1]), float(costs[5]), float(costs[2]), float(costs[3]),
              float(costs[4]), float(costs[6]), float(raw[k.S_N_LIQ]),
              float(raw[k.S_RESIZED]), float(raw[k.S_REJECTED]), psr]
    return values, sr_bar


def _slots(n_sets: int, n_threads: int | None) -> int:
    threads = numba.get_num_threads() if n_threads is None else int(n_threads)
    return max(1, min(threads, n_sets))


def _evaluate_batched(job: SweepJob, indices: np.ndarray, n_threads: int | None,
                      progress: Callable[[int], None] | None) -> ChunkResult:
    sets = [job.param_sets[i] for i in indices]
    bt = job.backtest(sets[0])
    frame = bt.strategy_data()
    template_signals: Signals = job.strategy.signals(frame, **bt.params)
    prep = prepare(frame, template_signals, instruments=bt.instruments, costs=bt.costs,
                   account=bt.account, funding=bt.funding, mark=bt.mark)
    n_bars = len(prep.index)
    params = prep.params
    risk = bt.risk
    if risk is not None:
        params = params._replace(risk=risk_params(risk, prep.index.as_unit("ns").asi8))
    mult = risk.risk_multiplier if risk is not None else 1.0
    n_tiers = prep.params.tiers.shape[1]

    def fresh(capacity: int | None) -> SimState:
        return new_state(1, bt.account.initial_cash_usd, n_bars=n_bars, n_tiers_max=n_tiers,
                         fills_capacity=capacity, orders_capacity=capacity,
                         trades_capacity=capacity, risk=risk is not None,
                         risk_multiplier=mult)

    n_sets = len(sets)
    slots = _slots(n_sets, n_threads)
    template = fresh(None)
    states = tuple(fresh(_RECORD_CAPACITY) for _ in range(slots))
    n_pnl = TRADES_PER_ASSET_STEP * n_bars + 2
    n_fill = FILLS_PER_ASSET_STEP * n_bars + 2
    buffers = [(np.zeros(2 * n_pnl, dtype=np.int64), np.zeros(n_pnl), np.zeros(n_fill),
                np.zeros(max(4 * n_bars, n_pnl)), np.zeros(1, dtype=trade_dt))
               for _ in range(slots)]
    sample_idx = np.ascontiguousarray(job.sample_idx, dtype=np.int64)
    raw = np.zeros((n_sets, k.N_STATS))
    samples = np.zeros((n_sets, len(sample_idx)))
    fill = batch_signals_for(job.strategy).plan(frame, sets)  # type: ignore[union-attr]
    batch = max(slots, min(n_sets, _MAX_TARGET_BYTES // (8 * n_bars)))
    batch = max(slots, batch - batch % slots)
    local = np.arange(n_sets, dtype=np.int64)
    previous = numba.get_num_threads()
    numba.set_num_threads(slots)
    pool = ThreadPoolExecutor(max_workers=slots) if slots > 1 else None
    try:
        for start in range(0, n_sets, batch):
            stop = min(start + batch, n_sets)
            targets = np.empty((stop - start, n_bars))
            fill(local[start:stop], targets)
            targets.flags.writeable = False
            out_raw, out_samples = raw[start:stop], samples[start:stop]

            def run_slot(w: int, targets: np.ndarray = targets, out_raw: np.ndarray = out_raw,
                         out_samples: np.ndarray = out_samples) -> None:
                k.sweep_slot_nb(states[w], template, prep.bars, prep.signals, params, targets,
                                w, slots, sample_idx, *buffers[w], out_raw, out_samples)

            if pool is None:
                run_slot(0)
            else:
                for future in [pool.submit(run_slot, w) for w in range(slots)]:
                    future.result()
            if progress is not None:
                progress(stop - start)
    finally:
        numba.set_num_threads(previous)
        if pool is not None:
            pool.shutdown()
    initial = float(bt.account.initial_cash_usd)
    ppy = m.periods_per_year(prep.index)
    years = (prep.index[-1] - prep.index[0]) / YEAR
    stats = np.empty((n_sets, len(TABLE_STATS)))
    sr_bar = np.empty(n_sets)
    for j in range(n_sets):
        values, sr_bar[j] = _stats_row(raw[j], initial, ppy, years)
        stats[j] = values
    return ChunkResult(indices=np.asarray(indices), stats=stats, per_bar_sharpe=sr_bar,
                       samples=samples)


def _evaluate_one(job: SweepJob, params: Mapping[str, Any]
                  ) -> tuple[list[float], float, np.ndarray]:
    """TABLE_STATS, per-bar Sharpe and sampled equity of one parameter set via Backtest."""
    result = job.backtest(params).run()
    stats = result.stats
    values = [float(stats[key]) for key in TABLE_STATS]
    sr_bar = m.sharpe_ratio(result.returns, 1.0)
    equity = result.equity.to_numpy(dtype=np.float64)
    return values, sr_bar, equity[job.sample_idx]


def evaluate_chunk(job: SweepJob, indices: Sequence[int] | np.ndarray, *,
                   n_threads: int | None = None,
                   progress: Callable[[int], None] | None = None) -> ChunkResult:
    """Evaluate the parameter sets ``job.param_sets[i]`` for ``i`` in ``indices``.

    Batched kernels when ``job.batched`` (``n_threads`` numba threads, default all), else one
    :class:`Backtest` per set. ``progress(n)`` is called as sets finish. The numbers of a set
    never depend on which other sets share the chunk, the thread count or the backend.
    """
    idx = np.asarray(indices, dtype=np.int64)
    if job.batched and len(idx):
        return _evaluate_batched(job, idx, n_threads, progress)
    stats = np.empty((len(idx), len(TABLE_STATS)))
    sr_bar = np.empty(len(idx))
    samples = np.empty((len(idx), len(job.sample_idx)))
    for j, i in enumerate(idx):
        values, sr_bar[j], samples[j] = _evaluate_one(job, job.param_sets[int(i)])
        stats[j] = values
        if progress is not None:
            progress(1)
    return ChunkResult(indices=idx, stats=stats, per_bar_sharpe=sr_bar, samples=samples)

