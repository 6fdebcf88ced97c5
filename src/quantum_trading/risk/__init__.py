"""Risk: VaR/ES measures, their backtests, and position sizing.

Measures take per-bar **simple** returns and report VaR and ES as **positive loss fractions**
of value at confidence level ``alpha`` (see :mod:`quantum_trading.risk.measures` for the exact
quantile conventions). Sizing functions return target exposures (multiples of equity) or
units, decided at bar t's close from data <= t (:mod:`quantum_trading.risk.sizing`).
"""

from __future__ import annotations

from quantum_trading.risk.backtests import (
    ChristoffersenResult,
    KupiecResult,
    VaRBacktest,
    backtest_var,
    christoffersen,
    kupiec_pof,
    var_exceptions,
)
from quantum_trading.risk.config import RiskConfig, load_risk_config
from quantum_trading.risk.engine import RiskEngine
from quantum_trading.risk.limits import RiskAction, RiskDecision, RiskReason, TradingState
from quantum_trading.risk.measures import (
    HorizonScalingWarning,
    StudentTFit,
    VaRES,
    expected_shortfall,
    fit_student_t,
    value_at_risk,
    var_es,
)
from quantum_trading.risk.measures_portfolio import (
    MonteCarloResult,
    component_var,
    monte_carlo_var_es,
    portfolio_returns,
    portfolio_var_es,
)
from quantum_trading.risk.measures_rolling import rolling_es, rolling_var, rolling_var_es
from quantum_trading.risk.sizing import (
    KellyEstimate,
    apply_regime_multipliers,
    atr_position_size,
    cap_cluster_exposure,
    correlation_aware_caps,
    correlation_clusters,
    exposure_to_units,
    fixed_fractional,
    kelly_fraction,
    kelly_from_trades,
    periods_per_year,
    volatility_target,
)
from quantum_trading.risk.stress import (
    STRESS_COLUMNS,
    PositionsSnapshot,
    run_stress,
    stress_positions,
)
from quantum_trading.risk.stress_scenarios import (
    SCENARIO_KINDS,
    Scenario,
    correlation_one_shock,
    default_scenarios,
    funding_spike,
    historical_scenarios,
    liquidity_drain,
    price_shock,
    volatility_shock,
    worst_windows,
)

__all__ = [
    "SCENARIO_KINDS",
    "STRESS_COLUMNS",
    "ChristoffersenResult",
    "HorizonScalingWarning",
    "KellyEstimate",
    "KupiecResult",
    "MonteCarloResult",
    "PositionsSnapshot",
    "RiskAction",
    "RiskConfig",
    "RiskDecision",
    "RiskEngine",
    "RiskReason",
    "Scenario",
    "StudentTFit",
    "TradingState",
    "VaRBacktest",
    "VaRES",
    "apply_regime_multipliers",
    "atr_position_size",
    "backtest_var",
    "cap_cluster_exposure",
    "christoffersen",
    "component_var",
    "correlation_aware_caps",
    "correlation_clusters",
    "correlation_one_shock",
    "default_scenarios",
    "expected_shortfall",
    "exposure_to_units",
    "fit_student_t",
    "fixed_fractional",
    "funding_spike",
    "historical_scenarios",
    "kelly_fraction",
    "kelly_from_trades",
    "kupiec_pof",
    "liquidity_drain",
    "load_risk_config",
    "monte_carlo_var_es",
    "periods_per_year",
    "portfolio_returns",
    "portfolio_var_es",
    "price_shock",
    "rolling_es",
    "rolling_var",
    "rolling_var_es",
    "run_stress",
    "stress_positions",
    "value_at_risk",
    "var_es",
    "var_exceptions",
    "volatility_shock",
    "volatility_target",
    "worst_windows",
]
