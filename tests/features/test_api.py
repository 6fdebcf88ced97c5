"""The pandas API: argument checks, names, index handling, and the docstring examples."""

from __future__ import annotations

import doctest
import importlib
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from quantum_trading import features as qf


@pytest.fixture
def bars(eth_1h: pd.DataFrame) -> pd.DataFrame:
    return eth_1h.iloc[:300]


@pytest.mark.parametrize("module", ["indicators", "volatility", "thresholds"])
def test_docstring_examples(module: str) -> None:
    mod = importlib.import_module(f"quantum_trading.features.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_every_public_function_has_an_example_and_timing() -> None:
    for name in qf.__all__:
        doc = getattr(qf, name).__doc__
        assert ">>> " in doc, name
        assert "bar t" in doc, name


def test_outputs_keep_the_index_and_are_named(bars: pd.DataFrame) -> None:
    h, lo, c, v = bars["high"], bars["low"], bars["close"], bars["volume"]
    series = {
        "sma_10": qf.sma(c, 10),
        "ema_10": qf.ema(c, 10),
        "wma_10": qf.wma(c, 10),
        "rsi_14": qf.rsi(c),
        "true_range": qf.true_range(h, lo, c),
        "atr_14": qf.atr(h, lo, c),
        "obv": qf.obv(c, v),
        "vwap_14": qf.rolling_vwap(h, lo, c, v),
        "zscore_20": qf.rolling_zscore(c),
        "rv_20": qf.realised_volatility(c),
        "q0.9_50": qf.rolling_quantile(c, 50, 0.9),
    }
    for name, out in series.items():
        assert isinstance(out, pd.Series)
        assert out.name == name
        assert out.index.equals(bars.index)
        assert out.dtype == np.float64
    frames = {
        ("macd", "macd_signal", "macd_hist"): qf.macd(c),
        ("bb_upper", "bb_middle", "bb_lower", "bb_percent_b", "bb_bandwidth"): qf.bollinger_bands(
            c
        ),
        ("adx", "plus_di", "minus_di"): qf.adx(h, lo, c),
        ("stoch_k", "stoch_d"): qf.stochastic(h, lo, c),
        ("dc_upper", "dc_middle", "dc_lower"): qf.donchian_channel(h, lo),
        ("threshold_upper", "threshold_lower"): qf.adaptive_thresholds(c, 50),
    }
    for columns, out in frames.items():
        assert tuple(out.columns) == columns
        assert out.index.equals(bars.index)
        assert (out.dtypes == np.float64).all()


def test_inputs_are_not_modified(bars: pd.DataFrame) -> None:
    before = bars.copy()
    qf.bollinger_bands(bars["close"], 20)
    qf.stochastic(bars["high"], bars["low"], bars["close"])
    qf.adaptive_thresholds(bars["close"], 20)
    pd.testing.assert_frame_equal(bars, before)


def test_integer_and_nullable_inputs_are_converted() -> None:
    ints = pd.Series([1, 2, 3, 4])
    pd.testing.assert_series_equal(qf.sma(ints, 2), qf.sma(ints.astype(float), 2))
    nullable = pd.Series([1.0, None, 3.0, 4.0, 5.0], dtype="Float64")
    assert qf.sma(nullable, 2).tolist()[3:] == [3.5, 4.5]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: qf.sma(c, 0), "period must be an integer in [1, 100000], got 0"),
        (lambda c: qf.ema(c, 2.5), "period must be an integer in [1, 100000], got 2.5"),
        (lambda c: qf.wma(c, True), "period must be an integer"),
        (lambda c: qf.sma(c, "3"), "period must be an integer"),
        (lambda c: qf.rsi(c, 1), "period must be an integer in [2, 100000], got 1"),
        (lambda c: qf.macd(c, 26, 12), "fast_period must be an integer in [1, 11], got 26"),
        (lambda c: qf.macd(c, 12, 26, 0), "signal_period must be an integer in [1, 100000]"),
        (lambda c: qf.bollinger_bands(c, 1), "period must be an integer in [2, 100000], got 1"),
        (lambda c: qf.bollinger_bands(c, 5, -1.0), "nbdev_up must be a number >= 0"),
        (lambda c: qf.bollinger_bands(c, 5, 2.0, np.nan), "nbdev_dn must be a finite number"),
        (lambda c: qf.rolling_zscore(c, 1), "period must be an integer in [2, 100000], got 1"),
        (lambda c: qf.rolling_zscore(c, 5, 2), "ddof must be an integer in [0, 1], got 2"),
        (
            lambda c: qf.realised_volatility(c, 20, periods_per_year=0),
            "periods_per_year must be a number > 0",
        ),
        (
            lambda c: qf.realised_volatility(c, 20, periods_per_year=np.inf),
            "periods_per_year must be a finite number",
        ),
        (lambda c: qf.rolling_quantile(c, 10, 1.5), "q must be a number >= 0 and <= 1, got 1.5"),
        (
            lambda c: qf.adaptive_thresholds(c, 10, 0.2, 0.8),
            "lower_q must be a number >= 0 and <= 0.2, got 0.8",
        ),
        (lambda c: qf.adx(c, c, c, 1), "period must be an integer in [2, 100000], got 1"),
        (lambda c: qf.stochastic(c, c, c, 0), "fastk_period must be an integer in [1, 100000]"),
        (lambda c: qf.donchian_channel(c, c, 0), "period must be an integer in [1, 100000]"),
        (lambda c: qf.atr(c, c, c, 100_001), "period must be an integer in [1, 100000]"),
    ],
)
def test_bad_arguments_name_the_argument_and_range(
    call: Callable[[pd.Series], object], message: str, bars: pd.DataFrame
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call(bars["close"])


def test_inputs_must_be_numeric_series_on_one_index(bars: pd.DataFrame) -> None:
    with pytest.raises(TypeError, match="close must be a pandas Series, got ndarray"):
        qf.sma(bars["close"].to_numpy(), 5)
    with pytest.raises(ValueError, match="close must hold numbers, got dtype"):
        qf.sma(pd.Series(["a", "b", "c"]), 2)
    shifted = bars["low"].copy()
    shifted.index = shifted.index + pd.Timedelta(hours=1)
    with pytest.raises(ValueError, match="high, low, close must share one index; low differs"):
        qf.atr(bars["high"], shifted, bars["close"])
    with pytest.raises(ValueError, match="close, volume must share one index"):
        qf.obv(bars["close"], bars["volume"].iloc[:-1])
