"""Regime detection (rules and Gaussian HMM), scoring, per-regime metrics and the timeline."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

from quantum_trading.backtest import Backtest
from quantum_trading.data import REGIME_NAMES, generate_market
from quantum_trading.errors import ConfigError
from quantum_trading.research.hmm_filter import forward_filter, gaussian_log_density
from quantum_trading.research.regime_analysis import (
    detect_regimes,
    regime_bands_figure,
    regime_metrics,
    regime_timeline_figure,
    score_regimes,
)
from quantum_trading.research.regimes import (
    REGIME_LABELS,
    HMMRegimes,
    _state_names,
    hmm_features,
    hmm_regimes,
    rule_regimes,
)

SYMBOL = "BTC/USDT:USDT"
N_BARS = 8000
TRAIN = 4000
# Regimes a detector can tell apart: stronger drifts, longer visits, milder GARCH clustering.
DISTINCT = dict(regime_drift_annual=(10.0, -10.0, 0.0, -30.0),
                regime_durations_h=(240.0, 240.0, 240.0, 24.0), garch_alpha=0.02,
                garch_beta=0.9)


@pytest.fixture(scope="module")
def distinct_market():
    return generate_market(n_assets=1, n_bars=N_BARS, seed=11, **DISTINCT)


@pytest.fixture(scope="module")
def default_market():
    return generate_market(n_assets=1, n_bars=N_BARS, seed=7)


@pytest.fixture(scope="module")
def distinct_hmm(distinct_market):
    bars = distinct_market.ohlcv[SYMBOL]
    return HMMRegimes(seed=0).fit(bars.iloc[:TRAIN])


def _true_names(market) -> pd.Series:
    return market.regimes.map(REGIME_NAMES)


# --------------------------------------------------------------------------------------------
# Scores against the generator's true labels
# --------------------------------------------------------------------------------------------

def test_rule_regimes_recover_distinct_regimes(distinct_market):
    bars = distinct_market.ohlcv[SYMBOL]
    labels = rule_regimes(bars)
    score = score_regimes(labels, _true_names(distinct_market))
    # measured: ARI 0.31, accuracy 0.64 vs majority 0.36
    assert score.ari > 0.2
    assert score.accuracy > score.majority_rate + 0.15
    # the rules' names mean what they say
    assert score.mapping == {"trend_up": "trend_up", "trend_down": "trend_down",
                             "range": "mean_revert", "high_vol": "crash"}


def test_rule_regimes_above_chance_on_default_market(default_market):
    labels = rule_regimes(default_market.ohlcv[SYMBOL])
    score = score_regimes(labels, default_market.regimes)
    # measured: ARI 0.12, accuracy 0.51 vs majority 0.45 (trends barely above the noise)
    assert score.ari > 0.05
    assert score.accuracy > score.majority_rate + 0.03


def test_rule_regimes_adx_method_above_chance(distinct_market):
    labels = rule_regimes(distinct_market.ohlcv[SYMBOL], trend_method="adx")
    score = score_regimes(labels, distinct_market.regimes)
    # measured: ARI 0.25, accuracy 0.61 vs majority 0.36
    assert score.ari > 0.1
    assert score.accuracy > score.majority_rate + 0.1


def test_hmm_filtered_out_of_sample_recovers_regimes(distinct_market, distinct_hmm):
    bars = distinct_market.ohlcv[SYMBOL]
    labels = distinct_hmm.predict(bars)
    score = score_regimes(labels.iloc[TRAIN:], distinct_market.regimes)  # out-of-sample bars
    # measured: ARI 0.48, accuracy 0.69 vs majority 0.37
    assert score.ari > 0.3
    assert score.accuracy > score.majority_rate + 0.2


def test_hmm_viterbi_in_sample_recovers_regimes(distinct_market):
    bars = distinct_market.ohlcv[SYMBOL]
    labels = HMMRegimes(seed=0, n_init=2).fit_predict(bars)
    score = score_regimes(labels, distinct_market.regimes)
    # measured: ARI 0.53, accuracy 0.77 vs majority 0.33
    assert score.ari > 0.3
    assert score.accuracy > score.majority_rate + 0.15


def test_hmm_above_chance_on_default_market(default_market):
    bars = default_market.ohlcv[SYMBOL]
    labels = hmm_regimes(bars, train_bars=TRAIN, seed=0)
    score = score_regimes(labels.iloc[TRAIN:], default_market.regimes)
    # measured: ARI 0.22, accuracy 0.56 vs majority 0.48
    assert score.ari > 0.1
    assert score.accuracy > score.majority_rate + 0.03


# --------------------------------------------------------------------------------------------
# Causality: labels computed on data[:t] equal the first t labels of the full run
# --------------------------------------------------------------------------------------------

def _same_labels(part: pd.Series, full: pd.Series) -> None:
    assert part.index.equals(full.index[: len(part)])
    a = part.astype(object).to_numpy()
    b = full.iloc[: len(part)].astype(object).to_numpy()
    both_nan = pd.isna(a) & pd.isna(b)
    assert ((a == b) | both_nan).all()


@pytest.mark.parametrize("kwargs", [
    {},
    {"vol_window": None},
    {"trend_method": "adx", "vol_window": 300},
])
def test_rule_regimes_are_causal(default_market, kwargs):
    bars = default_market.ohlcv[SYMBOL].iloc[:3000]
    full = rule_regimes(bars, **kwargs)
    assert full.notna().sum() > 2000
    for t in (30, 757, 1500, 2999):
        _same_labels(rule_regimes(bars.iloc[:t], **kwargs), full)


def test_hmm_filtered_mode_is_causal(distinct_market, distinct_hmm):
    bars = distinct_market.ohlcv[SYMBOL]
    full_p = distinct_hmm.predict_proba(bars)
    full = distinct_hmm.predict(bars)
    assert full.iloc[100:].notna().all()
    for t in (10, 2500, 4001, 6123, N_BARS - 1):
        part_p = distinct_hmm.predict_proba(bars.iloc[:t])
        pd.testing.assert_frame_equal(part_p, full_p.iloc[:t], check_exact=True)
        _same_labels(distinct_hmm.predict(bars.iloc[:t]), full)


def test_hmm_regimes_function_is_causal_after_the_training_window(default_market):
    bars = default_market.ohlcv[SYMBOL].iloc[:1800]
    kwargs = dict(train_bars=1200, n_states=3, n_init=1, seed=1)
    full = hmm_regimes(bars, **kwargs)
    for t in (1200, 1517):
        _same_labels(hmm_regimes(bars.iloc[:t], **kwargs), full)


def test_forward_filter_matches_hmmlearn_posterior_at_the_last_bar(distinct_market,
                                                                   distinct_hmm):
    """The filtered probability at t is the smoothed posterior of the prefix ending at t."""
    model = distinct_hmm.model
    raw = hmm_features(distinct_market.ohlcv[SYMBOL].iloc[:600])
    z = ((raw - distinct_hmm._mean) / distinct_hmm._std).dropna().to_numpy()
    loglik = gaussian_log_density(z, model.means_, model.covars_)
    for k in range(model.n_components):
        expected = multivariate_normal(model.means_[k], model.covars_[k]).logpdf(z)
        np.testing.assert_allclose(loglik[:, k], expected, rtol=1e-10, atol=1e-10)
    filtered = forward_filter(loglik, np.ones(len(z), bool), model.transmat_, model.startprob_)
    for t in (0, 5, 77, len(z) - 1):
        smoothed_last = model.predict_proba(z[: t + 1])[-1]
        np.testing.assert_allclose(filtered[t], smoothed_last, atol=1e-8)


def test_forward_filter_steps_over_missing_rows():
    trans = np.array([[0.9, 0.1], [0.2, 0.8]])
    loglik = np.log(np.array([[0.5, 0.1], [1.0, 1.0], [0.2, 0.6]]))
    start = np.array([0.5, 0.5])
    out = forward_filter(loglik, np.array([True, False, True]), trans, start)
    a0 = start * [0.5, 0.1] / (start * [0.5, 0.1]).sum()
    pred = a0 @ trans @ trans  # two steps: the missing bar only moves time on
    a2 = pred * [0.2, 0.6] / (pred * [0.2, 0.6]).sum()
    np.testing.assert_allclose(out[0], a0)
    assert np.isnan(out[1]).all()
    np.testing.assert_allclose(out[2], a2)


# --------------------------------------------------------------------------------------------
# State names
# --------------------------------------------------------------------------------------------

def test_state_names_from_return_and_volatility():
    mean = np.array([0.001, -0.002, 0.0, -0.001])
    vol = np.array([0.005, 0.02, 0.003, 0.006])
    assert _state_names(mean, vol) == ("trend_up", "high_vol", "range", "trend_down")
    assert _state_names(mean[[0, 2, 3]], vol[[0, 2, 3]]) == ("trend_up", "range", "trend_down")
    assert _state_names(mean[:2], vol[:2]) == ("range", "high_vol")
    five = _state_names(np.array([0.0, 0.1, -0.1, 0.01, 0.0]), np.array([1, 1, 1, 1, 9.0]))
    assert five == ("range", "trend_up", "trend_down", "range_2", "high_vol")


def test_fitted_names_agree_with_the_state_summary(distinct_hmm):
    summary = distinct_hmm.summary
    assert sorted(summary.index) == sorted(REGIME_LABELS)
    assert summary["volatility"].idxmax() == "high_vol"
    rest = summary.drop(index="high_vol")
    assert rest["mean_return"].idxmax() == "trend_up"
    assert rest["mean_return"].idxmin() == "trend_down"
    assert math.isclose(summary["share"].sum(), 1.0, rel_tol=1e-9)
    assert (summary["expected_duration_bars"] > 1).all()
    probs = distinct_hmm.predict_proba(pd.Series(np.linspace(100, 120, 300)))
    np.testing.assert_allclose(probs.dropna().sum(axis=1), 1.0)


def test_hmm_argument_errors(distinct_market):
    bars = distinct_market.ohlcv[SYMBOL]
    with pytest.raises(ConfigError, match="fit"):
        HMMRegimes().predict(bars)
    with pytest.raises(ConfigError, match="features"):
        HMMRegimes(features=("return", "sentiment"))
    with pytest.raises(ConfigError, match="n_states"):
        HMMRegimes(n_states=0)
    with pytest.raises(ConfigError, match="train_bars"):
        hmm_regimes(bars)
    with pytest.raises(ConfigError, match="too few"):
        HMMRegimes().fit(bars.iloc[:60])
    with pytest.raises(ConfigError, match="trend_method"):
        rule_regimes(bars, trend_method="macd")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="high and low"):
        rule_regimes(bars["close"], trend_method="adx")


# --------------------------------------------------------------------------------------------
# score_regimes
# --------------------------------------------------------------------------------------------

def test_score_perfect_relabelling():
    idx = pd.date_range("2024-01-01", periods=8, freq="1h", tz="UTC")
    true = pd.Series([0, 0, 1, 1, 2, 2, 0, 1], index=idx)
    detected = true.map({0: "x", 1: "y", 2: "z"})
    score = score_regimes(detected, true)
    assert score.ari == pytest.approx(1.0)
    assert score.accuracy == 1.0
    assert score.mapping == {"x": 0, "y": 1, "z": 2}
    assert score.majority_rate == pytest.approx(3 / 8)


def test_score_by_hand_with_nan_and_alignment():
    idx = pd.date_range("2024-01-01", periods=7, freq="1h", tz="UTC")
    true = pd.Series([0, 0, 0, 1, 1, 1, 1], index=idx)
    detected = pd.Series(["a", "a", "b", "b", "b", None, "a"], index=idx)
    score = score_regimes(detected.iloc[1:], true)  # bar 0 not in detected, bar 5 NaN
    # bars 1..6 without 5: (a,0) (b,0) (b,1) (b,1) (a,1); best: a->0, b->1 = 1 + 2 = 3 of 5
    assert score.n_bars == 5
    assert score.accuracy == pytest.approx(3 / 5)
    assert score.majority_rate == pytest.approx(3 / 5)
    assert score.confusion.loc["b", 1] == 2
    from sklearn.metrics import adjusted_rand_score
    assert score.ari == pytest.approx(adjusted_rand_score([0, 0, 1, 1, 1],
                                                          ["a", "b", "b", "b", "a"]))


def test_score_extra_detected_labels_count_as_wrong():
    true = pd.Series([0, 0, 1, 1])
    score = score_regimes(pd.Series(["a", "b", "c", "c"]), true)
    assert score.accuracy == pytest.approx(3 / 4)  # one of a/b stays unmatched
    with pytest.raises(ConfigError):
        score_regimes(pd.Series([None, None]), pd.Series([0, 1]))


# --------------------------------------------------------------------------------------------
# regime_metrics against hand computations
# --------------------------------------------------------------------------------------------

def test_regime_metrics_of_returns_by_hand():
    idx = pd.date_range("2024-01-01", periods=8, freq="1h", tz="UTC")
    r = pd.Series([0.01, -0.02, 0.03, 0.01, -0.01, 0.02, -0.03, 0.005], index=idx)
    labels = pd.Series(["up", "up", "down", "down", "up", None, "down", "up"], index=idx)
    table = regime_metrics(r, labels)
    assert table.index.tolist() == ["down", "up", "all"]
    up = np.array([0.01, -0.02, -0.01, 0.005])
    down = np.array([0.03, 0.01, -0.03])
    ppy = 8766.0
    for name, x in (("up", up), ("down", down)):
        row = table.loc[name]
        assert row["Bars"] == len(x)
        assert row["Share [%]"] == pytest.approx(100 * len(x) / 7)
        assert row["Return [%]"] == pytest.approx(100 * (np.prod(1 + x) - 1))
        assert row["Sharpe Ratio"] == pytest.approx(x.mean() / x.std(ddof=1) * math.sqrt(ppy))
        eq = np.r_[1.0, np.cumprod(1 + x)]
        mdd = 100 * (eq / np.maximum.accumulate(eq) - 1).min()
        assert row["Max. Drawdown [%]"] == pytest.approx(mdd)
        assert math.isnan(row["Win Rate [%]"]) and math.isnan(row["Exposure [%]"])
    # up: 1, 0.99·1.01=... ; drawdown by hand: peak 1.01 then 1.01·0.98·0.99
    assert table.loc["up", "Max. Drawdown [%]"] == pytest.approx(100 * (0.98 * 0.99 - 1))
    assert table.loc["all", "Bars"] == 7
    assert table.loc["all", "Return [%]"] == pytest.approx(
        100 * (np.prod(1 + np.r_[up, down]) - 1))


def test_regime_metrics_lag_uses_the_previous_label():
    idx = pd.date_range("2024-01-01", periods=4, freq="1D", tz="UTC")
    r = pd.Series([0.1, 0.2, -0.1, 0.05], index=idx)
    labels = pd.Series(["a", "b", "b", "a"], index=idx)
    table = regime_metrics(r, labels, lag=1)  # bar t gets the label of bar t-1
    assert table.loc["a", "Bars"] == 1 and table.loc["b", "Bars"] == 2
    assert table.loc["a", "Return [%]"] == pytest.approx(20.0)
    assert table.loc["b", "Return [%]"] == pytest.approx(100 * (0.9 * 1.05 - 1))
    x = np.array([-0.1, 0.05])
    assert table.loc["b", "Sharpe Ratio"] == pytest.approx(
        x.mean() / x.std(ddof=1) * math.sqrt(365.25))


def test_regime_metrics_of_a_backtest_by_hand(default_market):
    bars = default_market.ohlcv[SYMBOL].iloc[:3000]
    result = Backtest(bars, "trend_following", params={"fast": 10, "slow": 40,
                                                       "direction": "both"},
                      risk=None, benchmark=None).run()
    labels = rule_regimes(bars)
    table = regime_metrics(result, labels)
    assert table.index.tolist() == [*REGIME_LABELS, "all"]
    returns = result.returns
    lab = labels.reindex(returns.index).astype(object)
    pos = result.sim.positions.reindex(returns.index).abs().sum(axis=1) > 0
    trades = result.trades
    entry_lab = labels.reindex(pd.DatetimeIndex(trades["entry_time"])).astype(object).to_numpy()
    assert len(trades) > 20
    for name in REGIME_LABELS:
        mask = (lab == name).to_numpy()
        x = returns.to_numpy()[mask]
        row = table.loc[name]
        assert row["Bars"] == mask.sum()
        assert row["Return [%]"] == pytest.approx(100 * (np.prod(1 + x) - 1))
        assert row["Sharpe Ratio"] == pytest.approx(
            x.mean() / x.std(ddof=1) * math.sqrt(result.periods_per_year))
        assert row["Exposure [%]"] == pytest.approx(100 * pos.to_numpy()[mask].mean())
        pnl = trades["pnl_usd"].to_numpy()[entry_lab == name]
        assert row["# Trades"] == len(pnl)
        if len(pnl):
            assert row["Win Rate [%]"] == pytest.approx(100 * (pnl > 0).mean())
    assert table.loc[list(REGIME_LABELS), "Bars"].sum() == table.loc["all", "Bars"]
    assert table.loc[list(REGIME_LABELS), "Share [%]"].sum() == pytest.approx(100.0)
    assert table.loc[list(REGIME_LABELS), "# Trades"].sum() == table.loc["all", "# Trades"]
    # all bars labelled after the warm-up: the whole return compounds to the regimes' product
    labelled = lab.notna().to_numpy()
    assert table.loc["all", "Return [%]"] == pytest.approx(
        100 * (np.prod(1 + returns.to_numpy()[labelled]) - 1))


def test_regime_metrics_errors():
    idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    r = pd.Series([0.0, 0.1, 0.2], index=idx)
    with pytest.raises(ConfigError, match="label"):
        regime_metrics(r, pd.Series([None, None, None], index=idx, dtype=object))
    with pytest.raises(ConfigError, match="periods_per_year"):
        regime_metrics(r.reset_index(drop=True), pd.Series(["a"] * 3))
    with pytest.raises(ConfigError):
        regime_metrics([0.1, 0.2], pd.Series(["a", "b"]))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# The timeline figure
# --------------------------------------------------------------------------------------------

def test_regime_timeline_figure_spans():
    idx = pd.date_range("2024-01-01", periods=9, freq="1h", tz="UTC")
    close = pd.Series(np.arange(9.0) + 100, index=idx)
    labels = pd.Series(pd.Categorical(
        [None, "trend_up", "trend_up", "range", "range", "range", "high_vol", "trend_up",
         "trend_up"], categories=list(REGIME_LABELS)), index=idx)
    fig = regime_timeline_figure(close, labels, title="t")
    shapes = fig.layout.shapes
    assert len(shapes) == 4  # the NaN bar gets no span
    assert pd.Timestamp(shapes[0].x0) == idx[1] and pd.Timestamp(shapes[0].x1) == idx[3]
    assert pd.Timestamp(shapes[-1].x0) == idx[7]
    assert pd.Timestamp(shapes[-1].x1) == idx[-1] + pd.Timedelta("1h")
    assert shapes[0].fillcolor == "#2ca02c" and shapes[1].fillcolor == "#1f77b4"
    assert [t.name for t in fig.data] == ["close", "trend_up", "range", "high_vol"]
    assert fig.layout.title.text == "t"
    fig2 = regime_timeline_figure(close, labels.astype(object), colors={"range": "black"})
    assert fig2.layout.shapes[1].fillcolor == "black"


def test_regime_timeline_figure_of_a_real_detection(distinct_market):
    bars = distinct_market.ohlcv[SYMBOL].iloc[:2000]
    labels = rule_regimes(bars)
    fig = regime_timeline_figure(bars["close"], labels)
    values = labels.astype(object).to_numpy()
    runs = sum(1 for i in range(len(values)) if not pd.isna(values[i])
               and (i == 0 or values[i] != values[i - 1]))
    assert len(fig.layout.shapes) == runs
    assert "<div" in fig.to_html(full_html=False, include_plotlyjs=False)


# --------------------------------------------------------------------------------------------
# Detection in one call and the band figure (the optimisation report's regime timeline)
# --------------------------------------------------------------------------------------------

def test_detect_regimes_is_the_detectors(default_market):
    bars = default_market.ohlcv[SYMBOL].iloc[:3000]
    labels = detect_regimes(bars, ("hmm", "rules"), seed=3)
    assert list(labels.columns) == ["hmm", "rules"] and labels.index.equals(bars.index)
    pd.testing.assert_series_equal(labels["rules"], rule_regimes(bars, vol_window=720),
                                   check_names=False)
    pd.testing.assert_series_equal(labels["hmm"], hmm_regimes(bars, train_bars=1500, seed=3),
                                   check_names=False)
    short = detect_regimes(bars.iloc[:400])  # the volatility window shrinks to T // 4
    pd.testing.assert_series_equal(short["rules"], rule_regimes(bars.iloc[:400],
                                                                vol_window=100),
                                   check_names=False)
    with pytest.raises(ConfigError, match="unknown regime detector 'garch'"):
        detect_regimes(bars, ("garch",))


def test_regime_bands_figure_by_hand():
    idx = pd.date_range("2024-01-01", periods=8, freq="1h", tz="UTC")
    close = pd.Series(np.arange(8.0) + 100, index=idx)
    rules = pd.Series([None, "trend_up", "trend_up", "range", "range", "high_vol", "range",
                       "range"], index=idx)
    hmm = pd.Series(["range"] * 4 + ["trend_down"] * 4, index=idx)
    fig = regime_bands_figure(close, {"rules": rules, "hmm": hmm}, title="t")
    assert [t.type for t in fig.data[:3]] == ["scatter", "heatmap", "heatmap"]
    assert list(fig.data[0].y) == list(close) and fig.layout.title.text == "t"
    band = fig.data[1]
    assert band.y == ("rules",) and band.yaxis == "y2" and fig.data[2].yaxis == "y3"
    assert list(band.text[0]) == ["", "trend_up", "trend_up", "range", "range", "high_vol",
                                  "range", "range"]
    assert [pd.Timestamp(x) for x in band.x] == list(idx)
    # codes index one colour each; the unlabelled bar is blank (NaN)
    z = np.asarray(band.z[0], dtype=float)
    assert math.isnan(z[0]) and z[1] == z[2] != z[3] == z[4] == z[6]
    n = int(band.zmax + 0.5)
    colours = {band.colorscale[2 * i][1] for i in range(n)}
    assert len(colours) == n == 4  # trend_up, range, high_vol, trend_down
    # the bands sit under the price, on its time axis
    assert fig.layout.yaxis3.domain[1] < fig.layout.yaxis2.domain[1] < fig.layout.yaxis.domain[0]
    assert {t.name for t in fig.data[3:]} == {"trend_up", "range", "high_vol", "trend_down"}
    # 30 bars in at most 10 cells: buckets of 3 bars, each its most common label
    idx30 = pd.date_range("2024-01-01", periods=30, freq="1h", tz="UTC")
    labels30 = pd.Series(["range"] * 12 + ["trend_up"] * 3 + ["high_vol"] * 15, index=idx30)
    bucketed = regime_bands_figure(pd.Series(1.0, index=idx30), {"r": labels30}, max_cells=10)
    assert list(bucketed.data[1].text[0]) == ["range"] * 4 + ["trend_up"] + ["high_vol"] * 5
    assert [pd.Timestamp(x) for x in bucketed.data[1].x] == list(idx30[::3])
    with pytest.raises(ConfigError, match="at least one detector"):
        regime_bands_figure(close, {})
    with pytest.raises(ConfigError, match="max_cells"):
        regime_bands_figure(close, {"r": rules}, max_cells=1)


def test_hmmlearn_convergence_notes_are_counted_not_printed(caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    """hmmlearn logs "Model is not converging" for each EM step whose likelihood fell; a fit
    counts those in ``em_decreases`` and nothing reaches the log."""
    import logging

    from quantum_trading.research.regimes import _counted_em_warnings

    with caplog.at_level(logging.WARNING, logger="hmmlearn.base"):
        with _counted_em_warnings() as notes:
            logging.getLogger("hmmlearn.base").warning("Model is not converging.  Current: 1")
        logging.getLogger("hmmlearn.base").warning("after the fit")
    assert notes == ["Model is not converging.  Current: 1"]
    assert [r.getMessage() for r in caplog.records] == ["after the fit"]
    bars = generate_market(n_assets=1, n_bars=1500, seed=2).ohlcv[SYMBOL]
    model = HMMRegimes(n_states=3, n_init=2, n_iter=30).fit(bars)
    assert isinstance(model.em_decreases, int) and model.em_decreases >= 0
