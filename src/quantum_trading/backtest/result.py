"""What a backtest produced: the simulation, the trade log, the benchmark and the stats."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from quantum_trading.backtest import metrics as m
from quantum_trading.backtest.stats import compute_stats
from quantum_trading.backtest.trades import trade_log
from quantum_trading.domain import Instrument, Signals
from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig, SimResult

__all__ = ["BacktestResult"]


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """The outcome of :meth:`quantum_trading.backtest.Backtest.run`.

    Attributes
    ----------
    strategy:
        The strategy's name.
    params:
        The validated parameters the strategy ran with (defaults filled in).
    symbols:
        Traded symbols, in the simulator's order.
    bars:
        ``{symbol: OHLCV frame}`` that was simulated (with ``funding_rate`` / ``mark_price``
        where given).
    signals:
        What the strategy returned (targets decided at each close, filled at the next open).
    sim:
        The simulation (:class:`~quantum_trading.sim.SimResult`): equity, cash, positions,
        margin ratio and cumulative costs per bar; fills, orders, raw trades; totals.
    trades:
        The trade log (:func:`~quantum_trading.backtest.trades.trade_log`): entry/exit time
        and price, size, net PnL, fees, funding, spread, slippage, impact, liquidation fee and
        exit reason per trade.
    stats:
        Summary statistics with units in the keys
        (:data:`~quantum_trading.backtest.stats.STATS_KEYS`).
    periods_per_year:
        Bars per year used for annualisation (365.25 days / median bar spacing).
    benchmark:
        The benchmark's simulation (buy and hold through the same simulator and costs), or
        None.
    instruments, costs, account, risk:
        The configuration the run used (None when built by hand); the report's stress test
        and margin figures use them.
    benchmark_name:
        The benchmark strategy's name ("" when there is none).
    """

    strategy: str
    params: dict[str, Any]
    symbols: tuple[str, ...]
    bars: dict[str, pd.DataFrame] = field(repr=False)
    signals: Signals = field(repr=False)
    sim: SimResult = field(repr=False)
    trades: pd.DataFrame = field(repr=False)
    stats: pd.Series = field(repr=False)
    periods_per_year: float = field(repr=False)
    benchmark: SimResult | None = field(default=None, repr=False)
    benchmark_name: str = ""
    instruments: dict[str, Instrument] | None = field(default=None, repr=False)
    costs: CostsConfig | None = field(default=None, repr=False)
    account: AccountConfig | None = field(default=None, repr=False)
    risk: RiskConfig | None = field(default=None, repr=False)

    @property
    def equity(self) -> pd.Series:
        """Equity (USDT) at each bar's close."""
        return self.sim.equity

    @property
    def benchmark_equity(self) -> pd.Series | None:
        """The benchmark's equity (USDT) at each close, or None."""
        return None if self.benchmark is None else self.benchmark.equity

    @property
    def returns(self) -> pd.Series:
        """Simple per-bar equity returns (fractions), from the second bar."""
        return m.bar_returns(self.sim.equity)

    @property
    def drawdown(self) -> pd.Series:
        """Drawdown per bar as a fraction of the running equity peak (≤ 0)."""
        return m.drawdown(self.sim.equity)

    @property
    def initial_cash_usd(self) -> float:
        """Starting wallet balance (USDT)."""
        return self.sim.initial_cash_usd

    @property
    def cost_totals(self) -> pd.Series:
        """Every cost in USDT over the run (funding: paid, negative = received)."""
        t = self.sim.totals
        return pd.Series({
            "fees": t["fees_usd"], "spread": t["spread_usd"], "slippage": t["slippage_usd"],
            "impact": t["impact_usd"], "funding": t["funding_usd"],
            "liquidation fees": t["liquidation_fee_usd"],
        }, name="usd")

    @cached_property
    def benchmark_stats(self) -> pd.Series | None:
        """The benchmark's own stats Series (same keys), or None without a benchmark."""
        if self.benchmark is None:
            return None
        return compute_stats(self.benchmark, trade_log(self.benchmark),
                             benchmark_equity=self.benchmark.equity,
                             periods=self.periods_per_year)

    def __str__(self) -> str:
        head = f"Backtest of {self.strategy} on {', '.join(self.symbols)}"
        return head + "\n" + self.stats.to_string()
