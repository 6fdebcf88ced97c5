"""Research: statistics and splits that keep optimisation honest.

* :mod:`quantum_trading.research.stats` — deflated Sharpe ratio, minimum track record
  length, probability of backtest overfitting (CSCV).
* :mod:`quantum_trading.research.splits` — walk-forward and combinatorial purged
  cross-validation (CPCV) splits with purging and embargo.
* :mod:`quantum_trading.research.regimes` — regimes from volatility/trend rules and a
  Gaussian HMM (causal filtered or in-sample Viterbi);
  :mod:`quantum_trading.research.regime_analysis` — scores, metrics per regime, timeline.
* :mod:`quantum_trading.research.optimize` — grid and Optuna search over a strategy's
  parameter space with constraints, DSR and PBO next to the best Sharpe, and the regimes of
  the bars searched; its parts: :mod:`~quantum_trading.research.scoring` (objectives,
  constraints, ranked table, verdict), :mod:`~quantum_trading.research.optuna_search`
  (chunked, prunable trials), :mod:`~quantum_trading.research.optimization_result` (the
  result, heatmap and regime timeline) and :mod:`~quantum_trading.research.report` (HTML);
  :mod:`~quantum_trading.research.sweep` — batched numba sweeps, made of
  :mod:`~quantum_trading.research.sweep_signals` (target builders),
  :mod:`~quantum_trading.research.sweep_job` (the job) and
  :mod:`~quantum_trading.research.sweep_eval` (evaluation);
  :mod:`~quantum_trading.research.backends` — local process pool and Ray.
* :mod:`quantum_trading.research.walk_forward` and :mod:`~quantum_trading.research.validate`
  — walk-forward analysis and one-stop validation of a parameter set, with HTML reports.
Functions named like their module (``optimize``, ``sweep``, ``walk_forward``) are imported
from the module (``from quantum_trading.research.optimize import optimize``), so the package
never shadows its submodules.

* :mod:`quantum_trading.research.bias` — the look-ahead refusal run before any optimisation
  and a permutation test of a strategy's edge.
"""

from __future__ import annotations

from quantum_trading.research.backends import (
    Backend,
    LocalBackend,
    RayBackend,
    get_backend,
)
from quantum_trading.research.bias import (
    PERMUTATION_METHODS,
    LookAheadError,
    PermutationTestResult,
    permutation_test,
    permuted_bars,
    require_causal,
)
from quantum_trading.research.optimization_result import OptimizationResult
from quantum_trading.research.regime_analysis import (
    REGIME_DETECTORS,
    RegimeScore,
    detect_regimes,
    regime_bands_figure,
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
from quantum_trading.research.report import (
    write_optimization_report,
)
from quantum_trading.research.reports import (
    write_validation_report,
    write_walk_forward_report,
)
from quantum_trading.research.scoring import (
    OBJECTIVES,
    Constraints,
    significance_verdict,
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
from quantum_trading.research.sweep import SweepResult
from quantum_trading.research.sweep_job import TABLE_STATS
from quantum_trading.research.sweep_signals import BatchSignals, register_batch_signals
from quantum_trading.research.validate import (
    ValidationResult,
    validate_strategy,
)
from quantum_trading.research.walk_forward import (
    WalkForwardResult,
)

__all__ = [
    "HMM_FEATURES",
    "OBJECTIVES",
    "PERMUTATION_METHODS",
    "REGIME_DETECTORS",
    "REGIME_LABELS",
    "TABLE_STATS",
    "Backend",
    "BatchSignals",
    "CPCVSplits",
    "Constraints",
    "HMMRegimes",
    "LocalBackend",
    "LookAheadError",
    "OptimizationResult",
    "PBOResult",
    "PermutationTestResult",
    "RayBackend",
    "RegimeScore",
    "Split",
    "SweepResult",
    "ValidationResult",
    "WalkForwardResult",
    "cpcv_n_paths",
    "cpcv_n_splits",
    "cpcv_splits",
    "deflated_sharpe_ratio",
    "detect_regimes",
    "dsr_from_moments",
    "expected_max_sharpe",
    "get_backend",
    "hmm_features",
    "hmm_regimes",
    "min_track_record_length",
    "permutation_test",
    "permuted_bars",
    "probability_of_backtest_overfitting",
    "regime_bands_figure",
    "regime_metrics",
    "regime_timeline_figure",
    "register_batch_signals",
    "require_causal",
    "rule_regimes",
    "score_regimes",
    "sharpe_ratios",
    "significance_verdict",
    "validate_strategy",
    "walk_forward_splits",
    "write_optimization_report",
    "write_validation_report",
    "write_walk_forward_report",
]
