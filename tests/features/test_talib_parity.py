"""Parity with TA-Lib on real BTC and ETH perpetual bars (1h and 1m).

Each output must equal TA-Lib's within 1e-9 of the reference series' scale (its largest
absolute value) and be NaN in exactly the same places, warm-up included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from quantum_trading import features as qf

RTOL = 1e-9


def assert_parity(ours: pd.Series | np.ndarray, ref: np.ndarray, what: str) -> None:
    """``|ours - ref| <= RTOL * max|ref|`` elementwise, with identical NaN positions."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, what
    nan_ours = np.isnan(ours)
    nan_ref = np.isnan(ref)
    mismatch = np.flatnonzero(nan_ours != nan_ref)
    assert mismatch.size == 0, f"{what}: NaN placement differs first at row {mismatch[:5]}"
    assert (~nan_ref).any(), f"{what}: nothing to compare"
    scale = np.max(np.abs(ref[~nan_ref]))
    err = np.abs(ours[~nan_ref] - ref[~nan_ref])
    worst = float(err.max())
    assert worst <= RTOL * scale, f"{what}: max error {worst:.3e} > {RTOL:g} x scale {scale:.6g}"


@pytest.mark.parametrize("period", [2, 10, 30, 200])
def test_sma_ema_wma(bars: pd.DataFrame, period: int) -> None:
    close = bars["close"]
    c = close.to_numpy()
    assert_parity(qf.sma(close, period), talib.SMA(c, period), f"SMA({period})")
    assert_parity(qf.ema(close, period), talib.EMA(c, period), f"EMA({period})")
    assert_parity(qf.wma(close, period), talib.WMA(c, period), f"WMA({period})")


def test_period_one_averages_are_the_input(bars: pd.DataFrame) -> None:
    close = bars["close"]
    c = close.to_numpy()
    for name, ours in (("SMA", qf.sma), ("EMA", qf.ema), ("WMA", qf.wma)):
        assert_parity(ours(close, 1), getattr(talib, name)(c, 1), f"{name}(1)")


@pytest.mark.parametrize("period", [2, 7, 14, 50])
def test_rsi(bars: pd.DataFrame, period: int) -> None:
    close = bars["close"]
    assert_parity(qf.rsi(close, period), talib.RSI(close.to_numpy(), period), f"RSI({period})")


@pytest.mark.parametrize("params", [(12, 26, 9), (5, 35, 5), (3, 10, 1), (2, 3, 2)])
def test_macd(bars: pd.DataFrame, params: tuple[int, int, int]) -> None:
    ours = qf.macd(bars["close"], *params)
    ref = talib.MACD(bars["close"].to_numpy(), *params)
    for column, expected in zip(("macd", "macd_signal", "macd_hist"), ref, strict=True):
        assert_parity(ours[column], expected, f"MACD{params} {column}")


@pytest.mark.parametrize("params", [(5, 2.0, 2.0), (20, 2.0, 2.0), (50, 1.5, 2.5), (10, 1.0, 0.0)])
def test_bollinger_bands(bars: pd.DataFrame, params: tuple[int, float, float]) -> None:
    period, up, dn = params
    ours = qf.bollinger_bands(bars["close"], period, up, dn)
    upper, middle, lower = talib.BBANDS(bars["close"].to_numpy(), period, up, dn, 0)
    assert_parity(ours["bb_upper"], upper, f"BBANDS{params} upper")
    assert_parity(ours["bb_middle"], middle, f"BBANDS{params} middle")
    assert_parity(ours["bb_lower"], lower, f"BBANDS{params} lower")


def test_true_range_and_obv(bars: pd.DataFrame) -> None:
    h, lo, c, v = (bars[k].to_numpy() for k in ("high", "low", "close", "volume"))
    assert_parity(
        qf.true_range(bars["high"], bars["low"], bars["close"]), talib.TRANGE(h, lo, c), "TRANGE"
    )
    assert_parity(qf.obv(bars["close"], bars["volume"]), talib.OBV(c, v), "OBV")


@pytest.mark.parametrize("period", [1, 2, 14, 50])
def test_atr(bars: pd.DataFrame, period: int) -> None:
    h, lo, c = (bars[k].to_numpy() for k in ("high", "low", "close"))
    ours = qf.atr(bars["high"], bars["low"], bars["close"], period)
    assert_parity(ours, talib.ATR(h, lo, c, period), f"ATR({period})")


@pytest.mark.parametrize("period", [2, 5, 14, 40])
def test_adx_and_directional_indicators(bars: pd.DataFrame, period: int) -> None:
    h, lo, c = (bars[k].to_numpy() for k in ("high", "low", "close"))
    ours = qf.adx(bars["high"], bars["low"], bars["close"], period)
    assert_parity(ours["adx"], talib.ADX(h, lo, c, period), f"ADX({period})")
    assert_parity(ours["plus_di"], talib.PLUS_DI(h, lo, c, period), f"PLUS_DI({period})")
    assert_parity(ours["minus_di"], talib.MINUS_DI(h, lo, c, period), f"MINUS_DI({period})")


@pytest.mark.parametrize("params", [(5, 3, 3), (14, 3, 3), (1, 1, 1), (9, 1, 5), (21, 5, 1)])
def test_stochastic(bars: pd.DataFrame, params: tuple[int, int, int]) -> None:
    fastk, slowk, slowd = params
    h, lo, c = (bars[k].to_numpy() for k in ("high", "low", "close"))
    ours = qf.stochastic(bars["high"], bars["low"], bars["close"], fastk, slowk, slowd)
    ref_k, ref_d = talib.STOCH(h, lo, c, fastk, slowk, 0, slowd, 0)
    assert_parity(ours["stoch_k"], ref_k, f"STOCH{params} slowk")
    assert_parity(ours["stoch_d"], ref_d, f"STOCH{params} slowd")


@pytest.mark.parametrize("period", [2, 3, 4, 5, 7, 20, 55, 300])
def test_donchian_is_talib_max_min(bars: pd.DataFrame, period: int) -> None:
    ours = qf.donchian_channel(bars["high"], bars["low"], period)
    upper = talib.MAX(bars["high"].to_numpy(), period)
    lower = talib.MIN(bars["low"].to_numpy(), period)
    assert_parity(ours["dc_upper"], upper, f"MAX({period})")
    assert_parity(ours["dc_lower"], lower, f"MIN({period})")
    # max and min never round: the channel edges are exact
    np.testing.assert_array_equal(ours["dc_upper"].to_numpy(), upper)
    np.testing.assert_array_equal(ours["dc_lower"].to_numpy(), lower)


def test_leading_nans_match_talib(eth_1h: pd.DataFrame) -> None:
    """TA-Lib's Python wrapper also starts at the first non-NaN value."""
    bars = eth_1h.copy()
    bars.iloc[:17] = np.nan
    h, lo, c, v = (bars[k].to_numpy() for k in ("high", "low", "close", "volume"))
    assert_parity(qf.ema(bars["close"], 10), talib.EMA(c, 10), "EMA")
    assert_parity(qf.rsi(bars["close"], 14), talib.RSI(c, 14), "RSI")
    assert_parity(qf.wma(bars["close"], 10), talib.WMA(c, 10), "WMA")
    assert_parity(
        qf.atr(bars["high"], bars["low"], bars["close"], 14), talib.ATR(h, lo, c, 14), "ATR"
    )
    assert_parity(qf.obv(bars["close"], bars["volume"]), talib.OBV(c, v), "OBV")
    ours = qf.adx(bars["high"], bars["low"], bars["close"], 14)
    assert_parity(ours["adx"], talib.ADX(h, lo, c, 14), "ADX")
    ours = qf.macd(bars["close"])
    assert_parity(ours["macd_hist"], talib.MACD(c)[2], "MACD hist")


def test_restart_after_nan_is_talib_on_the_remaining_data(eth_1h: pd.DataFrame) -> None:
    """After an internal NaN, a recursive indicator equals TA-Lib run on the data after it."""
    bars = eth_1h.copy()
    cut = 400
    bars.iloc[cut, bars.columns.get_loc("close")] = np.nan
    after = bars.iloc[cut + 1 :]
    h, lo, c = (after[k].to_numpy() for k in ("high", "low", "close"))
    rsi = qf.rsi(bars["close"], 14).to_numpy()
    assert np.isnan(rsi[cut : cut + 15]).all()
    assert_parity(rsi[cut + 1 :], talib.RSI(c, 14), "RSI after NaN")
    adx = qf.adx(bars["high"], bars["low"], bars["close"], 14)["adx"].to_numpy()
    assert_parity(adx[cut + 1 :], talib.ADX(h, lo, c, 14), "ADX after NaN")
    stoch = qf.stochastic(bars["high"], bars["low"], bars["close"])["stoch_d"].to_numpy()
    assert_parity(stoch[cut + 1 :], talib.STOCH(h, lo, c)[1], "STOCH after NaN")
