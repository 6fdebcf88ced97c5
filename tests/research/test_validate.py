"""validate_strategy: sensible verdicts on a planted edge and on noise, and each part checked
against the tool it comes from."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trading.backtest import Backtest
from quantum_trading.backtest import metrics as m
from quantum_trading.errors import ConfigError
from quantum_trading.research.reports import VALIDATION_SECTIONS, write_validation_report
from quantum_trading.research.splits import cpcv_n_paths
from quantum_trading.research.stats import min_track_record_length
from quantum_trading.research.validate import neighbour_params, validate_strategy
from quantum_trading.strategies import IntParam, get_strategy, strategy_from_function

from ._bars import noise_bars
from ._bars import trending_bars as make_trending_bars

PARAMS = {"fast": 10, "slow": 50, "direction": "both"}


@pytest.fixture(scope="module")
def edge() -> pd.DataFrame:
    """Long, strong trends: a planted edge for trend following."""
    return make_trending_bars()


@pytest.fixture(scope="module")
def on_edge(edge: pd.DataFrame):
    return validate_strategy("trend_following", edge, params=PARAMS, n_permutations=39)


@pytest.fixture(scope="module")
def on_noise():
    return validate_strategy("trend_following", noise_bars(2), params=PARAMS,
                             n_permutations=39)


def test_planted_edge_passes_and_noise_fails(on_edge, on_noise) -> None:
    # measured: edge p = 1/40 (no shuffled path as good), Sharpe 8.7; noise p = 0.88
    assert on_edge.permutation.p_value <= 0.05
    assert on_edge.permutation.p_value == pytest.approx(1 / 40)
    assert on_noise.permutation.p_value > 0.3
    assert on_edge.dsr > 0.99 > 0.5 > on_noise.dsr
    assert on_edge.n_bars >= on_edge.min_trl_bars
    assert not on_noise.n_bars >= on_noise.min_trl_bars
    assert bool(on_edge.checks["passed"].all())
    assert on_edge.verdict.startswith("Passes all")
    failed = on_noise.checks.index[~on_noise.checks["passed"].astype(bool)].tolist()
    assert {"permutation p-value", "deflated Sharpe ratio"} <= set(failed)
    assert "unproven" in on_noise.verdict
    assert on_edge.causal and on_noise.causal
    # the given set is profitable on (nearly) every CPCV test set on the edge, not on noise
    assert np.mean(on_edge.split_sharpes > 0) >= 0.8
    assert np.mean(on_noise.split_sharpes > 0) < 0.8


def test_cpcv_paths_and_candidates(edge: pd.DataFrame, on_edge) -> None:
    v = on_edge
    assert v.cpcv.n_groups == 6 and v.cpcv.n_test_groups == 2
    assert v.cpcv_paths.shape == (v.n_bars, cpcv_n_paths(6, 2))
    assert len(v.path_sharpes) == 5 and len(v.split_sharpes) == len(v.cpcv) == 15
    assert v.candidates[0] == v.params
    assert [(c["fast"], c["slow"]) for c in v.candidates] == [
        (10, 50), (8, 50), (12, 50), (10, 40), (10, 60)]
    # each path is made of the test returns of the candidate chosen on that split's training
    # bars: bar by bar, a path's return is one of the candidates' returns at that bar
    for p in range(v.cpcv.n_paths):
        for g, group in enumerate(v.cpcv.groups):
            s = int(v.cpcv.paths[p, g])
            chosen = v.candidate_returns[int(v.cpcv_choices[s])].to_numpy()[group]
            assert np.array_equal(v.cpcv_paths[p].to_numpy()[group], chosen)
    ppy = v.periods_per_year
    assert v.path_sharpes[0] == pytest.approx(m.sharpe_ratio(v.cpcv_paths[0], ppy))
    direct = Backtest(edge, "trend_following", params=v.candidates[3], benchmark=None).run()
    assert np.allclose(v.candidate_returns[3].to_numpy(), direct.returns.to_numpy())
    assert v.pbo is not None and 0.0 <= v.pbo.pbo <= 1.0


def test_without_neighbours_every_path_is_the_backtest(edge: pd.DataFrame) -> None:
    bars = edge.iloc[:800]
    v = validate_strategy("trend_following", bars, params=PARAMS, n_permutations=5,
                          neighbour_pct=0, n_groups=4, n_test_groups=2)
    assert len(v.candidates) == 1 and v.pbo is None
    assert v.cpcv.n_paths == 3
    for p in range(3):
        assert np.array_equal(v.cpcv_paths[p].to_numpy(), v.result.returns.to_numpy())
    assert np.allclose(v.path_sharpes, v.sharpe)


def test_dsr_trials_and_min_trl(edge: pd.DataFrame) -> None:
    bars = edge.iloc[:1000]
    one = validate_strategy("trend_following", bars, params=PARAMS, n_permutations=5,
                            neighbour_pct=0)
    many = validate_strategy("trend_following", bars, params=PARAMS, n_permutations=5,
                             neighbour_pct=0, n_trials=1000)
    assert one.dsr == pytest.approx(one.psr)  # one trial: no selection to deflate
    assert one.sr_benchmark == 0.0
    assert many.dsr < one.dsr and many.sr_benchmark > 0
    assert many.sr_variance == pytest.approx(1 / many.n_bars)
    r = many.result.returns
    skew, kurt, _ = m.return_moments(r)
    assert many.min_trl_bars == pytest.approx(min_track_record_length(
        m.sharpe_ratio(r, 1.0), skew, kurt, sr_benchmark=many.sr_benchmark))
    assert many.min_trl_bars > one.min_trl_bars


def test_look_ahead_is_refused_in_the_verdict(edge: pd.DataFrame) -> None:
    def peek(df: pd.DataFrame, lag: int = 1) -> pd.Series:
        return np.sign(df["close"].shift(-lag) - df["close"]).fillna(0.0)

    strat = strategy_from_function(peek, {"lag": IntParam(1, 5, default=1)})
    v = validate_strategy(strat, edge.iloc[:600], n_permutations=5, n_groups=4)
    assert not v.causal
    assert "look-ahead" in v.causality
    assert v.verdict.startswith("Refused")
    assert not v.checks.loc["causal", "passed"]


def test_regimes_and_the_report(on_edge, tmp_path: Path) -> None:
    v = on_edge
    assert list(v.regime_table.index)[-1] == "all"
    assert {"trend_up", "trend_down", "range", "high_vol"} <= set(v.regime_table.index)
    assert v.regimes.index.equals(v.result.equity.index)
    out = write_validation_report(v, tmp_path / "val" / "report.html", notes=("a note",))
    text = out.read_text(encoding="utf-8")
    assert out.stat().st_size > 1_000_000
    assert len(re.findall(r"plotly\.js v\d", text)) == 1
    for title in VALIDATION_SECTIONS:
        assert title.replace("&", "&amp;") in text
    assert "Passes all" in text and "a note" in text and "PASS" in text


def test_neighbours_and_argument_errors(edge: pd.DataFrame) -> None:
    strat = get_strategy("momentum_breakout")
    cands = neighbour_params(strat, {"lookback": 200}, 20)
    looks = sorted({c["lookback"] for c in cands})
    assert looks == [160, 200]  # clipped at the top of [10, 200]
    assert all(c["direction"] == "long" for c in cands)
    with pytest.raises(ConfigError, match="n_trials"):
        validate_strategy("trend_following", edge, n_trials=0)
    with pytest.raises(ConfigError, match="neighbour_pct"):
        validate_strategy("trend_following", edge, neighbour_pct=150)
    with pytest.raises(ConfigError, match="too few"):
        validate_strategy("trend_following", edge.iloc[:15], n_permutations=1)
    # clipped to the ranges, the rule fast < slow kept, duplicates dropped
    tf = get_strategy("trend_following")
    assert [(c["fast"], c["slow"]) for c in neighbour_params(tf, {"fast": 19, "slow": 20},
                                                             20)] == [(19, 20), (15, 20),
                                                                      (19, 25)]
    nbdev = sorted({c["nbdev"] for c in neighbour_params(get_strategy("mean_reversion"), {},
                                                         20)})
    assert nbdev == [1.6, 2.0, 2.4]
