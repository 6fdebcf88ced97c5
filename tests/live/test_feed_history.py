"""The trader's bar history: its window frames (built through pandas' internals for speed)
equal the ones pandas' public constructors build, and a strategy reads them alike."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from quantum_trading.live.feed import BarHistory, _frame_public, _frame_view
from quantum_trading.strategies import get_strategy

from ._trader_helpers import real_bars


def _history(bars: pd.DataFrame) -> BarHistory:
    h = BarHistory("BTC/USDT:USDT", capacity=16)
    h.extend(bars[["open", "high", "low", "close", "volume"]])
    return h


def test_window_equals_the_public_construction(binance_futures_dir) -> None:
    bars = real_bars(binance_futures_dir, "1h", 300)
    h = _history(bars)
    for n in (None, 1, 2, 50, 299, 300, 10_000):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no deprecation warning from the fast path
            fast = h.window(n)
        lo = 0 if n is None else max(len(h) - n, 0)
        slow = _frame_public(h._times[lo:len(h)], h._block[:, lo:len(h)],
                             pd.Index(list(h._columns)))
        pd.testing.assert_frame_equal(fast, slow, check_freq=True)
        pd.testing.assert_frame_equal(fast, bars[["open", "high", "low", "close", "volume"]]
                                      .iloc[lo:].rename_axis("date"), check_freq=False)
        assert fast.index.tz is not None and str(fast.index.tz) == "UTC"
        assert fast.attrs["symbol"] == "BTC/USDT:USDT"
        assert np.shares_memory(fast["close"].to_numpy(), h._block)  # a view, no copy


def test_a_strategy_reads_the_fast_frame_as_the_public_one(binance_futures_dir) -> None:
    bars = real_bars(binance_futures_dir, "1h", 400)
    h = _history(bars)
    fast = h.window(None)
    slow = _frame_public(h._times[:len(h)], h._block[:, :len(h)], pd.Index(list(h._columns)))
    slow.attrs["symbol"] = fast.attrs["symbol"]
    strategy = get_strategy("trend_following")
    params = {"fast": 5, "slow": 20, "direction": "both", "stop_loss_atr": 2.0}
    a, b = strategy.signals(fast, **params), strategy.signals(slow, **params)
    pd.testing.assert_frame_equal(a.target, b.target)
    np.testing.assert_array_equal(np.asarray(a.stop_loss.value, dtype=float),
                                  np.asarray(b.stop_loss.value, dtype=float))
    assert int((a.target != 0).to_numpy().sum()) > 10
    h.append(bars.index[-1] + pd.Timedelta("1h"), {"open": 1.0, "high": 2.0, "low": 0.5,
                                                   "close": 1.5, "volume": 3.0})
    assert len(fast) == len(h) - 1 and h.window(1)["close"].iloc[-1] == 1.5


def test_view_falls_back_to_the_same_frame_on_odd_input() -> None:
    times = np.array([0, 3_600_000_000_000], dtype=np.int64)
    block = np.arange(4, dtype=float).reshape(2, 2)
    frame = _frame_view(times, block, ("open", "close"))
    assert list(frame["close"]) == [2.0, 3.0]
    assert frame.index[1] == pd.Timestamp("1970-01-01 01:00", tz="UTC")
