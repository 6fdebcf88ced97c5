"""Research: statistics and splits that keep optimisation honest.

* :mod:`quantum_trading.research.stats` — deflated Sharpe ratio, minimum track record
  length, probability of backtest overfitting (CSCV).
* :mod:`quantum_trading.research.splits` — walk-forward and combinatorial purged
  cross-validation (CPCV) splits with purging and embargo.
* :mod:`quantum_trading.research.regimes` — regimes from volatility/trend rules and a
  Gaussian HMM (causal filtered or in-sample Viterbi);
  :mod:`quantum_trading.research.regime_analysis` — scores, metrics per regime, timeline.
* :mod:`quantum_trading.research.bias` — the look-ahead refusal run before any optimisation
  and a permutation test of a strategy's edge.
"""

from __future__ import annotations

from quantum_trading.research.bias import (
    PERMUTATION_METHODS,
    LookAheadError,
    PermutationTestResult,
    permutation_test,
    permuted_bars,
    require_causal,
)
from quantum_trading.research.regime_analysis import (
    RegimeScore,
    regime_metrics,
    regime_timeline_figure,
    score_regimes,
)
from quantum_trading.research.regimes import (
    HMM_FEATURES,
    REGIME_LABELS,
    HMMRegimes,
    hmm_features,
    hmm_regimes,
    rule_regimes,
)
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
    "HMM_FEATURES",
    "PERMUTATION_METHODS",
    "REGIME_LABELS",
    "CPCVSplits",
    "HMMRegimes",
    "LookAheadError",
    "PBOResult",
    "PermutationTestResult",
    "RegimeScore",
    "Split",
    "cpcv_n_paths",
    "cpcv_n_splits",
    "cpcv_splits",
    "deflated_sharpe_ratio",
    "dsr_from_moments",
    "expected_max_sharpe",
    "hmm_features",
    "hmm_regimes",
    "min_track_record_length",
    "permutation_test",
    "permuted_bars",
    "probability_of_backtest_overfitting",
    "regime_metrics",
    "regime_timeline_figure",
    "require_causal",
    "rule_regimes",
    "score_regimes",
    "sharpe_ratios",
    "walk_forward_splits",
]
