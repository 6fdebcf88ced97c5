"""The causality check: every library strategy passes on real BTC/ETH bars; look-ahead
strategies are caught at the right bar and column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantum_trading.domain import Signals, StopSpec
from quantum_trading.errors import ConfigError, QuantumError
from quantum_trading.features import atr
from quantum_trading.strategies import (
    LIBRARY,
    CausalityError,
    FunctionStrategy,
    StrategyError,
    check_causality,
    get_strategy,
)

from ._helpers import make_bars

PARAM_SETS = {
    "buy_and_hold": [{}, {"size": 0.5}],
    "momentum_breakout": [
        {},
        {"lookback": 50, "exit_lookback": 20, "volume_factor": 1.2, "direction": "both"},
        {"lookback": 10, "direction": "short", "stop_loss_atr": 2.0, "take_profit_atr": 4.0},
        {"lookback": 200, "volume_factor": 1.0, "stop_loss_pct": 1.5, "take_profit_pct": 3.0},
    ],
    "mean_reversion": [
        {},
        {"bb_period": 10, "nbdev": 1.5, "rsi_threshold": 40, "direction": "both"},
        {"bb_period": 50, "nbdev": 3.0, "rsi_period": 2, "rsi_threshold": 10,
         "stop_loss_atr": 1.0, "atr_period": 30, "direction": "both"},
    ],
    "trend_following": [
        {},
        {"fast": 5, "slow": 20, "direction": "both", "size": 2.0},
        {"fast": 50, "slow": 200, "direction": "short", "take_profit_pct": 2.0,
         "stop_loss_atr": 3.0},
    ],
}
CASES = [(name, p) for name, sets in PARAM_SETS.items() for p in sets]


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}-{i}" for i, (n, _) in
                                                         enumerate(CASES)])
@pytest.mark.parametrize("asset", ["btc", "eth"])
def test_library_strategies_are_causal_on_real_data(name, params, asset, btc_1h, eth_1h):
    data = btc_1h if asset == "btc" else eth_1h
    strat = get_strategy(name)
    cuts = check_causality(strat, data, params=params, cut_points=12)
    assert len(cuts) >= 12 and cuts[-1] == len(data) - 1
    target = strat.signals(data, **params).target
    if name != "buy_and_hold":
        assert target.iloc[:, 0].ne(0).any()  # the rule trades on real data (not vacuous)


@pytest.mark.parametrize("strat", LIBRARY, ids=lambda s: s.name)
def test_library_strategies_are_causal_on_short_prefixes_and_many_assets(strat, btc_1h, eth_1h):
    check_causality(strat, btc_1h, cut_points=[1, 2, 5, 15, 30, 60])
    both = {"BTC/USDT:USDT": btc_1h, "ETH/USDT:USDT": eth_1h}
    params = {} if strat.name == "buy_and_hold" else {"direction": "both", "stop_loss_atr": 2.0}
    check_causality(strat, both, params=params, cut_points=6)


# -- look-ahead strategies ---------------------------------------------------------------------
def _peek_next_close(df: pd.DataFrame) -> pd.Series:
    """Long when the NEXT bar's close is higher: uses bar t+1 at bar t (look-ahead)."""
    return (df["close"].shift(-1) > df["close"]).astype(float)


def test_next_bar_look_ahead_is_caught_at_the_right_bar(btc_1h):
    strat = FunctionStrategy(_peek_next_close, name="peek")
    full = _peek_next_close(btc_1h).to_numpy()
    # On a prefix of t bars, bar t-1 cannot see bar t: it differs exactly where full[t-1] = 1.
    quiet = [t for t in range(400, 700) if full[t - 1] == 0.0][:3]
    loud = [t for t in range(700, 900) if full[t - 1] == 1.0][:2]
    with pytest.raises(CausalityError) as info:
        check_causality(strat, btc_1h, cut_points=[*quiet, *loud])
    err = info.value
    first = loud[0] - 1
    assert (err.position, err.timestamp) == (first, btc_1h.index[first])
    assert err.column == "target[peek]" and err.cut == loud[0]
    assert (err.full_value, err.prefix_value) == (1.0, 0.0)
    msg = str(err)
    assert msg.startswith("strategy 'peek': not causal: target[peek] at bar ")
    assert f"bar {first} ({btc_1h.index[first]})" in msg
    assert isinstance(err, StrategyError) and isinstance(err, QuantumError)


def test_look_ahead_with_default_cuts_reports_the_earliest_bar(eth_1h):
    strat = FunctionStrategy(_peek_next_close, name="peek")
    full = _peek_next_close(eth_1h).to_numpy()
    with pytest.raises(CausalityError) as info:
        cuts = check_causality(strat, eth_1h)
    # brute force over the same default cuts: each prefix run differs only at its last bar
    n = len(eth_1h)
    cuts = sorted({*np.linspace(0, n, 9)[1:].round().astype(int).clip(1, n - 1), n - 1})
    expected = min(t - 1 for t in cuts if full[t - 1] == 1.0)
    assert info.value.position == expected


def test_five_bar_look_ahead_names_first_of_the_changed_bars():
    rng = np.random.default_rng(7)
    df = make_bars(100 + rng.normal(0, 1, 300).cumsum())

    def peek5(d):
        return (d["close"].shift(-5) > d["close"]).astype(float)

    full = peek5(df).to_numpy()
    t = 200
    expected = next(i for i in range(t - 5, t) if full[i] == 1.0)
    with pytest.raises(CausalityError) as info:
        check_causality(FunctionStrategy(peek5), df, cut_points=[t])
    assert info.value.position == expected and info.value.cut == t


def test_full_sample_normalisation_is_caught():
    rng = np.random.default_rng(3)
    df = make_bars(100 + rng.normal(0, 1, 400).cumsum())

    def above_mean(d):  # uses the mean of ALL bars, future included
        return (d["close"] > d["close"].mean()).astype(float)

    with pytest.raises(CausalityError) as info:
        check_causality(FunctionStrategy(above_mean), df, cut_points=[100, 200, 300])
    # brute force: the earliest bar whose value changes on some prefix
    full = above_mean(df).to_numpy()
    firsts = []
    for t in (100, 200, 300):
        part = above_mean(df.iloc[:t]).to_numpy()
        diff = np.nonzero(part != full[:t])[0]
        if len(diff):
            firsts.append(diff[0])
    assert info.value.position == min(firsts)


class _StopLookAhead:
    """Causal target, but a stop distance from NEXT bar's ATR (look-ahead in the stop)."""

    name = "stop_peek"
    params = get_strategy("buy_and_hold").params

    def signals(self, data, **params):
        a = atr(data["high"], data["low"], data["close"], 14)
        return Signals(pd.Series(1.0, index=data.index, name="X"),
                       stop_loss=StopSpec.distance(a.shift(-1)))


def test_look_ahead_in_stop_values_is_caught(btc_1h):
    with pytest.raises(CausalityError) as info:
        check_causality(_StopLookAhead(), btc_1h, cut_points=[300])
    assert info.value.column == "stop_loss" and info.value.position == 299
    assert np.isnan(info.value.prefix_value) and info.value.full_value > 0


def test_look_ahead_in_one_asset_names_its_column(btc_1h, eth_1h):
    def pair(data):
        out = pd.DataFrame({s: (f["close"] > f["close"].rolling(5).mean()).astype(float)
                            for s, f in data.items()})
        out["ETH"] = _peek_next_close(data["ETH"])
        return out

    full_eth = _peek_next_close(eth_1h).to_numpy()
    t = next(t for t in range(500, 600) if full_eth[t - 1] == 1.0)
    with pytest.raises(CausalityError) as info:
        check_causality(FunctionStrategy(pair), {"BTC": btc_1h, "ETH": eth_1h}, cut_points=[t])
    assert info.value.column == "target[ETH]" and info.value.position == t - 1


def test_cut_points_as_timestamps_and_validation(btc_1h):
    strat = get_strategy("trend_following")
    ts = btc_1h.index[100]
    assert check_causality(strat, btc_1h, cut_points=[ts, str(btc_1h.index[200])]) == (101, 201)
    with pytest.raises(ConfigError, match="outside"):
        check_causality(strat, btc_1h, cut_points=[0])
    with pytest.raises(ConfigError, match="before the first bar"):
        check_causality(strat, btc_1h, cut_points=[btc_1h.index[0] - pd.Timedelta("1h")])
    with pytest.raises(ConfigError, match="cut_points must be >= 1"):
        check_causality(strat, btc_1h, cut_points=0)
    with pytest.raises(ConfigError, match="share one index"):
        check_causality(strat, {"A": btc_1h, "B": btc_1h.iloc[1:]})


def test_prefix_output_of_the_wrong_length_is_reported(btc_1h):
    class Stale:
        name = "stale"
        params = get_strategy("buy_and_hold").params
        full_index = btc_1h.index

        def signals(self, data, **params):  # always answers on the full index
            return Signals(pd.Series(1.0, index=self.full_index, name="X"))

    with pytest.raises(CausalityError, match=r"returned 1054 rows for a prefix of 500 bars"):
        check_causality(Stale(), btc_1h, cut_points=[500])


def test_params_are_passed(btc_1h):
    seen = []

    def rule(d, k=1):
        seen.append(k)
        return d["close"] * 0.0

    from quantum_trading.strategies import IntParam

    strat = FunctionStrategy(rule, params={"k": IntParam(1, 9, default=1)})
    check_causality(strat, btc_1h, params={"k": 7}, cut_points=[10, 20])
    assert seen == [7, 7, 7]


class _RandomTrial:
    """An Optuna-like trial answering uniformly at random on the declared grids."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def suggest_int(self, name, low, high, step=1, log=False):
        return int(self.rng.choice(np.arange(low, high + 1, step)))

    def suggest_float(self, name, low, high, *, step=None, log=False):
        return float(self.rng.uniform(low, high))

    def suggest_categorical(self, name, choices):
        return choices[int(self.rng.integers(len(choices)))]


@pytest.mark.parametrize("strat", LIBRARY, ids=lambda s: s.name)
def test_random_parameter_draws_are_causal(strat, eth_1h):
    rng = np.random.default_rng(11)
    trial = _RandomTrial(rng)
    checked = 0
    while checked < 6:
        try:
            params = strat.params.suggest(trial)
        except ConfigError:  # an infeasible draw (fast >= slow)
            continue
        if "direction" in params:
            params["direction"] = str(rng.choice(["long", "short", "both"]))
        check_causality(strat, eth_1h, params=params, cut_points=4)
        checked += 1
