"""A sweep job: market data, strategy, configuration and the validated parameter sets.

:func:`make_job` checks everything once (the data, instrument and configurations through the
:class:`~quantum_trading.backtest.Backtest` constructor, every parameter set against the
strategy's declared space) and decides whether the batched kernels can run
(:mod:`~quantum_trading.research.sweep_signals`); the :class:`SweepJob` it returns is
picklable and is sent once to each worker of a process pool or Ray, which evaluates slices of
its parameter sets (:func:`~quantum_trading.research.sweep_eval.evaluate_chunk`).
:data:`TABLE_STATS` names the statistics every evaluation reports per parameter set.

>>> from quantum_trading.data import generate_market
>>> bars = generate_market(n_assets=1, n_bars=600, seed=3).ohlcv["BTC/USDT:USDT"]
>>> job = make_job(bars, "trend_following", {"fast": [10, 20], "slow": [50]})
>>> len(job.param_sets), job.batched, len(job.sample_idx)
(2, True, 600)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.backtest import Backtest
from quantum_trading.domain import Instrument
from quantum_trading.errors import ConfigError
from quantum_trading.research.sweep_signals import batch_signals_for
from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig
from quantum_trading.strategies import Strategy, resolve_strategy

__all__ = [
    "TABLE_STATS",
    "SweepJob",
    "make_job",
    "param_grid",
    "resolve_strategy",
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

_DEFAULT_COSTS = CostsConfig()
_DEFAULT_ACCOUNT = AccountConfig()
_DEFAULT_RISK = RiskConfig()
_RETURNS_BUDGET = 25_000_000  # values in the returns matrix by default (200 MB of float64)
_MIN_RETURN_ROWS = 2000


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
    """A checked :class:`SweepJob` (arguments as
    :func:`~quantum_trading.research.sweep.sweep`; ``n_sets_hint``: how many
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

