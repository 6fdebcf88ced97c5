"""One honest report of a given parameter set: :func:`validate_strategy`.

Six questions, each answered with the research tools of this package:

1. **Does it look ahead?** :func:`~quantum_trading.research.bias.require_causal` (signals on
   ``data[:t]`` must equal the first t signals on all data).
2. **Is the result stable across time and neighbouring parameters?** Combinatorial purged
   cross-validation (:func:`~quantum_trading.research.splits.cpcv_splits`) of the per-bar
   returns: the *candidates* are the given set and its one-at-a-time neighbours (each
   optimisable numeric parameter moved ``±neighbour_pct`` %); in every CPCV split the
   candidate with the best Sharpe ratio on the (purged, embargoed) training bars is kept and
   its returns on the test bars are stitched into the ``φ`` backtest paths. Reported: the
   Sharpe ratio of every path (their spread shows how much the choice depends on the
   sample), the given set's Sharpe ratio on every split's test bars, and the PBO (CSCV) of
   the candidates. With no neighbours every path is the given set's own returns.
3. **Does the order of bars matter?** :func:`~quantum_trading.research.bias.permutation_test`
   p-value of the Sharpe ratio against paths rebuilt from the same bars in random order.
4. **Is the Sharpe ratio significant after the trials it took to find it?** The deflated
   Sharpe ratio given ``n_trials`` (user-supplied: how many configurations were tried before
   this one; 1 = the probabilistic Sharpe ratio) with the variance of skill-less trials'
   per-bar Sharpe ratios ``1 / T`` unless given.
5. **Is the track record long enough?** The minimum track record length (MinTRL) at which
   the observed Sharpe ratio beats the DSR's benchmark with 95 % confidence, against the
   bars available.
6. **Where does it make its money?** Performance by rule-based regime
   (:func:`~quantum_trading.research.regimes.rule_regimes`,
   :func:`~quantum_trading.research.regime_analysis.regime_metrics`).

>>> from quantum_trading.data import generate_market
>>> bars = generate_market(n_assets=1, n_bars=800, seed=3).ohlcv["BTC/USDT:USDT"]
>>> v = validate_strategy("trend_following", bars, params={"fast": 10, "slow": 50},
...                       n_permutations=9)
>>> v.causal, v.cpcv.n_paths, len(v.path_sharpes), 0.0 < v.permutation.p_value <= 1.0
(True, 5, 5, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.backtest import Backtest, BacktestResult
from quantum_trading.backtest import metrics as m
from quantum_trading.domain import Instrument
from quantum_trading.errors import ConfigError
from quantum_trading.research.bias import (
    LookAheadError,
    PermutationMethod,
    PermutationTestResult,
    permutation_test,
    require_causal,
)
from quantum_trading.research.regime_analysis import regime_metrics
from quantum_trading.research.regimes import rule_regimes, rule_vol_window
from quantum_trading.research.splits import CPCVSplits, cpcv_splits
from quantum_trading.research.stats import (
    PBOResult,
    dsr_from_moments,
    expected_max_sharpe,
    min_track_record_length,
    probability_of_backtest_overfitting,
    sharpe_ratios,
)
from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig
from quantum_trading.strategies import MarketData, Strategy
from quantum_trading.strategies.registry import resolve_strategy

__all__ = ["SIGNIFICANCE", "ValidationResult", "neighbour_params", "validate_strategy"]

SIGNIFICANCE = 0.05
"""Permutation p-value at or below which the order of bars is said to matter; the DSR must
reach ``1 − SIGNIFICANCE``."""

_DEFAULT_COSTS = CostsConfig()
_DEFAULT_ACCOUNT = AccountConfig()
_DEFAULT_RISK = RiskConfig()

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stages ``"backtests"`` (the set and its neighbours) and
``"permutations"``."""


@dataclass(frozen=True, eq=False)
class ValidationResult:
    """What :func:`validate_strategy` found.

    Attributes
    ----------
    strategy, params:
        The strategy's name and the validated parameters.
    causal, causality:
        Whether the causality check passed, and what it said.
    result:
        The full backtest of ``params`` (buy and hold as benchmark).
    candidates, candidate_returns:
        The CPCV candidates (``params`` first, then its neighbours) and their per-bar returns
        (columns 0, 1, …).
    cpcv:
        The CPCV splits over the per-bar returns.
    cpcv_paths:
        Per-bar out-of-sample returns of each backtest path (bars × φ).
    path_sharpes:
        Annualised Sharpe ratio of each path.
    split_sharpes:
        Annualised Sharpe ratio of ``params`` on each split's test bars.
    cpcv_choices:
        Candidate chosen on each split's training bars.
    pbo:
        CSCV probability of backtest overfitting over the candidates (None with fewer than
        two).
    permutation:
        The permutation test of the Sharpe ratio.
    n_trials, sr_variance, sr_benchmark:
        The DSR's trials, per-bar variance of skill-less trials' Sharpe ratios and the
        per-bar Sharpe ratio the best of them would show.
    dsr, psr:
        Deflated and probabilistic Sharpe ratio of the returns.
    min_trl_bars, n_bars:
        Minimum track record length against ``sr_benchmark`` at 95 %, and the returns
        available.
    regimes, regime_table:
        Rule-based regime per bar and the performance per regime.
    checks:
        One row per check: ``value``, ``threshold``, ``passed`` and what it means.
    verdict:
        The checks in words.
    """

    strategy: str
    params: dict[str, Any]
    causal: bool
    causality: str
    result: BacktestResult = field(repr=False)
    candidates: tuple[dict[str, Any], ...] = field(repr=False)
    candidate_returns: pd.DataFrame = field(repr=False)
    cpcv: CPCVSplits = field(repr=False)
    cpcv_paths: pd.DataFrame = field(repr=False)
    path_sharpes: np.ndarray = field(repr=False)
    split_sharpes: np.ndarray = field(repr=False)
    cpcv_choices: np.ndarray = field(repr=False)
    pbo: PBOResult | None = field(repr=False)
    permutation: PermutationTestResult = field(repr=False)
    n_trials: int = 1
    sr_variance: float = math.nan
    sr_benchmark: float = 0.0
    dsr: float = math.nan
    psr: float = math.nan
    min_trl_bars: float = math.nan
    n_bars: int = 0
    regimes: pd.Series = field(default_factory=pd.Series, repr=False)
    regime_table: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    checks: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    verdict: str = ""
    periods_per_year: float = math.nan

    @property
    def sharpe(self) -> float:
        """The full backtest's annualised Sharpe ratio."""
        return float(self.result.stats["Sharpe Ratio"])

    def summary(self) -> str:
        """The checks, one line each, and the verdict."""
        lines = [f"validation of {self.strategy} "
                 f"({', '.join(f'{k}={v}' for k, v in self.params.items())})"]
        for name, row in self.checks.iterrows():
            mark = "PASS" if row["passed"] else "FAIL"
            lines.append(f"  [{mark}] {name}: {row['value']} (needs {row['threshold']})")
        lines.append(self.verdict)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# --------------------------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------------------------

def neighbour_params(strategy: Strategy, params: Mapping[str, Any], pct: float
                     ) -> list[dict[str, Any]]:
    """``params`` and its one-at-a-time neighbours: each optimisable numeric parameter moved
    down and up by ``pct`` % of its value (at least one step; clipped to its range), the
    others unchanged; sets breaking a constraint are left out, duplicates dropped.

    >>> s = resolve_strategy("trend_following")
    >>> [(p["fast"], p["slow"]) for p in neighbour_params(s, {"fast": 10, "slow": 50}, 20)]
    [(10, 50), (8, 50), (12, 50), (10, 40), (10, 60)]
    """
    space = strategy.params
    base = space.validate(dict(params))
    out = [base]
    if not pct:
        return out
    for name, p in space.items():
        if not getattr(p, "optimize", False) or hasattr(p, "choices"):
            continue
        v = base[name]
        span = float(p.high - p.low)
        delta = abs(v) * pct / 100.0 if v else span * pct / 100.0
        step = getattr(p, "step", None)
        if isinstance(v, int | np.integer):
            delta = max(int(step or 1), round(delta))
        elif step:
            delta = max(float(step), round(delta / step) * step)
        for moved in (v - delta, v + delta):
            moved = min(max(moved, p.low), p.high)
            if isinstance(moved, float):
                moved = round(moved, 12)
            try:
                cand = space.validate({**base, name: moved})
            except ConfigError:
                continue
            if cand not in out:
                out.append(cand)
    return out


# --------------------------------------------------------------------------------------------
# The validation
# --------------------------------------------------------------------------------------------

def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def validate_strategy(
    strategy: Strategy | str | Callable[..., Any],
    data: MarketData,
    *,
    params: Mapping[str, Any] | None = None,
    n_trials: int = 1,
    sr_variance: float | None = None,
    n_permutations: int = 100,
    permutation_method: PermutationMethod = "returns_shuffle",
    n_groups: int = 6,
    n_test_groups: int = 2,
    embargo_frac: float = 0.01,
    neighbour_pct: float = 20.0,
    seed: int = 0,
    instrument: Instrument | Mapping[str, Instrument] | None = None,
    costs: CostsConfig = _DEFAULT_COSTS,
    account: AccountConfig = _DEFAULT_ACCOUNT,
    risk: RiskConfig | None = _DEFAULT_RISK,
    funding: Any = None,
    mark: Any = None,
    regime_options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> ValidationResult:
    """Validate one parameter set: causality, CPCV, permutation test, DSR, MinTRL, regimes.

    Parameters
    ----------
    strategy, data, params:
        The strategy (object, registered name or function), one asset's OHLCV frame (or
        ``{symbol: frame}``; regimes use the first symbol) and its parameters (defaults fill
        the rest).
    n_trials:
        Configurations tried before settling on this one (grid points, strategies, windows);
        deflates the Sharpe ratio. 1 = no selection (the DSR is the PSR).
    sr_variance:
        Variance of the trials' per-bar Sharpe ratios (default ``1 / T``, the sampling
        variance of a skill-less strategy's Sharpe ratio over ``T`` returns).
    n_permutations, permutation_method, seed:
        The permutation test (:func:`~quantum_trading.research.bias.permutation_test`).
    n_groups, n_test_groups, embargo_frac:
        CPCV: ``N`` groups, ``k`` test groups (``φ = C(N−1, k−1)`` paths), and the embargo
        after each test block as a fraction of the bars (label horizon: 1 bar).
    neighbour_pct:
        Size of the one-at-a-time parameter moves forming the CPCV candidates
        (:func:`neighbour_params`); 0 = the given set only.
    instrument, costs, account, risk, funding, mark:
        As :class:`~quantum_trading.backtest.Backtest`, for every run (permutations too).
    regime_options:
        Keyword arguments of :func:`~quantum_trading.research.regimes.rule_regimes`
        (default: a volatility window of
        :func:`~quantum_trading.research.regimes.rule_vol_window` ``(T)`` bars, i.e.
        ``min(720, T // 4)``).
    progress:
        :data:`Progress` callback.

    Returns
    -------
    ValidationResult

    Raises
    ------
    ConfigError
        A bad argument, naming it.
    """
    strat = resolve_strategy(strategy)
    n_trials = _check_int("n_trials", n_trials, 1)
    n_permutations = _check_int("n_permutations", n_permutations, 1)
    if not (isinstance(neighbour_pct, int | float) and 0 <= neighbour_pct < 100):
        raise ConfigError(f"neighbour_pct must be a percentage in [0, 100), got "
                          f"{neighbour_pct!r}")
    kwargs: dict[str, Any] = {"instrument": instrument, "costs": costs, "account": account,
                              "risk": risk, "funding": funding, "mark": mark}
    result = Backtest(data, strat, params=params, benchmark="buy_and_hold", **kwargs).run()
    chosen = dict(result.params)
    try:
        cuts = require_causal(strat, data, params=chosen)
        causal, causality = True, (f"signals on {len(cuts)} prefixes of the data equal the "
                                   "full run's")
    except LookAheadError as exc:
        causal, causality = False, str(exc)
    returns = result.returns
    ppy = result.periods_per_year
    n = len(returns)
    if n < max(2 * n_groups, 20):
        raise ConfigError(f"validate: {n} returns are too few for {n_groups} CPCV groups")

    candidates = neighbour_params(strat, chosen, float(neighbour_pct))
    columns = {0: returns.to_numpy()}
    for i, cand in enumerate(candidates[1:], start=1):
        if progress is not None:
            progress("backtests", i, len(candidates))
        run = Backtest(data, strat, params=cand, benchmark=None, **kwargs).run()
        columns[i] = run.returns.to_numpy()
    if progress is not None:
        progress("backtests", len(candidates), len(candidates))
    cand_returns = pd.DataFrame(columns, index=returns.index)

    try:
        cv = cpcv_splits(n, n_groups=n_groups, n_test_groups=n_test_groups, label_horizon=1,
                         embargo_frac=embargo_frac)
    except ValueError as exc:
        raise ConfigError(f"validate: {exc}") from None
    paths, path_sr, split_sr, choices = _cpcv(cv, cand_returns, ppy)
    pbo = _pbo(cand_returns)

    def tick(done: int, total: int) -> None:
        if progress is not None:
            progress("permutations", done, total)

    perm = permutation_test(strat, data, params=chosen, n_permutations=n_permutations,
                            seed=seed, statistic="Sharpe Ratio", method=permutation_method,
                            backtest_kwargs=kwargs)
    tick(n_permutations, n_permutations)

    sr = m.sharpe_ratio(returns, 1.0)
    skew, kurt, _ = m.return_moments(returns)
    var = 1.0 / n if sr_variance is None else float(sr_variance)
    if not (math.isfinite(var) and var >= 0):
        raise ConfigError(f"sr_variance must be a finite number >= 0, got {sr_variance!r}")
    sr0 = expected_max_sharpe(n_trials, var)
    dsr = dsr_from_moments(sr, n, skew, kurt, n_trials=n_trials, sr_variance=var)
    psr = m.psr_from_moments(sr, n, skew, kurt)
    min_trl = min_track_record_length(sr, skew, kurt, sr_benchmark=sr0) \
        if all(math.isfinite(x) for x in (sr, skew, kurt)) else math.nan

    frame = data if isinstance(data, pd.DataFrame) else next(iter(data.values()))
    options = {"vol_window": rule_vol_window(len(frame)), **dict(regime_options or {})}
    labels = rule_regimes(frame, **options)
    table = regime_metrics(result, labels)

    checks = _checks(causal, perm, dsr, min_trl, n, path_sr, split_sr, ppy)
    verdict = _verdict(causal, checks)
    return ValidationResult(
        strategy=strat.name, params=chosen, causal=causal, causality=causality, result=result,
        candidates=tuple(candidates), candidate_returns=cand_returns, cpcv=cv,
        cpcv_paths=paths, path_sharpes=path_sr, split_sharpes=split_sr, cpcv_choices=choices,
        pbo=pbo, permutation=perm, n_trials=n_trials, sr_variance=var, sr_benchmark=sr0,
        dsr=dsr, psr=psr, min_trl_bars=min_trl, n_bars=n, regimes=labels,
        regime_table=table, checks=checks, verdict=verdict, periods_per_year=ppy)


def _cpcv(cv: CPCVSplits, cand: pd.DataFrame, ppy: float
          ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    values = cand.to_numpy(dtype=np.float64)
    oos, choices, split_sr = [], [], []
    for split in cv:
        train_sr = np.asarray(sharpe_ratios(values[split.train]), dtype=np.float64)
        best = int(np.argmax(np.where(np.isfinite(train_sr), train_sr, -np.inf)))
        choices.append(best)
        oos.append(values[split.test, best])
        split_sr.append(m.sharpe_ratio(values[split.test, 0], ppy))
    paths = cv.stitch(oos, index=cand.index)
    path_sr = np.asarray(sharpe_ratios(paths, ppy), dtype=np.float64)
    return paths, path_sr, np.asarray(split_sr), np.asarray(choices, dtype=np.int64)


def _pbo(cand: pd.DataFrame) -> PBOResult | None:
    values = cand.to_numpy(dtype=np.float64)
    if values.shape[1] < 2 or not np.isfinite(values).all():
        return None
    blocks = min(16, (values.shape[0] // 2) // 2 * 2)
    if blocks < 2:
        return None
    return probability_of_backtest_overfitting(values, n_blocks=blocks)


def _checks(causal: bool, perm: PermutationTestResult, dsr: float, min_trl: float, n: int,
            path_sr: np.ndarray, split_sr: np.ndarray, ppy: float) -> pd.DataFrame:
    days = 365.25 / ppy if ppy > 0 else math.nan
    positive = float(np.mean(path_sr > 0)) if path_sr.size else math.nan
    split_pos = float(np.mean(split_sr > 0)) if split_sr.size else math.nan
    rows = {
        "causal": ("yes" if causal else "no", "yes", causal,
                   "signals use no bar after their decision"),
        "permutation p-value": (f"{perm.p_value:.4f}", f"<= {SIGNIFICANCE:g}",
                                bool(perm.p_value <= SIGNIFICANCE),
                                "the order of bars matters to the Sharpe ratio"),
        "deflated Sharpe ratio": (f"{dsr:.4f}", f">= {1 - SIGNIFICANCE:g}",
                                  bool(dsr >= 1 - SIGNIFICANCE),
                                  "the Sharpe ratio beats the best of the skill-less trials"),
        "track record [bars]": (f"{n:,} (MinTRL {min_trl:,.0f} ≈ {min_trl * days:,.1f} days)"
                                if math.isfinite(min_trl) else f"{n:,} (MinTRL ∞)",
                                ">= MinTRL", bool(n >= min_trl),
                                "long enough for the Sharpe ratio at 95 % confidence"),
        "CPCV test sets with Sharpe > 0": (
            f"{split_pos:.0%} of {split_sr.size}", ">= 80%", bool(split_pos >= 0.8),
            "the set is profitable on most combinations of held-out periods"),
        "CPCV paths with Sharpe > 0": (
            f"{positive:.0%} of {path_sr.size} (median Sharpe "
            f"{float(np.median(path_sr)):.2f})", ">= 80%", bool(positive >= 0.8),
            "choosing among the neighbours on training bars stays profitable out of sample"),
    }
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=["value", "threshold", "passed", "meaning"])


def _verdict(causal: bool, checks: pd.DataFrame) -> str:
    if not causal:
        return ("Refused: the strategy looks ahead, so every other number here is "
                "meaningless.")
    passed = int(checks["passed"].sum())
    failed = [str(name) for name, ok in checks["passed"].items() if not ok]
    if not failed:
        return f"Passes all {passed} checks: the edge looks real on this data."
    return (f"Passes {passed} of {len(checks)} checks; fails: {', '.join(failed)}. "
            "Treat the backtest's performance as unproven.")
