"""Configuration of the simulator: costs, account and risk limits (pydantic, frozen, unknown
fields rejected).

The models are plain data; :func:`quantum_trading.sim.simulate` and
:class:`quantum_trading.sim.Simulator` turn them into kernel parameters. Bad values raise
:class:`pydantic.ValidationError` naming the field and the allowed range.

Peer-parity settings
--------------------
* backtesting.py (``Backtest(..., commission=c, trade_on_close=False)``, whole units):
  ``Instrument.generic(sym, lot_size=1.0, max_leverage=1.0, taker_fee_bps=c*1e4,
  maker_fee_bps=c*1e4)``, ``CostsConfig(half_spread_bps=0, slippage_bps=0, impact_k=0,
  default_funding_rate=0)``, ``AccountConfig(leverage=1.0, size_with_costs=True,
  reversal_sizing="after_close")`` (``allow_short=False`` for long-only rules).
* vectorbt (fractional size, ``fees=f, slippage=s``, signals shifted one bar, ``price=open``):
  ``Instrument.generic(sym, taker_fee_bps=f*1e4, maker_fee_bps=f*1e4)`` (lot size 0),
  ``CostsConfig(slippage_bps=s*1e4, half_spread_bps=0, impact_k=0, default_funding_rate=0,
  take_profit_order="market")``, ``AccountConfig(leverage=1.0, allow_short=False,
  size_with_costs=True)`` for ``from_signals`` with all-cash sizing (``False`` for
  ``from_orders`` target percents below 1). See ``docs/simulator.md``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from quantum_trading.domain import MarginMode

__all__ = ["AccountConfig", "CostsConfig", "RiskConfig"]


class CostsConfig(BaseModel):
    """Trading costs and funding.

    >>> CostsConfig(slippage_bps=2.0).slippage_bps
    2.0
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    taker_fee_bps: float | None = Field(
        None, ge=0.0, le=1000.0,
        description="Taker fee in bps of notional (market orders, stops, time stops); "
        "None = the instrument's (Binance presets: 4 bps).",
    )
    maker_fee_bps: float | None = Field(
        None, ge=0.0, le=1000.0,
        description="Maker fee in bps of notional (take-profit limit orders); "
        "None = the instrument's (Binance presets: 2 bps).",
    )
    half_spread_bps: float = Field(
        0.5, ge=0.0, le=1000.0,
        description="Half the bid-ask spread in bps of price, paid by every market fill.",
    )
    slippage_bps: float = Field(
        1.0, ge=0.0, le=1000.0,
        description="Slippage in bps of price, paid by every market fill.",
    )
    impact_k: float = Field(
        0.0, ge=0.0, le=100.0,
        description="Square-root impact coefficient k in k·σ·sqrt(notional / bar notional "
        "volume); 0 = off (typical 0.1–1). Needs a volume column.",
    )
    impact_window_bars: int = Field(
        20, ge=2, le=100_000,
        description="Bars of log returns for σ in the impact model (causal, before the fill).",
    )
    max_impact_bps: float = Field(
        500.0, ge=0.0, le=5000.0, description="Cap on the impact of one fill, bps of price.",
    )
    default_funding_rate: float = Field(
        0.0001, ge=-0.05, le=0.05,
        description="Funding rate per settlement used when no funding data is given "
        "(Binance's baseline 0.01 %); 0 = no funding.",
    )
    funding_interval_h: int = Field(
        8, ge=1, le=24,
        description="Hours between default settlements, counted from 00:00 UTC (8 → 00/08/16).",
    )
    take_profit_order: Literal["limit", "market"] = Field(
        "limit",
        description="'limit': fills at the level with the maker fee and no spread/slippage; "
        "'market': like a stop (taker fee, spread, slippage, impact).",
    )


class AccountConfig(BaseModel):
    """The trading account: cash, margin mode, leverage and how targets become orders.

    >>> AccountConfig(leverage={"BTC/USDT:USDT": 5.0}).margin_mode
    <MarginMode.CROSS: 'cross'>
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    initial_cash_usd: float = Field(
        10_000.0, gt=0.0, le=1e12, description="Starting wallet balance, USDT.",
    )
    margin_mode: MarginMode = Field(
        MarginMode.CROSS,
        description="'cross': one equity backs all positions; 'isolated': each position has "
        "its own margin (notional / leverage at entry) and is liquidated alone.",
    )
    leverage: float | dict[str, float] = Field(
        1.0,
        description="Leverage per asset (one number for all, or symbol → leverage), in "
        "[1, instrument max]. Caps |target| and sets initial margin = notional / leverage.",
    )
    liquidation_fee_rate: float = Field(
        0.0125, ge=0.0, le=0.1,
        description="Liquidation (clearance) fee as a fraction of the liquidated notional, "
        "capped at what is left of the margin (Binance USDⓈ-M: 1.25 %).",
    )
    rebalance: Literal["on_change", "every_bar"] = Field(
        "on_change",
        description="'on_change': an order only when the target differs from the last non-NaN "
        "target (a stopped-out position is not re-entered until it changes); 'every_bar': "
        "re-target every bar.",
    )
    min_rebalance_frac: float = Field(
        0.0, ge=0.0, le=1.0,
        description="every_bar only: skip resizing orders smaller than this fraction of equity.",
    )
    size_with_costs: bool = Field(
        False,
        description="Size orders from the cost-adjusted fill price × (1 + taker fee), so the "
        "entry and its fee fit in target × equity (backtesting.py / vectorbt); "
        "False: size from the open.",
    )
    allow_short: bool = Field(
        True, description="False: negative targets become 0 (long-only), recorded as capped.",
    )
    reversal_sizing: Literal["net", "after_close"] = Field(
        "net",
        description="How an order whose target has the opposite sign of the position is sized "
        "and filled. 'net': one order target − position, sized from the equity at the open. "
        "'after_close': as backtesting.py's broker — the position is closed first (its fee and "
        "spread/slippage/impact booked) and the new side is sized from the equity left, as an "
        "entry from flat; two fills. With size_with_costs, every new position (from flat or "
        "after such a close) then uses backtesting.py's arithmetic: units = floor(equity × "
        "|target| × (1 − ε) / (fill price + fee per unit)) in lots, ε = sys.float_info.epsilon.",
    )

    @field_validator("leverage")
    @classmethod
    def _check_leverage(cls, value: float | dict[str, float]) -> float | dict[str, float]:
        values = value.values() if isinstance(value, dict) else [value]
        for v in values:
            if not (1.0 <= float(v) <= 1000.0):
                raise ValueError(f"leverage must be in [1, 1000], got {v}")
        return value


class RiskConfig(BaseModel):
    """Risk limits every market order passes (backtest, paper and live alike).

    Given to :func:`quantum_trading.sim.simulate` / :class:`quantum_trading.sim.Simulator`
    (``risk=``), the simulator's kernel checks each market order at the open it fills at; the
    same kernels back :class:`quantum_trading.risk.engine.RiskEngine`. Loss limits compare the
    equity observed at each open and close with the UTC day's / week's (Monday 00:00 UTC)
    starting equity and with the peak. Stop-losses, take-profits, time stops and liquidations
    are never blocked; orders that reduce ``|position|`` are always allowed. It lives in
    ``sim/`` (the simulator may not import ``risk/``); ``quantum_trading.risk.config``
    re-exports it with a loader (:func:`~quantum_trading.risk.config.load_risk_config`).

    >>> RiskConfig(daily_loss_limit_pct=3.0).max_position_frac
    0.1
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_position_frac: float = Field(
        0.10, gt=0.0, le=1000.0,
        description="Largest position one order may leave in one asset, as |notional| / equity "
        "(fraction: 0.10 = 10 % of equity), scaled by the risk multiplier. Larger orders are "
        "resized down (lot-rounded).",
    )
    max_leverage: float = Field(
        10.0, ge=1.0, le=1000.0,
        description="Highest account leverage setting (×, AccountConfig.leverage) at which "
        "orders that add exposure are accepted; above it they are rejected.",
    )
    max_gross_exposure: float | None = Field(
        3.0, gt=0.0, le=1000.0,
        description="Cap on Σ|notional| / equity over all assets after the order (× equity), "
        "scaled by the risk multiplier; None = no cap.",
    )
    max_net_exposure: float | None = Field(
        3.0, gt=0.0, le=1000.0,
        description="Cap on |Σ signed notional| / equity after the order (× equity), scaled "
        "by the risk multiplier; None = no cap.",
    )
    max_trades_per_day: int | None = Field(
        100, ge=1, le=1_000_000,
        description="Orders that add risk approved per UTC day (count); further ones are "
        "rejected until the next day. None = no cap.",
    )
    daily_loss_limit_pct: float | None = Field(
        5.0, gt=0.0, le=100.0,
        description="Loss from the UTC day's starting equity (%) that locks the account to "
        "reduce-only ('reducing') until the next UTC day. None = no limit.",
    )
    weekly_loss_limit_pct: float | None = Field(
        15.0, gt=0.0, le=100.0,
        description="Loss from the week's starting equity (%, weeks start Monday 00:00 UTC) "
        "that pauses new risk ('reducing') until next week. None = no limit.",
    )
    max_drawdown_pct: float | None = Field(
        20.0, gt=0.0, le=100.0,
        description="Drawdown from the peak equity (%) that flattens every position and halts "
        "trading until a person resets it. None = no limit.",
    )
    risk_multiplier: float = Field(
        1.0, ge=0.0, le=1.0,
        description="Starting behavioural risk multiplier in [0, 1] (fraction) scaling the "
        "position and exposure caps; changed later by set_risk_multiplier().",
    )
