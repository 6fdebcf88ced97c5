"""Research: statistics and splits that keep optimisation honest.

* :mod:`quantum_trading.research.stats` — deflated Sharpe ratio, minimum track record
  length, probability of backtest overfitting (CSCV).
* :mod:`quantum_trading.research.splits` — walk-forward and combinatorial purged
  cross-validation (CPCV) splits with purging and embargo.
"""

from __future__ import annotations

from quantum_trading.research.splits import (
    CPCVSplits,
    Split,
    cpcv_n_paths,
    cpcv_n_splits,
    cpcv_splits,
    walk_forward_splits,
)
from quantum_trading.research.stats import (
    PBOResult,
    deflated_sharpe_ratio,
    dsr_from_moments,
    expected_max_sharpe,
    min_track_record_length,
    probability_of_backtest_overfitting,
    sharpe_ratios,
)

__all__ = [
    "CPCVSplits",
    "PBOResult",
    "Split",
    "cpcv_n_paths",
    "cpcv_n_splits",
    "cpcv_splits",
    "deflated_sharpe_ratio",
    "dsr_from_moments",
    "expected_max_sharpe",
    "min_track_record_length",
    "probability_of_backtest_overfitting",
    "sharpe_ratios",
    "walk_forward_splits",
]
