"""The trader's strategy call: stepped bar by bar, it reads the same targets and exit rules as
the recomputation of every window (real BTC and ETH bars)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trading.errors import DataError
from quantum_trading.live.feed import BarHistory
from quantum_trading.live.strategy_call import StrategyCall
from quantum_trading.strategies import get_strategy

from ._trader_helpers import real_bars

COLUMNS = ["open", "high", "low", "close", "volume"]


def _histories(frames: dict[str, pd.DataFrame], upto: int, capacity: int = 16
               ) -> dict[str, BarHistory]:
    out = {}
    for s, frame in frames.items():
        h = BarHistory(s, capacity=capacity)
        h.extend(frame[COLUMNS].iloc[:upto])
        out[s] = h
    return out


def _feed(histories: dict[str, BarHistory], frames: dict[str, pd.DataFrame], k: int) -> None:
    for s, frame in frames.items():
        histories[s].append(frame.index[k], frame[COLUMNS].iloc[k].to_dict())


def _same_exits(a: object, b: object) -> bool:
    return all((x == y) or (math.isnan(x) and math.isnan(y))
               for x, y in zip(a.as_dict().values(), b.as_dict().values(), strict=True))


@pytest.mark.parametrize(("name", "params"), [
    ("trend_following", {"fast": 10, "slow": 30, "direction": "both"}),
    ("trend_following", {"fast": 5, "slow": 20, "direction": "long", "stop_loss_pct": 2.0,
                         "take_profit_pct": 4.0}),
    ("momentum_breakout", {"lookback": 10, "exit_lookback": 5, "volume_factor": 1.2,
                           "direction": "both"}),
])
def test_stepped_call_equals_the_window_call(binance_futures_dir: Path, name: str,
                                             params: dict) -> None:
    """Two symbols, 150 warm-up bars primed, then one bar a call — and a catch-up of three
    bars in one call — against the rule recomputed on the whole history each time."""
    frames = {s: real_bars(binance_futures_dir, "1h", 700, sym)
              for s, sym in (("BTC/USDT:USDT", "BTC_USDT_USDT"),
                             ("ETH/USDT:USDT", "ETH_USDT_USDT"))}
    strategy = get_strategy(name)
    p = strategy.params.validate(params)
    symbols = list(frames)
    stepped = StrategyCall(strategy, p, symbols)
    windowed = StrategyCall(strategy, p, symbols)
    assert stepped.steppable
    histories = _histories(frames, 150)
    stepped.prime(histories)
    changes = 0
    last = None
    k = 150
    while k < 700:
        for _ in range(3 if k % 97 == 0 else 1):  # now and then several bars arrive at once
            if k < 700:
                _feed(histories, frames, k)
                k += 1
        a = stepped.on_history(histories, None)
        b = windowed({s: histories[s].window(None) for s in symbols})
        assert a.targets == b.targets, k
        for s in symbols:
            assert _same_exits(a.exits(s), b.exits(s))
        changes += a.targets != last
        last = a.targets
    assert changes > 10  # the rule traded: the comparison can fail
    assert stepped._seen == {s: 700 for s in symbols}


def test_a_fixed_window_or_an_atr_stop_recomputes(binance_futures_dir: Path) -> None:
    bars = {"BTC/USDT:USDT": real_bars(binance_futures_dir, "1h", 300)}
    strategy = get_strategy("trend_following")
    call = StrategyCall(strategy, strategy.params.validate({"fast": 5, "slow": 20}),
                        list(bars))
    histories = _histories(bars, 300)
    windowed = call.on_history(histories, 100)  # the last 100 bars: no stepper involved
    assert call._steppers is None
    expected = call({s: h.window(100) for s, h in histories.items()})
    assert windowed.targets == expected.targets
    atr = StrategyCall(strategy, strategy.params.validate({"stop_loss_atr": 2.0}), list(bars))
    assert not atr.steppable
    assert np.isfinite(atr.on_history(histories, None).targets["BTC/USDT:USDT"])


def test_histories_that_differ_raise_as_the_window_call_does(binance_futures_dir: Path) -> None:
    """A symbol missing a bar: the stepped call leaves it to the window call, which names the
    symbol whose index differs."""
    frames = {s: real_bars(binance_futures_dir, "1h", 200, sym)
              for s, sym in (("BTC/USDT:USDT", "BTC_USDT_USDT"),
                             ("ETH/USDT:USDT", "ETH_USDT_USDT"))}
    strategy = get_strategy("trend_following")
    call = StrategyCall(strategy, strategy.params.validate({}), list(frames))
    histories = _histories(frames, 150)
    call.prime(histories)
    histories["BTC/USDT:USDT"].append(frames["BTC/USDT:USDT"].index[150],
                                      frames["BTC/USDT:USDT"][COLUMNS].iloc[150].to_dict())
    with pytest.raises(DataError, match="ETH/USDT:USDT"):
        call.on_history(histories, None)


def test_the_stepper_restarts_when_bars_it_did_not_see_were_dropped(
        binance_futures_dir: Path) -> None:
    """A history capped at 100 bars that got 150 new ones since the last call: the bars in
    between are gone, so the rule starts again on the bars kept (as the window call)."""
    bars = {"BTC/USDT:USDT": real_bars(binance_futures_dir, "1h", 400)}
    strategy = get_strategy("trend_following")
    call = StrategyCall(strategy, strategy.params.validate({"fast": 5, "slow": 20}),
                        list(bars))
    h = BarHistory("BTC/USDT:USDT", capacity=16, max_bars=100)
    h.extend(bars["BTC/USDT:USDT"][COLUMNS].iloc[:200])
    call.prime({"BTC/USDT:USDT": h})
    h.extend(bars["BTC/USDT:USDT"][COLUMNS].iloc[200:350])
    assert call.on_history({"BTC/USDT:USDT": h}, None).targets == \
        call({"BTC/USDT:USDT": h.window(None)}).targets
    assert call._steppers["BTC/USDT:USDT"].bars == len(h) < 250
