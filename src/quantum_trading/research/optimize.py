"""Optimise a strategy over its declared parameter space without fooling yourself.

:func:`optimize` searches a strategy's :class:`~quantum_trading.strategies.ParamSpace`

* exhaustively over a grid (``method="grid"``: batched numba sweeps where the strategy has a
  target builder, see :mod:`quantum_trading.research.sweep`, else one backtest per set on a
  process pool or Ray; 10,000 sets × 100,000 bars in about 25 s on 2 cores), or
* with Optuna (``method="optuna"``: TPE sampler with a fixed seed, median pruning on the
  objective measured over growing shares of the data — the simulator is stepped chunk by
  chunk, so a pruned trial stops early: :mod:`~quantum_trading.research.optuna_search`);

scores every parameter set by one backtest statistic (``"Sharpe Ratio"`` by default) under
constraints (a minimum number of trades, a maximum drawdown: parameter sets that break one are
kept in the table, flagged infeasible and scored −inf), and reports the winner's significance:
the deflated Sharpe ratio given the number of trials and the variance of their Sharpe ratios,
and the probability of backtest overfitting by CSCV over the trials' returns
(:mod:`quantum_trading.research.stats`), with a verdict in words
(:mod:`~quantum_trading.research.scoring`); and labels the bars optimised over with market
regimes (volatility/trend rules, optionally a Gaussian HMM) with the best set's metrics per
regime, for the report's regime timeline. The result is an
:class:`~quantum_trading.research.optimization_result.OptimizationResult`.

Before any search, :func:`~quantum_trading.research.bias.require_causal` checks that the
strategy does not look ahead (at its defaults and at the far ends of the space searched) and
refuses it otherwise. Backtests use the simulator's timing: decided at bar t's close, filled
at bar t+1's open.

>>> from quantum_trading.data import generate_market
>>> bars = generate_market(n_assets=1, n_bars=800, seed=5).ohlcv["BTC/USDT:USDT"]
>>> res = optimize(bars, "trend_following", grid={"fast": [10, 20], "slow": [50, 100]},
...                backend="local", n_workers=1)
>>> len(res.table), res.best_params["fast"] in (10, 20), res.verdict.startswith("The best")
(4, True, True)
>>> list(res.regimes.columns), sorted(res.regime_tables["rules"].index)[-1]
(['rules'], 'trend_up')
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from quantum_trading.backtest import metrics as m
from quantum_trading.domain import Instrument
from quantum_trading.errors import ConfigError
from quantum_trading.research.backends import Backend, LocalBackend, get_backend
from quantum_trading.research.bias import require_causal
from quantum_trading.research.optimization_result import OptimizationResult
from quantum_trading.research.optuna_search import (
    Progress,
    TrialOutcome,
    evaluate_trial,
    optuna_space,
    optuna_tables,
    search_optuna,
)
from quantum_trading.research.regime_analysis import (
    REGIME_DETECTORS,
    detect_regimes,
    regime_metrics,
)
from quantum_trading.research.scoring import (
    OBJECTIVES,
    SIGNIFICANCE_LEVEL,
    Constraints,
    Direction,
    check_objective,
    ranked_table,
    significance_verdict,
)
from quantum_trading.research.stats import (
    PBOResult,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probability_of_backtest_overfitting,
)
from quantum_trading.research.sweep import SweepResult, assemble
from quantum_trading.research.sweep_eval import evaluate_chunk
from quantum_trading.research.sweep_job import (
    TABLE_STATS,
    SweepJob,
    make_job,
    resolve_strategy,
)
from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig
from quantum_trading.strategies import Strategy

__all__ = [
    "OBJECTIVES",
    "SIGNIFICANCE_LEVEL",
    "TABLE_STATS",
    "Constraints",
    "OptimizationResult",
    "TrialOutcome",
    "evaluate_trial",
    "optimize",
    "significance_verdict",
]

_DEFAULT_COSTS = CostsConfig()
_DEFAULT_ACCOUNT = AccountConfig()
_DEFAULT_RISK = RiskConfig()


def _causality_probes(strategy: Strategy, sets: Sequence[Mapping[str, Any]] | None,
                      grid: Any = None) -> list[dict[str, Any]]:
    """Parameter sets the causality check runs at: the defaults, and the far ends of the
    space searched (the grid's first and last sets; for Optuna every searched numeric
    parameter at its largest / smallest value)."""
    space = strategy.params
    probes = [space.defaults()]
    if sets:
        probes += [dict(sets[0]), dict(sets[-1])]
    else:
        values = optuna_space(strategy, grid)
        for end in (max, min):
            cand = space.defaults()
            for name, p in space.items():
                numeric = not hasattr(p, "choices")
                if values is not None and name in values and numeric:
                    cand[name] = end(values[name])
                elif values is None and getattr(p, "optimize", False) and numeric:
                    cand[name] = p.high if end is max else p.low
            try:
                probes.append(space.validate(cand))
            except ConfigError:
                continue
    out: list[dict[str, Any]] = []
    for p in probes:
        if p not in out:
            out.append(p)
    return out


def _grid_search(job: SweepJob, backend: Backend, progress: Progress | None) -> SweepResult:
    n = len(job.param_sets)
    done = [0]

    def tick(count: int) -> None:
        done[0] += count
        if progress is not None:
            progress(done[0], n)

    if job.batched and isinstance(backend, LocalBackend):
        chunk = evaluate_chunk(job, np.arange(n), n_threads=backend.n_workers, progress=tick)
        return assemble(job, [chunk])
    workers = max(1, backend.n_workers)
    pieces = workers if job.batched else min(n, 4 * workers)
    chunks = [c for c in np.array_split(np.arange(n), max(1, pieces)) if len(c)]
    results = backend.map(evaluate_chunk, job, chunks,
                          on_result=lambda pos, res: tick(len(res.indices)))
    return assemble(job, results)


def _with_fixed(strategy: Strategy, grid: Any, fixed: Mapping[str, Any]) -> Any:
    """``grid`` with the ``fixed`` parameters set in every set."""
    if not fixed:
        return grid
    if isinstance(grid, Mapping):
        return {**grid, **{name: [value] for name, value in fixed.items()}}
    if grid is None or (isinstance(grid, int) and not isinstance(grid, bool)):
        n = 5 if grid is None else grid
        axes = {name: n for name, p in strategy.params.items()
                if getattr(p, "optimize", False) and name not in fixed}
        return {**axes, **{name: [value] for name, value in fixed.items()}}
    return [{**dict(p), **fixed} for p in grid]


def optimize(
    data: pd.DataFrame | Mapping[str, pd.DataFrame],
    strategy: Strategy | str | Callable[..., Any],
    *,
    method: Literal["grid", "optuna"] = "grid",
    grid: Mapping[str, Any] | Sequence[Mapping[str, Any]] | int | None = None,
    params: Mapping[str, Any] | None = None,
    n_trials: int = 100,
    objective: str = "Sharpe Ratio",
    direction: Direction = "maximize",
    min_trades: int | None = None,
    max_drawdown_pct: float | None = None,
    instrument: Instrument | Mapping[str, Instrument] | None = None,
    costs: CostsConfig = _DEFAULT_COSTS,
    account: AccountConfig = _DEFAULT_ACCOUNT,
    risk: RiskConfig | None = _DEFAULT_RISK,
    funding: Any = None,
    mark: Any = None,
    backend: str | Backend = "local",
    address: str | None = None,
    n_workers: int | None = None,
    seed: int | None = 0,
    pruning: bool = True,
    n_steps: int = 4,
    batch_size: int | None = None,
    max_return_rows: int | None = None,
    pbo_blocks: int = 16,
    batched: bool | None = None,
    regimes: Sequence[str] = ("rules",),
    progress: Progress | None = None,
) -> OptimizationResult:
    """Search a strategy's parameters; report the winner and whether it means anything.

    Parameters
    ----------
    data, strategy, instrument, costs, account, risk, funding, mark:
        As :class:`~quantum_trading.backtest.Backtest` (``risk`` defaults to
        ``RiskConfig()``; None = no risk engine).
    method:
        ``"grid"``: every set of ``grid``; ``"optuna"``: ``n_trials`` TPE trials.
    grid:
        ``{name: count or list of values}``, a list of parameter dicts, an int (values per
        optimisable parameter) or None (5); parameters not named stay at their defaults. With
        ``method="optuna"``: a mapping limits each named parameter to the values listed (a
        count: that many values spread over its range), the others stay at their defaults;
        None searches the strategy's declared space.
    params:
        Parameters held fixed at these values in every set (not searched).
    n_trials:
        Optuna trials: distinct parameter sets evaluated (a set TPE asks for again gets its
        known result and does not count; at most ``20 × n_trials`` asks).
    objective, direction:
        The statistic to optimise (one of :data:`OBJECTIVES`) and whether higher is better.
    min_trades, max_drawdown_pct:
        Constraints (:class:`Constraints`); breaking sets are reported, scored −inf (+inf when
        minimising) and never chosen.
    backend, address, n_workers:
        ``"local"`` (process pool over ``n_workers`` cores, default all) or ``"ray"``
        (``address="host:port"`` of a cluster, None = local Ray), or a backend object. A
        batched grid sweep on the local backend runs in this process on ``n_workers`` cores.
    seed:
        Seed of the TPE sampler (the same seed gives the same trials).
    pruning, n_steps:
        Optuna: report the objective after each of the first ``n_steps − 1`` of ``n_steps``
        equal chunks of the bars and stop trials below the median of earlier trials
        (MedianPruner, 5 start-up trials).
    batch_size:
        Optuna trials asked at once and run in parallel on the backend (default 1 on the
        local backend — sequential TPE with Optuna's own pruner —, the backend's worker count
        on Ray, where pruning uses the medians of the trials completed before each batch).
    max_return_rows, pbo_blocks:
        Rows of the trials' returns matrix for the PBO (default: per-bar returns while the
        matrix holds at most 25 million values, else equity sampled every
        ``ceil((T−1)/rows)`` bars with as many rows as fit, at least 2,000) and its CSCV
        blocks.
    batched:
        Grid only: None = batched kernels where possible, False = one backtest per set.
    regimes:
        Regime detectors run on the bars optimised over (the first symbol's) for the
        report's regime timeline and the best set's metrics per regime: ``"rules"``
        (volatility/trend rules, milliseconds), ``"hmm"`` (a Gaussian HMM fitted on the first
        half, causal filtered labels; seconds on 100,000 bars); ``()`` for none.
    progress:
        ``progress(done, total)`` as sets (grid) or trials (Optuna) finish.

    Returns
    -------
    OptimizationResult
        The sorted table, the best set and its full stats, DSR, PBO, the verdict and the
        regimes. Time: the search (one backtest per set, batched where possible), one more
        backtest of the best set, the PBO's CSCV (about a second for 12,870 splits) and the
        regime detection.

    Raises
    ------
    LookAheadError
        The strategy looks ahead (checked before any search).
    ConfigError
        A bad argument, naming it.
    """
    started = time.perf_counter()
    check_objective(objective, direction)
    detectors = _detectors(regimes)
    constraints = Constraints(min_trades=min_trades, max_drawdown_pct=max_drawdown_pct)
    if method not in ("grid", "optuna"):
        raise ConfigError(f"method must be 'grid' or 'optuna', got {method!r}")
    if not (isinstance(n_steps, int) and n_steps >= 1):
        raise ConfigError(f"n_steps must be an int >= 1, got {n_steps!r}")
    fixed = dict(params or {})
    resolved = resolve_strategy(strategy)
    if method == "grid":
        grid = _with_fixed(resolved, grid, fixed)
    job = make_job(data, resolved, grid if method == "grid" else [fixed], instrument=instrument,
                   costs=costs, account=account, risk=risk, funding=funding, mark=mark,
                   max_return_rows=max_return_rows,
                   batched=batched if method == "grid" else False,
                   n_sets_hint=None if method == "grid" else n_trials)
    strat = job.strategy
    space = optuna_space(strat, grid) if method == "optuna" else None
    # refuse look-ahead before spending any time on the search
    probes = _causality_probes(strat, job.param_sets if method == "grid" else None,
                               grid if method == "optuna" else None)
    for p in probes:
        require_causal(strat, data, params=p)
    # regimes of the bars optimised over (before the search: a detector that cannot run on
    # these bars fails here, not after it)
    frame = _first_frame(job.data)
    labels = (detect_regimes(frame, detectors, seed=0 if seed is None else seed)
              if detectors else pd.DataFrame(index=frame.index))
    engine = get_backend(backend, address=address, n_workers=n_workers)
    try:
        if method == "grid":
            res = _grid_search(job, engine, progress)
            params = res.table[list(res.param_names)]
            stats = res.table[list(TABLE_STATS)]
            states = ["complete"] * len(params)
            reasons = [""] * len(params)
            samples_returns = res.returns
            sharpes = res.per_bar_sharpe
            searched = tuple(p for p in res.param_names if params[p].nunique() > 1)
            n_pruned = 0
        else:
            if not (isinstance(n_trials, int) and n_trials >= 1):
                raise ConfigError(f"n_trials must be an int >= 1, got {n_trials!r}")
            size = batch_size or (1 if isinstance(engine, LocalBackend) else engine.n_workers)
            sets, outcomes = search_optuna(
                job, strat, n_trials=n_trials, seed=seed, objective=objective,
                direction=direction, constraints=constraints, pruning=pruning,
                n_steps=n_steps, batch_size=max(1, int(size)), backend=engine, space=space,
                fixed=fixed, progress=progress)
            params, stats, states, reasons, samples_returns, sharpes = optuna_tables(
                job, strat, sets, outcomes)
            searched = tuple(name for name in (space or {}) if name not in fixed) if space \
                else tuple(name for name, p in strat.params.items()
                           if getattr(p, "optimize", False) and name not in fixed)
            n_pruned = sum(o.pruned_at is not None for o in outcomes)
    finally:
        if isinstance(backend, str):  # made here: release its workers
            engine.close()
    table = ranked_table(params, stats, states, reasons, objective, direction, constraints)
    names = tuple(params.columns)
    return _finish(job, strat, table, names, searched, samples_returns, sharpes, n_pruned,
                   method=method, objective=objective, direction=direction,
                   constraints=constraints, pbo_blocks=pbo_blocks, backend=engine.name,
                   started=started, probes=probes, labels=labels)


def _pbo(returns: pd.DataFrame, blocks: int) -> PBOResult | None:
    values = returns.to_numpy(dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 2 or not np.isfinite(values).all():
        return None
    s = min(int(blocks), (values.shape[0] // 2) // 2 * 2)
    if s < 2:
        return None
    return probability_of_backtest_overfitting(returns, n_blocks=s)


def _finish(job: SweepJob, strategy: Strategy, table: pd.DataFrame, names: tuple[str, ...],
            searched: tuple[str, ...], returns: pd.DataFrame, sharpes: np.ndarray,
            n_pruned: int, *, method: str, objective: str, direction: str,
            constraints: Constraints, pbo_blocks: int, backend: str, started: float,
            probes: list[dict[str, Any]], labels: pd.DataFrame) -> OptimizationResult:
    complete = table["state"] == "complete"
    n_trials = int(complete.sum())
    finite = sharpes[np.isfinite(sharpes)]
    feasible = table[table["feasible"]]
    best_params = best_stats = best_returns = best_run = None
    dsr = sr0 = math.nan
    ppy = m.periods_per_year(_index(job.data))
    if len(feasible):
        row = feasible.iloc[0]
        best_params = job.strategy.params.validate({n: _py(row[n]) for n in names})
        best_run = job.backtest(best_params, benchmark="buy_and_hold").run()
        best_stats = best_run.stats
        best_returns = best_run.returns
        if finite.size >= 2:
            dsr = deflated_sharpe_ratio(best_returns, trial_sharpes=finite)
            sr0 = expected_max_sharpe(int(finite.size), float(np.var(finite, ddof=1)))
            sr0 *= math.sqrt(ppy)
    cols = [c for c in returns.columns if c in set(table.index[complete])]
    pbo = _pbo(returns[cols], pbo_blocks) if len(cols) >= 2 else None
    verdict = (significance_verdict(dsr, n_trials, pbo=None if pbo is None else pbo.pbo)
               if best_params is not None else
               "No parameter set met the constraints: nothing to call significant.")
    tables = ({name: regime_metrics(best_run, labels[name]) for name in labels.columns
               if labels[name].notna().any()} if best_run is not None else {})
    return OptimizationResult(
        strategy=strategy.name, method=method, objective=objective, direction=direction,
        constraints=constraints, table=table, param_names=names, best_params=best_params,
        best_stats=best_stats, best_returns=best_returns, n_trials=n_trials, n_pruned=n_pruned,
        trial_sharpes=finite, dsr=dsr, sr_benchmark=sr0, pbo=pbo, verdict=verdict,
        returns=returns, periods_per_year=float(ppy), backend=backend, batched=job.batched,
        elapsed_s=time.perf_counter() - started, searched=searched,
        causality_checked=tuple(probes),
        close=_first_frame(job.data)["close"] if labels.shape[1] else None, regimes=labels,
        regime_tables=tables)


def _index(data: Any) -> pd.DatetimeIndex:
    return _first_frame(data).index


def _first_frame(data: Any) -> pd.DataFrame:
    return data if isinstance(data, pd.DataFrame) else next(iter(data.values()))


def _detectors(regimes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(regimes, str):
        regimes = (regimes,)
    out = tuple(dict.fromkeys(regimes))
    for name in out:
        if name not in REGIME_DETECTORS:
            raise ConfigError(f"regimes: unknown detector {name!r} (use "
                              f"{', '.join(map(repr, REGIME_DETECTORS))} or none)")
    return out


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
