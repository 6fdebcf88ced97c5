"""Fast parameter sweeps: many parameter sets of one strategy on one market, batched.

Where a strategy has a *vectorised target builder* (:func:`register_batch_signals`; the
library's ``trend_following`` and ``momentum_breakout`` are registered here), a sweep

1. computes each indicator **once per distinct parameter value** (every EMA period of the
   grid, every Donchian window, every volume-mean period) with the same
   :mod:`quantum_trading.features` functions the strategy calls;
2. builds the targets of a batch of parameter sets in one numba kernel (``prange`` over sets,
   the strategy's own entry/exit state machine);
3. runs the **simulator's own kernel loop** (:func:`~quantum_trading.sim.engine_nb.simulate_nb`)
   on each target row, ``prange`` over cores, each core reusing one state, and reduces each
   run to the numbers of the backtest statistics (:mod:`~quantum_trading.research.sweep_nb`).

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

import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import pandas as pd

from quantum_trading.backtest import Backtest
from quantum_trading.backtest import metrics as m
from quantum_trading.data.timeframes import YEAR
from quantum_trading.domain import Instrument, Signals
from quantum_trading.errors import ConfigError
from quantum_trading.features import atr, donchian_channel, ema, sma
from quantum_trading.research import sweep_nb as k
from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig, new_state, prepare
from quantum_trading.sim.records import FILLS_PER_ASSET_STEP, TRADES_PER_ASSET_STEP, trade_dt
from quantum_trading.sim.state import SimState, risk_params
from quantum_trading.strategies import (
    MomentumBreakout,
    Strategy,
    TrendFollowing,
    get_strategy,
    strategy_from_function,
)

__all__ = [
    "TABLE_STATS",
    "BatchSignals",
    "SweepJob",
    "SweepResult",
    "batch_signals_for",
    "evaluate_chunk",
    "make_job",
    "param_grid",
    "register_batch_signals",
    "resolve_strategy",
    "sweep",
]

TABLE_STATS: tuple[str, ...] = (
    "Return [%]",
    "CAGR [%]",
    "Sharpe Ratio",
    "Sortino Ratio",
    "Calmar Ratio",
    "Max. Drawdown [%]",
    "Volatility (Ann.) [%]",
    "# Trades",
    "Win Rate [%]",
    "Profit Factor",
    "Payoff Ratio",
    "Expectancy [$]",
    "Exposure Time [%]",
    "Turnover [x]",
    "Equity Final [$]",
    "Equity Peak [$]",
    "Fees [$]",
    "Funding [$]",
    "Spread [$]",
    "Slippage [$]",
    "Impact [$]",
    "Liquidation Fees [$]",
    "# Liquidations",
    "# Risk Resized",
    "# Risk Rejected",
    "Probabilistic Sharpe Ratio",
)
"""The statistics a sweep reports per parameter set (keys of the backtest's stats, same
values)."""

_INT_STATS = ("# Trades", "# Liquidations", "# Risk Resized", "# Risk Rejected")
_DEFAULT_COSTS = CostsConfig()
_DEFAULT_ACCOUNT = AccountConfig()
_DEFAULT_RISK = RiskConfig()
_MAX_TARGET_BYTES = 8 * 2**20  # one batch of targets (small: still in cache when simulated)
_RECORD_CAPACITY = 4096  # fills / orders / trades per slot before a drain
_RETURNS_BUDGET = 25_000_000  # values in the returns matrix by default (200 MB of float64)
_MIN_RETURN_ROWS = 2000


# --------------------------------------------------------------------------------------------
# Vectorised target builders
# --------------------------------------------------------------------------------------------

Fill = Callable[[np.ndarray, np.ndarray], None]
"""``fill(indices, out)``: write the targets of parameter sets ``indices`` into
``out[len(indices), T]``."""


@dataclass(frozen=True)
class BatchSignals:
    """A strategy's vectorised target builder for sweeps.

    Attributes
    ----------
    strategy_type:
        The strategy class it was written for (a registered name is only batched when the
        strategy is an instance of it).
    varying:
        Parameters that may differ between the parameter sets of one sweep; every other
        parameter must be the same in all of them (the stop-loss / take-profit arrays are
        taken from the first set's signals).
    plan:
        ``plan(frame, param_sets) -> fill``: computes what the sets share (indicators once per
        distinct value) and returns ``fill(indices, out)``, which writes the target each set
        ``i`` in ``indices`` gives — equal to ``strategy.signals(frame, **param_sets[i])
        .target`` — into row ``out[j]``.
    """

    strategy_type: type
    varying: frozenset[str]
    plan: Callable[[pd.DataFrame, Sequence[Mapping[str, Any]]], Fill]


_BATCH: dict[str, BatchSignals] = {}


def register_batch_signals(name: str, builder: BatchSignals) -> None:
    """Use ``builder`` to batch sweeps of the strategy named ``name``."""
    if not isinstance(builder, BatchSignals):
        raise ConfigError("register_batch_signals: builder must be a BatchSignals")
    _BATCH[name] = builder


def batch_signals_for(strategy: Strategy) -> BatchSignals | None:
    """The registered builder of ``strategy`` (None if it has none)."""
    builder = _BATCH.get(getattr(strategy, "name", ""))
    if builder is None or not isinstance(strategy, builder.strategy_type):
        return None
    return builder


_DIRECTIONS = {"long": k.DIR_LONG, "short": k.DIR_SHORT, "both": k.DIR_BOTH}


def _common(frame: pd.DataFrame, sets: Sequence[Mapping[str, Any]]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Direction codes, sizes and the readiness mask of the ATR stops (as the library does:
    entries only where the ATR of ATR-based stops is > 0)."""
    direction = np.array([_DIRECTIONS[p.get("direction", "long")] for p in sets], dtype=np.int64)
    size = np.array([float(p.get("size", 1.0)) for p in sets], dtype=np.float64)
    p0 = sets[0]
    if p0.get("stop_loss_atr", 0.0) > 0 or p0.get("take_profit_atr", 0.0) > 0:
        values = atr(frame["high"], frame["low"], frame["close"], p0["atr_period"])
        ready = np.ascontiguousarray(values.gt(0.0).to_numpy(dtype=np.bool_))
    else:
        ready = np.ones(len(frame), dtype=np.bool_)
    return direction, size, ready


def _chunks(n_sets: int) -> int:
    """Parallel chunks of a target batch: a few per numba thread."""
    return max(1, min(n_sets, 4 * numba.get_num_threads()))


def _rows(values: list[int]) -> tuple[dict[int, int], list[int]]:
    distinct = sorted(set(values))
    return {v: j for j, v in enumerate(distinct)}, distinct


def _trend_plan(frame: pd.DataFrame, sets: Sequence[Mapping[str, Any]]) -> Fill:
    close = frame["close"]
    row, periods = _rows([p["fast"] for p in sets] + [p["slow"] for p in sets])
    table = np.empty((len(periods), len(frame)))
    for j, n in enumerate(periods):
        table[j] = ema(close, n).to_numpy(dtype=np.float64)
    fast = np.array([row[p["fast"]] for p in sets], dtype=np.int64)
    slow = np.array([row[p["slow"]] for p in sets], dtype=np.int64)
    direction, size, ready = _common(frame, sets)

    def fill(idx: np.ndarray, out: np.ndarray) -> None:
        k.ema_cross_targets_nb(table, fast[idx], slow[idx], direction[idx], size[idx], ready,
                               _chunks(len(idx)), out)

    return fill


def _breakout_plan(frame: pd.DataFrame, sets: Sequence[Mapping[str, Any]]) -> Fill:
    high, low = frame["high"], frame["low"]
    wrow, windows = _rows([p["lookback"] for p in sets] + [p["exit_lookback"] for p in sets])
    upper = np.empty((len(windows), len(frame)))
    lower = np.empty((len(windows), len(frame)))
    for j, n in enumerate(windows):
        dc = donchian_channel(high, low, n).shift(1)
        upper[j] = dc["dc_upper"].to_numpy(dtype=np.float64)
        lower[j] = dc["dc_lower"].to_numpy(dtype=np.float64)
    vrow, vperiods = _rows([p["volume_period"] for p in sets])
    vol_mean = np.empty((len(vperiods), len(frame)))
    for j, n in enumerate(vperiods):
        vol_mean[j] = sma(frame["volume"], n).shift(1).to_numpy(dtype=np.float64)
    entry = np.array([wrow[p["lookback"]] for p in sets], dtype=np.int64)
    exit_ = np.array([wrow[p["exit_lookback"]] for p in sets], dtype=np.int64)
    vol = np.array([vrow[p["volume_period"]] for p in sets], dtype=np.int64)
    factor = np.array([float(p["volume_factor"]) for p in sets], dtype=np.float64)
    direction, size, ready = _common(frame, sets)
    close = np.ascontiguousarray(frame["close"].to_numpy(dtype=np.float64))
    volume = np.ascontiguousarray(frame["volume"].to_numpy(dtype=np.float64))

    def fill(idx: np.ndarray, out: np.ndarray) -> None:
        k.breakout_targets_nb(close, volume, upper, lower, vol_mean, entry[idx], exit_[idx],
                              vol[idx], factor[idx], direction[idx], size[idx], ready,
                              _chunks(len(idx)), out)

    return fill


register_batch_signals("trend_following", BatchSignals(
    TrendFollowing, frozenset({"fast", "slow", "direction", "size"}), _trend_plan))
register_batch_signals("momentum_breakout", BatchSignals(
    MomentumBreakout,
    frozenset({"lookback", "exit_lookback", "volume_factor", "volume_period", "direction",
               "size"}),
    _breakout_plan))


# --------------------------------------------------------------------------------------------
# Jobs: everything a worker needs, picklable
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class SweepJob:
    """One sweep: market data, strategy, configuration and the parameter sets (validated).

    Picklable (sent once to each worker of a process pool or Ray); a worker evaluates
    slices of ``param_sets`` with :func:`evaluate_chunk`.
    """

    data: pd.DataFrame | Mapping[str, pd.DataFrame]
    strategy: Strategy
    param_sets: tuple[dict[str, Any], ...]
    instrument: Instrument | Mapping[str, Instrument] | None = None
    costs: CostsConfig = _DEFAULT_COSTS
    account: AccountConfig = _DEFAULT_ACCOUNT
    risk: RiskConfig | None = _DEFAULT_RISK
    funding: Any = None
    mark: Any = None
    sample_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    batched: bool = False

    def backtest(self, params: Mapping[str, Any], *, benchmark: str | None = None) -> Backtest:
        """The :class:`Backtest` of one parameter set with this job's configuration."""
        return Backtest(self.data, self.strategy, instrument=self.instrument, costs=self.costs,
                        account=self.account, params=params, funding=self.funding,
                        mark=self.mark, benchmark=benchmark, risk=self.risk)


def resolve_strategy(strategy: Strategy | str | Callable[..., Any]) -> Strategy:
    """A strategy from itself, its registered name or a plain function."""
    if isinstance(strategy, str):
        return get_strategy(strategy)
    if isinstance(strategy, Strategy):
        return strategy
    if callable(strategy):
        return strategy_from_function(strategy)
    raise ConfigError(f"strategy must be a Strategy, a registered name or a function, got "
                      f"{type(strategy).__name__}")


def param_grid(strategy: Strategy, grid: Mapping[str, Any] | Sequence[Mapping[str, Any]] | int
               | None) -> list[dict[str, Any]]:
    """Validated parameter sets: a list of dicts (each completed with the defaults), a mapping
    ``{name: count or list of values}`` or an int (both through
    :meth:`~quantum_trading.strategies.ParamSpace.grid`), or None (5 values of every
    optimisable parameter). Duplicates are dropped, order kept.

    >>> from quantum_trading.strategies import get_strategy
    >>> len(param_grid(get_strategy("trend_following"), {"fast": [10, 30], "slow": [20, 50]}))
    3
    """
    if grid is None:
        sets = strategy.params.grid(5)
    elif isinstance(grid, int) and not isinstance(grid, bool):
        sets = strategy.params.grid(grid)
    elif isinstance(grid, Mapping):
        sets = strategy.params.grid(grid)
    elif isinstance(grid, Sequence) and not isinstance(grid, str):
        sets = [strategy.params.validate(dict(p)) for p in grid]
    else:
        raise ConfigError(f"grid must be a mapping, a list of parameter dicts or an int, got "
                          f"{type(grid).__name__}")
    seen: set[tuple] = set()
    out = []
    for p in sets:
        key = tuple(sorted((name, repr(v)) for name, v in p.items()))
        if key not in seen:
            seen.add(key)
            out.append(p)
    if not out:
        raise ConfigError("the parameter grid is empty (every combination breaks a constraint?)")
    return out


def _sample_idx(n_bars: int, max_rows: int) -> np.ndarray:
    """Bars at which equity is sampled for the returns matrix: every bar when the run has at
    most ``max_rows`` returns, else every ``ceil((T − 1) / max_rows)`` bars and the last."""
    if n_bars - 1 <= max_rows:
        return np.arange(n_bars, dtype=np.int64)
    step = math.ceil((n_bars - 1) / max_rows)
    idx = np.arange(0, n_bars, step, dtype=np.int64)
    if idx[-1] != n_bars - 1:
        idx = np.append(idx, n_bars - 1)
    return idx


def _can_batch(strategy: Strategy, data: Any, sets: Sequence[Mapping[str, Any]]) -> bool:
    builder = batch_signals_for(strategy)
    if builder is None or not isinstance(data, pd.DataFrame):
        return False
    first = sets[0]
    for name, value in first.items():
        if name in builder.varying:
            continue
        if any(p[name] != value for p in sets):
            return False
    return True


def make_job(
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
    n_sets_hint: int | None = None,
) -> SweepJob:
    """A checked :class:`SweepJob` (arguments as :func:`sweep`; ``n_sets_hint``: how many
    parameter sets will be evaluated when ``grid`` is not the list, e.g. Optuna's trials, for
    the default ``max_return_rows``)."""
    strat = resolve_strategy(strategy)
    sets = param_grid(strat, grid)
    if max_return_rows is None:
        max_return_rows = max(_MIN_RETURN_ROWS, _RETURNS_BUDGET // max(n_sets_hint or len(sets), 1))
    if not (isinstance(max_return_rows, int) and max_return_rows >= 2):
        raise ConfigError(f"max_return_rows must be an int >= 2, got {max_return_rows!r}")
    # the Backtest constructor checks data, instrument, configs and the first parameter set
    probe = Backtest(data, strat, instrument=instrument, costs=costs, account=account,
                     params=sets[0], funding=funding, mark=mark, benchmark=None, risk=risk)
    n_bars = len(next(iter(probe.bars.values())))
    possible = _can_batch(strat, data, sets)
    if batched and not possible:
        raise ConfigError(f"sweep: {strat.name} cannot be batched here (it needs a registered "
                          "target builder, one asset, and only the builder's parameters varying)")
    return SweepJob(data=data, strategy=strat, param_sets=tuple(sets), instrument=instrument,
                    costs=costs, account=account, risk=probe.risk, funding=funding, mark=mark,
                    sample_idx=_sample_idx(n_bars, max_return_rows),
                    batched=possible if batched is None else bool(batched))


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class ChunkResult:
    """Statistics of some parameter sets of a job (rows in the order of ``indices``)."""

    indices: np.ndarray
    stats: np.ndarray  # [n, len(TABLE_STATS)] float64
    per_bar_sharpe: np.ndarray  # [n]
    samples: np.ndarray  # [n, len(sample_idx)] equity at the sampled bars


def _strategy_frame(bt: Backtest) -> pd.DataFrame:
    """The frame strategies see in a one-asset backtest (``attrs["symbol"]`` set)."""
    sym = bt.symbols[0]
    frame = bt.bars[sym]
    if frame.attrs.get("symbol") != sym:
        frame = frame.copy()
        frame.attrs["symbol"] = sym
    return frame


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
    frame = _strategy_frame(bt)
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


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

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

