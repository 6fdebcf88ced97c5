"""Walk-forward analysis: optimise in-sample, trade the bars that follow, stitch the results.

For each fold of :func:`~quantum_trading.research.splits.walk_forward_splits` (rolling or
anchored training windows):

1. **In-sample.** :func:`~quantum_trading.research.optimize.optimize` searches the parameters
   (grid or Optuna, the objective and constraints as given) on the training bars **only**:
   the data it is handed is ``data.iloc[fold.train]``, so neither the search, the causality
   check nor the significance statistics can see a later bar. ``WalkForwardResult.touched``
   records those bar positions, fold by fold.
2. **Out-of-sample.** The chosen parameters trade the test window ``[s, e)``: the backtest
   runs on ``[s − warm-up, e)`` so indicators have history, but the target is held flat
   before the decision at bar ``s − 1``'s close (the first one that fills inside the window,
   at bar ``s``'s open); the equity returns of bars ``s … e − 1`` are kept. The strategy
   never sees a bar after ``e − 1``; the account enters each window flat (no position or
   risk-engine state is carried in from the warm-up). A position still open at ``e − 1`` is
   valued at that close, as any backtest's last bar is (its exit costs are not charged).
3. **Stitching.** The kept per-bar returns of all folds, in time order, are chained into one
   out-of-sample equity curve starting at the account's initial cash.

Reported per fold: the in- and out-of-sample windows, the chosen parameters, the in-sample
objective, Sharpe ratio, annualised return, deflated Sharpe ratio and PBO of the search, the
out-of-sample statistics and the out-of-sample rank of the chosen set among all sets tried
(optional). Overall: the stitched curve's statistics, the **walk-forward efficiency** (OOS
annualised return ÷ mean IS annualised return, both arithmetic: ``mean(r) × bars per year``),
the probabilistic / deflated Sharpe ratio of the stitched returns, and the **walk-forward
PBO**: the share of folds whose in-sample choice ranked at or below the median of all sets
tried on that fold's out-of-sample bars (the CSCV PBO's logic along the walk-forward splits).

>>> from quantum_trading.data import generate_market
>>> bars = generate_market(n_assets=1, n_bars=900, seed=5).ohlcv["BTC/USDT:USDT"]
>>> wf = walk_forward(bars, "trend_following", grid={"fast": [10, 20], "slow": [50, 100]},
...                   train_bars=400, test_bars=150, n_workers=1)
>>> len(wf.folds), len(wf.oos_returns), bool(wf.touched[0].max() < wf.oos_positions[0].min())
(3, 450, True)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from quantum_trading.backtest import Backtest, BacktestResult
from quantum_trading.backtest import metrics as m
from quantum_trading.domain import Instrument, Signals
from quantum_trading.errors import ConfigError
from quantum_trading.research.backends import Backend, LocalBackend, get_backend
from quantum_trading.research.optimize import OptimizationResult, optimize
from quantum_trading.research.splits import Split, walk_forward_splits
from quantum_trading.research.stats import deflated_sharpe_ratio
from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig
from quantum_trading.strategies import MarketData, ParamSpace, Strategy
from quantum_trading.strategies.registry import resolve_strategy

__all__ = ["FoldProgress", "WalkForwardResult", "walk_forward"]

FoldProgress = Callable[[int, int, int, int], None]
"""``progress(fold, n_folds, done, total)``: ``done`` of ``total`` parameter sets (grid) or
trials (Optuna) of fold ``fold`` (0-based) finished; called with ``done == total`` when the
fold's out-of-sample run is done as well."""

_DEFAULT_COSTS = CostsConfig()
_DEFAULT_ACCOUNT = AccountConfig()
_DEFAULT_RISK = RiskConfig()


# --------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class WalkForwardResult:
    """What :func:`walk_forward` found.

    Attributes
    ----------
    folds:
        One row per fold (index ``fold``): ``IS Start`` / ``IS End`` / ``IS Bars`` (the bars
        optimised on), ``OOS Start`` / ``OOS End`` / ``OOS Bars``, the searched parameters
        chosen (one column each), ``IS Objective``, ``IS Sharpe Ratio``,
        ``IS Ann. Return [%]``, ``IS DSR``, ``IS PBO``, ``# Trials``, ``OOS Return [%]``,
        ``OOS Ann. Return [%]``, ``OOS Sharpe Ratio``, ``OOS Max. Drawdown [%]``,
        ``OOS # Trades``, ``OOS Rank [%]`` (percentile of the chosen set among all sets
        tried, on the OOS bars: 100 = best), ``WFE`` (fold's walk-forward efficiency) and
        ``Note``.
    params:
        The parameters traded in each fold (None where no set met the constraints: the fold
        stays flat).
    touched:
        ``touched[k]``: the bar positions (into ``data``) that fold ``k``'s optimisation was
        given — every bar its search, causality check and statistics could read.
    oos_positions:
        ``oos_positions[k]``: the bar positions whose returns fold ``k`` contributes.
    oos_returns:
        Stitched per-bar out-of-sample returns (fractions), indexed by bar open time.
    oos_equity:
        The stitched equity (USDT): ``initial cash × Π(1 + r)``, starting at the bar before the
        first out-of-sample bar.
    benchmark_equity:
        Buy and hold through the same simulator and costs over the same span (bought at the
        first out-of-sample bar's open).
    stats:
        Overall statistics (see :func:`walk_forward`).
    optimizations, oos_results:
        Each fold's :class:`~quantum_trading.research.optimize.OptimizationResult` and
        out-of-sample :class:`~quantum_trading.backtest.BacktestResult` (on the warm-up and
        the window; None for a flat fold).
    splits:
        The :class:`~quantum_trading.research.splits.Split` of each fold.
    """

    strategy: str
    method: str
    objective: str
    direction: str
    anchored: bool
    train_bars: int
    test_bars: int
    step: int
    warmup_bars: int
    folds: pd.DataFrame
    params: tuple[dict[str, Any] | None, ...]
    touched: tuple[np.ndarray, ...] = field(repr=False)
    oos_positions: tuple[np.ndarray, ...] = field(repr=False)
    oos_returns: pd.Series = field(repr=False)
    oos_equity: pd.Series = field(repr=False)
    benchmark_equity: pd.Series | None = field(repr=False)
    stats: pd.Series = field(repr=False)
    searched: tuple[str, ...] = ()
    optimizations: tuple[OptimizationResult, ...] = field(default=(), repr=False)
    oos_results: tuple[BacktestResult | None, ...] = field(default=(), repr=False)
    splits: tuple[Split, ...] = field(default=(), repr=False)
    periods_per_year: float = math.nan
    initial_cash_usd: float = 10_000.0
    n_trials: int = 1

    def summary(self) -> str:
        """A few lines: the folds, the stitched OOS result, WFE, DSR and PBO."""
        s = self.stats
        mode = "anchored" if self.anchored else "rolling"
        lines = [
            f"walk-forward ({mode}) of {self.strategy}: {len(self.folds)} folds, "
            f"{self.train_bars} IS / {self.test_bars} OOS bars, step {self.step}, "
            f"{self.method} search of {self.objective} ({self.direction})",
            f"OOS: return {s['Return [%]']:.2f}%, Sharpe {s['Sharpe Ratio']:.3f}, max drawdown "
            f"{s['Max. Drawdown [%]']:.2f}%, {int(s['# Trades'])} trades "
            f"(buy & hold {s['Buy & Hold Return [%]']:.2f}%)",
            f"walk-forward efficiency {s['Walk-Forward Efficiency']:.3f}, OOS PSR "
            f"{s['Probabilistic Sharpe Ratio']:.3f}, DSR {s['Deflated Sharpe Ratio']:.3f} "
            f"({self.n_trials} trials), walk-forward PBO {s['Walk-Forward PBO']:.3f}",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# --------------------------------------------------------------------------------------------
# Out-of-sample runs
# --------------------------------------------------------------------------------------------

class _FlatBefore:
    """``inner`` with its target held at 0 before bar position ``first`` (a Strategy)."""

    def __init__(self, inner: Strategy, first: int) -> None:
        self.inner = inner
        self.first = int(first)
        self.name: str = inner.name
        self.params: ParamSpace = inner.params

    def signals(self, data: MarketData, **params: Any) -> Signals:
        sig = self.inner.signals(data, **params)
        target = sig.target.copy()
        target.iloc[: self.first] = 0.0
        return dataclasses.replace(sig, target=target)


@dataclass(frozen=True, eq=False)
class _OOSJob:
    """One fold's out-of-sample backtest setting (picklable for the backends)."""

    data: MarketData
    strategy: Strategy
    keep_from: int  # local position of the bar before the first OOS bar
    instrument: Any
    costs: CostsConfig
    account: AccountConfig
    risk: RiskConfig | None
    funding: Any
    mark: Any

    def run(self, params: Mapping[str, Any]) -> BacktestResult:
        strat = _FlatBefore(self.strategy, self.keep_from)
        return Backtest(self.data, strat, instrument=self.instrument, costs=self.costs,
                        account=self.account, params=params, funding=self.funding,
                        mark=self.mark, benchmark=None, risk=self.risk).run()

    def oos_equity(self, result: BacktestResult) -> pd.Series:
        return result.equity.iloc[self.keep_from:]


def _oos_sharpe(job: _OOSJob, params: Mapping[str, Any]) -> float:
    """Per-bar Sharpe ratio of ``params`` on the job's OOS bars (a backend worker)."""
    return m.sharpe_ratio(m.bar_returns(job.oos_equity(job.run(params))), 1.0)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def _index(data: MarketData) -> pd.DatetimeIndex:
    if isinstance(data, pd.DataFrame):
        return data.index
    if isinstance(data, Mapping) and data:
        return next(iter(data.values())).index
    raise ConfigError(f"data must be an OHLCV DataFrame or a dict symbol -> DataFrame, got "
                      f"{type(data).__name__}")


def _take(data: MarketData, positions: np.ndarray | slice) -> MarketData:
    def one(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.iloc[positions]
        out.attrs = dict(frame.attrs)
        return out

    if isinstance(data, pd.DataFrame):
        return one(data)
    return {sym: one(frame) for sym, frame in data.items()}


def _count(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _ann_return_pct(returns: pd.Series | np.ndarray, ppy: float) -> float:
    r = np.asarray(returns, dtype=np.float64)
    return 100.0 * float(r.mean()) * ppy if r.size else math.nan


def _wfe(oos_ann: float, is_ann: float) -> float:
    """OOS ÷ IS annualised return; NaN when the in-sample return is not positive."""
    if not (math.isfinite(oos_ann) and math.isfinite(is_ann)) or is_ann <= 0:
        return math.nan
    return oos_ann / is_ann


def _rank_pct(chosen: float, others: np.ndarray) -> tuple[float, float]:
    """Percentile (100 = best) and CSCV logit of ``chosen`` among ``others`` (incl. itself)."""
    vals = np.where(np.isfinite(others), others, -np.inf)
    c = chosen if math.isfinite(chosen) else -np.inf
    n = vals.size
    rank = float(np.sum(vals < c) + 0.5 * (np.sum(vals == c) - 1) + 1)  # 1 = worst
    omega = rank / (n + 1)
    return 100.0 * (rank - 1) / max(n - 1, 1), math.log(omega / (1 - omega))


# --------------------------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------------------------

def walk_forward(
    data: MarketData,
    strategy: Strategy | str | Callable[..., Any],
    *,
    train_bars: int,
    test_bars: int,
    step: int | None = None,
    anchored: bool = False,
    warmup_bars: int | None = None,
    embargo: int = 0,
    method: Literal["grid", "optuna"] = "grid",
    grid: Mapping[str, Any] | Sequence[Mapping[str, Any]] | int | None = None,
    params: Mapping[str, Any] | None = None,
    n_trials: int = 50,
    objective: str = "Sharpe Ratio",
    direction: Literal["maximize", "minimize"] = "maximize",
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
    seed: int = 0,
    rank_oos: bool = True,
    dsr_trials: int = 1,
    optimize_options: Mapping[str, Any] | None = None,
    progress: FoldProgress | None = None,
) -> WalkForwardResult:
    """Walk-forward analysis: optimise on each training window, trade the next test window.

    Parameters
    ----------
    data:
        One asset's OHLCV frame or ``{symbol: frame}`` on one index (UTC bar open times).
    strategy:
        A :class:`~quantum_trading.strategies.Strategy`, a registered name or a function.
    train_bars, test_bars, step, anchored, embargo:
        The folds (:func:`~quantum_trading.research.splits.walk_forward_splits`): fold ``k``
        trades bars ``[s_k, s_k + test_bars)``, ``s_k = train_bars + k · step``, after
        optimising on the ``train_bars`` bars before it (``anchored``: all bars since the
        first), less ``embargo`` bars just before the test. ``step`` defaults to
        ``test_bars`` and may not be smaller (out-of-sample windows must not overlap).
    warmup_bars:
        History the out-of-sample backtest starts with before each test window (default
        ``train_bars``; at least 1, at most the bars available).
    method, grid, params, n_trials, objective, direction, min_trades, max_drawdown_pct:
        The in-sample search (:func:`~quantum_trading.research.optimize.optimize`): grid or
        Optuna, values to search, parameters held fixed, trials, the statistic to optimise
        and the constraints.
    instrument, costs, account, risk, funding, mark:
        As :class:`~quantum_trading.backtest.Backtest`, for every in- and out-of-sample run.
    backend, address, n_workers:
        Where the searches run (``"local"`` process pool, ``"ray"``, or a backend object);
        one backend serves every fold.
    seed:
        Seed of Optuna's sampler (the same in every fold).
    rank_oos:
        Also backtest every complete parameter set of each fold on its out-of-sample bars to
        rank the chosen one (``OOS Rank [%]``, walk-forward PBO). Costs one backtest per set
        and fold.
    dsr_trials:
        Number of walk-forward configurations tried (window lengths, grids, strategies …)
        for the deflated Sharpe ratio of the stitched returns (1 = the PSR).
    optimize_options:
        More keyword arguments of :func:`~quantum_trading.research.optimize.optimize`
        (``pruning``, ``n_steps``, ``batch_size``, ``pbo_blocks``, ``batched`` …).
    progress:
        :data:`FoldProgress` callback.

    Returns
    -------
    WalkForwardResult
        ``stats`` holds ``Start``, ``End``, ``# Folds``, ``OOS Bars``, ``Return [%]``,
        ``Ann. Return [%]``, ``CAGR [%]``, ``Volatility (Ann.) [%]``, ``Sharpe Ratio``,
        ``Max. Drawdown [%]``, ``# Trades``, ``Buy & Hold Return [%]``,
        ``IS Ann. Return [%]`` (mean over folds), ``IS Sharpe Ratio`` (mean),
        ``Walk-Forward Efficiency``, ``Profitable Folds [%]``, ``Probabilistic Sharpe Ratio``,
        ``Deflated Sharpe Ratio``, ``Walk-Forward PBO``, ``Mean IS DSR``, ``Mean IS PBO``.

    Raises
    ------
    LookAheadError
        The strategy looks ahead (checked by each fold's search on its training bars).
    ConfigError
        A bad argument, naming it.
    """
    strat = resolve_strategy(strategy)
    index = _index(data)
    n = len(index)
    train_bars = _count("train_bars", train_bars, 2)
    test_bars = _count("test_bars", test_bars, 2)
    step = test_bars if step is None else _count("step", step, 1)
    if step < test_bars:
        raise ConfigError(f"step ({step}) must be >= test_bars ({test_bars}): out-of-sample "
                          "windows must not overlap to be stitched")
    warmup = train_bars if warmup_bars is None else _count("warmup_bars", warmup_bars, 1)
    dsr_trials = _count("dsr_trials", dsr_trials, 1)
    if method not in ("grid", "optuna"):
        raise ConfigError(f"method must be 'grid' or 'optuna', got {method!r}")
    try:
        splits = walk_forward_splits(n, train_size=train_bars, test_size=test_bars, step=step,
                                     anchored=bool(anchored), embargo=_count("embargo",
                                                                             embargo, 0))
    except ValueError as exc:
        raise ConfigError(f"walk-forward: {exc}") from None
    options = dict(optimize_options or {})
    engine = get_backend(backend, address=address, n_workers=n_workers)
    ppy = float(m.periods_per_year(index))
    folds: list[dict[str, Any]] = []
    chosen: list[dict[str, Any] | None] = []
    touched: list[np.ndarray] = []
    oos_pos: list[np.ndarray] = []
    opts: list[OptimizationResult] = []
    oos_runs: list[BacktestResult | None] = []
    pieces: list[pd.Series] = []
    logits: list[float] = []
    trades = 0
    try:
        for split in splits:
            k = split.fold
            train = np.asarray(split.train)
            is_data = _take(data, train)
            # the exact bars the optimisation is given: nothing from the test window
            touched.append(np.asarray(index.get_indexer(_index(is_data)), dtype=np.int64))

            def tick(done: int, total: int, k: int = k) -> None:
                if progress is not None:
                    progress(k, len(splits), min(done, total - 1) if total else 0, total)

            res = optimize(is_data, strat, method=method, grid=grid, params=params,
                           n_trials=n_trials, objective=objective, direction=direction,
                           min_trades=min_trades, max_drawdown_pct=max_drawdown_pct,
                           instrument=instrument, costs=costs, account=account, risk=risk,
                           funding=funding, mark=mark, backend=engine, seed=seed,
                           progress=tick, **options)
            opts.append(res)
            s, e = int(split.test[0]), int(split.test[-1]) + 1
            w = max(0, s - warmup)
            job = _OOSJob(data=_take(data, slice(w, e)), strategy=strat, keep_from=s - 1 - w,
                          instrument=instrument, costs=costs, account=account, risk=risk,
                          funding=funding, mark=mark)
            oos_pos.append(np.arange(s, e, dtype=np.int64))
            row = _fold_row(split, index, train, res, ppy)
            if res.best_params is None:
                chosen.append(None)
                oos_runs.append(None)
                r = pd.Series(0.0, index=index[s:e])
                row["Note"] = "no parameter set met the constraints: flat"
            else:
                best = dict(res.best_params)
                chosen.append(best)
                run = job.run(best)
                oos_runs.append(run)
                r = m.bar_returns(job.oos_equity(run))
                trades += len(run.trades)
                row["OOS # Trades"] = len(run.trades)
                if rank_oos:
                    pct, logit = _rank_oos(job, res, best, r, engine)
                    row["OOS Rank [%]"] = pct
                    if math.isfinite(logit):
                        logits.append(logit)
            pieces.append(r)
            row.update(_oos_row(r, ppy, account.initial_cash_usd))
            row["WFE"] = _wfe(row["OOS Ann. Return [%]"], row["IS Ann. Return [%]"])
            folds.append(row)
            if progress is not None:
                total = max(len(res.table), 1)
                progress(k, len(splits), total, total)
    finally:
        if isinstance(backend, str):
            engine.close()
    oos_returns = pd.concat(pieces)
    oos_returns.name = "oos_returns"
    first = int(oos_pos[0][0])
    initial = float(account.initial_cash_usd)
    growth = np.r_[1.0, np.cumprod(1.0 + oos_returns.to_numpy())]
    oos_equity = pd.Series(initial * growth, index=index[[first - 1]].append(oos_returns.index),
                           name="oos_equity")
    bench = _buy_and_hold(data, first - 1, int(oos_pos[-1][-1]) + 1, instrument, costs,
                          account, funding, mark)
    table = pd.DataFrame(folds).set_index("fold")
    searched = tuple(dict.fromkeys(p for r in opts for p in r.searched))
    for name in searched:
        table[name] = [None if c is None else c.get(name) for c in chosen]
    table = _order_columns(table, searched)
    stats = _overall_stats(oos_returns, oos_equity, bench, table, ppy, trades, logits,
                           dsr_trials, len(splits))
    return WalkForwardResult(
        strategy=strat.name, method=method, objective=objective, direction=direction,
        anchored=bool(anchored), train_bars=train_bars, test_bars=test_bars, step=step,
        warmup_bars=warmup, folds=table, params=tuple(chosen), touched=tuple(touched),
        oos_positions=tuple(oos_pos), oos_returns=oos_returns, oos_equity=oos_equity,
        benchmark_equity=bench, stats=stats, searched=searched, optimizations=tuple(opts),
        oos_results=tuple(oos_runs), splits=tuple(splits), periods_per_year=ppy,
        initial_cash_usd=initial, n_trials=dsr_trials)


def _fold_row(split: Split, index: pd.DatetimeIndex, train: np.ndarray,
              res: OptimizationResult, ppy: float) -> dict[str, Any]:
    is_ann = (_ann_return_pct(res.best_returns, ppy) if res.best_returns is not None
              else math.nan)
    return {
        "fold": split.fold,
        "IS Start": index[int(train[0])], "IS End": index[int(train[-1])],
        "IS Bars": int(train.size),
        "OOS Start": index[int(split.test[0])], "OOS End": index[int(split.test[-1])],
        "OOS Bars": int(split.test.size),
        "IS Objective": float(res.table["objective"].iloc[0]) if res.best_params else math.nan,
        "IS Sharpe Ratio": res.best_sharpe,
        "IS Ann. Return [%]": is_ann,
        "IS DSR": float(res.dsr),
        "IS PBO": float(res.pbo.pbo) if res.pbo is not None else math.nan,
        "# Trials": int(res.n_trials),
        "OOS # Trades": 0,
        "OOS Rank [%]": math.nan,
        "Note": "",
    }


def _oos_row(r: pd.Series, ppy: float, initial: float) -> dict[str, float]:
    equity = initial * np.r_[1.0, np.cumprod(1.0 + r.to_numpy())]
    return {
        "OOS Return [%]": m.total_return_pct(equity),
        "OOS Ann. Return [%]": _ann_return_pct(r, ppy),
        "OOS Sharpe Ratio": m.sharpe_ratio(r, ppy),
        "OOS Max. Drawdown [%]": m.max_drawdown_pct(equity),
    }


def _rank_oos(job: _OOSJob, res: OptimizationResult, best: dict[str, Any], r: pd.Series,
              engine: Backend) -> tuple[float, float]:
    """OOS percentile and logit of the chosen set among every complete set of the search."""
    table = res.table[res.table["state"] == "complete"]
    names = list(res.param_names)
    sets = [res_params for res_params in
            (dict(zip(names, row, strict=True)) for row in
             table[names].itertuples(index=False, name=None))]
    sets = [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in p.items()}
            for p in sets]
    if len(sets) < 2:
        return math.nan, math.nan
    others = [p for p in sets if p != best]
    if isinstance(engine, LocalBackend):  # short runs: a process pool would cost more
        values = np.asarray([_oos_sharpe(job, p) for p in others], dtype=np.float64)
    else:
        values = np.asarray(engine.map(_oos_sharpe, job, others), dtype=np.float64)
    chosen = m.sharpe_ratio(r, 1.0)
    return _rank_pct(chosen, np.r_[chosen, values])


def _buy_and_hold(data: MarketData, start: int, stop: int, instrument: Any,
                  costs: CostsConfig, account: AccountConfig, funding: Any,
                  mark: Any) -> pd.Series | None:
    """Buy and hold over bars ``[start, stop)``: bought at ``start + 1``'s open."""
    run = Backtest(_take(data, slice(start, stop)), "buy_and_hold", instrument=instrument,
                   costs=costs, account=account, funding=funding, mark=mark,
                   benchmark="buy_and_hold", risk=None).run()
    eq = run.benchmark_equity
    return None if eq is None else eq.rename("buy_and_hold")


def _order_columns(table: pd.DataFrame, searched: tuple[str, ...]) -> pd.DataFrame:
    head = ["IS Start", "IS End", "IS Bars", "OOS Start", "OOS End", "OOS Bars", *searched]
    rest = [c for c in table.columns if c not in head and c != "Note"]
    return table[[*head, *rest, "Note"]]


def _overall_stats(r: pd.Series, equity: pd.Series, bench: pd.Series | None,
                   folds: pd.DataFrame, ppy: float, trades: int, logits: list[float],
                   dsr_trials: int, n_folds: int) -> pd.Series:
    oos_ann = _ann_return_pct(r, ppy)
    is_ann = float(folds["IS Ann. Return [%]"].mean())
    n_obs = len(r)
    if n_obs >= 2:
        psr = m.probabilistic_sharpe_ratio(r)
        dsr = deflated_sharpe_ratio(r, n_trials=dsr_trials, sr_variance=1.0 / n_obs)
    else:
        psr = dsr = math.nan
    bh = m.total_return_pct(bench) if bench is not None else math.nan
    return pd.Series({
        "Start": r.index[0],
        "End": r.index[-1],
        "# Folds": n_folds,
        "OOS Bars": n_obs,
        "Return [%]": m.total_return_pct(equity),
        "Ann. Return [%]": oos_ann,
        "CAGR [%]": m.cagr_pct(equity),
        "Volatility (Ann.) [%]": m.annualized_volatility_pct(r, ppy),
        "Sharpe Ratio": m.sharpe_ratio(r, ppy),
        "Max. Drawdown [%]": m.max_drawdown_pct(equity),
        "# Trades": trades,
        "Buy & Hold Return [%]": bh,
        "IS Ann. Return [%]": is_ann,
        "IS Sharpe Ratio": float(folds["IS Sharpe Ratio"].mean()),
        "Walk-Forward Efficiency": _wfe(oos_ann, is_ann),
        "Profitable Folds [%]": 100.0 * float((folds["OOS Return [%]"] > 0).mean()),
        "Probabilistic Sharpe Ratio": psr,
        "Deflated Sharpe Ratio": dsr,
        "Walk-Forward PBO": (float(np.mean(np.asarray(logits) <= 0.0)) if logits
                             else math.nan),
        "Mean IS DSR": float(folds["IS DSR"].mean()),
        "Mean IS PBO": float(folds["IS PBO"].mean()),
    }, dtype=object)
