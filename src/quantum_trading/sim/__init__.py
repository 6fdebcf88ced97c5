"""The perpetual-futures simulator: the one core that backtests, the RL env and the paper
exchange share.

Contract (details in ``docs/simulator.md``):

* **Units.** Sizes in base units (signed: + long, − short); prices in USDT; money in USDT
  (``_usd``); fees and costs configured in bps; targets as multiples of equity.
* **Timing.** A target decided at bar t's close fills at bar t+1's open (sized from the
  equity marked at that open). Resting stop-loss / trailing / take-profit orders and the
  liquidation check use each later bar's high/low; a gap fills at the open; stop and
  take-profit in one bar → the stop. Funding settles at the open of the bar containing the
  settlement time, on the position held into the bar.
* **Costs.** Taker/maker fees, half-spread, slippage, square-root impact, funding and
  liquidation fees are each accounted separately (per fill, per trade, per asset, per bar).
* **Margin.** Cross or isolated; leverage ≤ instrument max and tier caps; Binance-style
  maintenance tiers; liquidation at the computed price with a liquidation fee; equity
  floored at 0 and a bankrupt account stops trading.
* **One kernel.** :func:`simulate` (whole arrays) and :class:`Simulator` (one bar at a time)
  run the same :func:`step_nb`, so their results are identical.

>>> from quantum_trading.sim import AccountConfig, CostsConfig, Simulator, simulate
"""

from quantum_trading.sim import _cache_guard  # noqa: F401  (first: keeps kernel caches fresh)
from quantum_trading.sim.config import AccountConfig, CostsConfig, RiskConfig
from quantum_trading.sim.engine_nb import simulate_nb, step_nb
from quantum_trading.sim.inputs import Prepared, default_funding_mask, prepare
from quantum_trading.sim.margin_nb import liquidation_price_nb, maintenance_margin_nb
from quantum_trading.sim.records import COST_COLUMNS, fill_dt, order_dt, risk_dt, trade_dt
from quantum_trading.sim.result import SimResult, build_result
from quantum_trading.sim.simulator import (
    Simulator,
    StepInfo,
    run_arrays,
    simulate,
    simulate_prepared,
)
from quantum_trading.sim.state import BarArrays, SignalArrays, SimParams, SimState, new_state

__all__ = [
    "COST_COLUMNS",
    "AccountConfig",
    "BarArrays",
    "CostsConfig",
    "Prepared",
    "RiskConfig",
    "SignalArrays",
    "SimParams",
    "SimResult",
    "SimState",
    "Simulator",
    "StepInfo",
    "build_result",
    "default_funding_mask",
    "fill_dt",
    "liquidation_price_nb",
    "maintenance_margin_nb",
    "new_state",
    "order_dt",
    "prepare",
    "risk_dt",
    "run_arrays",
    "simulate",
    "simulate_nb",
    "simulate_prepared",
    "step_nb",
    "trade_dt",
]
