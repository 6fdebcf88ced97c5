"""The function adapter: Series / DataFrame / Signals outputs, bad outputs, wrapped errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantum_trading.domain import Signals, StopSpec
from quantum_trading.errors import ConfigError
from quantum_trading.strategies import (
    FloatParam,
    FunctionStrategy,
    IntParam,
    Strategy,
    StrategyError,
    strategy_from_function,
)

from ._helpers import make_bars


def _rising(df: pd.DataFrame, lookback: int = 3) -> pd.Series:
    return (df["close"] > df["close"].shift(lookback)).astype(float)


@pytest.fixture
def df() -> pd.DataFrame:
    return make_bars([10.0, 11, 12, 11, 10, 12, 13, 9])


def test_series_output(df):
    strat = strategy_from_function(_rising, {"lookback": IntParam(1, 5, default=3)})
    assert isinstance(strat, Strategy) and strat.name == "_rising"
    sig = strat.signals(df, lookback=1)
    assert isinstance(sig, Signals)
    assert sig.target.columns.tolist() == ["_rising"]
    assert sig.target["_rising"].tolist() == [0.0, 1, 1, 0, 0, 1, 1, 0]
    assert strat.signals(df).target["_rising"].tolist() == _rising(df, 3).tolist()


def test_params_validated_before_call(df):
    calls = []

    def f(df, k=1.0):
        calls.append(k)
        return df["close"] * 0.0

    strat = strategy_from_function(f, {"k": FloatParam(0.5, 2.0, default=1.0)}, name="f")
    with pytest.raises(ConfigError, match=r"parameter k: 3\.0 is out of range"):
        strat.signals(df, k=3.0)
    with pytest.raises(ConfigError, match="unknown parameter 'j'"):
        strat.signals(df, j=1)
    assert calls == []
    strat.signals(df)
    assert calls == [1.0]


def test_fractions_bools_arrays_and_symbol_name(df):
    frac = strategy_from_function(lambda d: d["close"] * 0 + 0.5, name="half")
    assert set(frac.signals(df).target["half"]) == {0.5}
    boolean = strategy_from_function(lambda d: d["close"] > 11, name="b")
    assert boolean.signals(df).target["b"].tolist() == [0, 0, 1, 0, 0, 1, 1, 0]
    arr = strategy_from_function(lambda d: np.zeros(len(d)), name="arr")
    assert arr.signals(df).target["arr"].sum() == 0
    df.attrs["symbol"] = "ETH/USDT:USDT"
    assert frac.signals(df).target.columns.tolist() == ["ETH/USDT:USDT"]


def test_input_is_a_copy(df):
    def scribble(d):
        d["close"] = 0.0
        d["extra"] = 1.0
        return d["close"]

    before = df.copy()
    strategy_from_function(scribble).signals(df)
    pd.testing.assert_frame_equal(df, before)


def test_dataframe_output_for_many_assets(df):
    def pair(data):
        return pd.DataFrame({sym: (f["close"] > 11).astype(float) for sym, f in data.items()})

    strat = strategy_from_function(pair)
    other = df.assign(close=df["close"][::-1].to_numpy())
    sig = strat.signals({"A": df, "B": other})
    assert sig.target.columns.tolist() == ["A", "B"]
    assert sig.target["B"].tolist() == (other["close"] > 11).astype(float).tolist()

    def wrong_cols(data):
        return pd.DataFrame({"A": df["close"] * 0})

    with pytest.raises(StrategyError, match=r"returned columns \['A'\], expected the symbols"):
        strategy_from_function(wrong_cols).signals({"A": df, "B": other})
    with pytest.raises(StrategyError, match="expected a DataFrame with one column per symbol"):
        strategy_from_function(lambda d: 1.0, name="s").signals({"A": df, "B": other})


def test_signals_output_passes_through(df):
    def with_stops(d):
        return Signals((d["close"] > 11).astype(float), stop_loss=StopSpec.fraction(0.01))

    sig = strategy_from_function(with_stops).signals(df)
    assert sig.stop_loss.value == 0.01

    def bad(d):
        return Signals(d["close"] * 5.0)

    with pytest.raises(StrategyError, match=r"target 50\.0 at bar 0"):
        strategy_from_function(bad).signals(df)


def test_user_exception_is_wrapped(df):
    def buggy(d, lookback=3):
        return d["clsoe"].shift(lookback)

    strat = strategy_from_function(buggy, {"lookback": IntParam(1, 5, default=3)})
    with pytest.raises(StrategyError, match=r"strategy 'buggy': raised KeyError: 'clsoe'") as info:
        strat.signals(df)
    assert isinstance(info.value.__cause__, KeyError)
    assert info.value.strategy == "buggy"


@pytest.mark.parametrize(
    ("func", "pattern"),
    [
        (lambda d: d["close"].iloc[1:] * 0, r"returned 7 rows for 8 bars"),
        (lambda d: (d["close"] * 0).reset_index(drop=True),
         r"output index differs from the data's index at position 0"),
        (lambda d: (d["close"] * 0).set_axis(d.index.shift(1, freq="h")),
         r"at position 0 \(2024-01-01 01:00:00\+00:00 instead of 2024-01-01 00:00:00\+00:00\)"),
        (lambda d: d["close"].rolling(3).mean() * 0,
         r"target NaN at bar 0 \(2024-01-01 00:00:00\+00:00\) in column 'f'.*fill the warm-up"),
        (lambda d: d["close"] - 10.0, r"target 2.0 at bar 2 .*within ±1"),
        (lambda d: d["close"] * np.inf, r"target inf at bar 0"),
        (lambda d: d["close"].astype(str), r"dtype (object|str).*expected numbers"),
        (lambda d: [0.0] * len(d), r"returned list, expected a pandas Series"),
        (lambda d: np.zeros((len(d), 2)), r"array of shape \(8, 2\), expected \(8,\)"),
        (lambda d: d[["close", "open"]] * 0, r"DataFrame with 2 columns for one asset"),
    ],
)
def test_bad_outputs(df, func, pattern):
    with pytest.raises(StrategyError, match=pattern):
        FunctionStrategy(func, name="f").signals(df)


def test_nan_and_leverage_when_allowed(df):
    strat = FunctionStrategy(lambda d: (d["close"] - 10.0).where(d["close"] > 11), name="f",
                             allow_nan=True, max_abs_target=3.0)
    target = strat.signals(df).target["f"]
    assert target.isna().sum() == 5 and target.max() == 3.0


def test_constructor_checks():
    with pytest.raises(ConfigError, match="callable"):
        FunctionStrategy(3)
    with pytest.raises(ConfigError, match="max_abs_target"):
        FunctionStrategy(_rising, max_abs_target=0)
    assert "lookback" not in FunctionStrategy(_rising).params  # nothing declared
