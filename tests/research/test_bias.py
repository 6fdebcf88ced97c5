"""Bias checks: look-ahead refused before optimisation, permuted paths, permutation test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantum_trading.errors import ConfigError
from quantum_trading.research.bias import (
    LookAheadError,
    permutation_test,
    permuted_bars,
    require_causal,
)
from quantum_trading.strategies import CausalityError, IntParam, strategy_from_function

from ._bars import noise_bars
from ._bars import trending_bars as make_trending_bars

TREND_PARAMS = {"fast": 10, "slow": 50, "direction": "both"}


@pytest.fixture(scope="module")
def trending_bars() -> pd.DataFrame:
    """Long, strong trends: a planted edge for trend following."""
    return make_trending_bars()


# --------------------------------------------------------------------------------------------
# require_causal
# --------------------------------------------------------------------------------------------

def test_require_causal_passes_causal_strategies(trending_bars):
    bars = trending_bars.iloc[:600]
    assert require_causal("trend_following", bars, params=TREND_PARAMS) == (
        75, 150, 225, 300, 375, 450, 525, 599)
    sma = strategy_from_function(
        lambda df, period=20: (df["close"] > df["close"].rolling(period).mean()).astype(float),
        {"period": IntParam(5, 100, default=20)}, name="above_sma")
    assert require_causal(sma, bars, params={"period": 30}, cut_points=[100, 400]) == (100, 400)


def test_require_causal_refuses_a_peek_at_the_next_close():
    idx = pd.date_range("2024-01-01", periods=300, freq="1h", tz="UTC")
    close = pd.Series(100.0 + np.arange(300.0), index=idx)  # every bar closes higher
    df = pd.DataFrame({"open": close - 0.5, "high": close + 1, "low": close - 1,
                       "close": close, "volume": 1.0})

    def peek(df: pd.DataFrame) -> pd.Series:
        return (df["close"].shift(-1) > df["close"]).astype(float)

    with pytest.raises(LookAheadError) as info:
        require_causal(peek, df, cut_points=[250, 120, 200])
    err = info.value
    assert isinstance(err, CausalityError)
    # on the first 120 bars the last one cannot see bar 120: it is the first bar that differs
    assert err.position == 119 and err.timestamp == idx[119]
    assert err.cut == 120 and err.full_value == 1.0 and err.prefix_value == 0.0
    assert err.strategy == "peek" and err.column == "target[peek]"
    assert "bar 119" in str(err) and "refused (look-ahead)" in str(err)
    assert isinstance(err.__cause__, CausalityError)


def test_require_causal_refuses_full_sample_normalisation():
    rng = np.random.default_rng(5)
    idx = pd.date_range("2024-01-01", periods=400, freq="1h", tz="UTC")
    close = pd.Series(100.0 * np.exp(np.cumsum(0.01 * rng.standard_normal(400))), index=idx)
    df = pd.DataFrame({"open": close, "high": close, "low": close, "close": close,
                       "volume": 1.0})

    def above_mean(df: pd.DataFrame) -> pd.Series:
        return (df["close"] > df["close"].mean()).astype(float)  # the whole sample's mean

    cuts = [100, 200, 300]
    full = (close > close.mean()).to_numpy()
    firsts = []
    for t in cuts:
        part = (close.iloc[:t] > close.iloc[:t].mean()).to_numpy()
        diff = np.flatnonzero(part != full[:t])
        if len(diff):
            firsts.append(int(diff[0]))
    assert firsts, "the example must look ahead somewhere"
    with pytest.raises(LookAheadError) as info:
        require_causal(above_mean, df, cut_points=cuts)
    assert info.value.position == min(firsts)
    assert info.value.timestamp == idx[min(firsts)]


# --------------------------------------------------------------------------------------------
# permuted_bars
# --------------------------------------------------------------------------------------------

def _shapes(df: pd.DataFrame) -> np.ndarray:
    o = df["open"].to_numpy()
    gap = np.r_[np.nan, np.log(o[1:] / df["close"].to_numpy()[:-1])]
    return np.column_stack([gap, np.log(df["close"] / o), np.log(df["high"] / o),
                            np.log(df["low"] / o), df["volume"]])


@pytest.mark.parametrize("method", ["returns_shuffle", "block_shuffle", "block_bootstrap"])
def test_permuted_bars_keep_each_bar_shape(trending_bars, method):
    bars = trending_bars.iloc[:500].copy()
    bars["funding_rate"] = np.linspace(0.0, 1e-4, 500)
    out = permuted_bars(bars, seed=3, method=method, block_size=20)
    assert out.index.equals(bars.index) and list(out.columns) == list(bars.columns)
    pd.testing.assert_series_equal(out.iloc[0], bars.iloc[0], check_names=False)
    np.testing.assert_array_equal(out["funding_rate"], bars["funding_rate"])  # stays in place
    assert (out["high"] >= np.maximum(out["open"], out["close"])).all()
    assert (out["low"] <= np.minimum(out["open"], out["close"])).all()
    # every rebuilt bar is one of the original bars 1..T-1 (gap, body, extremes, volume)
    src, new = _shapes(bars)[1:], _shapes(out)[1:]
    lookup = {tuple(np.round(row, 9)) for row in src}
    assert all(tuple(np.round(row, 9)) in lookup for row in new)
    if method != "block_bootstrap":  # a permutation: the same bars once each, same end price
        np.testing.assert_allclose(np.sort(new[:, 1]), np.sort(src[:, 1]), atol=1e-12)
        assert out["close"].iloc[-1] == pytest.approx(bars["close"].iloc[-1], rel=1e-10)
    assert not np.allclose(out["close"], bars["close"])


def test_permuted_bars_are_reproducible_and_blocks_stay_together(trending_bars):
    bars = trending_bars.iloc[:300]
    a = permuted_bars(bars, seed=7)
    pd.testing.assert_frame_equal(a, permuted_bars(bars, seed=7))
    assert not a["close"].equals(permuted_bars(bars, seed=8)["close"])
    out = permuted_bars(bars, seed=1, method="block_shuffle", block_size=50)
    body = np.log(out["close"] / out["open"]).to_numpy()[1:]
    src = np.log(bars["close"] / bars["open"]).to_numpy()[1:]
    blocks = [src[s:s + 50] for s in range(0, 299, 50)]  # 5 of 50 bars and one of 49
    used, pos = [], 0
    while pos < len(body):  # the output is the source blocks, each once, in some order
        hits = [k for k, blk in enumerate(blocks) if k not in used
                and np.allclose(body[pos:pos + len(blk)], blk, atol=1e-12)]
        assert len(hits) == 1
        used.append(hits[0])
        pos += len(blocks[hits[0]])
    assert sorted(used) == list(range(len(blocks))) and used != sorted(used)


def test_permuted_bars_move_assets_together(trending_bars):
    a = trending_bars.iloc[:200]
    b = a * 2.0
    out = permuted_bars({"A": a, "B": b}, seed=2)
    np.testing.assert_allclose(out["B"]["close"], 2.0 * out["A"]["close"], rtol=1e-12)


def test_permuted_bars_rebuild_mark_price_from_its_premium(trending_bars):
    bars = trending_bars.iloc[:200].copy()
    bars["mark_price"] = bars["close"] * 1.001
    out = permuted_bars(bars, seed=4)
    np.testing.assert_allclose(out["mark_price"], out["close"] * 1.001, rtol=1e-12)


def test_permuted_bars_argument_errors(trending_bars):
    with pytest.raises(ConfigError, match="method"):
        permuted_bars(trending_bars, method="shuffle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="block_size"):
        permuted_bars(trending_bars, method="block_shuffle", block_size=0)
    with pytest.raises(ConfigError, match="at least 3"):
        permuted_bars(trending_bars.iloc[:2])
    with pytest.raises(ConfigError, match="close"):
        permuted_bars(trending_bars.drop(columns="close"))


# --------------------------------------------------------------------------------------------
# permutation_test
# --------------------------------------------------------------------------------------------

def test_permutation_test_finds_a_planted_trend_edge(trending_bars):
    res = permutation_test("trend_following", trending_bars, params=TREND_PARAMS,
                           n_permutations=99, seed=0)
    # measured: Sharpe 8.7 vs a null median about 1; no shuffled path does as well
    assert res.p_value <= 0.02
    assert res.p_value == pytest.approx(1 / 100)
    assert res.actual > np.nanquantile(res.null, 0.99)
    assert res.n_permutations == 99 and res.null.shape == (99,)


def test_permutation_test_on_noise_gives_large_and_spread_p_values():
    res = permutation_test("trend_following", noise_bars(2), params=TREND_PARAMS,
                           n_permutations=49, seed=0)
    assert res.p_value > 0.3  # measured 0.88
    # under the null the p-value is uniform on {1/20, ..., 1}: mean 0.525, sd of a mean of 10
    # about 0.09 (measured here 0.70; over 80 other series 0.49, quintile counts 16 13 25 9 17)
    p = np.array([permutation_test("trend_following", noise_bars(s, n=1000),
                                   params=TREND_PARAMS, n_permutations=19, seed=s).p_value
                  for s in range(10, 20)])
    assert 0.3 < p.mean() < 0.75
    assert (p <= 0.1).sum() <= 3
    assert p.max() - p.min() > 0.5


def test_permutation_test_p_value_formula_and_reproducibility(trending_bars):
    bars = trending_bars.iloc[:800]

    def total_return(result) -> float:
        return float(result.stats["Return [%]"])

    a = permutation_test("trend_following", bars, params=TREND_PARAMS, n_permutations=15,
                         seed=4, statistic=total_return, method="block_bootstrap",
                         block_size=24)
    b = permutation_test("trend_following", bars, params=TREND_PARAMS, n_permutations=15,
                         seed=4, statistic=total_return, method="block_bootstrap",
                         block_size=24)
    np.testing.assert_array_equal(a.null, b.null)
    finite = a.null[np.isfinite(a.null)]
    assert a.p_value == pytest.approx((1 + (finite >= a.actual).sum()) / (1 + finite.size))
    assert a.statistic == "total_return" and a.block_size == 24 and a.seed == 4
    assert "p =" in a.summary()
    c = permutation_test("trend_following", bars, params=TREND_PARAMS, n_permutations=5,
                         seed=4, method="block_shuffle")
    assert c.block_size == round(799 ** (1 / 3))
    assert c.method == "block_shuffle" and c.n_valid <= 5


def test_permutation_test_argument_errors(trending_bars):
    bars = trending_bars.iloc[:300]
    with pytest.raises(ConfigError, match="statistic"):
        permutation_test("trend_following", bars, n_permutations=2, statistic="Sharpe")
    with pytest.raises(ConfigError, match="n_permutations"):
        permutation_test("trend_following", bars, n_permutations=0)
    with pytest.raises(ConfigError, match="seed"):
        permutation_test("trend_following", bars, n_permutations=2, seed=-1)
    with pytest.raises(ConfigError, match="method"):
        permutation_test("trend_following", bars, method="bootstrap")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="params"):
        permutation_test("trend_following", bars, n_permutations=2, params={"fastest": 3})
    with pytest.raises(ConfigError, match="backtest_kwargs"):
        permutation_test("trend_following", bars, n_permutations=2,
                         backtest_kwargs={"params": {}})
