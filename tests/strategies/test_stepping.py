"""Library strategies stepped bar by bar give the vectorised targets bit for bit (real data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trading.features.averages_nb import RESEED_EVERY, ema_nb, sma_nb
from quantum_trading.features.rolling_nb import donchian_nb
from quantum_trading.strategies import get_strategy
from quantum_trading.strategies.library.stepping import (
    EmaStep,
    HighLowStep,
    PositionStep,
    SmaStep,
)
from quantum_trading.strategies.positions_nb import position_from_entries_exits_nb


@pytest.fixture(scope="module")
def btc_5m(binance_futures_dir: Path) -> pd.DataFrame:
    """Real Binance BTC/USDT:USDT perpetual 5m bars (the first 6,000)."""
    frame = pd.read_feather(binance_futures_dir / "BTC_USDT_USDT-5m-futures.feather")
    return frame.set_index("date").iloc[:6000]


def _with_gaps(close: np.ndarray) -> np.ndarray:
    """Real closes with missing values (a lone NaN, a run of them, an inf) to restart on."""
    out = close.copy()
    out[[700, 1500, 1501, 1502, 4000]] = np.nan
    out[2500] = np.inf
    return out


@pytest.mark.parametrize("period", [1, 2, 10, 50, 200])
def test_ema_step_is_ema_nb(btc_5m: pd.DataFrame, period: int) -> None:
    close = _with_gaps(btc_5m["close"].to_numpy())
    step = EmaStep(period)
    stepped = np.array([step(float(v)) for v in close])
    np.testing.assert_array_equal(stepped, ema_nb(close, period, np.empty(close.size)))


@pytest.mark.parametrize("period", [1, 3, 20, 100])
@pytest.mark.parametrize("gaps", [False, True], ids=["real", "with gaps"])
def test_sma_step_is_sma_nb(btc_5m: pd.DataFrame, period: int, gaps: bool) -> None:
    """Volumes (large, uneven values: the running sum's rounding shows) over more than one
    reseed of the window sum."""
    volume = btc_5m["volume"].to_numpy()
    volume = _with_gaps(volume) if gaps else volume
    assert volume.size > 4 * RESEED_EVERY
    step = SmaStep(period)
    stepped = np.array([step(float(v)) for v in volume])
    np.testing.assert_array_equal(stepped, sma_nb(volume, period, np.empty(volume.size)))


@pytest.mark.parametrize("period", [1, 2, 4, 5, 20, 55])
def test_high_low_step_is_the_donchian_channel(btc_5m: pd.DataFrame, period: int) -> None:
    high, low = btc_5m["high"].to_numpy().copy(), _with_gaps(btc_5m["low"].to_numpy())
    high[3000] = np.nan  # a bar missing only its high
    step = HighLowStep(period)
    stepped = np.array([step(float(h), float(lo)) for h, lo in zip(high, low, strict=True)])
    upper, _, lower = donchian_nb(high, low, period)
    np.testing.assert_array_equal(stepped[:, 0], upper)
    np.testing.assert_array_equal(stepped[:, 1], lower)


def test_position_step_is_the_kernel() -> None:
    rng = np.random.default_rng(7)
    events = rng.random((4, 5000)) < [[0.05], [0.1], [0.05], [0.1]]
    step = PositionStep()
    stepped = [step(*map(bool, events[:, t])) for t in range(events.shape[1])]
    np.testing.assert_array_equal(stepped, position_from_entries_exits_nb(*events))


@pytest.mark.parametrize(("name", "params"), [
    ("trend_following", {"fast": 10, "slow": 30, "direction": "both"}),
    ("trend_following", {"fast": 5, "slow": 20}),
    ("trend_following", {"fast": 20, "slow": 50, "direction": "short", "size": 0.5}),
    ("trend_following", {"fast": 12, "slow": 26, "direction": "both", "stop_loss_pct": 1.5,
                         "take_profit_pct": 3.0}),
    ("momentum_breakout", {"direction": "both"}),
    ("momentum_breakout", {"lookback": 10, "exit_lookback": 5, "volume_factor": 1.2,
                           "volume_period": 10, "size": 0.75, "stop_loss_pct": 2.0}),
    ("momentum_breakout", {"lookback": 50, "direction": "short", "volume_factor": 1.0}),
])
@pytest.mark.parametrize("gaps", [False, True], ids=["real", "with gaps"])
def test_stepped_targets_equal_the_vectorised_ones(
        btc_5m: pd.DataFrame, name: str, params: dict, gaps: bool) -> None:
    strategy = get_strategy(name)
    p = strategy.params.validate(params)
    frame = btc_5m.copy()
    if gaps:
        for column in ("close", "volume"):
            frame[column] = _with_gaps(frame[column].to_numpy())
        frame.iloc[3500, frame.columns.get_loc("high")] = np.nan
    vectorised = strategy.asset_signals(frame, p)
    stepper = strategy.stepper(p)
    assert stepper is not None
    rows = frame.to_dict("records")
    stepped = np.array([stepper.step(row) for row in rows])
    np.testing.assert_array_equal(stepped, vectorised.target)
    assert np.count_nonzero(np.diff(stepped)) > 10  # the rule traded: the test can fail
    assert stepper.bars == len(rows)
    for mine, theirs in ((stepper.stop_loss, vectorised.stop_loss),
                         (stepper.take_profit, vectorised.take_profit)):
        assert (mine is None) == (theirs is None)  # StopSpec compares by identity
        if mine is not None:
            assert (mine.kind, mine.value) == (theirs.kind, theirs.value)


def test_what_is_not_stepped() -> None:
    """ATR stops (read per bar from the ATR) and rules without an event stepper are
    recomputed on the window: no stepper."""
    trend = get_strategy("trend_following")
    assert trend.stepper(trend.params.validate({"stop_loss_atr": 2.0})) is None
    for name in ("mean_reversion", "buy_and_hold"):
        strategy = get_strategy(name)
        assert strategy.stepper(strategy.params.validate({})) is None
