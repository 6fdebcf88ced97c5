"""Optuna search: TPE trials, each backtest stepped chunk by chunk so a pruned trial stops early.

:func:`search_optuna` asks Optuna's TPE sampler (fixed seed: the same seed gives the same
trials) for parameter sets from the strategy's declared space (or from the values a grid
lists), and evaluates each with :func:`evaluate_trial`: the simulator steps the bars in
``n_steps`` equal chunks — the same kernel loop as one call, so a complete trial equals
:class:`~quantum_trading.backtest.Backtest`'s run — and after each chunk but the last the
objective on the bars so far goes to the median pruner. Trials run one at a time in this
process (Optuna's own pruner) or in batches on a process pool or Ray (pruned against the
medians of earlier trials). Timing is the simulator's: decided at bar t's close, filled at
bar t+1's open.

>>> from quantum_trading.data import generate_market
>>> from quantum_trading.research.sweep_job import make_job
>>> bars = generate_market(n_assets=1, n_bars=600, seed=3).ohlcv["BTC/USDT:USDT"]
>>> job = make_job(bars, "trend_following", [{}], risk=None, batched=False)
>>> out = evaluate_trial(job, ({"fast": 10, "slow": 50}, "Sharpe Ratio", 3, None, "maximize"))
>>> out.pruned_at is None, out.stats.shape, out.samples.shape
(True, (26,), (600,))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.backtest import metrics as m
from quantum_trading.backtest.stats import compute_stats
from quantum_trading.backtest.trades import trade_log
from quantum_trading.errors import ConfigError
from quantum_trading.research.backends import Backend
from quantum_trading.research.scoring import Constraints
from quantum_trading.research.sweep_job import TABLE_STATS, SweepJob
from quantum_trading.sim import build_result, new_state, run_arrays
from quantum_trading.sim import prepare as sim_prepare
from quantum_trading.sim.state import risk_params
from quantum_trading.strategies import Strategy

__all__ = [
    "Progress",
    "TrialOutcome",
    "evaluate_trial",
    "median_thresholds",
    "optuna_space",
    "optuna_tables",
    "search_optuna",
    "suggest_params",
]

Progress = Callable[[int, int], None]
"""``progress(done, total)``: parameter sets (grid) or trials (Optuna) finished so far."""


@dataclass(frozen=True, eq=False)
class TrialOutcome:
    """One parameter set evaluated by :func:`evaluate_trial`.

    ``intermediate``: the objective after each completed chunk but the last; ``pruned_at``:
    the chunk after which it was stopped (None = ran to the end); ``stats`` (TABLE_STATS),
    ``sharpe_per_bar`` and ``samples`` (equity at the job's sampled bars) of a complete run.
    """

    intermediate: tuple[float, ...]
    pruned_at: int | None
    stats: np.ndarray | None
    sharpe_per_bar: float
    samples: np.ndarray | None


def evaluate_trial(job: SweepJob, item: tuple[dict[str, Any], str, int,
                                               Callable[[int, float], bool] | Sequence[float]
                                               | None, str]) -> TrialOutcome:
    """Backtest one parameter set chunk by chunk, asking after each chunk whether to stop.

    ``item = (params, objective, n_steps, prune, direction)``. The simulator steps the bars
    in ``n_steps`` equal chunks (the same kernel loop as one call, so a complete run equals
    :class:`~quantum_trading.backtest.Backtest`'s); after each chunk but the last the
    objective is computed on the bars so far and, if finite, checked: ``prune`` is either a
    callback ``(step, value) -> stop?`` (Optuna's pruner, in this process) or a list of
    thresholds per step (the median of earlier trials, for workers; NaN = no threshold) that
    the best value so far must reach.
    """
    params, objective, n_steps, prune, direction = item
    bt = job.backtest(params)
    data = bt.strategy_data()
    signals = bt.strategy.signals(data, **bt.params)
    prep = sim_prepare(data, signals, instruments=bt.instruments, costs=bt.costs,
                       account=bt.account, funding=bt.funding, mark=bt.mark)
    n_bars = len(prep.index)
    sim_params = prep.params
    if bt.risk is not None:
        sim_params = sim_params._replace(risk=risk_params(bt.risk,
                                                          prep.index.as_unit("ns").asi8))
    initial = bt.account.initial_cash_usd
    state = new_state(len(prep.symbols), initial, n_bars=n_bars,
                      n_tiers_max=prep.params.tiers.shape[1], risk=bt.risk is not None,
                      risk_multiplier=bt.risk.risk_multiplier if bt.risk is not None else 1.0)
    ppy = m.periods_per_year(prep.index)
    steps = max(1, int(n_steps))
    bounds = sorted({max(1, round(n_bars * (s + 1) / steps)) for s in range(steps)})
    maximize = direction == "maximize"
    values: list[float] = []
    best = math.nan
    t = 0
    for s, end in enumerate(bounds):
        state = run_arrays(state, prep.bars, prep.signals, sim_params, t, end)
        t = end
        if end >= n_bars or prune is None or end < 2:
            continue
        part = build_result(state, symbols=prep.symbols, index=prep.index[:end],
                            initial_cash_usd=initial, notes=prep.notes)
        value = float(compute_stats(part, trade_log(part), periods=ppy)[objective])
        if not math.isfinite(value):
            continue
        values.append(value)
        best = value if math.isnan(best) else (max(best, value) if maximize
                                                 else min(best, value))
        if callable(prune):
            stop = bool(prune(s, value))
        else:
            thr = prune[s] if s < len(prune) else math.nan
            stop = math.isfinite(thr) and (best < thr if maximize else best > thr)
        if stop:
            return TrialOutcome(tuple(values), s, None, math.nan, None)
    sim = build_result(state, symbols=prep.symbols, index=prep.index, initial_cash_usd=initial,
                       notes=prep.notes, copy=False)
    stats = compute_stats(sim, trade_log(sim), periods=ppy)
    row = np.array([float(stats[key]) for key in TABLE_STATS])
    returns = m.bar_returns(sim.equity)
    equity = sim.equity.to_numpy(dtype=np.float64)
    return TrialOutcome(tuple(values), None, row, m.sharpe_ratio(returns, 1.0),
                        equity[job.sample_idx])


def median_thresholds(study: Any, n_steps: int, n_startup: int, n_warmup: int
                      ) -> list[float]:
    """Optuna's MedianPruner rule for workers: the median of the completed trials'
    intermediate values at each step (NaN before ``n_startup`` trials completed and for the
    first ``n_warmup`` steps)."""
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    out = []
    for s in range(n_steps):
        vals = [t.intermediate_values[s] for t in complete if s in t.intermediate_values]
        ok = len(complete) >= n_startup and vals and s >= n_warmup
        out.append(float(np.nanmedian(vals)) if ok else math.nan)
    return out


def optuna_space(strategy: Strategy, grid: Any) -> dict[str, list[Any]] | None:
    """The values Optuna may pick per parameter when ``grid`` names them (None: the strategy's
    declared space)."""
    if grid is None:
        return None
    if not isinstance(grid, Mapping):
        raise ConfigError("method='optuna' takes grid as a mapping {name: count or values} "
                          "(the values each parameter may take) or None (the declared space)")
    space = strategy.params
    out: dict[str, list[Any]] = {}
    for name, spec in grid.items():
        if name not in space:
            raise ConfigError(f"unknown parameter {name!r} (known parameters: "
                              f"{', '.join(space)})")
        if isinstance(spec, int) and not isinstance(spec, bool):
            values = space[name].grid(spec)
        elif isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec):
            values = [space[name].validate(name, v) for v in spec]
        else:
            raise ConfigError(f"grid: parameter {name} needs a count or a list of values, got "
                              f"{spec!r}")
        out[name] = list(dict.fromkeys(values))
    return out


def suggest_params(strategy: Strategy, trial: Any, space: dict[str, list[Any]] | None,
                   fixed: Mapping[str, Any]) -> dict[str, Any]:
    """A parameter set from ``trial`` with the ``fixed`` values (raises ConfigError for a
    draw that breaks a rule)."""
    if space is None:
        suggested = {}
        for name, p in strategy.params.items():
            if name not in fixed and getattr(p, "optimize", False):
                suggested[name] = p.suggest(trial, name)
    else:
        suggested = {name: trial.suggest_categorical(name, values)
                     for name, values in space.items() if name not in fixed}
    return strategy.params.validate({**suggested, **fixed})


def search_optuna(job: SweepJob, strategy: Strategy, *, n_trials: int, seed: int | None,
                  objective: str, direction: str, constraints: Constraints, pruning: bool,
                  n_steps: int, batch_size: int, backend: Backend,
                  space: dict[str, list[Any]] | None, fixed: Mapping[str, Any],
                  progress: Progress | None) -> tuple[list[dict], list[TrialOutcome]]:
    """Run ``n_trials`` distinct TPE trials (seeded by ``seed``); their parameter sets and
    outcomes in the order tried.

    ``batch_size`` = 1: sequential TPE in this process, Optuna's MedianPruner (5 start-up
    trials, 1 warm-up step) asked after each of the first ``n_steps − 1`` chunks. Larger:
    ``batch_size`` trials asked at once and run in parallel on ``backend``, pruned against the
    medians of the trials completed before the batch (:func:`median_thresholds`). A set asked
    for again gets its known outcome and does not count; at most ``20 × n_trials + 100``
    asks. ``progress(done, n_trials)`` after each batch. Time: one backtest per trial (less
    for a pruned one).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_startup, n_warmup = 5, 1
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=n_startup, n_warmup_steps=n_warmup)
              if pruning else optuna.pruners.NopPruner())
    study = optuna.create_study(direction=direction,
                                sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    worst = -math.inf if direction == "maximize" else math.inf
    seen: dict[tuple, int] = {}
    sets: list[dict] = []
    outcomes: list[TrialOutcome] = []
    max_asks = 20 * n_trials + 100  # repeats and invalid draws do not count as trials
    asks = 0

    def value_of(out: TrialOutcome) -> float:
        if out.stats is None:
            return worst
        row = dict(zip(TABLE_STATS, out.stats, strict=True))
        v = row[objective]
        return worst if constraints.violation(row) or not math.isfinite(v) else float(v)

    def tell(trial: Any, out: TrialOutcome) -> None:
        if out.pruned_at is not None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, value_of(out))

    while len(outcomes) < n_trials and asks < max_asks:
        todo = []
        keys: set[tuple] = set()
        while len(todo) < min(batch_size, n_trials - len(outcomes)) and asks < max_asks:
            trial = study.ask()
            asks += 1
            try:
                params = suggest_params(strategy, trial, space, fixed)
            except ConfigError:  # a draw that breaks a rule of the space
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                continue
            key = tuple(sorted((name, repr(v)) for name, v in params.items()))
            if key in seen:  # asked again: the known outcome, nothing re-run
                out = outcomes[seen[key]]
                for s, v in enumerate(out.intermediate):
                    trial.report(v, s)
                tell(trial, out)
                continue
            if key in keys:  # twice in one batch
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            keys.add(key)
            todo.append((trial, params, key))
        if not todo:
            continue
        if batch_size == 1:
            trial, params, key = todo[0]

            def ask_pruner(step: int, value: float, trial: Any = trial) -> bool:
                trial.report(value, step)
                return trial.should_prune()

            results = [evaluate_trial(job, (params, objective, n_steps,
                                            ask_pruner if pruning else None, direction))]
        else:
            thresholds = (median_thresholds(study, n_steps, n_startup, n_warmup) if pruning
                          else None)
            results = backend.map(evaluate_trial, job,
                                  [(p, objective, n_steps, thresholds, direction)
                                   for _, p, _ in todo])
            for (trial, _, _), out in zip(todo, results, strict=True):
                for s, v in enumerate(out.intermediate):
                    trial.report(v, s)
        for (trial, params, key), out in zip(todo, results, strict=True):
            seen[key] = len(outcomes)
            sets.append(params)
            outcomes.append(out)
            tell(trial, out)
        if progress is not None:
            progress(len(outcomes), n_trials)
    return sets, outcomes


def optuna_tables(job: SweepJob, strategy: Strategy, sets: list[dict],
                  outcomes: list[TrialOutcome]
                  ) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str], pd.DataFrame,
                             np.ndarray]:
    """The trials as the optimiser's tables: parameters, statistics (NaN for pruned trials),
    states, reasons, the complete trials' returns between the job's sampled bars (columns =
    trial positions) and their per-bar Sharpe ratios."""
    names = list(strategy.params)
    params = pd.DataFrame([{n: p[n] for n in names} for p in sets], columns=names)
    stats = np.full((len(sets), len(TABLE_STATS)), np.nan)
    states, reasons = [], []
    sharpes = np.full(len(sets), np.nan)
    complete = []
    for i, out in enumerate(outcomes):
        if out.stats is None:
            states.append("pruned")
            reasons.append(f"pruned after chunk {out.pruned_at + 1}")
            continue
        stats[i] = out.stats
        sharpes[i] = out.sharpe_per_bar
        states.append("complete")
        reasons.append("")
        complete.append(i)
    stats_df = pd.DataFrame(stats, columns=list(TABLE_STATS))
    index = job.data.index if isinstance(job.data, pd.DataFrame) else next(
        iter(job.data.values())).index
    if complete:
        samples = np.vstack([outcomes[i].samples for i in complete])
        with np.errstate(divide="ignore", invalid="ignore"):
            prev, cur = samples[:, :-1], samples[:, 1:]
            rets = np.where(prev > 0.0, cur / np.where(prev > 0.0, prev, 1.0) - 1.0, 0.0)
        returns = pd.DataFrame(rets.T, index=index[job.sample_idx[1:]], columns=complete)
    else:
        returns = pd.DataFrame(index=index[job.sample_idx[1:]])
    return params, stats_df, states, reasons, returns, sharpes
