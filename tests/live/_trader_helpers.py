"""Shared pieces of the trader tests: real bars, a paper replay trader, the backtest to compare
with, and a deterministic "random target" strategy that trades often."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.backtest import Backtest
from quantum_trading.backtest.inputs import load_bars
from quantum_trading.domain import default_instrument
from quantum_trading.execution.config import PositionMonitorConfig
from quantum_trading.execution.paper import PaperExchange
from quantum_trading.live.config import TraderConfig
from quantum_trading.live.feed import ReplayFeed
from quantum_trading.live.store import TradingStore
from quantum_trading.live.trader import Trader
from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig
from quantum_trading.strategies import FloatParam, strategy_from_function

BTC = "BTC/USDT:USDT"
DEFAULT_RISK = RiskConfig()
FILL_COLUMNS = ["side", "size", "price", "ref_price", "fee_usd", "spread_usd", "slippage_usd",
                "impact_usd", "realized_pnl_usd", "position_after", "cash_after_usd"]


def real_bars(folder: Path, timeframe: str, n: int, symbol: str = "BTC_USDT_USDT") -> pd.DataFrame:
    """The first ``n`` real bars with the funding and mark files joined (as the backtest CLI
    loads them)."""
    return load_bars(folder / f"{symbol}-{timeframe}-futures.feather").bars.iloc[:n]


def _waves(df: pd.DataFrame, amp: float = 1.5) -> pd.Series:
    """A target that changes most bars: a deterministic function of each bar's own time
    (causal), in steps of 0.25, NaN (no decision) on one bar in seven."""
    t = df.index.asi8 / 3.6e12
    raw = amp * np.sin(t * 0.37) * np.cos(t * 0.11)
    target = np.round(raw * 4.0) / 4.0
    target[(np.arange(len(t)) + (t.astype(np.int64) % 7)) % 7 == 0] = np.nan
    return pd.Series(target, index=df.index)


WAVES = strategy_from_function(_waves, {"amp": FloatParam(0.1, 3.0, default=1.5)},
                               name="waves", max_abs_target=3.0, allow_nan=True)


def paper_trader(bars: pd.DataFrame, *, strategy: Any = "trend_following",
                 params: dict | None = None, costs: CostsConfig | None = None,
                 account: AccountConfig | None = None, risk: RiskConfig | None = DEFAULT_RISK,
                 timeframe: str = "1h", monitor: PositionMonitorConfig | None = None,
                 speed: float | None = None, store: TradingStore | None = None,
                 paper_cls: type[PaperExchange] = PaperExchange,
                 **config: Any) -> tuple[Trader, PaperExchange, TradingStore]:
    """A trader on a replay of ``bars`` through a fresh paper exchange (Backtest's defaults:
    the Binance BTC preset instrument, default costs and account); ``paper_cls`` may be a
    subclass of :class:`PaperExchange` (e.g. one that fails on purpose)."""
    costs = costs or CostsConfig()
    account = account or AccountConfig()
    paper = paper_cls([default_instrument(BTC)], costs=costs, account=account,
                      timeframe=timeframe)
    feed = ReplayFeed(paper, {BTC: bars}, speed=speed)
    store = store or TradingStore.open("sqlite://", exchange="paper", clock=feed.now)
    name = strategy if isinstance(strategy, str) else strategy.name
    cfg = TraderConfig(symbols=(BTC,), timeframe=timeframe, strategy=name,
                       params=params or {}, costs=costs, account=account, risk=risk,
                       position_monitor=monitor, **config)
    trader = Trader(cfg, exchange=paper, feed=feed, store=store,
                    strategy=None if isinstance(strategy, str) else strategy)
    return trader, paper, store


def backtest_fills(bars: pd.DataFrame, strategy: Any, params: dict | None, *,
                   costs: CostsConfig | None = None, account: AccountConfig | None = None,
                   risk: RiskConfig | None = DEFAULT_RISK) -> pd.DataFrame:
    """The backtest's fills of the same strategy, data, costs, account and risk."""
    res = Backtest(bars, strategy, params=params, costs=costs or CostsConfig(),
                   account=account or AccountConfig(), risk=risk, benchmark=None).run()
    return res.sim.fills


def run(coro: Any) -> Any:
    """Run a coroutine (pytest-asyncio is not installed)."""
    return asyncio.run(coro)
