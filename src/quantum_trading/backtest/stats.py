"""The backtest's summary statistics: one pandas Series, units in the key names.

Built from a :class:`~quantum_trading.sim.SimResult` (equity per bar, fills, cost totals)
and its trade log with the pure functions of :mod:`quantum_trading.backtest.metrics`.
Trade statistics count every trade, including one still open at the last bar (valued at the
last close, as the simulator reports it).

>>> STATS_KEYS[:4]
('Start', 'End', 'Duration', 'Exposure Time [%]')
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from quantum_trading.backtest import metrics as m
from quantum_trading.sim import SimResult

__all__ = ["STATS_KEYS", "compute_stats", "format_stat"]

STATS_KEYS: tuple[str, ...] = (
    "Start",
    "End",
    "Duration",
    "Exposure Time [%]",
    "Equity Final [$]",
    "Equity Peak [$]",
    "Return [%]",
    "Buy & Hold Return [%]",
    "CAGR [%]",
    "Volatility (Ann.) [%]",
    "Sharpe Ratio",
    "Sortino Ratio",
    "Calmar Ratio",
    "Max. Drawdown [%]",
    "Max. Drawdown Duration",
    "# Trades",
    "Win Rate [%]",
    "Profit Factor",
    "Payoff Ratio",
    "Expectancy [$]",
    "Avg. Holding Time",
    "Turnover [x]",
    "Fees [$]",
    "Funding [$]",
    "Spread [$]",
    "Slippage [$]",
    "Impact [$]",
    "Liquidation Fees [$]",
    "# Liquidations",
    "# Risk Resized",
    "# Risk Rejected",
    "Probabilistic Sharpe Ratio",
)
"""Keys of the stats Series, in order. Meaning and formulas:

* ``Start`` / ``End`` / ``Duration``: first and last bar open time, and their difference;
* ``Exposure Time [%]``: bars with a position held at some time in the bar
  (:func:`~quantum_trading.backtest.metrics.exposure_time_pct`);
* ``Equity Final [$]`` / ``Equity Peak [$]``: at the last close / the highest close;
* ``Return [%]``: ``100 × (final / initial cash − 1)``; ``Buy & Hold Return [%]``: the same
  for the benchmark run (buy and hold through the same simulator, same costs; NaN if none);
* ``CAGR [%]``, ``Volatility (Ann.) [%]``, ``Sharpe Ratio``, ``Sortino Ratio``: from per-bar
  equity returns, annualised with ``periods_per_year = 365.25 days / median bar spacing``;
* ``Calmar Ratio``: CAGR / |max drawdown|; ``Max. Drawdown [%]`` (≤ 0) and
  ``Max. Drawdown Duration`` (peak to recovery, or to the end);
* ``# Trades``, ``Win Rate [%]``, ``Profit Factor`` (gross profit ÷ gross loss),
  ``Payoff Ratio`` (avg win ÷ avg loss), ``Expectancy [$]`` (mean net PnL per trade),
  ``Avg. Holding Time``: over the trade log's net ``pnl_usd``;
* ``Turnover [x]``: traded notional of every fill ÷ average equity;
* ``Fees [$]`` … ``Liquidation Fees [$]``: totals of each cost (funding: paid, negative =
  received); ``# Liquidations``: liquidation fills;
* ``# Risk Resized`` / ``# Risk Rejected``: orders the risk engine made smaller / refused
  (0 when the run had no risk engine);
* ``Probabilistic Sharpe Ratio``: probability that the true per-bar Sharpe ratio is above 0
  (Bailey & López de Prado), with the skewness and kurtosis of the per-bar returns.
"""


def compute_stats(
    sim: SimResult,
    trades: pd.DataFrame,
    *,
    benchmark_equity: pd.Series | None = None,
    periods: float | None = None,
) -> pd.Series:
    """The stats Series (:data:`STATS_KEYS`) of one simulation.

    Parameters
    ----------
    sim:
        The simulation (equity per bar at each close, fills, cost totals).
    trades:
        Its trade log (:func:`~quantum_trading.backtest.trades.trade_log`).
    benchmark_equity:
        Equity of the benchmark run on the same bars, for ``Buy & Hold Return [%]``.
    periods:
        Bars per year; default :func:`~quantum_trading.backtest.metrics.periods_per_year`
        of the bar index.

    >>> from quantum_trading.sim import simulate
    >>> from quantum_trading.domain import Signals
    >>> from quantum_trading.backtest.trades import trade_log
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC")
    >>> px = pd.DataFrame({"open": [100.0, 100, 110, 120], "high": [100.0, 110, 120, 120],
    ...                    "low": [100.0, 100, 110, 120], "close": [100.0, 110, 120, 120]},
    ...                   index=idx)
    >>> res = simulate(px, Signals(pd.Series(1.0, index=idx, name="X")))
    >>> stats = compute_stats(res, trade_log(res))
    >>> stats["# Trades"], round(stats["Return [%]"], 2)
    (1, 19.94)
    """
    equity = sim.equity
    index = sim.index
    n_bars = len(index)
    ppy = m.periods_per_year(index) if periods is None else float(periods)
    initial = sim.initial_cash_usd
    returns = m.bar_returns(equity)
    pnl = trades["pnl_usd"].to_numpy(dtype=np.float64)
    totals = sim.totals
    cagr = m.cagr_pct(equity, initial)
    max_dd = m.max_drawdown_pct(equity)
    fills = sim.fills
    notional = fills["notional_usd"].to_numpy(dtype=np.float64) if len(fills) else np.zeros(0)
    n_liq = int((fills["order_type"] == "liquidation").sum()) if len(fills) else 0
    bench = (m.total_return_pct(benchmark_equity, initial)
             if benchmark_equity is not None and len(benchmark_equity) else math.nan)
    holding = trades["holding_time"]
    s: dict[str, object] = {
        "Start": index[0] if n_bars else pd.NaT,
        "End": index[-1] if n_bars else pd.NaT,
        "Duration": (index[-1] - index[0]) if n_bars else pd.NaT,
        "Exposure Time [%]": m.exposure_time_pct(trades["entry_bar"].to_numpy(),
                                                 trades["exit_bar"].to_numpy(), n_bars),
        "Equity Final [$]": float(equity.iloc[-1]) if n_bars else initial,
        "Equity Peak [$]": float(equity.max()) if n_bars else initial,
        "Return [%]": m.total_return_pct(equity, initial),
        "Buy & Hold Return [%]": bench,
        "CAGR [%]": cagr,
        "Volatility (Ann.) [%]": m.annualized_volatility_pct(returns, ppy),
        "Sharpe Ratio": m.sharpe_ratio(returns, ppy),
        "Sortino Ratio": m.sortino_ratio(returns, ppy),
        "Calmar Ratio": m.calmar_ratio(cagr, max_dd),
        "Max. Drawdown [%]": max_dd,
        "Max. Drawdown Duration": m.max_drawdown_duration(equity),
        "# Trades": len(trades),
        "Win Rate [%]": m.win_rate_pct(pnl),
        "Profit Factor": m.profit_factor(pnl),
        "Payoff Ratio": m.payoff_ratio(pnl),
        "Expectancy [$]": m.expectancy_usd(pnl),
        "Avg. Holding Time": holding.mean().round("s") if len(holding) else pd.NaT,
        "Turnover [x]": m.turnover(notional, equity),
        "Fees [$]": totals["fees_usd"],
        "Funding [$]": totals["funding_usd"],
        "Spread [$]": totals["spread_usd"],
        "Slippage [$]": totals["slippage_usd"],
        "Impact [$]": totals["impact_usd"],
        "Liquidation Fees [$]": totals["liquidation_fee_usd"],
        "# Liquidations": n_liq,
        "# Risk Resized": _risk_count(sim, "resize"),
        "# Risk Rejected": _risk_count(sim, "reject"),
        "Probabilistic Sharpe Ratio": m.probabilistic_sharpe_ratio(returns),
    }
    return pd.Series(s, index=list(STATS_KEYS), dtype=object, name="stats")


def _risk_count(sim: SimResult, action: str) -> int:
    """Risk decisions of one action in a run (0 without a risk engine)."""
    decisions = sim.risk_decisions
    if decisions is None or decisions.empty:
        return 0
    return int((decisions["action"].astype(str) == action).sum())


def format_stat(key: str, value: object) -> str:
    """A stats value as display text: times as ``YYYY-MM-DD HH:MM``, durations as
    ``3d 04:00``, money and percentages with two decimals, the probabilistic Sharpe ratio
    with three, counts as integers, NaN as ``n/a``.

    >>> format_stat("Return [%]", 12.3456), format_stat("Duration", pd.Timedelta("50h"))
    ('12.35', '2d 02:00')
    """
    if value is None or value is pd.NaT:
        return "n/a"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, pd.Timedelta):
        total = int(value.total_seconds())
        days, rest = divmod(total, 86_400)
        hours, rest = divmod(rest, 3_600)
        minutes = rest // 60
        return f"{days}d {hours:02d}:{minutes:02d}" if days else f"{hours:02d}:{minutes:02d}"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isnan(f):
            return "n/a"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f"{f:,.3f}" if key == "Probabilistic Sharpe Ratio" else f"{f:,.2f}"
    return str(value)
