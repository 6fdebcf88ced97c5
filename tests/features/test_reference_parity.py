"""Parity of the indicators TA-Lib lacks with ``ta``, pandas and exact numpy references.

VWAP, Donchian channel and rolling quantiles equal ``ta`` / pandas to 1e-9 of the series'
scale. For %b, bandwidth, z-score and realised volatility the tight reference is an exact
two-pass computation per window (numpy ``sliding_window_view``); ``ta`` and pandas use
pandas' one-pass rolling variance, which loses digits on prices (measured up to 4e-4 absolute
on BTC 1m with 5-bar windows), so they are compared with a looser, stated tolerance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
from numpy.lib.stride_tricks import sliding_window_view
from ta.volatility import BollingerBands, DonchianChannel
from ta.volume import VolumeWeightedAveragePrice

from quantum_trading import features as qf

from .test_talib_parity import assert_parity


def window_mean_std(values: np.ndarray, period: int, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact-as-possible rolling mean and std: two passes over every window."""
    mean = np.full(values.shape, np.nan)
    std = np.full(values.shape, np.nan)
    windows = sliding_window_view(values, period)
    mu = windows.mean(axis=1)
    sd = np.sqrt(((windows - mu[:, None]) ** 2).sum(axis=1) / (period - ddof))
    constant = windows.max(axis=1) == windows.min(axis=1)  # exactly 0, not a rounding residue
    mean[period - 1 :] = np.where(constant, windows[:, 0], mu)
    std[period - 1 :] = np.where(constant, 0.0, sd)
    return mean, std


def assert_close_where_defined(ours: pd.Series, ref: pd.Series, atol: float, what: str) -> None:
    """Same NaN positions, and ``|ours - ref| <= atol`` elsewhere."""
    a = ours.to_numpy()
    b = ref.to_numpy()
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{what}: NaN placement")
    ok = ~np.isnan(b)
    worst = float(np.max(np.abs(a[ok] - b[ok])))
    assert worst <= atol, f"{what}: max error {worst:.3e} > {atol:.1e}"


@pytest.mark.parametrize("period", [1, 14, 60])
def test_vwap_matches_ta(bars: pd.DataFrame, period: int) -> None:
    ours = qf.rolling_vwap(bars["high"], bars["low"], bars["close"], bars["volume"], period)
    ref = VolumeWeightedAveragePrice(
        bars["high"], bars["low"], bars["close"], bars["volume"], window=period
    ).volume_weighted_average_price()
    assert_parity(ours, ref.to_numpy(), f"VWAP({period})")


@pytest.mark.parametrize("period", [1, 2, 5, 20, 100])
def test_donchian_matches_ta(bars: pd.DataFrame, period: int) -> None:
    ours = qf.donchian_channel(bars["high"], bars["low"], period)
    ref = DonchianChannel(bars["high"], bars["low"], bars["close"], window=period)
    np.testing.assert_array_equal(ours["dc_upper"], ref.donchian_channel_hband())
    np.testing.assert_array_equal(ours["dc_lower"], ref.donchian_channel_lband())
    # ta computes the midpoint as lower + (upper - lower) / 2: equal up to rounding
    assert_parity(ours["dc_middle"], ref.donchian_channel_mband().to_numpy(), "middle")


@pytest.mark.parametrize("period", [5, 20, 50])
def test_percent_b_and_bandwidth(bars: pd.DataFrame, period: int) -> None:
    close = bars["close"]
    ours = qf.bollinger_bands(close, period, 2.0, 2.0)
    # 1) the definition, on TA-Lib's bands: (close - lower) / (upper - lower), (u - l) / m
    upper, middle, lower = talib.BBANDS(close.to_numpy(), period, 2.0, 2.0, 0)
    span = upper - lower
    with np.errstate(invalid="ignore", divide="ignore"):
        pct_b = np.where(span != 0.0, (close.to_numpy() - lower) / span, np.nan)
    assert_parity(ours["bb_bandwidth"], span / middle, "bandwidth vs TA-Lib bands")
    # %b is ill-conditioned where the bands are narrow: compare at the precision the bands
    # have (1e-9 of the price) divided by the band width
    ok = ~np.isnan(pct_b)
    np.testing.assert_array_equal(np.isnan(ours["bb_percent_b"]), ~ok)
    err = np.abs(ours["bb_percent_b"].to_numpy()[ok] - pct_b[ok])
    assert np.all(err <= 1e-9 * np.nanmax(upper) / span[ok])
    # 2) exact two-pass reference, in every window that is not constant
    mean, std = window_mean_std(close.to_numpy(), period, ddof=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        exact_b = (close.to_numpy() - (mean - 2 * std)) / (4 * std)
    varying = ok & (std > 0.0)
    assert_parity(ours["bb_percent_b"].to_numpy()[varying], exact_b[varying], "%b vs exact")
    # 3) ta: same definitions (pband, wband in %), pandas' rolling std
    ref = BollingerBands(close, window=period, window_dev=2)
    atol = 1e-3 if len(bars) > 5000 else 1e-7  # pandas' one-pass std on minute bars
    both = ref.bollinger_pband().notna() & ours["bb_percent_b"].notna()
    assert_close_where_defined(
        ours["bb_percent_b"][both], ref.bollinger_pband()[both], atol, "%b vs ta"
    )
    assert_close_where_defined(
        ours["bb_bandwidth"], ref.bollinger_wband() / 100.0, atol, "bandwidth vs ta"
    )


@pytest.mark.parametrize(("period", "ddof"), [(5, 0), (20, 1), (100, 1)])
def test_rolling_zscore(bars: pd.DataFrame, period: int, ddof: int) -> None:
    x = bars["close"]
    ours = qf.rolling_zscore(x, period, ddof)
    mean, std = window_mean_std(x.to_numpy(), period, ddof)
    flat = std == 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        exact = np.where(flat, np.nan, (x.to_numpy() - mean) / std)
    # every non-constant window, however narrow (the variance keeps ~11 digits)
    np.testing.assert_array_equal(np.isnan(ours.to_numpy()), np.isnan(exact))
    assert_parity(ours.to_numpy(), exact, f"zscore({period}) vs exact")
    pandas_z = (x - x.rolling(period).mean()) / x.rolling(period).std(ddof=ddof)
    both = pandas_z.notna() & np.isfinite(pandas_z) & ours.notna()
    atol = 1e-2 if len(bars) > 5000 else 1e-6
    assert_close_where_defined(ours[both], pandas_z[both], atol, "zscore vs pandas")


@pytest.mark.parametrize(("period", "ppy", "ddof"), [(2, None, 1), (20, 8760.0, 1), (60, None, 0)])
def test_realised_volatility(bars: pd.DataFrame, period: int, ppy: float | None, ddof: int) -> None:
    close = bars["close"]
    ours = qf.realised_volatility(close, period, periods_per_year=ppy, ddof=ddof)
    returns = np.log(close / close.shift(1))
    scale = 1.0 if ppy is None else np.sqrt(ppy)
    ref = returns.rolling(period).std(ddof=ddof) * scale
    # log returns are small and centred: pandas' rolling std is accurate here
    assert_parity(ours, ref.to_numpy(), f"realised_vol({period})")
    _, std = window_mean_std(returns.to_numpy()[1:], period, ddof)
    assert_parity(ours.to_numpy()[1:], std * scale, f"realised_vol({period}) vs exact")


@pytest.mark.parametrize(("period", "q"), [(1, 0.5), (2, 0.3), (20, 0.9), (101, 0.05), (500, 0.5)])
def test_rolling_quantile_matches_pandas(bars: pd.DataFrame, period: int, q: float) -> None:
    for column in ("close", "volume"):
        x = bars[column]
        ours = qf.rolling_quantile(x, period, q)
        assert_parity(ours, x.rolling(period).quantile(q).to_numpy(), f"{column} q{q}")


def test_adaptive_thresholds_of_rsi_and_percent_b(bars: pd.DataFrame) -> None:
    rsi = qf.rsi(bars["close"], 14)
    pct_b = qf.bollinger_bands(bars["close"], 20)["bb_percent_b"]
    for series in (rsi, pct_b):
        ours = qf.adaptive_thresholds(series, 200, 0.95, 0.05)
        # pandas ignores NaNs inside a window; ours restarts after them (the NaN contract),
        # so compare from the first full window after the warm-up
        first = series.first_valid_index()
        start = series.index.get_loc(first) + 199
        for column, q in (("threshold_upper", 0.95), ("threshold_lower", 0.05)):
            ref = series.rolling(200).quantile(q).to_numpy()
            assert_parity(ours[column].to_numpy()[start:], ref[start:], column)
            assert ours[column].iloc[:start].isna().all()
