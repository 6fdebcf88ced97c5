"""Configuration of the RL environment's episodes, rewards and simulator settings.

:class:`EnvConfig` holds everything that may change between training phases without changing
the observation or action spaces (those are the :class:`~quantum_trading.rl.spec.EnvSpec`):
reward, penalties, episode length and start, and the simulator's costs, account and risk
limits — the same :class:`~quantum_trading.sim.CostsConfig`, :class:`~quantum_trading.sim.AccountConfig`
and :class:`~quantum_trading.sim.RiskConfig` a backtest takes, so an agent trades exactly as
the backtest of its actions does.

>>> EnvConfig(reward="differential_sharpe", episode_bars=500).start
'random'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from quantum_trading.sim.config import AccountConfig, CostsConfig, RiskConfig

__all__ = ["EnvConfig"]


class EnvConfig(BaseModel):
    """Episodes, rewards and simulator settings of
    :class:`~quantum_trading.rl.env.PerpetualFuturesEnv` (frozen, unknown fields rejected).

    Reward of the step that ends at bar ``t``'s close (equity ``E_t`` in USDT):

    * ``"log_equity"``: ``ln(E_t / E_{t−1})`` (equity floored at 1e-9 × initial cash);
    * ``"differential_sharpe"``: Moody & Saffell's differential Sharpe ratio of the simple
      return ``R_t = E_t / E_{t−1} − 1`` with EMA rate ``dsr_eta``:
      ``(B·ΔA − ½·A·ΔB) / (B − A²)^{3/2}`` with ``A``, ``B`` the EMAs of ``R`` and ``R²``
      before the update (0 while ``B − A²`` ≤ 1e-12; clipped to ±10);

    minus ``drawdown_penalty`` × the increase of the drawdown from the episode's peak equity
    (fraction) and ``turnover_penalty`` × traded notional / equity (position change from
    ``t − 1``'s close to ``t``'s, valued at ``t``'s close).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    reward: Literal["log_equity", "differential_sharpe"] = Field(
        "log_equity", description="Reward per step: log equity change or differential Sharpe.")
    dsr_eta: float = Field(
        0.01, gt=0.0, le=1.0,
        description="Differential Sharpe EMA rate per bar (1 / bars of memory), in (0, 1].")
    drawdown_penalty: float = Field(
        0.0, ge=0.0, le=1000.0,
        description="Reward subtracted per unit (fraction) of drawdown increase, in [0, 1000].")
    turnover_penalty: float = Field(
        0.0, ge=0.0, le=1000.0,
        description="Reward subtracted per unit of traded notional / equity, in [0, 1000].")
    episode_bars: int | None = Field(
        None, ge=1, le=100_000_000,
        description="Agent steps (bars) per episode before truncation; None = to the end of "
        "the data.")
    start: Literal["random", "first"] = Field(
        "random", description="Episode start bar: sampled uniformly with the env's np_random "
        "among the bars after the features' warm-up that leave a full episode ('random'), or "
        "the first of them ('first').")
    costs: CostsConfig = Field(
        CostsConfig(), description="Fees, spread, slippage, impact and default funding.")
    account: AccountConfig = Field(
        AccountConfig(), description="Cash (USDT), margin mode, leverage per asset (×), "
        "rebalancing; its leverage must be ≥ EnvSpec.max_leverage.")
    risk: RiskConfig | None = Field(
        RiskConfig(), description="Risk limits every order passes (as the Backtest default); "
        "None = no risk checks.")
