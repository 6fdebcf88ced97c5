"""Load the decision path's compiled kernels before the first bar: :func:`warm_up_decision_path`.

numba compiles a kernel, or loads it from its on-disk cache, the first time it is called in a
process: the risk engine's state update (≈ 0.2 s to load), the order check, lot rounding and
a library strategy's indicators (5–10 ms each); the store compiles its write-ahead ``INSERT``
at its first order (≈ 2 ms). Left to the first bar, that time lands
between "bar in" and "order out" of the first decision after every (re)start. The trader calls
:func:`warm_up_decision_path` at the end of its start, before it reads the first bar, so the
first decision costs what every later one does.

The warm-up runs the same functions the decision path runs — a scratch
:class:`~quantum_trading.risk.engine.RiskEngine` with the trader's limits (the trader's own
engine only binds its kernels' entry points, :meth:`RiskEngine.bind_kernels`; its state is
not touched), :func:`~quantum_trading.live.sizing.plan_orders` on
made-up numbers, and a library strategy on a synthetic window (and, for a rule the trader
steps, a scratch stepper over it; the trader's own stepper then takes the warm-up bars,
:meth:`~quantum_trading.live.strategy_call.StrategyCall.prime`) — and prepares the store's
write-ahead; it sends and stores nothing.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from quantum_trading.live.sizing import plan_orders
from quantum_trading.risk.engine import RiskEngine

if TYPE_CHECKING:
    from quantum_trading.live.trader import Trader

__all__ = ["warm_up_decision_path"]

log = logging.getLogger(__name__)

_WINDOW_BARS = 64  # long enough for any library strategy's default periods to produce values


def _synthetic_window(trader: Trader) -> pd.DataFrame:
    """A gently oscillating OHLCV window on the trader's timeframe (values are irrelevant)."""
    idx = pd.date_range("2024-01-01", periods=_WINDOW_BARS, freq=trader.tf, tz="UTC",
                        name="date")
    close = 100.0 + np.sin(np.arange(_WINDOW_BARS) / 5.0)
    return pd.DataFrame({"open": close, "high": close + 1.0, "low": close - 1.0,
                         "close": close, "volume": 1.0}, index=idx)


def warm_up_decision_path(trader: Trader) -> float:
    """Run the decision path's kernels once on made-up numbers; returns the seconds spent.

    Never raises: a failure here only means the first bar pays the loading time (logged at
    DEBUG). Nothing is sent, stored or changed in the trader's state (the store only compiles
    its write-ahead statement).
    """
    t0 = time.perf_counter()
    symbols = trader.symbols
    now = pd.Timestamp("2024-01-01", tz="UTC")
    prices = {s: 100.0 for s in symbols}
    flat = {s: 0.0 for s in symbols}
    try:
        trader.store.prepare_write_ahead()
        risk = None
        if trader.risk is not None:
            own = trader.risk
            own.bind_kernels()  # its entry points: no state read or changed
            risk = RiskEngine(own.config, symbols=symbols, leverage=trader.leverage,
                              lot_size={s: i.lot_size for s, i in trader.instruments.items()})
            risk.update(now, 1e6, positions=flat, prices=prices)
        plan_orders(now, {symbols[0]: 0.5}, symbols=symbols, cash_usd=1e6, positions=flat,
                    entries={s: float("nan") for s in symbols}, prices=prices,
                    instruments=trader.instruments, account=trader.config.account,
                    costs=trader.config.costs, leverage=trader.leverage, risk=risk)
        call = trader._call_strategy
        if call.direct:  # a library strategy: its own rule, no user code
            window = _synthetic_window(trader)
            call({s: window for s in symbols})
            if call.steppable:  # its step functions too (a scratch stepper)
                scratch = call.strategy.stepper(call.params)
                for row in window.to_dict("records"):
                    scratch.step(row)
            call.prime(trader.history)  # a stepped rule takes the warm-up bars now
    except Exception as exc:  # warm-up only: the first bar will load them
        log.debug("warm-up of the decision path failed (%s: %s); the first bar loads the "
                  "kernels", type(exc).__name__, exc)
    return time.perf_counter() - t0
