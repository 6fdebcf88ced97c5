"""Shared pieces of the peer-parity tests: data, the SmaCross rule on both sides, and the
configurations that make our simulator follow each peer's rules.

Our side always runs through the real path: a :class:`~quantum_trading.strategies.Strategy`
(here the function adapter around the SmaCross rule, on our own SMA indicator) produces
:class:`~quantum_trading.domain.Signals`, and :func:`quantum_trading.sim.simulate` runs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from backtesting import Strategy
from backtesting.lib import crossover
from backtesting.test import SMA

from quantum_trading.data.readers import read_ohlcv
from quantum_trading.domain import Instrument
from quantum_trading.features import sma
from quantum_trading.sim import AccountConfig, CostsConfig
from quantum_trading.strategies import (
    CategoricalParam,
    FunctionStrategy,
    IntParam,
    position_from_entries_exits,
    strategy_from_function,
)

__all__ = [
    "SmaCross",
    "SmaCrossLongOnly",
    "backtesting_py_setup",
    "binance_1h",
    "cross_events",
    "max_rel_diff",
    "sma_cross_strategy",
    "vectorbt_setup",
]


# -- data ---------------------------------------------------------------------------------------
def binance_1h(futures_dir: Path, base: str) -> pd.DataFrame:
    """Real Binance USDⓈ-M 1h bars (July–August 2023) through our own reader."""
    return read_ohlcv(futures_dir / f"{base}_USDT_USDT-1h-futures.feather")


def max_rel_diff(ours: np.ndarray | pd.Series, theirs: np.ndarray | pd.Series) -> float:
    """Largest ``|ours − theirs| / |theirs|`` over the elements (0 where both are 0)."""
    a = np.asarray(ours, dtype=np.float64).ravel()
    b = np.asarray(theirs, dtype=np.float64).ravel()
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = np.where(b == 0.0, 1.0, np.abs(b))
    return float(np.max(np.abs(a - b) / scale)) if a.size else 0.0


# -- the SmaCross rule, backtesting.py side (README example) ---------------------------------------
class SmaCross(Strategy):
    """backtesting.py's README example, verbatim: long on a fast-over-slow SMA cross, short on
    the opposite cross, closing the previous position first."""

    n1 = 10
    n2 = 20

    def init(self) -> None:
        close = self.data.Close
        self.sma1 = self.I(SMA, close, self.n1)
        self.sma2 = self.I(SMA, close, self.n2)

    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()
            self.sell()


class SmaCrossLongOnly(SmaCross):
    """The same rule without the short side: the down-cross only closes the long."""

    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()


# -- the SmaCross rule, our side ----------------------------------------------------------------
def cross_events(df: pd.DataFrame, n1: int, n2: int) -> tuple[pd.Series, pd.Series]:
    """Bars where SMA(n1) crosses above / below SMA(n2), decided at the bar's close.

    ``backtesting.lib.crossover(a, b)`` is ``a[-2] < b[-2] and a[-1] > b[-1]``: strict, bar to
    bar, False while either SMA is NaN. The same here, on our SMA kernel.
    """
    fast, slow = sma(df["close"], n1), sma(df["close"], n2)
    up = (fast.shift(1) < slow.shift(1)) & (fast > slow)
    down = (slow.shift(1) < fast.shift(1)) & (slow > fast)
    return up, down


def _sma_cross(df: pd.DataFrame, n1: int = 10, n2: int = 20, short: bool = True) -> pd.Series:
    up, down = cross_events(df, n1, n2)
    if short:  # up: go long (closing a short); down: go short (closing a long)
        return position_from_entries_exits(up, None, down, None)
    return position_from_entries_exits(up, down)


def sma_cross_strategy() -> FunctionStrategy:
    """SmaCross as one of our strategies (function adapter): target +1 from an up-cross, −1
    (or 0 when ``short=False``) from a down-cross, 0 before the first cross.

    backtesting.py reacts to every cross; our target only changes when the position should,
    and ``rebalance="on_change"`` makes an order only then. The two agree unless two crosses
    in the same direction follow each other (possible only through an exact tie of the two
    SMAs); the tests check that this does not happen in their data.
    """
    return strategy_from_function(
        _sma_cross,
        {"n1": IntParam(2, 500, default=10), "n2": IntParam(2, 1000, default=20),
         "short": CategoricalParam((True, False), default=True)},
        name="sma_cross",
    )


# -- configurations -----------------------------------------------------------------------------
def backtesting_py_setup(symbol: str, *, commission: float, cash: float, lot_size: float = 1.0,
                         ) -> tuple[Instrument, CostsConfig, AccountConfig]:
    """Our settings for ``Backtest(..., cash=cash, commission=commission)`` (margin 1,
    ``trade_on_close=False``, no spread).

    * fills at the next open: our default timing;
    * whole units: ``lot_size=1`` (``1e-8`` for ``FractionalBacktest``'s satoshi units);
      units are rounded toward zero, as its ``int(...)``;
    * ``reversal_sizing="after_close"`` with ``size_with_costs=True``: its broker's order
      handling and arithmetic. A reversal (``position.close(); sell()``) closes first, books
      the exit commission, then sizes the new side from the cash left; every new position is
      ``int(margin_available × (1 − ε) // (price + commission per unit))`` units;
    * commission on both entry and exit, on the fill value: taker and maker fee = commission;
    * no spread, slippage, impact or funding (its defaults), leverage 1 (``margin=1``), shorts
      allowed (the README SmaCross sells short), no maintenance tiers that could bind
      (one generic tier).
    """
    bps = commission * 1e4
    instrument = Instrument.generic(symbol, lot_size=lot_size, max_leverage=1.0,
                                    taker_fee_bps=bps, maker_fee_bps=bps)
    costs = CostsConfig(half_spread_bps=0.0, slippage_bps=0.0, impact_k=0.0,
                        default_funding_rate=0.0)
    account = AccountConfig(initial_cash_usd=cash, leverage=1.0, allow_short=True,
                            size_with_costs=True, reversal_sizing="after_close")
    return instrument, costs, account


def vectorbt_setup(symbol: str, *, fees: float, slippage: float, cash: float,
                   ) -> tuple[Instrument, CostsConfig, AccountConfig]:
    """Our settings for ``vbt.Portfolio.from_signals(..., fees=fees, slippage=slippage,
    init_cash=cash, size=np.inf)``, long-only, with the signals shifted one bar and
    ``price=open`` on the vectorbt side (our fills are at the next open).

    * fractional units: ``lot_size=0``;
    * ``size_with_costs=True``: all cash, units = ``cash / (open × (1 + slippage) × (1 +
      fees))``, vectorbt's sizing of ``size=np.inf``;
    * slippage moves the fill price by the same fraction (``slippage_bps = slippage × 1e4``),
      no half-spread (vectorbt has one price adjustment), no impact, no funding;
    * the fee on the fill value for every fill: taker and maker fee = ``fees``; take-profits
      as market orders (``take_profit_order="market"``: vectorbt's ``stop_exit_price=
      "stopmarket"`` applies slippage and fees to them like to stops);
    * leverage 1, long-only (``allow_short=False``, vectorbt's default direction).
    """
    bps = fees * 1e4
    instrument = Instrument.generic(symbol, lot_size=0.0, max_leverage=1.0,
                                    taker_fee_bps=bps, maker_fee_bps=bps)
    costs = CostsConfig(half_spread_bps=0.0, slippage_bps=slippage * 1e4, impact_k=0.0,
                        default_funding_rate=0.0, take_profit_order="market")
    account = AccountConfig(initial_cash_usd=cash, leverage=1.0, allow_short=False,
                            size_with_costs=True)
    return instrument, costs, account
