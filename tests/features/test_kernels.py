"""Kernel algorithms against brute-force references on random data (hypothesis).

The fast algorithms (block-wise rolling max/min, sorted-window quantiles, shifted running
moments, periodically recomputed running sums) are compared with one-window-at-a-time
computations, on data with ties, flat stretches, NaN/inf holes and every window length.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trading import features as qf
from quantum_trading.features.averages_nb import RESEED_EVERY
from quantum_trading.features.volatility_nb import RECENTRE_EVERY

from ._cases import runs


@st.composite
def series_with_holes(draw: st.DrawFn, max_size: int = 300) -> np.ndarray:
    """Random walk on a 0.25 tick (ties and flat stretches), with NaN/inf holes."""
    n = draw(st.integers(0, max_size))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    steps = rng.choice([-2.0, -1.0, 0.0, 0.0, 0.0, 1.0, 2.0], size=n) * 0.25
    x = 50.0 + np.cumsum(steps)
    for _ in range(draw(st.integers(0, 5))):
        if n:
            x[draw(st.integers(0, n - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return x


def brute_force(x: np.ndarray, period: int, reduce: Callable[[np.ndarray], float]) -> np.ndarray:
    """``reduce(window)`` for every full window of every finite run of ``x``; NaN elsewhere."""
    out = np.full(x.shape, np.nan)
    for start, stop in runs(np.isfinite(x)):
        for i in range(start + period - 1, stop):
            out[i] = reduce(x[i - period + 1 : i + 1])
    return out


@settings(max_examples=150, deadline=None)
@given(x=series_with_holes(), period=st.integers(1, 40), other=series_with_holes())
def test_donchian_is_the_window_max_and_min(x: np.ndarray, period: int, other: np.ndarray) -> None:
    high = pd.Series(x)
    low = pd.Series(x - 1.0)
    dc = qf.donchian_channel(high, low, period)
    np.testing.assert_array_equal(dc["dc_upper"], brute_force(x, period, np.max))
    np.testing.assert_array_equal(dc["dc_lower"], brute_force(x - 1.0, period, np.min))
    # holes in high and low at different bars: a bar counts only when both are finite
    m = min(len(x), len(other))
    h, lo = x[:m], other[:m] - 1.0
    dc = qf.donchian_channel(pd.Series(h), pd.Series(lo), period)
    both = np.where(np.isfinite(h) & np.isfinite(lo), 0.0, np.nan)
    np.testing.assert_array_equal(dc["dc_upper"], brute_force(h + both, period, np.max))
    np.testing.assert_array_equal(dc["dc_lower"], brute_force(lo + both, period, np.min))


@settings(max_examples=150, deadline=None)
@given(
    x=series_with_holes(),
    period=st.integers(1, 40),
    q=st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0.0, 1.0)),
)
def test_rolling_quantile_is_the_window_quantile(x: np.ndarray, period: int, q: float) -> None:
    ours = qf.rolling_quantile(pd.Series(x), period, q).to_numpy()
    ref = brute_force(x, period, lambda w: np.quantile(w, q))
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=0.0)


@settings(max_examples=150, deadline=None)
@given(x=series_with_holes(), period=st.integers(2, 40), ddof=st.sampled_from([0, 1]))
def test_rolling_moments_against_two_pass(x: np.ndarray, period: int, ddof: int) -> None:
    def zscore(w: np.ndarray) -> float:
        sd = w.std(ddof=ddof)
        return np.nan if w.max() == w.min() else (w[-1] - w.mean()) / sd

    ours = qf.rolling_zscore(pd.Series(x), period, ddof).to_numpy()
    np.testing.assert_allclose(ours, brute_force(x, period, zscore), rtol=1e-9, atol=1e-9)
    bb = qf.bollinger_bands(pd.Series(x), period, 2.0, 1.0)
    middle = brute_force(x, period, np.mean)
    std = brute_force(x, period, lambda w: 0.0 if w.max() == w.min() else w.std())
    np.testing.assert_allclose(bb["bb_middle"], middle, rtol=1e-12)
    np.testing.assert_allclose(bb["bb_upper"], middle + 2.0 * std, rtol=1e-12)
    np.testing.assert_allclose(bb["bb_lower"], middle - std, rtol=1e-12)


@settings(max_examples=100, deadline=None)
@given(x=series_with_holes(), period=st.integers(1, 30))
def test_moving_averages_against_brute_force(x: np.ndarray, period: int) -> None:
    s = pd.Series(x)
    np.testing.assert_allclose(qf.sma(s, period), brute_force(x, period, np.mean), rtol=1e-12)
    weights = np.arange(1, period + 1, dtype=float)
    wma = brute_force(x, period, lambda w: np.dot(w, weights) / weights.sum())
    np.testing.assert_allclose(qf.wma(s, period), wma, rtol=1e-12)


def test_running_sums_forget_a_huge_outlier() -> None:
    """Recomputing the window sums bounds the rounding residue a huge value leaves behind."""
    x = np.ones(3 * RESEED_EVERY)
    x[10] = 1e15
    bars = pd.DataFrame({"high": x, "low": x, "close": x, "volume": x})
    period = 5
    after = 10 + max(period, RESEED_EVERY) + period
    sma = qf.sma(bars["close"], period).to_numpy()
    wma = qf.wma(bars["close"], period).to_numpy()
    vwap = qf.rolling_vwap(bars["high"], bars["low"], bars["close"], bars["volume"], period)
    assert (sma[after:] == 1.0).all()
    assert (wma[after:] == 1.0).all()
    assert (vwap.to_numpy()[after:] == 1.0).all()
    y = 1.0 + np.arange(x.size) % 2.0
    y[10] = 1e15
    z = qf.rolling_zscore(pd.Series(y), period).to_numpy()
    clean = qf.rolling_zscore(pd.Series(y[11:]), period).to_numpy()
    after = 10 + max(period, RECENTRE_EVERY) + period
    np.testing.assert_allclose(z[after:], clean[after - 11 :], rtol=1e-12)


def test_long_series_stay_accurate() -> None:
    """Many reseeds and re-centrings along a 200k-bar random walk keep 1e-12 accuracy."""
    rng = np.random.default_rng(7)
    x = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, 200_000)))
    s = pd.Series(x)
    period = 50
    ref_mean = s.rolling(period).mean().to_numpy()
    np.testing.assert_allclose(qf.sma(s, period), ref_mean, rtol=1e-12)
    tail = x[-period:]
    bb = qf.bollinger_bands(s, period, 2.0, 2.0).iloc[-1]
    assert bb["bb_middle"] == pytest.approx(tail.mean(), rel=1e-13)
    assert (bb["bb_upper"] - bb["bb_middle"]) / 2.0 == pytest.approx(tail.std(), rel=1e-10)


def test_constant_windows() -> None:
    x = pd.Series([5.0] * 12 + [6.0] + [6.0] * 8)
    bb = qf.bollinger_bands(x, 5)
    assert (bb["bb_upper"].iloc[4:12] == 5.0).all()
    assert bb["bb_percent_b"].iloc[4:12].isna().all()
    assert (bb["bb_bandwidth"].iloc[4:12] == 0.0).all()
    assert qf.rolling_zscore(x, 5).iloc[4:12].isna().all()
    assert qf.rsi(x, 5).iloc[5:12].eq(0.0).all()  # no move at all: TA-Lib's 0
    assert qf.realised_volatility(x, 3).iloc[3:12].eq(0.0).all()
    st_k = qf.stochastic(x, x, x, 3, 1, 1)["stoch_k"]
    assert st_k.iloc[2:12].eq(0.0).all()  # zero range: TA-Lib's 0


def test_vwap_of_a_window_without_volume_is_nan() -> None:
    """After traded bars leave the window, an all-zero-volume window gives NaN, not residue."""
    volume = pd.Series([0.3, 0.7, 0.1, 0.0, 0.0, 0.0, 0.0, 0.2])
    price = pd.Series([101.3, 99.9, 100.7, 100.1, 100.2, 100.3, 100.4, 100.5])
    vwap = qf.rolling_vwap(price, price, price, volume, 3)
    assert vwap.iloc[2] == pytest.approx((101.3 * 0.3 + 99.9 * 0.7 + 100.7 * 0.1) / 1.1)
    assert vwap.iloc[3:5].notna().all()
    assert vwap.iloc[5:7].isna().all()
    assert vwap.iloc[7] == pytest.approx(100.5)
