"""The library strategies against a plain pandas re-statement of each rule, on real bars.

The strategies compute their events on numpy arrays with the indicator kernels; the
re-statements here use the pandas indicator API, pandas shifts and comparisons, and a Python
loop for the entry/exit state machine. Targets and stops must be equal bit for bit, for several
parameter sets (default, short / both directions, rule parameters, % and ATR stops), on BTC and
ETH 1h bars, both assets at once, a 300-bar live window, and bars with missing values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from quantum_trading.domain import Signals, StopSpec
from quantum_trading.features import atr, bollinger_bands, donchian_channel, ema, rsi, sma
from quantum_trading.strategies.library import mean_reversion, momentum_breakout, trend_following

Rule = Callable[[pd.DataFrame, Mapping[str, Any]], tuple[pd.Series, ...]]


def _reversion_rule(df: pd.DataFrame, p: Mapping[str, Any]) -> tuple[pd.Series, ...]:
    close = df["close"]
    bb = bollinger_bands(close, p["bb_period"], p["nbdev"], p["nbdev"])
    r = rsi(close, p["rsi_period"])
    thr = p["rsi_threshold"]
    return ((close < bb["bb_lower"]) & (r < thr), close > bb["bb_middle"],
            (close > bb["bb_upper"]) & (r > 100.0 - thr), close < bb["bb_middle"],
            bb["bb_middle"].notna() & r.notna())


def _breakout_rule(df: pd.DataFrame, p: Mapping[str, Any]) -> tuple[pd.Series, ...]:
    close = df["close"]
    upper = donchian_channel(df["high"], df["low"], p["lookback"])["dc_upper"].shift(1)
    lower = donchian_channel(df["high"], df["low"], p["lookback"])["dc_lower"].shift(1)
    exit_upper = donchian_channel(df["high"], df["low"], p["exit_lookback"])["dc_upper"].shift(1)
    exit_lower = donchian_channel(df["high"], df["low"], p["exit_lookback"])["dc_lower"].shift(1)
    vol_mean = sma(df["volume"], p["volume_period"]).shift(1)
    heavy = df["volume"] > p["volume_factor"] * vol_mean
    return ((close > upper) & heavy, close < exit_lower, (close < lower) & heavy,
            close > exit_upper, upper.notna() & exit_upper.notna() & vol_mean.notna())


def _trend_rule(df: pd.DataFrame, p: Mapping[str, Any]) -> tuple[pd.Series, ...]:
    d = ema(df["close"], p["fast"]) - ema(df["close"], p["slow"])
    prev = d.shift(1)
    return (d.gt(0) & prev.le(0), d.lt(0), d.lt(0) & prev.ge(0), d.gt(0), d.notna())


RULES: dict[str, tuple[Any, Rule, dict[str, Any]]] = {
    "mean_reversion": (mean_reversion, _reversion_rule,
                       {"bb_period": 10, "nbdev": 1.5, "rsi_period": 5, "rsi_threshold": 40.0}),
    "momentum_breakout": (momentum_breakout, _breakout_rule,
                          {"lookback": 10, "exit_lookback": 5, "volume_factor": 1.0,
                           "volume_period": 5}),
    "trend_following": (trend_following, _trend_rule, {"fast": 5, "slow": 20}),
}

PARAM_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "short": {"direction": "short"},
    "both_half": {"direction": "both", "size": 0.5},
    "rule_params": {"direction": "both"},  # + the strategy's own non-default parameters
    "pct_stops": {"stop_loss_pct": 2.0, "take_profit_pct": 5.0},
    "atr_stops": {"direction": "both", "stop_loss_atr": 2.0, "take_profit_atr": 3.0,
                  "atr_period": 7},
    "atr_stop_short": {"direction": "short", "stop_loss_atr": 1.5},
}


def _positions(long_entry: np.ndarray, long_exit: np.ndarray, short_entry: np.ndarray,
               short_exit: np.ndarray) -> list[float]:
    """The entry/exit state machine, bar by bar: exits (or an opposite entry) close, then a
    lone entry opens when flat."""
    pos, out = 0.0, []
    for le, lx, se, sx in zip(long_entry, long_exit, short_entry, short_exit, strict=True):
        if (pos > 0 and (lx or se)) or (pos < 0 and (sx or le)):
            pos = 0.0
        if pos == 0.0 and le != se:
            pos = 1.0 if le else -1.0
        out.append(pos)
    return out


def _expected_asset(df: pd.DataFrame, rule: Rule, p: Mapping[str, Any]
                    ) -> tuple[pd.Series, pd.Series | None]:
    """Target of one asset by the re-stated rule, and its ATR (NaN where not > 0) if used."""
    long_entry, long_exit, short_entry, short_exit, ready = rule(df, p)
    atr_values = None
    if p["stop_loss_atr"] > 0 or p["take_profit_atr"] > 0:
        raw = atr(df["high"], df["low"], df["close"], p["atr_period"])
        ready = ready & (raw > 0)
        atr_values = raw.where(raw > 0)
    flags = [s.fillna(False).astype(bool).to_numpy() for s in
             (long_entry, long_exit, short_entry, short_exit, ready)]
    le, lx, se, sx, ok = flags
    le = le & ok if p["direction"] != "short" else np.zeros(len(df), dtype=bool)
    se = se & ok if p["direction"] != "long" else np.zeros(len(df), dtype=bool)
    target = pd.Series(_positions(le, lx, se, sx), index=df.index) * p["size"] + 0.0
    return target, atr_values


def _expected_stop(p: Mapping[str, Any], which: str, atrs: list[pd.Series | None],
                   symbols: list[str]) -> StopSpec | None:
    pct, mult = p[f"{which}_pct"], p[f"{which}_atr"]
    if pct > 0:
        return StopSpec.fraction(pct / 100.0)
    if mult <= 0:
        return None
    if len(symbols) == 1:
        return StopSpec.atr(mult, atrs[0])
    frame = pd.DataFrame({s: a * mult for s, a in zip(symbols, atrs, strict=True)})
    return StopSpec.distance(frame)


def _bits(x: pd.Series | pd.DataFrame) -> np.ndarray:
    return np.ascontiguousarray(x.to_numpy(dtype=np.float64)).view(np.int64)


def _assert_same_stop(got: StopSpec | None, want: StopSpec | None) -> None:
    if want is None:
        assert got is None
        return
    assert got is not None and got.kind == want.kind
    if isinstance(want.value, pd.Series | pd.DataFrame):
        assert type(got.value) is type(want.value)
        assert got.value.index.equals(want.value.index)
        assert np.array_equal(_bits(got.value), _bits(want.value))
    else:
        assert got.value == want.value


@pytest.fixture(scope="module")
def datasets(btc_1h: pd.DataFrame, eth_1h: pd.DataFrame) -> dict[str, Any]:
    gaps = btc_1h.copy()
    gaps.iloc[100:103, gaps.columns.get_loc("close")] = np.nan
    gaps.iloc[400, gaps.columns.get_loc("high")] = np.nan
    gaps.iloc[600, gaps.columns.get_loc("volume")] = np.nan
    return {"btc": btc_1h, "eth": eth_1h, "both": {"BTC": btc_1h, "ETH": eth_1h},
            "live_window": btc_1h.iloc[-300:], "gaps": gaps}


@pytest.mark.parametrize("data_name", ["btc", "eth", "both", "live_window", "gaps"])
@pytest.mark.parametrize("set_name", list(PARAM_SETS))
@pytest.mark.parametrize("strategy_name", list(RULES))
def test_library_equals_pandas_restatement(datasets: dict[str, Any], strategy_name: str,
                                           set_name: str, data_name: str) -> None:
    strategy, rule, rule_params = RULES[strategy_name]
    given = dict(PARAM_SETS[set_name], **(rule_params if set_name == "rule_params" else {}))
    p = strategy.params.validate(given)
    data = datasets[data_name]
    frames = data if isinstance(data, dict) else {strategy_name: data}
    symbols = list(frames)
    per_asset = [_expected_asset(f, rule, p) for f in frames.values()]
    target = pd.DataFrame({s: t.to_numpy() for s, (t, _) in zip(symbols, per_asset, strict=True)},
                          index=next(iter(frames.values())).index)
    atrs = [a for _, a in per_asset]

    got: Signals = strategy.signals(data, **given)

    assert got.target.columns.tolist() == symbols
    assert got.target.index.equals(target.index)
    assert np.array_equal(_bits(got.target), _bits(target))
    _assert_same_stop(got.stop_loss, _expected_stop(p, "stop_loss", atrs, symbols))
    _assert_same_stop(got.take_profit, _expected_stop(p, "take_profit", atrs, symbols))


@pytest.mark.parametrize("strategy_name", list(RULES))
def test_restatement_cases_trade(datasets: dict[str, Any], strategy_name: str) -> None:
    """The comparison above is not vacuous: on BTC each strategy takes long and short
    positions (direction "both", its non-default parameters)."""
    strategy, _, rule_params = RULES[strategy_name]
    target = strategy.signals(datasets["btc"], direction="both", **rule_params).target
    values = target.iloc[:, 0].to_numpy()
    assert (values > 0).sum() > 10 and (values < 0).sum() > 10
