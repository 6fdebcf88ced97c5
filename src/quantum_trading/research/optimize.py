"""Optimise a strategy over its declared parameter space without fooling yourself.

:func:`optimize` searches a strategy's :class:`~quantum_trading.strategies.ParamSpace`

* exhaustively over a grid (``method="grid"``: batched numba sweeps where the strategy has a
  target builder, see :mod:`quantum_trading.research.sweep`, else one backtest per set on a
  process pool or Ray), or
* with Optuna (``method="optuna"``: TPE sampler with a fixed seed, median pruning on the
  objective measured over growing shares of the data — the simulator is stepped chunk by
  chunk, so a pruned trial stops early);

scores every parameter set by one backtest statistic (``"Sharpe Ratio"`` by default) under
constraints (a minimum number of trades, a maximum drawdown: parameter sets that break one are
kept in the table, flagged infeasible and scored −inf), and reports the winner's significance:
the deflated Sharpe ratio given the number of trials and the variance of their Sharpe ratios,
and the probability of backtest overfitting by CSCV over the trials' returns
(:mod:`quantum_trading.research.stats`), with a verdict in words.

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
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from quantum_trading.backtest import metrics as m
from quantum_trading.backtest.stats import compute_stats
from quantum_trading.backtest.trades import trade_log
from quantum_trading.domain import Instrument
from quantum_trading.errors import ConfigError
from quantum_trading.research.backends import Backend, LocalBackend, get_backend
from quantum_trading.research.bias import require_causal
from quantum_trading.research.stats import (
    PBOResult,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probability_of_backtest_overfitting,
)
from quantum_trading.research.sweep import (
    TABLE_STATS,
    SweepJob,
    SweepResult,
    assemble,
    evaluate_chunk,
    make_job,
    resolve_strategy,
)
from quantum_trading.sim import (
    AccountConfig,
    CostsConfig,
    RiskConfig,
    build_result,
    new_state,
    run_arrays,
)
from quantum_trading.sim import prepare as sim_prepare
from quantum_trading.sim.state import risk_params
from quantum_trading.strategies import Strategy

__all__ = [
    "OBJECTIVES",
    "SIGNIFICANCE_LEVEL",
    "Constraints",
    "OptimizationResult",
    "TrialOutcome",
    "evaluate_trial",
    "optimize",
    "significance_verdict",
]

OBJECTIVES: tuple[str, ...] = TABLE_STATS
"""Statistics that can be the objective (or constrained): numeric keys of the backtest's
stats."""

SIGNIFICANCE_LEVEL = 0.95
"""Deflated Sharpe ratio at or above which the best result is called significant."""

Direction = Literal["maximize", "minimize"]
Progress = Callable[[int, int], None]
"""``progress(done, total)``: parameter sets (grid) or trials (Optuna) finished so far."""

_DEFAULT_COSTS = CostsConfig()
_DEFAULT_ACCOUNT = AccountConfig()
_DEFAULT_RISK = RiskConfig()


# --------------------------------------------------------------------------------------------
# Constraints and the verdict
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Constraints:
    """What a parameter set must achieve to count (None = no constraint).

    ``min_trades``: at least this many trades (``# Trades``); ``max_drawdown_pct``: a
    maximum drawdown no deeper than this many percent (``20`` allows ``Max. Drawdown [%]``
    down to −20).

    >>> Constraints(min_trades=10).violation({"# Trades": 3, "Max. Drawdown [%]": -5.0})
    'fewer than 10 trades (3)'
    """

    min_trades: int | None = None
    max_drawdown_pct: float | None = None

    def __post_init__(self) -> None:
        if self.min_trades is not None and not (isinstance(self.min_trades, int | np.integer)
                                                and self.min_trades >= 0):
            raise ConfigError(f"min_trades must be an int >= 0, got {self.min_trades!r}")
        if self.max_drawdown_pct is not None and not (
                isinstance(self.max_drawdown_pct, int | float)
                and 0 < self.max_drawdown_pct <= 100):
            raise ConfigError(f"max_drawdown_pct must be a percentage in (0, 100], got "
                              f"{self.max_drawdown_pct!r}")

    def violation(self, stats: Mapping[str, Any]) -> str:
        """Why ``stats`` break a constraint (the first one), or ``""``."""
        if self.min_trades is not None:
            n = stats["# Trades"]
            if not n >= self.min_trades:
                return f"fewer than {self.min_trades} trades ({int(n)})"
        if self.max_drawdown_pct is not None:
            dd = stats["Max. Drawdown [%]"]
            if not -dd <= self.max_drawdown_pct:
                return f"drawdown {-dd:.1f}% deeper than {self.max_drawdown_pct:g}%"
        return ""

    def describe(self) -> str:
        """The constraints in words."""
        parts = []
        if self.min_trades is not None:
            parts.append(f"at least {self.min_trades} trades")
        if self.max_drawdown_pct is not None:
            parts.append(f"max drawdown within {self.max_drawdown_pct:g}%")
        return ", ".join(parts) or "none"


def significance_verdict(dsr: float, n_trials: int, *, pbo: float | None = None,
                         level: float = SIGNIFICANCE_LEVEL) -> str:
    """The significance of the best result in plain words.

    Significant when the deflated Sharpe ratio (the probability that the winner's true Sharpe
    ratio beats the best of ``n_trials`` skill-less trials) is at least ``level``.

    >>> significance_verdict(0.42, 100)[:40]
    'The best result is not significant: its '
    """
    if dsr is None or not math.isfinite(dsr):
        text = ("Significance unknown: the deflated Sharpe ratio is undefined (fewer than two "
                "trials with a Sharpe ratio, or too few returns).")
    elif dsr >= level:
        text = (f"The best result is significant: its deflated Sharpe ratio is {dsr:.3f} "
                f"(≥ {level:g}) after {n_trials} trials — its Sharpe ratio beats what the best of "
                f"{n_trials} skill-less trials would show, with probability {dsr:.1%}.")
    else:
        text = (f"The best result is not significant: its deflated Sharpe ratio is {dsr:.3f} "
                f"(< {level:g}) after {n_trials} trials — too little evidence that it beats what "
                f"the best of {n_trials} trials without any skill would show.")
    if pbo is not None and math.isfinite(pbo):
        if pbo > 0.5:
            text += (f" PBO {pbo:.0%}: the in-sample best ranks below the out-of-sample median "
                     "in most CSCV splits (the selection is likely overfit).")
        else:
            text += (f" PBO {pbo:.0%}: the in-sample best ranks below the out-of-sample median "
                     f"in {pbo:.0%} of the CSCV splits.")
    return text


# --------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class OptimizationResult:
    """What :func:`optimize` found.

    Attributes
    ----------
    table:
        One row per parameter set tried (index: trial number in the order tried), sorted best
        first: the parameters, ``objective`` (the statistic; −inf when maximising, +inf when
        minimising, for sets that break a constraint or were pruned), ``feasible``,
        ``reason`` (why not feasible), ``state`` (``complete`` / ``pruned``), then
        :data:`~quantum_trading.research.sweep.TABLE_STATS`.
    best_params:
        The best feasible parameter set (None when there is none).
    best_stats:
        Its full backtest statistics (``Backtest(...).run().stats``, buy & hold included).
    best_returns:
        Its per-bar returns (the input of the deflated Sharpe ratio).
    dsr:
        Deflated Sharpe ratio of the best set given ``n_trials`` and the variance of the
        trials' per-bar Sharpe ratios (NaN when undefined).
    sr_benchmark:
        The Sharpe ratio the best of ``n_trials`` skill-less trials would show (annualised),
        the bar the best result must clear.
    pbo:
        Probability of backtest overfitting by CSCV over the trials' returns (``pbo.pbo``),
        or None (fewer than two complete trials).
    verdict:
        The significance in words (:func:`significance_verdict`).
    returns:
        Returns of every complete trial between sampled bars (columns = trial numbers).
    """

    strategy: str
    method: str
    objective: str
    direction: str
    constraints: Constraints
    table: pd.DataFrame
    param_names: tuple[str, ...]
    best_params: dict[str, Any] | None
    best_stats: pd.Series | None
    best_returns: pd.Series | None
    n_trials: int
    n_pruned: int
    trial_sharpes: np.ndarray = field(repr=False)
    dsr: float = math.nan
    sr_benchmark: float = math.nan
    pbo: PBOResult | None = field(default=None, repr=False)
    verdict: str = ""
    returns: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    periods_per_year: float = math.nan
    backend: str = "local"
    batched: bool = False
    elapsed_s: float = math.nan
    searched: tuple[str, ...] = ()
    causality_checked: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    @property
    def best_sharpe(self) -> float:
        """The best set's annualised Sharpe ratio."""
        if self.best_stats is None:
            return math.nan
        return float(self.best_stats["Sharpe Ratio"])

    def surface(self, x: str, y: str, value: str = "objective") -> pd.DataFrame:
        """``value`` over the ``x`` × ``y`` grid (rows ``y``, columns ``x``), the other
        searched parameters held at their best values.

        Where that leaves fewer than two points (Optuna's scattered trials), the best value
        over the other parameters is shown instead. −inf / +inf (infeasible) become NaN.
        """
        for name in (x, y):
            if name not in self.param_names:
                raise ConfigError(f"surface: {name!r} is not a parameter of {self.strategy} "
                                  f"(parameters: {', '.join(self.param_names)})")
        if value not in self.table.columns:
            raise ConfigError(f"surface: no column {value!r} in the results table")
        t = self.table[self.table["state"] == "complete"]
        if self.best_params is not None:
            mask = pd.Series(True, index=t.index)
            for name in self.searched:
                if name not in (x, y):
                    mask &= t[name] == self.best_params[name]
            if mask.sum() >= 2:
                t = t[mask]
        vals = t[value].astype(float).replace([np.inf, -np.inf], np.nan)
        frame = pd.DataFrame({x: t[x], y: t[y], value: vals})
        agg = "max" if self.direction == "maximize" else "min"
        return frame.pivot_table(index=y, columns=x, values=value, aggfunc=agg, dropna=False)

    def heatmap(self, x: str | None = None, y: str | None = None, value: str = "objective"):
        """A plotly heatmap of :meth:`surface` (default: the first two searched parameters),
        the best set marked."""
        import plotly.graph_objects as go

        x, y = self._axes(x, y)
        surf = self.surface(x, y, value)
        label = self.objective if value == "objective" else value
        fig = go.Figure(go.Heatmap(
            z=surf.to_numpy(dtype=float), x=[str(c) for c in surf.columns],
            y=[str(i) for i in surf.index], colorscale="Viridis",
            colorbar={"title": {"text": label}},
            hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{label}=%{{z:.4g}}<extra></extra>"))
        if self.best_params is not None:
            fig.add_trace(go.Scatter(x=[str(self.best_params[x])], y=[str(self.best_params[y])],
                                     mode="markers", name="best",
                                     marker={"symbol": "x", "size": 14, "color": "red"}))
        others = [p for p in self.searched if p not in (x, y)]
        held = (" (" + ", ".join(f"{p}={self.best_params[p]}" for p in others) + ")"
                if others and self.best_params is not None else "")
        fig.update_layout(title=f"{label} over {x} × {y}{held}", xaxis_title=x, yaxis_title=y,
                          height=520, margin={"l": 60, "r": 20, "t": 60, "b": 50})
        fig.update_xaxes(type="category")
        fig.update_yaxes(type="category")
        return fig

    def _axes(self, x: str | None, y: str | None) -> tuple[str, str]:
        searched = list(self.searched) or list(self.param_names)
        if x is None or y is None:
            if len(searched) < 2:
                raise ConfigError("heatmap: fewer than two parameters were searched")
            x = x or searched[0]
            y = y or next(p for p in searched if p != x)
        return x, y

    def summary(self) -> str:
        """A few lines: best parameters, best objective, DSR, PBO, verdict."""
        lines = [f"{self.method} search of {self.strategy}: {len(self.table)} parameter sets "
                 f"({self.n_pruned} pruned), objective {self.objective} ({self.direction}), "
                 f"constraints: {self.constraints.describe()}"]
        if self.best_params is None:
            lines.append("no parameter set met the constraints")
        else:
            shown = ", ".join(f"{k}={self.best_params[k]}" for k in self.searched)
            obj = self.table["objective"].iloc[0]
            lines.append(f"best: {shown} → {self.objective} {obj:.4g}, Sharpe "
                         f"{self.best_sharpe:.3f}")
        pbo = self.pbo.pbo if self.pbo is not None else math.nan
        lines.append(f"deflated Sharpe ratio {self.dsr:.3f}, expected best Sharpe of "
                     f"skill-less trials {self.sr_benchmark:.3f}, PBO {pbo:.3f}")
        lines.append(self.verdict)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# --------------------------------------------------------------------------------------------
# One trial, stepped chunk by chunk (Optuna with pruning)
# --------------------------------------------------------------------------------------------

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


def _frame_for(bt: Any) -> Any:
    """What the strategy sees in a Backtest (the one frame with its symbol, or the dict)."""
    if len(bt.symbols) == 1:
        sym = bt.symbols[0]
        frame = bt.bars[sym]
        if frame.attrs.get("symbol") != sym:
            frame = frame.copy()
            frame.attrs["symbol"] = sym
        return frame
    return dict(bt.bars)


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
    data = _frame_for(bt)
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


# --------------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------------

def _check_objective(objective: str, direction: str) -> None:
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective {objective!r} is not a numeric backtest statistic; use one "
                          f"of: {', '.join(OBJECTIVES)}")
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"direction must be 'maximize' or 'minimize', got {direction!r}")


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
        values = _optuna_space(strategy, grid)
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


def _score(stats: pd.DataFrame, objective: str, direction: str, constraints: Constraints
           ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    worst = -math.inf if direction == "maximize" else math.inf
    raw = stats[objective].to_numpy(dtype=np.float64)
    score = np.empty(len(stats))
    feasible = np.zeros(len(stats), dtype=bool)
    reasons: list[str] = []
    for i, (_, row) in enumerate(stats.iterrows()):
        if row.get("state", "complete") != "complete":
            score[i] = worst
            reasons.append(str(row.get("reason", "pruned")))
            continue
        why = constraints.violation(row)
        if not why and not math.isfinite(raw[i]):
            why = f"{objective} is undefined"
        feasible[i] = not why
        score[i] = raw[i] if not why else worst
        reasons.append(why)
    return score, feasible, reasons


def _table(params: pd.DataFrame, stats: pd.DataFrame, states: list[str], reasons: list[str],
           objective: str, direction: str, constraints: Constraints) -> pd.DataFrame:
    stats = stats.copy()
    stats["state"] = states
    stats["reason"] = reasons
    score, feasible, why = _score(stats, objective, direction, constraints)
    table = params.copy()
    table["objective"] = score
    table["feasible"] = feasible
    table["reason"] = why
    table["state"] = states
    for key in TABLE_STATS:
        table[key] = stats[key].to_numpy()
    table.index = pd.RangeIndex(len(table), name="trial")
    order = np.lexsort(((-score if direction == "maximize" else score), ~feasible))
    return table.iloc[order]


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


def _median_thresholds(study: Any, n_steps: int, n_startup: int, n_warmup: int
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


def _optuna_space(strategy: Strategy, grid: Any) -> dict[str, list[Any]] | None:
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


def _suggest(strategy: Strategy, trial: Any, space: dict[str, list[Any]] | None,
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


def _optuna_search(job: SweepJob, strategy: Strategy, *, n_trials: int, seed: int | None,
                   objective: str, direction: str, constraints: Constraints, pruning: bool,
                   n_steps: int, batch_size: int, backend: Backend,
                   space: dict[str, list[Any]] | None, fixed: Mapping[str, Any],
                   progress: Progress | None) -> tuple[list[dict], list[TrialOutcome]]:
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
                params = _suggest(strategy, trial, space, fixed)
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
            thresholds = (_median_thresholds(study, n_steps, n_startup, n_warmup) if pruning
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
    progress:
        ``progress(done, total)`` as sets (grid) or trials (Optuna) finish.

    Returns
    -------
    OptimizationResult
        The sorted table, the best set and its full stats, DSR, PBO and the verdict.

    Raises
    ------
    LookAheadError
        The strategy looks ahead (checked before any search).
    ConfigError
        A bad argument, naming it.
    """
    started = time.perf_counter()
    _check_objective(objective, direction)
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
    space = _optuna_space(strat, grid) if method == "optuna" else None
    # refuse look-ahead before spending any time on the search
    probes = _causality_probes(strat, job.param_sets if method == "grid" else None,
                               grid if method == "optuna" else None)
    for p in probes:
        require_causal(strat, data, params=p)
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
            sets, outcomes = _optuna_search(
                job, strat, n_trials=n_trials, seed=seed, objective=objective,
                direction=direction, constraints=constraints, pruning=pruning,
                n_steps=n_steps, batch_size=max(1, int(size)), backend=engine, space=space,
                fixed=fixed, progress=progress)
            params, stats, states, reasons, samples_returns, sharpes = _optuna_frames(
                job, strat, sets, outcomes)
            searched = tuple(name for name in (space or {}) if name not in fixed) if space \
                else tuple(name for name, p in strat.params.items()
                           if getattr(p, "optimize", False) and name not in fixed)
            n_pruned = sum(o.pruned_at is not None for o in outcomes)
    finally:
        if isinstance(backend, str):  # made here: release its workers
            engine.close()
    table = _table(params, stats, states, reasons, objective, direction, constraints)
    names = tuple(params.columns)
    return _finish(job, strat, table, names, searched, samples_returns, sharpes, n_pruned,
                   method=method, objective=objective, direction=direction,
                   constraints=constraints, pbo_blocks=pbo_blocks, backend=engine.name,
                   started=started, probes=probes)


def _optuna_frames(job: SweepJob, strategy: Strategy, sets: list[dict],
                   outcomes: list[TrialOutcome]):
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
            probes: list[dict[str, Any]]) -> OptimizationResult:
    complete = table["state"] == "complete"
    n_trials = int(complete.sum())
    finite = sharpes[np.isfinite(sharpes)]
    feasible = table[table["feasible"]]
    best_params = best_stats = best_returns = None
    dsr = sr0 = math.nan
    ppy = m.periods_per_year(_index(job.data))
    if len(feasible):
        row = feasible.iloc[0]
        best_params = job.strategy.params.validate({n: _py(row[n]) for n in names})
        result = job.backtest(best_params, benchmark="buy_and_hold").run()
        best_stats = result.stats
        best_returns = result.returns
        if finite.size >= 2:
            dsr = deflated_sharpe_ratio(best_returns, trial_sharpes=finite)
            sr0 = expected_max_sharpe(int(finite.size), float(np.var(finite, ddof=1)))
            sr0 *= math.sqrt(ppy)
    cols = [c for c in returns.columns if c in set(table.index[complete])]
    pbo = _pbo(returns[cols], pbo_blocks) if len(cols) >= 2 else None
    verdict = (significance_verdict(dsr, n_trials, pbo=None if pbo is None else pbo.pbo)
               if best_params is not None else
               "No parameter set met the constraints: nothing to call significant.")
    return OptimizationResult(
        strategy=strategy.name, method=method, objective=objective, direction=direction,
        constraints=constraints, table=table, param_names=names, best_params=best_params,
        best_stats=best_stats, best_returns=best_returns, n_trials=n_trials, n_pruned=n_pruned,
        trial_sharpes=finite, dsr=dsr, sr_benchmark=sr0, pbo=pbo, verdict=verdict,
        returns=returns, periods_per_year=float(ppy), backend=backend, batched=job.batched,
        elapsed_s=time.perf_counter() - started, searched=searched,
        causality_checked=tuple(probes))


def _index(data: Any) -> pd.DatetimeIndex:
    return data.index if isinstance(data, pd.DataFrame) else next(iter(data.values())).index


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
