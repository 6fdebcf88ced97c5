"""What an optimisation scores and what counts: objectives, constraints, the ranked table and
the verdict on the winner.

* :data:`OBJECTIVES` — the backtest statistics a search can optimise or constrain;
* :class:`Constraints` — minimum trades and maximum drawdown a parameter set must meet;
  breaking sets stay in the table, flagged infeasible, scored −inf (+inf when minimising);
* :func:`ranked_table` — one row per parameter set, feasible sets first, best first;
* :func:`significance_verdict` — the deflated Sharpe ratio and PBO of the winner in words.

All of it is cheap bookkeeping (microseconds per parameter set); the backtests that produce the
statistics run in :mod:`~quantum_trading.research.sweep_eval` and
:mod:`~quantum_trading.research.optuna_search`.

>>> import pandas as pd
>>> stats = pd.DataFrame({k: [0.0, 0.0] for k in OBJECTIVES})
>>> stats["Sharpe Ratio"] = [1.2, 2.0]
>>> stats["# Trades"] = [40, 3]
>>> table = ranked_table(pd.DataFrame({"fast": [10, 20]}), stats, ["complete"] * 2, ["", ""],
...                      "Sharpe Ratio", "maximize", Constraints(min_trades=10))
>>> table[["fast", "objective", "feasible", "reason"]].to_dict("records")[1]
{'fast': 20, 'objective': -inf, 'feasible': False, 'reason': 'fewer than 10 trades (3)'}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from quantum_trading.errors import ConfigError
from quantum_trading.research.sweep_job import TABLE_STATS

__all__ = [
    "OBJECTIVES",
    "SIGNIFICANCE_LEVEL",
    "Constraints",
    "Direction",
    "check_objective",
    "ranked_table",
    "significance_verdict",
]

OBJECTIVES: tuple[str, ...] = TABLE_STATS
"""Statistics that can be the objective (or constrained): numeric keys of the backtest's
stats."""

SIGNIFICANCE_LEVEL = 0.95
"""Deflated Sharpe ratio at or above which the best result is called significant."""

Direction = Literal["maximize", "minimize"]
"""Whether a higher (``maximize``) or lower objective is better."""


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


def check_objective(objective: str, direction: str) -> None:
    """Raise ConfigError unless ``objective`` is one of :data:`OBJECTIVES` and ``direction``
    is ``"maximize"`` or ``"minimize"``."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective {objective!r} is not a numeric backtest statistic; use one "
                          f"of: {', '.join(OBJECTIVES)}")
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"direction must be 'maximize' or 'minimize', got {direction!r}")


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


def ranked_table(params: pd.DataFrame, stats: pd.DataFrame, states: list[str],
                 reasons: list[str], objective: str, direction: str,
                 constraints: Constraints) -> pd.DataFrame:
    """One row per parameter set, sorted feasible first, then best objective first.

    ``params`` (one column per parameter) and ``stats`` (:data:`OBJECTIVES` columns) have a row
    per set in the order tried; ``states`` is ``"complete"`` or ``"pruned"`` per set and
    ``reasons`` why a pruned set stopped. The table's index (``trial``) is the position in
    that order; its columns are the parameters, ``objective`` (the statistic, or −inf / +inf
    for sets that break a constraint, were pruned or have it undefined), ``feasible``,
    ``reason``, ``state`` and the statistics.
    """
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
