"""Each library rule on hand-built bars: entries, exits, short side, stops, size, warm-up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantum_trading.domain import Signals
from quantum_trading.errors import ConfigError, DataError
from quantum_trading.features import atr
from quantum_trading.strategies import (
    LIBRARY,
    BuyAndHold,
    MeanReversion,
    MomentumBreakout,
    Strategy,
    TrendFollowing,
)

from ._helpers import make_bars, mirror


def _target(sig: Signals) -> list[float]:
    assert isinstance(sig, Signals) and sig.target.shape[1] == 1
    return sig.target.iloc[:, 0].tolist()


def _states(values: list[float]) -> list[tuple[int, float]]:
    """(first bar, value) of each run of equal values."""
    out = []
    for i, v in enumerate(values):
        if i == 0 or v != values[i - 1]:
            out.append((i, v))
    return out


# -- momentum breakout -------------------------------------------------------------------------
def _breakout_bars() -> pd.DataFrame:
    """Flat 100 (high 101, low 99, volume 1) with:
    bar 12: close 101.5 above the prior high but volume 1.5 (< 2 × mean) → no entry;
    bar 20: close 105, volume 3 → long entry;
    bars 21-29: close 104, low 103 (no close below the prior 10-bar low);
    bar 30: close 102.5 < min(low[20..29]) = 103 → exit."""
    n = 40
    close = np.full(n, 100.0)
    high = np.full(n, 101.0)
    low = np.full(n, 99.0)
    vol = np.ones(n)
    close[12], high[12], vol[12] = 101.5, 101.5, 1.5
    close[20], high[20], low[20], vol[20] = 105.0, 106.0, 104.0, 3.0
    close[21:30], high[21:30], low[21:30] = 104.0, 105.0, 103.0
    close[30], high[30], low[30] = 102.5, 103.0, 102.0
    close[31:], high[31:], low[31:] = 102.5, 103.0, 102.0
    return make_bars(close, high=high, low=low, volume=vol)


MOMENTUM = {"lookback": 10, "exit_lookback": 10, "volume_factor": 2.0, "volume_period": 5}


def test_momentum_long_entry_and_exit_at_exact_bars():
    df = _breakout_bars()
    values = _target(MomentumBreakout().signals(df, **MOMENTUM))
    assert _states(values) == [(0, 0.0), (20, 1.0), (30, 0.0)]


def test_momentum_short_side_is_symmetric():
    df = mirror(_breakout_bars())
    strat = MomentumBreakout()
    assert _states(_target(strat.signals(df, **MOMENTUM, direction="short"))) == [
        (0, 0.0), (20, -1.0), (30, 0.0)]
    assert _states(_target(strat.signals(df, **MOMENTUM, direction="both"))) == [
        (0, 0.0), (20, -1.0), (30, 0.0)]
    assert set(_target(strat.signals(df, **MOMENTUM))) == {0.0}  # long only: nothing


def test_momentum_long_only_ignores_short_setups_and_size_scales():
    df = _breakout_bars()
    assert set(_target(MomentumBreakout().signals(df, **MOMENTUM, direction="short"))) == {0.0}
    values = _target(MomentumBreakout().signals(df, **MOMENTUM, size=0.5))
    assert _states(values) == [(0, 0.0), (20, 0.5), (30, 0.0)]


def test_momentum_volume_filter_and_lower_factor():
    df = _breakout_bars()
    # with a factor of 1.4 the bar-12 breakout (volume 1.5 > 1.4 × 1) enters too;
    # its exit: first close below the prior 10-bar low (99) never comes before bar 20
    values = _target(MomentumBreakout().signals(df, **{**MOMENTUM, "volume_factor": 1.4}))
    assert _states(values) == [(0, 0.0), (12, 1.0), (30, 0.0)]


def test_momentum_warm_up_is_flat():
    close = np.full(30, 100.0)
    close[5] = 120.0  # a breakout before the 10-bar channel exists
    vol = np.ones(30)
    vol[5] = 10.0
    df = make_bars(close, high=close + 1, low=close - 1, volume=vol)
    assert set(_target(MomentumBreakout().signals(df, **MOMENTUM))) == {0.0}


def test_momentum_reversal_with_both():
    # up-breakout at 20, then a down-breakout at 25: close 90 < prior 10-bar low 99 on
    # volume 4 > 2 × mean(3, 1, 1, 1, 1)
    df = _breakout_bars()
    close, low, vol = df["close"].to_numpy().copy(), df["low"].to_numpy().copy(), df["volume"].to_numpy().copy()
    close[25], low[25], vol[25] = 90.0, 89.0, 4.0  # below prior 10-bar low (99) on volume
    df = make_bars(close, high=df["high"], low=low, volume=vol)
    values = _target(MomentumBreakout().signals(df, **MOMENTUM, direction="both"))
    assert values[20] == 1.0 and values[24] == 1.0 and values[25] == -1.0
    # the short would exit on a close above the prior 10-bar high (>= 105): none comes
    assert set(values[25:]) == {-1.0}
    values_long_only = _target(MomentumBreakout().signals(df, **MOMENTUM))
    assert values_long_only[25] == 0.0  # the long exits (close < prior low), no short


# -- mean reversion ----------------------------------------------------------------------------
def _reversion_bars() -> pd.DataFrame:
    """Alternating 100/101 (middle 100.5, lower band 99.5 at nbdev 2), then 90, 85, 95, 100.

    RSI(14) is 28.4 at bar 30 and 23.2 at bar 31; the middle band is 100.0, 99.2, 98.95, 98.9
    at bars 30-33; so the close first rises above the middle band at bar 33 (100 > 98.9).
    """
    close = np.array([100.0 + (i % 2) for i in range(45)])
    close[30:35] = [90.0, 85.0, 95.0, 100.0, 100.0]
    return make_bars(close)


def test_mean_reversion_entry_below_lower_band_exit_above_middle():
    values = _target(MeanReversion().signals(_reversion_bars()))
    assert _states(values) == [(0, 0.0), (30, 1.0), (33, 0.0)]


def test_mean_reversion_rsi_gate():
    df = _reversion_bars()
    # threshold 25: RSI 28.4 at bar 30 is not low enough; bar 31 (RSI 23.2, close < lower) is
    assert _states(_target(MeanReversion().signals(df, rsi_threshold=25))) == [
        (0, 0.0), (31, 1.0), (33, 0.0)]
    assert set(_target(MeanReversion().signals(df, rsi_threshold=20))) == {0.0}


def test_mean_reversion_short_side_is_symmetric():
    df = mirror(_reversion_bars())
    strat = MeanReversion()
    assert _states(_target(strat.signals(df, direction="short"))) == [
        (0, 0.0), (30, -1.0), (33, 0.0)]
    assert _states(_target(strat.signals(df, direction="both"))) == [
        (0, 0.0), (30, -1.0), (33, 0.0)]
    assert set(_target(strat.signals(df))) == {0.0}


# -- trend following ---------------------------------------------------------------------------
def _v_bars() -> pd.DataFrame:
    """Down from 100 to 70 over 30 bars, then up to 100: EMA(5) crosses above EMA(20) at
    bar 39 (d[38] = -0.25, d[39] = +0.47)."""
    return make_bars(np.r_[np.linspace(100, 70, 30), np.linspace(71, 100, 30)])


def test_trend_following_enters_at_the_cross():
    values = _target(TrendFollowing().signals(_v_bars(), fast=5, slow=20))
    assert _states(values) == [(0, 0.0), (39, 1.0)]


def test_trend_following_short_symmetric_and_reversal():
    strat = TrendFollowing()
    down = mirror(_v_bars())
    assert _states(_target(strat.signals(down, fast=5, slow=20, direction="short"))) == [
        (0, 0.0), (39, -1.0)]
    # up, down, up: with 'both' each cross reverses
    close = np.r_[np.linspace(70, 100, 30), np.linspace(99, 60, 40), np.linspace(61, 100, 40)]
    df = make_bars(close)
    both = _target(strat.signals(df, fast=5, slow=20, direction="both"))
    long_only = _target(strat.signals(df, fast=5, slow=20))
    runs = _states(both)
    assert [v for _, v in runs] == [0.0, -1.0, 1.0]  # no entry before a fresh cross
    short_at, long_at = runs[1][0], runs[2][0]
    assert _states(long_only) == [(0, 0.0), (long_at, 1.0)]
    # the long-only exit would be at the cross down = the short entry bar
    assert short_at > 20


def test_trend_following_requires_fast_below_slow():
    with pytest.raises(ConfigError, match="fast < slow"):
        TrendFollowing().signals(_v_bars(), fast=30, slow=25)


# -- buy and hold ------------------------------------------------------------------------------
def test_buy_and_hold_is_constant():
    df = _v_bars()
    sig = BuyAndHold().signals(df, size=2.0)
    assert set(_target(sig)) == {2.0}
    assert sig.stop_loss is None and sig.take_profit is None
    with pytest.raises(ConfigError, match="unknown parameter 'direction'"):
        BuyAndHold().signals(df, direction="short")


# -- stops -------------------------------------------------------------------------------------
def test_fixed_pct_stops_become_fractions():
    sig = MomentumBreakout().signals(_breakout_bars(), **MOMENTUM, stop_loss_pct=2.0,
                                     take_profit_pct=5.0)
    assert sig.stop_loss.kind == "fraction" and sig.stop_loss.value == pytest.approx(0.02)
    assert sig.take_profit.kind == "fraction" and sig.take_profit.value == pytest.approx(0.05)
    assert sig.trailing_stop is None and sig.time_stop_bars is None


def test_atr_stops_are_distances_and_gate_entries():
    df = _breakout_bars()
    sig = MomentumBreakout().signals(df, **MOMENTUM, stop_loss_atr=2.0, take_profit_atr=3.0,
                                     atr_period=5)
    expected = atr(df["high"], df["low"], df["close"], 5)
    assert sig.stop_loss.kind == "distance" and sig.take_profit.kind == "distance"
    pd.testing.assert_series_equal(sig.stop_loss.value, 2.0 * expected, check_names=False)
    pd.testing.assert_series_equal(sig.take_profit.value, 3.0 * expected, check_names=False)
    assert _states(_target(sig)) == [(0, 0.0), (20, 1.0), (30, 0.0)]
    # an ATR that only exists from bar 31 on: the bar-20 breakout is not taken
    late = MomentumBreakout().signals(df, **MOMENTUM, stop_loss_atr=2.0, atr_period=31)
    assert set(_target(late)) == {0.0}


def test_zero_atr_gives_no_stop_rather_than_zero_distance():
    df = make_bars(np.full(30, 100.0))
    sig = TrendFollowing().signals(df, fast=5, slow=20, stop_loss_atr=1.0)
    assert sig.stop_loss.value.isna().all()


def test_pct_and_atr_stop_together_is_an_error():
    with pytest.raises(ConfigError, match="stop_loss_pct and stop_loss_atr"):
        MeanReversion().signals(_reversion_bars(), stop_loss_pct=1.0, stop_loss_atr=2.0)
    with pytest.raises(ConfigError, match="take_profit_pct and take_profit_atr"):
        MeanReversion().signals(_reversion_bars(), take_profit_pct=1.0, take_profit_atr=2.0)


# -- parameters, inputs, many assets -----------------------------------------------------------
@pytest.mark.parametrize(
    ("strategy", "params", "pattern"),
    [
        (MomentumBreakout(), {"lookback": 5}, r"lookback: 5 is out of range.*\[10, 200\]"),
        (MomentumBreakout(), {"volume_factor": 3.5}, r"volume_factor: 3\.5 .*\[1\.0, 3\.0\]"),
        (MeanReversion(), {"bb_period": 60}, r"bb_period: 60 .*\[10, 50\]"),
        (MeanReversion(), {"nbdev": 1.0}, r"nbdev: 1\.0 .*\[1\.5, 3\.0\]"),
        (MeanReversion(), {"rsi_threshold": 45}, r"rsi_threshold: 45\.0 .*\[10\.0, 40\.0\]"),
        (TrendFollowing(), {"fast": 4}, r"fast: 4 .*\[5, 50\]"),
        (TrendFollowing(), {"slow": 250}, r"slow: 250 .*\[20, 200\]"),
        (TrendFollowing(), {"direction": "sideways"}, "one of 'long', 'short', 'both'"),
        (TrendFollowing(), {"lookback": 20}, "unknown parameter 'lookback'"),
    ],
)
def test_library_param_errors(strategy, params, pattern):
    with pytest.raises(ConfigError, match=pattern):
        strategy.signals(_v_bars(), **params)


def test_library_satisfies_protocol_and_declares_ranges():
    for strat in LIBRARY:
        assert isinstance(strat, Strategy)
        assert strat.params.validate({}) == strat.params.defaults()
    mb = MomentumBreakout.params
    assert (mb["lookback"].low, mb["lookback"].high) == (10, 200)
    assert (mb["volume_factor"].low, mb["volume_factor"].high) == (1.0, 3.0)
    mr = MeanReversion.params
    assert (mr["bb_period"].low, mr["bb_period"].high) == (10, 50)
    assert (mr["nbdev"].low, mr["nbdev"].high) == (1.5, 3.0)
    assert (mr["rsi_threshold"].low, mr["rsi_threshold"].high) == (10.0, 40.0)
    tf = TrendFollowing.params
    assert (tf["fast"].low, tf["fast"].high, tf["slow"].low, tf["slow"].high) == (5, 50, 20, 200)
    assert all(c["fast"] < c["slow"] for c in tf.grid(5))
    assert len(mb.grid(3)) == 3**4  # direction, size and stops are not optimised by default


def test_missing_column_and_bad_data():
    df = _v_bars().drop(columns="volume")
    with pytest.raises(DataError, match="'momentum_breakout': no data in column volume"):
        MomentumBreakout().signals(df)
    TrendFollowing().signals(df)  # needs close only
    with pytest.raises(DataError, match="no data in column high"):
        TrendFollowing().signals(df[["close"]], stop_loss_atr=2.0)
    with pytest.raises(ConfigError, match="DataFrame"):
        TrendFollowing().signals([1, 2, 3])
    with pytest.raises(DataError, match="DatetimeIndex"):
        TrendFollowing().signals(_v_bars().reset_index(drop=True))


def test_target_named_by_symbol_attr():
    df = _v_bars()
    assert TrendFollowing().signals(df).target.columns.tolist() == ["trend_following"]
    df.attrs["symbol"] = "BTC/USDT:USDT"
    assert TrendFollowing().signals(df).target.columns.tolist() == ["BTC/USDT:USDT"]


def test_many_assets_run_per_asset():
    a, b = _breakout_bars(), mirror(_breakout_bars())
    strat = MomentumBreakout()
    params = {**MOMENTUM, "direction": "both", "stop_loss_pct": 1.0, "take_profit_atr": 2.0}
    sig = strat.signals({"A": a, "B": b}, **params)
    assert sig.target.columns.tolist() == ["A", "B"]
    assert sig.target["A"].tolist() == _target(strat.signals(a, **params))
    assert sig.target["B"].tolist() == _target(strat.signals(b, **params))
    assert sig.stop_loss.kind == "fraction" and sig.stop_loss.value == pytest.approx(0.01)
    tp = sig.take_profit.value
    assert isinstance(tp, pd.DataFrame) and tp.columns.tolist() == ["A", "B"]
    pd.testing.assert_series_equal(tp["B"], strat.signals(b, **params).take_profit.value,
                                   check_names=False)
    with pytest.raises(DataError, match="index differs"):
        strat.signals({"A": a, "B": b.iloc[1:]})
    with pytest.raises(ConfigError, match="no assets"):
        strat.signals({})
