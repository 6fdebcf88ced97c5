"""Fast parameter sweeps: many parameter sets of one strategy on one market, batched.

Where a strategy has a *vectorised target builder*
(:func:`~quantum_trading.research.sweep_signals.register_batch_signals`; the library's
``trend_following`` and ``momentum_breakout`` are registered), a sweep

1. computes each indicator **once per distinct parameter value** (every EMA period of the
   grid, every Donchian window, every volume-mean period) with the same
   :mod:`quantum_trading.features` functions the strategy calls;
2. builds the targets of a batch of parameter sets in one numba kernel (``prange`` over sets,
   the strategy's own entry/exit state machine);
3. runs the **simulator's own kernel loop** (:func:`~quantum_trading.sim.engine_nb.simulate_nb`)
   on each target row, ``prange`` over cores, each core reusing one state, and reduces each
   run to the numbers of the backtest statistics (:mod:`~quantum_trading.research.sweep_nb`).

The parts, one module each: :mod:`~quantum_trading.research.sweep_signals` (target
builders), :mod:`~quantum_trading.research.sweep_job` (the checked, picklable job and
:data:`TABLE_STATS`), :mod:`~quantum_trading.research.sweep_eval` (evaluating a slice of the
job's parameter sets, which is what a worker runs) and this module (putting the slices
together in grid order, and :func:`sweep` in one process). Their public names are importable
from here too.

The result of each parameter set equals ``Backtest(data, strategy, params=…, same configs)
.run().stats`` for the columns in :data:`TABLE_STATS` (tested to 1e-12; all sums are taken
with numpy's pairwise order). Other strategies, several assets, or a grid that varies a
parameter the builder does not handle (e.g. stop distances) fall back to one
:class:`~quantum_trading.backtest.Backtest` per parameter set.

Timing is the simulator's: targets decided at bar t's close fill at bar t+1's open.

>>> from quantum_trading.data import generate_market
>>> bars = generate_market(n_assets=1, n_bars=600, seed=3).ohlcv["BTC/USDT:USDT"]
>>> res = sweep(bars, "trend_following", {"fast": [10, 20], "slow": [50, 100]})
>>> res.batched, len(res.table), "Sharpe Ratio" in res.table
(True, 4, True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.backtest import metrics as m
from quantum_trading.domain import Instrument
from quantum_trading.research.sweep_eval import ChunkResult, evaluate_chunk
from quantum_trading.research.sweep_job import (
    TABLE_STATS,
    SweepJob,
    make_job,
    param_grid,
    resolve_strategy,
)
from quantum_trading.research.sweep_signals import (
    BatchSignals,
    batch_signals_for,
    register_batch_signals,
)
from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig
from quantum_trading.strategies import Strategy

__all__ = [
    "TABLE_STATS",
    "BatchSignals",
    "ChunkResult",
    "SweepJob",
    "SweepResult",
    "assemble",
    "batch_signals_for",
    "evaluate_chunk",
    "make_job",
    "param_grid",
    "register_batch_signals",
    "resolve_strategy",
    "sweep",
]

_INT_STATS = ("# Trades", "# Liquidations", "# Risk Resized", "# Risk Rejected")
_DEFAULT_COSTS = CostsConfig()
_DEFAULT_ACCOUNT = AccountConfig()
_DEFAULT_RISK = RiskConfig()


@dataclass(frozen=True, eq=False)
class SweepResult:
    """The statistics of every parameter set of a sweep.

    Attributes
    ----------
    table:
        One row per parameter set (index = position in the grid): the parameters, then
        :data:`TABLE_STATS`.
    param_names:
        The parameter columns of ``table``.
    returns:
        Simple returns of every set between the sampled bars (rows: sample end times;
        columns: the table's index) — per bar unless the run has more than
        ``max_return_rows`` returns. The input of the probability of backtest overfitting.
    per_bar_sharpe:
        Non-annualised Sharpe ratio of each set's per-bar returns (the unit of the deflated
        Sharpe ratio).
    batched:
        Whether the batched kernels ran (else one Backtest per set).
    periods_per_year:
        Bars per year of the data.
    """

    table: pd.DataFrame
    param_names: tuple[str, ...]
    returns: pd.DataFrame
    per_bar_sharpe: np.ndarray
    batched: bool
    periods_per_year: float


def assemble(job: SweepJob, chunks: Sequence[ChunkResult]) -> SweepResult:
    """Put the chunks of a job together in grid order."""
    n = len(job.param_sets)
    stats = np.full((n, len(TABLE_STATS)), np.nan)
    sr_bar = np.full(n, np.nan)
    samples = np.full((n, len(job.sample_idx)), np.nan)
    for c in chunks:
        stats[c.indices] = c.stats
        sr_bar[c.indices] = c.per_bar_sharpe
        samples[c.indices] = c.samples
    names = tuple(job.param_sets[0])
    params = pd.DataFrame(list(job.param_sets), columns=list(names))
    frame = pd.DataFrame(stats, columns=list(TABLE_STATS))
    for key in _INT_STATS:
        frame[key] = frame[key].astype(np.int64)
    table = pd.concat([params, frame], axis=1)
    index = _index_of(job.data)
    times = index[job.sample_idx[1:]]
    with np.errstate(divide="ignore", invalid="ignore"):
        prev, cur = samples[:, :-1], samples[:, 1:]
        rets = np.where(prev > 0.0, cur / np.where(prev > 0.0, prev, 1.0) - 1.0, 0.0)
    returns = pd.DataFrame(rets.T, index=times, columns=table.index)
    return SweepResult(table=table, param_names=names, returns=returns, per_bar_sharpe=sr_bar,
                       batched=job.batched, periods_per_year=float(m.periods_per_year(index)))


def _index_of(data: Any) -> pd.DatetimeIndex:
    if isinstance(data, pd.DataFrame):
        return data.index
    return next(iter(data.values())).index


def sweep(
    data: pd.DataFrame | Mapping[str, pd.DataFrame],
    strategy: Strategy | str | Callable[..., Any],
    grid: Mapping[str, Any] | Sequence[Mapping[str, Any]] | int | None = None,
    *,
    instrument: Instrument | Mapping[str, Instrument] | None = None,
    costs: CostsConfig = _DEFAULT_COSTS,
    account: AccountConfig = _DEFAULT_ACCOUNT,
    risk: RiskConfig | None = _DEFAULT_RISK,
    funding: Any = None,
    mark: Any = None,
    max_return_rows: int | None = None,
    batched: bool | None = None,
    n_threads: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> SweepResult:
    """Backtest every parameter set of a grid, in this process, on all cores.

    Parameters
    ----------
    data, strategy, instrument, costs, account, risk, funding, mark:
        As :class:`~quantum_trading.backtest.Backtest` (``risk`` defaults to ``RiskConfig()``
        there too; None = no risk engine).
    grid:
        ``{name: count or list of values}``, a list of parameter dicts, an int (values per
        optimisable parameter) or None (5): see :func:`param_grid`.
    max_return_rows:
        Most rows of the returns matrix (equity sampled every ``ceil((T−1)/rows)`` bars).
        Default: every bar while the matrix holds at most 25 million values, else as many
        rows as fit in that (at least 2,000).
    batched:
        None: batched kernels where possible; True: require them; False: one Backtest per set.
    n_threads:
        numba threads for the batched kernels (default: all cores).
    progress:
        Called with the number of sets finished, as they finish.

    Returns
    -------
    SweepResult
        Per-set statistics equal to ``Backtest(...).run().stats`` for :data:`TABLE_STATS`.
    """
    job = make_job(data, strategy, grid, instrument=instrument, costs=costs, account=account,
                   risk=risk, funding=funding, mark=mark, max_return_rows=max_return_rows,
                   batched=batched)
    chunk = evaluate_chunk(job, np.arange(len(job.param_sets)), n_threads=n_threads,
                           progress=progress)
    return assemble(job, [chunk])

