"""Configuration of the live / paper trader: :class:`TraderConfig`.

One pydantic model, frozen, unknown fields rejected; the simulator's, risk engine's, order
manager's and position monitor's own configs nest inside it unchanged, so the numbers a
backtest ran with are the numbers the trader trades with. :func:`load_trader_config` turns a
validation problem into one :class:`~quantum_trading.errors.ConfigError` line naming the field
and its allowed range.

>>> cfg = TraderConfig(symbols=("BTC/USDT:USDT",), timeframe="1h", strategy="trend_following")
>>> cfg.stop_mode, cfg.on_stall, cfg.risk.max_position_frac
('exchange', 'alert', 0.1)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from quantum_trading.execution.config import OrderManagerConfig, PositionMonitorConfig
from quantum_trading.risk.config import config_error
from quantum_trading.sim.config import AccountConfig, CostsConfig, RiskConfig

__all__ = ["StallAction", "TraderConfig", "load_trader_config"]

StallAction = Literal["alert", "halt", "flatten"]
"""What the watchdog does when the feed or the loop stalls: only alert; halt (no new risk,
positions kept); or halt and flatten every position with reduce-only market orders."""


class TraderConfig(BaseModel):
    """Everything the :class:`~quantum_trading.live.trader.Trader` needs besides its exchange,
    feed and store.

    Times are seconds of the wall clock unless a field says otherwise; sizes follow the
    simulator (``account``): targets are multiples of equity, decided at bar close and sent at
    once as market orders (filled at the next open in a replay).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbols: tuple[str, ...] = Field(
        ..., min_length=1,
        description="Symbols traded (ccxt unified, e.g. BTC/USDT:USDT), in the account's "
        "asset order (the order the simulator sizes and risk-checks them in).",
    )
    timeframe: str = Field(
        ..., description="Bar length of the feed and the strategy (1m, 5m, 1h …).",
    )
    strategy: str = Field(..., min_length=1, description="Registered strategy name.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Strategy parameters (validated against its ParamSpace at start).",
    )
    window_bars: int | None = Field(
        None, ge=2, le=10_000_000,
        description="Bars of history the strategy sees at each decision (count); None = every "
        "bar since the start: identical to the backtest's signals, also for indicators with "
        "infinite memory (EMA) and stateful entry/exit rules. With None a library rule that "
        "can be stepped (trend_following, momentum_breakout without ATR stops) takes only "
        "each new bar, whatever the history's length (and goes on past max_history_bars); "
        "any other strategy is recomputed on the history kept (up to max_history_bars).",
    )
    max_history_bars: int = Field(
        200_000, ge=10, le=10_000_000,
        description="History kept per symbol (count); older bars are dropped.",
    )
    warmup_bars: int = Field(
        0, ge=0, le=100_000,
        description="Bars loaded before the first decision (count): fed by a replay without "
        "trading, or fetched from the exchange on start.",
    )
    costs: CostsConfig = Field(
        default_factory=CostsConfig,
        description="The simulator's costs (used for size_with_costs sizing; the paper "
        "exchange applies its own copy).",
    )
    account: AccountConfig = Field(
        default_factory=AccountConfig,
        description="Leverage per symbol, rebalance rule, short permission and sizing rule.",
    )
    risk: RiskConfig | None = Field(
        default_factory=RiskConfig,
        description="Risk limits every order adding risk passes; None = no risk engine (only "
        "for parity runs with Backtest(risk=None)).",
    )
    order_manager: OrderManagerConfig = Field(
        default_factory=OrderManagerConfig,
        description="Stale limit orders and re-query schedule.",
    )
    position_monitor: PositionMonitorConfig | None = Field(
        default_factory=PositionMonitorConfig,
        description="Time / loss / trailing exits (checked every poll); None = no monitor.",
    )
    entry_order: Literal["market", "limit"] = Field(
        "market",
        description="'market': target orders are market orders (as the backtest); 'limit': "
        "passive limit orders at the touch, re-priced or escalated by the order manager.",
    )
    stop_mode: Literal["exchange", "monitor"] = Field(
        "exchange",
        description="How the strategy's stop-loss / take-profit are enforced once the entry "
        "has filled: reduce-only stop orders resting on the exchange, or the position "
        "monitor's checks at every poll.",
    )
    poll_s: float = Field(
        1.0, gt=0.0, le=3_600.0,
        description="Order-manager / position-monitor poll period (seconds of the trader's "
        "clock; a replay feed emits ticks at this period of replay time).",
    )
    heartbeat_s: float = Field(
        5.0, gt=0.0, le=3_600.0,
        description="Period of the heartbeat written to the store (seconds, wall clock).",
    )
    kill_poll_s: float = Field(
        1.0, gt=0.0, le=600.0,
        description="How often the kill flag in the store is read (seconds, wall clock).",
    )
    stall_bars: float = Field(
        3.0, gt=1.0, le=1_000.0,
        description="The watchdog fires when no bar arrived for this many expected bar "
        "intervals (the timeframe live; 1 / speed in a paced replay).",
    )
    stall_timeout_s: float = Field(
        60.0, gt=0.0, le=86_400.0,
        description="Watchdog limit (seconds) when the feed has no expected interval (an "
        "unpaced replay), and for a loop that stops running (no loop heartbeat).",
    )
    on_stall: StallAction = Field(
        "alert",
        description="What the watchdog does on a stall: 'alert' only, 'halt' (no new risk), "
        "or 'flatten' (halt and close every position with reduce-only market orders).",
    )
    cancel_on_shutdown: bool = Field(
        True,
        description="On a graceful shutdown, cancel open orders that are not reduce-only "
        "(protective stops stay).",
    )
    unknown_orders: Literal["adopt", "cancel"] = Field(
        "cancel",
        description="On start, what reconcile does with live exchange orders the database "
        "does not know.",
    )
    kill_timeout_s: float = Field(
        30.0, gt=0.0, le=3_600.0,
        description="How long the kill switch waits for its reduce-only closes to fill "
        "(seconds, wall clock) before it stops anyway (with an alert).",
    )
    set_leverage: bool = Field(
        True, description="Set each symbol's leverage on the exchange to account.leverage "
        "on start.",
    )

    @field_validator("timeframe")
    @classmethod
    def _check_timeframe(cls, value: str) -> str:
        from quantum_trading.data.timeframes import timeframe_to_timedelta

        try:
            delta = timeframe_to_timedelta(value)
        except Exception as exc:  # the parser's own message
            raise ValueError(f"not a timeframe: {exc}") from None
        if delta <= pd.Timedelta(0):
            raise ValueError("must be positive")
        return value

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value) or not all(value):
            raise ValueError("symbols must be distinct non-empty names")
        return value

    @property
    def timedelta(self) -> pd.Timedelta:
        """The bar length."""
        from quantum_trading.data.timeframes import timeframe_to_timedelta

        return timeframe_to_timedelta(self.timeframe)

    def leverage(self, symbol: str) -> float:
        """The account's leverage setting for ``symbol`` (×)."""
        lev = self.account.leverage
        return float(lev.get(symbol, 1.0)) if isinstance(lev, dict) else float(lev)


def load_trader_config(source: TraderConfig | Mapping[str, Any]) -> TraderConfig:
    """A :class:`TraderConfig` from a dict (or a config, returned as it is).

    Raises
    ------
    ConfigError
        One line naming the field and the allowed range.

    >>> load_trader_config({"symbols": ["BTC/USDT:USDT"], "timeframe": "1h",
    ...                     "strategy": "trend_following", "poll_s": -1})
    Traceback (most recent call last):
    ...
    quantum_trading.errors.ConfigError: TraderConfig.poll_s: input should be greater than 0, got -1 (allowed (0, 3600])
    """
    if isinstance(source, TraderConfig):
        return source
    try:
        return TraderConfig(**dict(source))
    except ValidationError as exc:
        raise config_error(exc, TraderConfig) from None
