"""Market regimes: detect them (rules or a Gaussian HMM), score them, and split performance.

Two detectors label each bar with a regime name:

* :func:`rule_regimes` — volatility × trend rules: ``high_vol`` when the realised volatility is
  above a rolling (or expanding) quantile of its own past, otherwise ``trend_up`` /
  ``trend_down`` / ``range`` from the normalised slope of an EMA (or from ADX and the DI
  lines). Causal: the label of bar t uses bars up to t only, known at t's close.
* :class:`HMMRegimes` (and :func:`hmm_regimes`) — a Gaussian hidden Markov model (hmmlearn's
  ``GaussianHMM``) on standardised return features, states named by their mean return and
  volatility. Two modes: :meth:`HMMRegimes.fit_predict` fits and Viterbi-decodes the whole
  sample (**in-sample, for analysis only**: every label sees the future), and
  :meth:`HMMRegimes.predict` / :meth:`HMMRegimes.predict_proba`, the **causal filtered mode**:
  with parameters fitted on a training window, the forward recursion gives
  ``P(state_t | features_1..t)`` at each bar from data up to t only.

Then :func:`~quantum_trading.research.regime_analysis.score_regimes` compares detected labels with known ones (the synthetic
generator's :attr:`~quantum_trading.data.SyntheticMarket.regimes`): adjusted Rand index and
accuracy after the best one-to-one label matching (Hungarian algorithm);
:func:`~quantum_trading.research.regime_analysis.regime_metrics` splits a backtest's performance by regime; and
:func:`regime_timeline_figure` draws prices over coloured regime spans for reports.

>>> from quantum_trading.data import generate_market
>>> market = generate_market(n_assets=1, n_bars=3000, seed=4)
>>> bars = market.ohlcv["BTC/USDT:USDT"]
>>> labels = rule_regimes(bars)
>>> sorted(labels.dropna().unique())
['high_vol', 'range', 'trend_down', 'trend_up']
>>> from quantum_trading.research.regime_analysis import score_regimes
>>> score = score_regimes(labels, market.regimes)
>>> score.n_bars == int(labels.notna().sum()), score.accuracy > score.majority_rate
(True, True)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import pandas as pd

from quantum_trading.errors import ConfigError
from quantum_trading.features import adx, ema, realised_volatility, rolling_quantile
from quantum_trading.research.hmm_filter import (
    forward_filter,
    gaussian_log_density,
    stationary_distribution,
)

__all__ = [
    "HMM_FEATURES",
    "REGIME_LABELS",
    "RULE_VOL_WINDOW_BARS",
    "HMMRegimes",
    "hmm_features",
    "hmm_regimes",
    "rule_regimes",
    "rule_vol_window",
]

REGIME_LABELS: tuple[str, ...] = ("trend_up", "trend_down", "range", "high_vol")
"""Regime names of :func:`rule_regimes` (and of a 4-state :class:`HMMRegimes`)."""

RULE_VOL_WINDOW_BARS = 720
"""Default look-back of :func:`rule_regimes`' volatility threshold [bars] (30 days of 1h bars)."""

HMM_FEATURES: tuple[str, ...] = ("return", "volatility", "trend", "autocorr")
"""Features :func:`hmm_features` can build, each known at its bar's close:

* ``return``: the bar's close-to-close log return ``ln(c_t / c_{t-1})``;
* ``volatility``: log of the realised volatility (std of the last ``vol_period`` log returns);
* ``trend``: mean of the last ``trend_period`` log returns;
* ``autocorr``: lag-1 autocorrelation of the last ``vol_period`` log returns (negative in a
  mean-reverting market).
"""

_MAX_PERIOD = 100_000
def _int(value: Any, name: str, low: int, high: int = _MAX_PERIOD) -> int:
    if not (isinstance(value, int | np.integer) and not isinstance(value, bool)
            and low <= value <= high):
        raise ConfigError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def _float(value: Any, name: str, low: float, high: float) -> float:
    if not (isinstance(value, int | float | np.integer | np.floating)
            and not isinstance(value, bool) and low <= float(value) <= high):
        raise ConfigError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _close(data: pd.DataFrame | pd.Series) -> pd.Series:
    if isinstance(data, pd.Series):
        return data.astype(np.float64)
    if isinstance(data, pd.DataFrame) and "close" in data.columns:
        return data["close"].astype(np.float64)
    raise ConfigError("data must be an OHLCV DataFrame (with a close column) or a close Series")


def _categorical(codes: np.ndarray, names: Sequence[str], index: pd.Index) -> pd.Series:
    """Integer codes (-1 = no label) as a categorical Series named ``regime``."""
    cat = pd.Categorical.from_codes(codes.astype(np.int64), categories=list(names))
    return pd.Series(cat, index=index, name="regime")


# --------------------------------------------------------------------------------------------
# Rule-based regimes
# --------------------------------------------------------------------------------------------

def rule_vol_window(n_bars: int) -> int:
    """The ``vol_window`` [bars] the analyses give :func:`rule_regimes` on ``n_bars`` bars:
    :data:`RULE_VOL_WINDOW_BARS`, cut to a quarter of the bars (at least 2) on short data.

    >>> rule_vol_window(100_000), rule_vol_window(1_000), rule_vol_window(3)
    (720, 250, 2)
    """
    return min(RULE_VOL_WINDOW_BARS, max(2, n_bars // 4))


def rule_regimes(
    data: pd.DataFrame | pd.Series,
    *,
    vol_period: int = 24,
    vol_window: int | None = RULE_VOL_WINDOW_BARS,
    high_vol_quantile: float = 0.9,
    trend_method: Literal["ema_slope", "adx"] = "ema_slope",
    ema_period: int = 48,
    slope_period: int = 24,
    slope_threshold: float = 0.5,
    adx_period: int = 14,
    adx_threshold: float = 25.0,
) -> pd.Series:
    """Label each bar ``trend_up``, ``trend_down``, ``range`` or ``high_vol`` from rules.

    With ``rv_t`` the realised volatility of the last ``vol_period`` log returns (per bar):

    1. ``high_vol`` when ``rv_t`` is above the ``high_vol_quantile`` of ``rv`` over the last
       ``vol_window`` bars (bar t included; None = all bars so far, an expanding quantile);
    2. otherwise, with ``trend_method="ema_slope"``, the EMA's normalised slope
       ``z_t = ln(EMA_t / EMA_{t-k}) / (rv_t · √k)`` (``k = slope_period``, roughly a
       t-statistic of the trend): ``trend_up`` if ``z_t > slope_threshold``, ``trend_down``
       if ``z_t < -slope_threshold``, else ``range``;
       with ``trend_method="adx"``: ``trend_up`` / ``trend_down`` when ``ADX_t >
       adx_threshold`` and +DI is above / below −DI, else ``range`` (needs high and low).

    Parameters
    ----------
    data:
        One asset's OHLCV frame (UTC index of bar open times), or a close Series for
        ``"ema_slope"``.
    vol_period:
        Returns in the realised-volatility window [bars, 2..100,000].
    vol_window:
        Look-back of the volatility threshold [bars, 2..100,000]; None = expanding (from the
        first ``vol_period`` bars).
    high_vol_quantile:
        Quantile of past volatility above which a bar is ``high_vol`` [0..1].
    trend_method:
        ``"ema_slope"`` (default) or ``"adx"``.
    ema_period, slope_period, slope_threshold:
        EMA length [bars], slope look-back k [bars] and threshold on ``z`` [dimensionless].
    adx_period, adx_threshold:
        Wilder period [bars] and trend threshold [ADX points, 0..100].

    Returns
    -------
    pd.Series
        Categorical ``regime`` with categories :data:`REGIME_LABELS`, on ``data``'s index;
        NaN during the warm-up (until the volatility threshold and the trend measure exist).
        The label of bar t is known at bar t's close: computed on ``data[:t]`` it is the same.

    >>> import numpy as np, pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=400, freq="1h", tz="UTC")
    >>> close = pd.Series(100.0 * np.exp(0.002 * np.arange(400)
    ...                   + 0.01 * np.sin(np.arange(400))), index=idx)
    >>> rule_regimes(close, vol_window=100).iloc[-1]
    'trend_up'
    """
    close = _close(data)
    vol_period = _int(vol_period, "vol_period", 2)
    quantile = _float(high_vol_quantile, "high_vol_quantile", 0.0, 1.0)
    rv = realised_volatility(close, vol_period)
    if vol_window is None:
        threshold = rv.expanding(min_periods=1).quantile(quantile)
    else:
        threshold = rolling_quantile(rv, _int(vol_window, "vol_window", 2), quantile)
    if trend_method == "ema_slope":
        ema_period = _int(ema_period, "ema_period", 2)
        k = _int(slope_period, "slope_period", 1)
        level = _float(slope_threshold, "slope_threshold", 0.0, 1e6)
        e = ema(close, ema_period).to_numpy()
        past = np.full_like(e, np.nan)
        past[k:] = e[:-k]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.log(e / past) / (rv.to_numpy() * math.sqrt(k))
        up, down = z > level, z < -level
        ready = np.isfinite(z) | (np.isfinite(e) & np.isfinite(past) & (rv.to_numpy() == 0.0))
    elif trend_method == "adx":
        if not isinstance(data, pd.DataFrame) or not {"high", "low"} <= set(data.columns):
            raise ConfigError("trend_method='adx' needs an OHLCV DataFrame with high and low")
        level = _float(adx_threshold, "adx_threshold", 0.0, 100.0)
        lines = adx(data["high"].astype(np.float64), data["low"].astype(np.float64), close,
                    _int(adx_period, "adx_period", 2))
        a, plus, minus = (lines[c].to_numpy() for c in ("adx", "plus_di", "minus_di"))
        up = (a > level) & (plus > minus)
        down = (a > level) & (minus > plus)
        ready = np.isfinite(a)
    else:
        raise ConfigError(f"trend_method must be 'ema_slope' or 'adx', got {trend_method!r}")
    rv_v, thr_v = rv.to_numpy(), threshold.to_numpy()
    codes = np.where(rv_v > thr_v, 3, np.where(up, 0, np.where(down, 1, 2)))
    codes = np.where(ready & np.isfinite(rv_v) & np.isfinite(thr_v), codes, -1)
    return _categorical(codes, REGIME_LABELS, close.index)


# --------------------------------------------------------------------------------------------
# Gaussian HMM regimes
# --------------------------------------------------------------------------------------------

def hmm_features(
    data: pd.DataFrame | pd.Series,
    *,
    features: Sequence[str] = ("return", "volatility", "trend"),
    vol_period: int = 24,
    trend_period: int = 48,
) -> pd.DataFrame:
    """Raw (unstandardised) HMM features per bar, each known at the bar's close.

    Parameters
    ----------
    data:
        OHLCV frame or close Series (prices > 0).
    features:
        Names from :data:`HMM_FEATURES`, in the order wanted.
    vol_period, trend_period:
        Windows of the volatility / autocorrelation and of the trend features [bars].

    Returns
    -------
    pd.DataFrame
        One column per feature on ``data``'s index (NaN during each feature's warm-up).

    >>> import pandas as pd
    >>> close = pd.Series([100.0, 101.0, 100.0, 102.0, 101.0])
    >>> hmm_features(close, vol_period=2, trend_period=2).round(4).iloc[-1].tolist()
    [-0.0099, -3.8647, 0.005]
    """
    close = _close(data)
    names = list(features)
    unknown = [f for f in names if f not in HMM_FEATURES]
    if unknown or not names or len(set(names)) != len(names):
        raise ConfigError(f"features must be distinct names from {', '.join(HMM_FEATURES)}, "
                          f"got {names!r}")
    vol_period = _int(vol_period, "vol_period", 2)
    trend_period = _int(trend_period, "trend_period", 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logret = np.log(close).diff()
    out: dict[str, pd.Series] = {}
    for name in names:
        if name == "return":
            out[name] = logret
        elif name == "volatility":
            with np.errstate(divide="ignore"):
                out[name] = np.log(realised_volatility(close, vol_period))
        elif name == "trend":
            out[name] = logret.rolling(trend_period, min_periods=trend_period).mean()
        else:
            out[name] = logret.rolling(vol_period, min_periods=vol_period).corr(logret.shift(1))
    frame = pd.DataFrame(out, index=close.index)
    return frame.replace([np.inf, -np.inf], np.nan)


def _state_names(mean_return: np.ndarray, volatility: np.ndarray) -> tuple[str, ...]:
    """Interpretable, unique names from each state's mean return and volatility."""
    k = len(mean_return)
    names = [""] * k
    rest = list(range(k))
    if k == 1:
        return ("range",)
    if k == 2:
        hi = int(np.argmax(volatility))
        return tuple("high_vol" if i == hi else "range" for i in range(k))
    if k >= 4:
        hi = int(np.argmax(volatility))
        names[hi] = "high_vol"
        rest.remove(hi)
    by_return = sorted(rest, key=lambda i: mean_return[i])
    names[by_return[0]] = "trend_down"
    names[by_return[-1]] = "trend_up"
    for j, i in enumerate(by_return[1:-1]):
        names[i] = "range" if j == 0 else f"range_{j + 1}"
    return tuple(names)


def _runs(valid: np.ndarray) -> list[int]:
    """Lengths of the runs of consecutive valid rows (hmmlearn's ``lengths``)."""
    edges = np.diff(np.r_[0, valid.astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return (stops - starts).tolist()


@contextmanager
def _counted_em_warnings() -> Iterator[list[str]]:
    """Collect hmmlearn's "Model is not converging" lines (one per EM iteration whose
    log-likelihood fell) into the yielded list instead of printing them."""
    messages: list[str] = []

    def keep(record: logging.LogRecord) -> bool:
        messages.append(record.getMessage())
        return False

    hmm_log = logging.getLogger("hmmlearn.base")
    hmm_log.addFilter(keep)
    try:
        yield messages
    finally:
        hmm_log.removeFilter(keep)


class HMMRegimes:
    """Regimes from a Gaussian hidden Markov model on standardised return features.

    Parameters
    ----------
    n_states:
        Hidden states, 1..10 (default 4: named ``trend_up``, ``trend_down``, ``range``,
        ``high_vol``).
    features, vol_period, trend_period:
        What :func:`hmm_features` builds (default: return, log realised volatility, rolling
        mean return).
    covariance_type:
        hmmlearn's ``"full"`` (default), ``"diag"``, ``"spherical"`` or ``"tied"``.
    n_iter, tol:
        EM iterations at most and the log-likelihood gain that stops it.
    n_init:
        Random restarts (seeds ``seed``, ``seed + 1`` …); the best log-likelihood wins.
    seed:
        Seed of the EM initialisation (integer >= 0): the same data give the same model.

    Attributes
    ----------
    state_names:
        Name per state: with 4+ states the most volatile is ``high_vol``; of the rest the
        lowest mean return is ``trend_down``, the highest ``trend_up``, the others ``range``
        (``range_2`` …); with 3 states the same without ``high_vol``; with 2, ``range`` and
        ``high_vol`` by volatility.
    summary:
        Per state: mean log return and volatility per bar of the training bars (weighted by
        the in-sample state probabilities), share of training time, expected duration
        ``1 / (1 - A_kk)`` [bars].
    model:
        The fitted ``hmmlearn.hmm.GaussianHMM`` (None before :meth:`fit`; so are the two
        above empty).
    em_decreases:
        EM iterations (all ``n_init`` fits) whose log-likelihood fell (hmmlearn's "Model is
        not converging", counted instead of printed; many: try another covariance / n_states).

    Features are standardised with the mean and standard deviation of the training window
    (stored), so the filtered mode never uses a statistic of later data.

    >>> from quantum_trading.data import generate_market
    >>> bars = generate_market(n_assets=1, n_bars=2000, seed=2).ohlcv["BTC/USDT:USDT"]
    >>> model = HMMRegimes(n_states=3, n_init=1).fit(bars.iloc[:1500])   # training window
    >>> labels = model.predict(bars)                  # causal: filtered, data <= t only
    >>> sorted(model.state_names), bool(labels.iloc[-1] in model.state_names)
    (['range', 'trend_down', 'trend_up'], True)
    """

    def __init__(
        self,
        *,
        n_states: int = 4,
        features: Sequence[str] = ("return", "volatility", "trend"),
        vol_period: int = 24,
        trend_period: int = 48,
        covariance_type: Literal["full", "diag", "spherical", "tied"] = "full",
        n_iter: int = 100,
        tol: float = 1e-3,
        n_init: int = 3,
        seed: int = 0,
    ) -> None:
        self.n_states = _int(n_states, "n_states", 1, 10)
        self.features = tuple(features)
        hmm_features(pd.Series([1.0, 1.0]), features=self.features, vol_period=vol_period,
                     trend_period=trend_period)  # validates the feature arguments
        self.vol_period = int(vol_period)
        self.trend_period = int(trend_period)
        if covariance_type not in ("full", "diag", "spherical", "tied"):
            raise ConfigError(f"covariance_type must be full, diag, spherical or tied, got "
                              f"{covariance_type!r}")
        self.covariance_type = covariance_type
        self.n_iter = _int(n_iter, "n_iter", 1, 100_000)
        self.tol = _float(tol, "tol", 0.0, 1e6)
        self.n_init = _int(n_init, "n_init", 1, 100)
        self.seed = _int(seed, "seed", 0, 2**32 - 1)
        self.model: Any = None
        self.state_names: tuple[str, ...] = ()
        self.summary: pd.DataFrame = pd.DataFrame()
        self.em_decreases = 0
        self._mean = np.zeros(0)
        self._std = np.ones(0)

    def __repr__(self) -> str:
        fitted = "fitted" if self.model is not None else "not fitted"
        return (f"HMMRegimes(n_states={self.n_states}, features={list(self.features)}, "
                f"{fitted})")

    def _raw(self, data: pd.DataFrame | pd.Series) -> tuple[pd.DataFrame, np.ndarray]:
        raw = hmm_features(data, features=self.features, vol_period=self.vol_period,
                           trend_period=self.trend_period)
        return raw, raw.notna().all(axis=1).to_numpy()

    def _check_fitted(self) -> None:
        if self.model is None:
            raise ConfigError("HMMRegimes: call fit() first")

    def fit(self, data: pd.DataFrame | pd.Series) -> HMMRegimes:
        """Fit the HMM on ``data`` (the training window) by EM; returns ``self``.

        Every bar of ``data`` is used: labels of these bars from :meth:`predict` are
        in-sample; only bars after the window are out-of-sample.
        """
        from hmmlearn.hmm import GaussianHMM
        from threadpoolctl import threadpool_limits

        close = _close(data)
        raw, valid = self._raw(close)
        x = raw.to_numpy()[valid]
        if len(x) < 10 * self.n_states:
            raise ConfigError(f"HMMRegimes.fit: {len(x)} bars with all features is too few for "
                              f"{self.n_states} states (need {10 * self.n_states})")
        self._mean = x.mean(axis=0)
        std = x.std(axis=0)
        self._std = np.where(std > 0, std, 1.0)
        z = (x - self._mean) / self._std
        lengths = _runs(valid)
        best, best_score = None, -np.inf
        # tiny matrices: BLAS threads only add overhead
        with threadpool_limits(1), _counted_em_warnings() as decreases:
            for i in range(self.n_init):
                model = GaussianHMM(n_components=self.n_states,
                                    covariance_type=self.covariance_type, n_iter=self.n_iter,
                                    tol=self.tol, random_state=self.seed + i)
                model.fit(z, lengths)
                score = model.score(z, lengths)
                if score > best_score:
                    best, best_score = model, score
            posterior = best.predict_proba(z, lengths)  # type: ignore[union-attr]
        self.em_decreases = len(decreases)
        self.model = best
        with np.errstate(divide="ignore", invalid="ignore"):
            logret = np.log(close).diff().to_numpy()[valid]
        ok = np.isfinite(logret)
        weight = posterior[ok] / np.maximum(posterior[ok].sum(axis=0), 1e-300)
        mean_r = weight.T @ logret[ok]
        vol = np.sqrt(np.maximum(weight.T @ logret[ok] ** 2 - mean_r**2, 0.0))
        self.state_names = _state_names(mean_r, vol)
        stay = np.diag(best.transmat_)  # type: ignore[union-attr]
        with np.errstate(divide="ignore"):
            duration = np.where(stay < 1.0, 1.0 / (1.0 - stay), np.inf)
        self.summary = pd.DataFrame(
            {"mean_return": mean_r, "volatility": vol, "share": posterior.mean(axis=0),
             "expected_duration_bars": duration},
            index=pd.Index(self.state_names, name="state"),
        )
        return self

    def predict_proba(self, data: pd.DataFrame | pd.Series) -> pd.DataFrame:
        """Filtered state probabilities ``P(state_t | features up to t)`` (causal).

        The forward recursion with the fitted parameters: ``α_t ∝ N(x_t) · (α_{t-1} A)``,
        started from the stationary distribution of ``A`` at the first bar with all
        features; bar t uses features of bars ≤ t only, so the rows computed on ``data[:t]``
        equal the first t rows computed on all of ``data``. Features are standardised with
        the training window's mean and std.

        Returns
        -------
        pd.DataFrame
            One column per state (named by :attr:`state_names`), rows summing to 1; NaN
            where a feature is missing (warm-up).
        """
        self._check_fitted()
        raw, valid = self._raw(data)
        z = (raw.to_numpy() - self._mean) / self._std
        loglik = np.zeros((len(z), self.n_states))
        if valid.any():
            loglik[valid] = gaussian_log_density(z[valid], self.model.means_, self.model.covars_)
        probs = forward_filter(loglik, valid, self.model.transmat_,
                                stationary_distribution(self.model.transmat_))
        return pd.DataFrame(probs, index=raw.index, columns=list(self.state_names))

    def predict(self, data: pd.DataFrame | pd.Series) -> pd.Series:
        """Causal labels: the most probable state of :meth:`predict_proba` at each bar.

        Returns a categorical ``regime`` Series (categories :attr:`state_names`; NaN in the
        warm-up), known at each bar's close.
        """
        frame = self.predict_proba(data)
        probs = frame.to_numpy()
        valid = np.isfinite(probs).all(axis=1)
        codes = np.where(valid, np.argmax(np.where(valid[:, None], probs, 0.0), axis=1), -1)
        return _categorical(codes, self.state_names, frame.index)

    def viterbi(self, data: pd.DataFrame | pd.Series) -> pd.Series:
        """Most likely state sequence over all of ``data`` (Viterbi; **not causal**).

        Each label depends on the whole sequence, later bars included: for analysis and
        plots only, never as a trading signal or a backtest input.
        """
        from threadpoolctl import threadpool_limits

        self._check_fitted()
        raw, valid = self._raw(data)
        codes = np.full(len(raw), -1)
        if valid.any():
            z = (raw.to_numpy()[valid] - self._mean) / self._std
            with threadpool_limits(1):
                codes[valid] = self.model.predict(z, _runs(valid))
        return _categorical(codes, self.state_names, raw.index)

    def fit_predict(self, data: pd.DataFrame | pd.Series) -> pd.Series:
        """Fit on all of ``data`` and Viterbi-decode it: **in-sample, for analysis only**.

        The parameters, the standardisation and every label use the whole sample (the
        future of each bar included). Use :meth:`fit` on a training window and
        :meth:`predict` for labels a trader could have known.
        """
        return self.fit(data).viterbi(data)


def hmm_regimes(
    data: pd.DataFrame | pd.Series,
    *,
    mode: Literal["filtered", "viterbi"] = "filtered",
    train_bars: int | None = None,
    **model_kwargs: Any,
) -> pd.Series:
    """HMM regime labels in one call (see :class:`HMMRegimes` for the model arguments).

    Parameters
    ----------
    data:
        OHLCV frame or close Series.
    mode:
        ``"filtered"`` (default): fit on the first ``train_bars`` bars, then causal
        forward-filtered labels for every bar (those inside the training window are
        in-sample). ``"viterbi"``: fit and decode the whole sample (in-sample; analysis only).
    train_bars:
        Length of the training window [bars]; required for ``"filtered"``.
    **model_kwargs:
        Passed to :class:`HMMRegimes` (``n_states``, ``features``, ``seed`` …).

    Returns
    -------
    pd.Series
        Categorical ``regime`` labels on ``data``'s index (NaN in the warm-up).

    >>> from quantum_trading.data import generate_market
    >>> bars = generate_market(n_assets=1, n_bars=1500, seed=2).ohlcv["BTC/USDT:USDT"]
    >>> labels = hmm_regimes(bars, train_bars=1000, n_states=2, n_init=1)
    >>> sorted(labels.cat.categories), bool(labels.iloc[1000:].notna().all())
    (['high_vol', 'range'], True)
    """
    model = HMMRegimes(**model_kwargs)
    if mode == "viterbi":
        return model.fit_predict(data)
    if mode != "filtered":
        raise ConfigError(f"mode must be 'filtered' or 'viterbi', got {mode!r}")
    if train_bars is None:
        raise ConfigError("hmm_regimes: mode='filtered' needs train_bars (the training window)")
    train_bars = _int(train_bars, "train_bars", 2, 10**9)
    return model.fit(data.iloc[:train_bars]).predict(data)


# --------------------------------------------------------------------------------------------
# Scoring against known labels
# --------------------------------------------------------------------------------------------
