"""Synthetic perpetual-futures market: correlated assets in a regime-switching world.

One market-wide Markov chain switches between four regimes (:class:`Regime`): trending up,
trending down, mean-reverting and a high-volatility crash. Within a regime each asset's
close-to-close log return is

``drift[k] + sigma_i * vol_mult[k] * sqrt(h) * eps + jumps`` (+ reversion terms in regime 2)

with ``eps`` correlated across assets (higher correlation in the crash), ``h`` a GARCH(1,1)
variance factor (volatility clustering) and jumps a compound Poisson process shared by all
assets (more frequent and more negative in the crash). Bars are built from the returns:
open = previous close (times an optional tiny gap), high/low from the extremes of a Brownian
bridge between open and close whose variance is the bar's volatility, volume rising with
``|return|``, regime volatility and the time of day. A perpetual premium (last price vs index)
follows a mean-reverting process pulled toward the recent trend; the mark price is the index
plus a smoothed basis, and funding every 8 h follows the premium the Binance way.

Everything is deterministic for a seed: the same :class:`SyntheticMarketConfig` gives the same
frames, bit for bit.

Timing: bar t (index = open time) covers ``[t, t + timeframe)``; premium and mark of bar t are
known at its close; the funding rate at settlement time T uses the time-averaged premium of
``(T - interval, T]`` and is paid at T. For bars no longer than the interval, T is a bar open
and only bars closed by T count; for longer bars (e.g. 1d) the premium is constant over a bar,
so a settlement inside a bar uses that bar's premium, known only at the bar's close.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from quantum_trading.data.resample import floor_to_timeframe
from quantum_trading.data.symbols import symbol_to_filename
from quantum_trading.data.synthetic_nb import log_returns_nb, premium_path_nb, regime_path_nb
from quantum_trading.data.timeframes import timeframe_to_ms

__all__ = [
    "REGIME_EXIT_WEIGHTS",
    "REGIME_NAMES",
    "Regime",
    "SyntheticMarket",
    "SyntheticMarketConfig",
    "generate_market",
]


class Regime(IntEnum):
    """Market regime codes of :attr:`SyntheticMarket.regimes`."""

    TREND_UP = 0
    TREND_DOWN = 1
    MEAN_REVERT = 2
    CRASH = 3


REGIME_NAMES: dict[int, str] = {
    Regime.TREND_UP: "trend_up",
    Regime.TREND_DOWN: "trend_down",
    Regime.MEAN_REVERT: "mean_revert",
    Regime.CRASH: "crash",
}

# Where a regime goes when it ends (rows: from, columns: to; each row sums to 1). Crashes are
# mostly followed by consolidation, trends mostly end in a range.
REGIME_EXIT_WEIGHTS: tuple[tuple[float, float, float, float], ...] = (
    (0.00, 0.30, 0.62, 0.08),
    (0.30, 0.00, 0.60, 0.10),
    (0.50, 0.40, 0.00, 0.10),
    (0.25, 0.15, 0.60, 0.00),
)

# Built-in assets: symbol, price [USDT], annual volatility [fraction], volume [USD per hour].
_PRESETS: tuple[tuple[str, float, float, float], ...] = (
    ("BTC/USDT:USDT", 42_000.0, 0.55, 6.0e8),
    ("ETH/USDT:USDT", 2_300.0, 0.65, 3.0e8),
    ("SOL/USDT:USDT", 100.0, 0.95, 1.0e8),
)
_SYNTHETIC_PRICE, _SYNTHETIC_VOL, _SYNTHETIC_VOLUME = 10.0, 0.85, 2.0e7
_JUMP_REFERENCE_VOL = 0.60  # jump sizes are given for an asset of this annual volatility
_HOURS_PER_YEAR = 24.0 * 365.0
_NS_PER_HOUR = 3_600_000_000_000
_MAX_ABS_Z_FOR_VOLUME = 10.0

_Positive = Annotated[float, Field(gt=0.0)]
_Vol = Annotated[float, Field(gt=0.0, le=5.0)]
_Duration = Annotated[float, Field(gt=0.0, le=100_000.0)]
_Drift = Annotated[float, Field(ge=-50.0, le=50.0)]
_VolMult = Annotated[float, Field(gt=0.0, le=20.0)]
_JumpRate = Annotated[float, Field(ge=0.0, le=100.0)]
_JumpMean = Annotated[float, Field(ge=-50.0, le=50.0)]
_JumpStd = Annotated[float, Field(ge=0.0, le=50.0)]
_Corr = Annotated[float, Field(ge=-1.0, le=1.0)]
_Quad = tuple[float, float, float, float]


class SyntheticMarketConfig(BaseModel):
    """Parameters of :func:`generate_market`; frozen, unknown fields rejected.

    Per-regime fields are 4-tuples in :class:`Regime` order (trend up, trend down, mean-revert,
    crash). Per-asset fields are ``None`` (built-in values: BTC, ETH, SOL, then synthetic
    ``SYN1/USDT:USDT`` …) or one value per asset.

    >>> SyntheticMarketConfig(n_assets=2, n_bars=500).timeframe
    '1h'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_assets: int = Field(3, ge=1, le=64, description="Number of assets [count], 1..64.")
    n_bars: int = Field(10_000, ge=2, le=20_000_000, description="Bars per asset [count], 2..2e7.")
    timeframe: str = Field("1h", description="Bar length [ccxt timeframe, '1m' .. '1w'].")
    start: datetime = Field(
        datetime(2024, 1, 1, tzinfo=UTC),
        description="Open time of the first bar [UTC]; on the timeframe's grid (epoch-anchored).",
    )
    seed: int = Field(0, ge=0, description="Seed of numpy's default_rng [integer >= 0].")
    symbols: tuple[str, ...] | None = Field(
        None, description="Asset names [ccxt unified symbols], one per asset; None = BTC, ETH, SOL, SYN1, …"
    )
    base_prices: tuple[_Positive, ...] | None = Field(
        None, description="Price before the first bar [quote currency, > 0], one per asset."
    )
    annual_vol: tuple[_Vol, ...] | None = Field(
        None, description="Base volatility of log returns [fraction per year, 0..5], one per asset."
    )
    volume_usd_per_h: tuple[_Positive, ...] | None = Field(
        None, description="Typical traded notional [USD per hour, > 0], one per asset."
    )
    correlation: float = Field(
        0.6, ge=-0.99, le=0.99,
        description="Pairwise correlation of return shocks outside the crash [-0.99..0.99].",
    )
    correlation_matrix: tuple[tuple[_Corr, ...], ...] | None = Field(
        None,
        description="Full N x N shock correlation matrix outside the crash [correlation, -1..1] "
        "(overrides correlation); symmetric, unit diagonal, positive semi-definite.",
    )
    crash_correlation: float = Field(
        0.85, ge=0.0, le=0.99,
        description="Average pairwise shock correlation in the crash regime [0..0.99]; not below "
        "the normal average.",
    )
    regime_durations_h: tuple[_Duration, _Duration, _Duration, _Duration] = Field(
        (120.0, 72.0, 120.0, 12.0),
        description="Expected time spent in each regime per visit [hours, > 0].",
    )
    regime_drift_annual: tuple[_Drift, _Drift, _Drift, _Drift] = Field(
        (2.5, -2.5, 0.0, -20.0),
        description="Expected log return without jumps in each regime [fraction per year, ±50].",
    )
    regime_vol_multiplier: tuple[_VolMult, _VolMult, _VolMult, _VolMult] = Field(
        (0.8, 1.1, 0.6, 3.0),
        description="Volatility multiplier of each regime [x base annual_vol, 0..20].",
    )
    jump_rate_per_day: tuple[_JumpRate, _JumpRate, _JumpRate, _JumpRate] = Field(
        (0.1, 0.2, 0.05, 1.5),
        description="Intensity of market-wide jumps in each regime [jumps per day, 0..100].",
    )
    jump_mean_pct: tuple[_JumpMean, _JumpMean, _JumpMean, _JumpMean] = Field(
        (0.0, -0.5, 0.0, -2.0),
        description="Mean jump log return per regime [% for a 60%-vol asset, scaled by "
        "annual_vol / 0.6; ±50].",
    )
    jump_std_pct: tuple[_JumpStd, _JumpStd, _JumpStd, _JumpStd] = Field(
        (1.0, 1.2, 0.8, 3.0),
        description="Standard deviation of a jump per regime [% for a 60%-vol asset; 0..50].",
    )
    mean_revert_half_life_h: float = Field(
        24.0, gt=0.0, le=100_000.0,
        description="Half-life of the pull back to the level where the mean-reverting regime "
        "began [hours, > 0].",
    )
    mean_revert_ar1: float = Field(
        -0.25, ge=-0.9, le=0.0,
        description="Lag-1 coefficient of returns in the mean-reverting regime [per bar, -0.9..0].",
    )
    garch_alpha: float = Field(
        0.05, ge=0.0, le=0.5, description="GARCH(1,1) shock coefficient [per bar, 0..0.5]."
    )
    garch_beta: float = Field(
        0.90, ge=0.0, le=0.999, description="GARCH(1,1) persistence [per bar, 0..0.999]; alpha + beta < 1."
    )
    open_gap_bps: float = Field(
        0.0, ge=0.0, le=100.0,
        description="Standard deviation of the gap between a close and the next open [bps, 0..100].",
    )
    volume_return_coef: float = Field(
        0.4, ge=0.0, le=5.0,
        description="Log-volume added per unit of |return| / base bar volatility [0..5].",
    )
    volume_regime_elasticity: float = Field(
        1.0, ge=0.0, le=5.0,
        description="Volume scales as regime vol multiplier ** elasticity [0..5].",
    )
    volume_noise_std: float = Field(
        0.3, ge=0.0, le=3.0, description="Lognormal volume noise [std of log volume, 0..3]."
    )
    volume_intraday_amplitude: float = Field(
        0.25, ge=0.0, le=0.95,
        description="Amplitude of the daily volume cycle peaking at 15:00 UTC [fraction, 0..0.95]; "
        "ignored for bars of a day or longer.",
    )
    premium_mean_pct: float = Field(
        0.0, ge=-1.0, le=1.0, description="Long-run premium of last over index [%, ±1]."
    )
    premium_std_pct: float = Field(
        0.02, ge=0.0, le=2.0,
        description="Stationary standard deviation of the premium noise at vol multiplier 1 [%, 0..2].",
    )
    premium_half_life_h: float = Field(
        4.0, gt=0.0, le=10_000.0, description="Half-life of premium deviations [hours, > 0]."
    )
    premium_trend_coef: float = Field(
        0.01, ge=-1.0, le=1.0,
        description="Premium added per unit of trailing log return [fraction per fraction, ±1].",
    )
    premium_trend_window_h: float = Field(
        24.0, gt=0.0, le=10_000.0, description="Window of the trailing return [hours, > 0]."
    )
    mark_basis_half_life_h: float = Field(
        0.5, gt=0.0, le=1_000.0,
        description="Half-life of the moving-average basis in the mark price [hours, > 0].",
    )
    funding_interval_h: int = Field(
        8, ge=1, le=24, description="Hours between funding settlements [h, divides 24]."
    )
    interest_rate_pct: float = Field(
        0.01, ge=-1.0, le=1.0, description="Interest rate [% per funding interval, ±1] (Binance: 0.01)."
    )
    interest_clamp_pct: float = Field(
        0.05, ge=0.0, le=5.0, description="Clamp of interest - premium [%, 0..5] (Binance: 0.05)."
    )
    funding_cap_pct: float = Field(
        0.75, gt=0.0, le=10.0, description="Cap and floor of the funding rate [%, 0..10]."
    )

    @field_validator("timeframe")
    @classmethod
    def _check_timeframe(cls, value: str) -> str:
        ms = timeframe_to_ms(value)
        if not 60_000 <= ms <= 604_800_000:
            raise ValueError(f"timeframe {value!r} must be between 1m and 1w")
        return value.strip()

    @field_validator("start")
    @classmethod
    def _check_start(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _check_consistency(self) -> SyntheticMarketConfig:
        n = self.n_assets
        for name in ("symbols", "base_prices", "annual_vol", "volume_usd_per_h"):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise ValueError(f"{name} has {len(values)} values but n_assets is {n}")
        if self.symbols is not None:
            for symbol in self.symbols:
                symbol_to_filename(symbol)  # raises ValueError naming a malformed symbol
            if len(set(self.symbols)) != n:
                raise ValueError("symbols must be unique")
        if self.correlation_matrix is not None:
            _check_matrix(self.correlation_matrix, n)
        elif n > 1 and self.correlation < -1.0 / (n - 1):
            raise ValueError(
                f"correlation {self.correlation} is below -1/(n_assets-1) = {-1.0 / (n - 1):.3f}; "
                "no such correlation matrix exists"
            )
        if n > 1 and self.crash_correlation < _mean_offdiag(self.shock_correlation()) - 1e-12:
            raise ValueError("crash_correlation must not be below the normal average correlation")
        if self.garch_alpha + self.garch_beta >= 1.0:
            raise ValueError("garch_alpha + garch_beta must be below 1")
        if 24 % self.funding_interval_h != 0:
            raise ValueError(f"funding_interval_h {self.funding_interval_h} does not divide 24")
        start = pd.DatetimeIndex([self.start]).tz_convert("UTC")
        if floor_to_timeframe(start, self.timeframe)[0] != start[0]:
            raise ValueError(
                f"start {start[0]} is not on the {self.timeframe} grid; use e.g. "
                f"{floor_to_timeframe(start, self.timeframe)[0]}"
            )
        return self

    def shock_correlation(self) -> np.ndarray:
        """``[N, N]`` correlation of return shocks outside the crash regime."""
        if self.correlation_matrix is not None:
            return np.asarray(self.correlation_matrix, dtype=np.float64)
        matrix = np.full((self.n_assets, self.n_assets), self.correlation)
        np.fill_diagonal(matrix, 1.0)
        return matrix

    def crash_shock_correlation(self) -> np.ndarray:
        """``[N, N]`` correlation in the crash: the normal one blended toward all-ones so that the
        average pairwise correlation equals ``crash_correlation``."""
        normal = self.shock_correlation()
        if self.n_assets < 2:
            return normal
        mean = _mean_offdiag(normal)
        weight = 0.0 if mean >= 1.0 else (self.crash_correlation - mean) / (1.0 - mean)
        weight = min(max(weight, 0.0), 1.0)
        return (1.0 - weight) * normal + weight * np.ones_like(normal)

    def asset_symbols(self) -> tuple[str, ...]:
        """The symbols of the assets, given or built in."""
        if self.symbols is not None:
            return self.symbols
        return tuple(
            _PRESETS[i][0] if i < len(_PRESETS) else f"SYN{i - len(_PRESETS) + 1}/USDT:USDT"
            for i in range(self.n_assets)
        )

    def _per_asset(self, name: str, column: int, fallback: float) -> np.ndarray:
        given = getattr(self, name)
        if given is not None:
            return np.asarray(given, dtype=np.float64)
        return np.array(
            [_PRESETS[i][column] if i < len(_PRESETS) else fallback for i in range(self.n_assets)]
        )


def _mean_offdiag(matrix: np.ndarray) -> float:
    n = matrix.shape[0]
    return float((matrix.sum() - np.trace(matrix)) / (n * (n - 1))) if n > 1 else 1.0


def _check_matrix(rows: tuple[tuple[float, ...], ...], n: int) -> None:
    if len(rows) != n or any(len(row) != n for row in rows):
        raise ValueError(f"correlation_matrix must be {n} x {n} (n_assets)")
    matrix = np.asarray(rows, dtype=np.float64)
    if not np.allclose(matrix, matrix.T, atol=1e-12):
        raise ValueError("correlation_matrix must be symmetric")
    if not np.allclose(np.diag(matrix), 1.0):
        raise ValueError("correlation_matrix must have ones on the diagonal")
    if np.linalg.eigvalsh(matrix).min() < -1e-10:
        raise ValueError("correlation_matrix must be positive semi-definite")


@dataclass(frozen=True)
class SyntheticMarket:
    """What :func:`generate_market` returns; every frame is indexed by UTC ``date``.

    Attributes
    ----------
    ohlcv:
        ``{symbol: frame}`` with float64 ``open high low close volume`` (volume in base units)
        per bar open time.
    funding:
        ``{symbol: frame}`` with ``funding_rate`` (fraction per interval; 0.0001 = 0.01%) at
        settlement times (00/08/16 UTC for 8 h), paid at that time.
    mark:
        ``{symbol: frame}`` with mark-price ``open high low close`` per bar.
    premium:
        ``{symbol: series}`` premium of last over index per bar (fraction), known at the close.
    regimes:
        True regime code per bar (:class:`Regime`, names in :data:`REGIME_NAMES`).
    config:
        The configuration that produced the market.
    """

    ohlcv: dict[str, pd.DataFrame]
    funding: dict[str, pd.DataFrame]
    mark: dict[str, pd.DataFrame]
    premium: dict[str, pd.Series]
    regimes: pd.Series
    config: SyntheticMarketConfig

    @property
    def symbols(self) -> list[str]:
        """Asset symbols in config order."""
        return list(self.ohlcv)


def _transition_matrix(config: SyntheticMarketConfig, hours_per_bar: float) -> np.ndarray:
    durations = np.asarray(config.regime_durations_h)
    stay = np.exp(-hours_per_bar / durations)
    exits = np.asarray(REGIME_EXIT_WEIGHTS)
    return np.diag(stay) + (1.0 - stay)[:, None] * exits


def _stationary(transition: np.ndarray) -> np.ndarray:
    k = transition.shape[0]
    system = np.vstack([transition.T - np.eye(k), np.ones(k)])
    target = np.append(np.zeros(k), 1.0)
    probs = np.linalg.lstsq(system, target, rcond=None)[0]
    probs = np.clip(probs, 0.0, None)
    return probs / probs.sum()


def _cholesky(matrix: np.ndarray) -> np.ndarray:
    # eigen-decomposition square root: works for singular (semi-definite) matrices too
    values, vectors = np.linalg.eigh(matrix)
    return vectors * np.sqrt(np.clip(values, 0.0, None))


def _bridge_extremes(
    drift: np.ndarray, sigma: np.ndarray, u_high: np.ndarray, u_low: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum and minimum of a Brownian bridge from 0 to ``drift`` with variance ``sigma**2``.

    Exact marginals: P(max > m) = exp(-2 m (m - drift) / sigma**2) for m >= max(0, drift).
    """
    var2 = 2.0 * sigma * sigma
    top = 0.5 * (drift + np.sqrt(drift * drift - var2 * np.log(u_high)))
    bottom = 0.5 * (drift - np.sqrt(drift * drift - var2 * np.log(u_low)))
    return top, bottom


def _funding_rates(
    premium: np.ndarray, start_ns: int, bar_ns: int, config: SyntheticMarketConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Funding times and rates: Binance's formula on the time-averaged premium of each interval."""
    n_bars = premium.shape[0]
    interval_ns = config.funding_interval_h * _NS_PER_HOUR
    end_ns = start_ns + n_bars * bar_ns
    first = (start_ns // interval_ns + 1) * interval_ns
    times = np.arange(first, end_ns, interval_ns, dtype=np.int64)
    if times.size == 0:
        return times, np.empty((0, premium.shape[1]))
    # integral of the bar-wise constant premium, in bar units, at any time
    cumulative = np.vstack([np.zeros((1, premium.shape[1])), np.cumsum(premium, axis=0)])

    def integral(t_ns: np.ndarray) -> np.ndarray:
        position = (t_ns - start_ns) / bar_ns
        bar = np.minimum(np.floor(position).astype(np.int64), n_bars - 1)
        return cumulative[bar] + premium[bar] * (position - bar)[:, None]

    window_start = np.maximum(times - interval_ns, start_ns)
    length = ((times - window_start) / bar_ns)[:, None]
    average = (integral(times) - integral(window_start)) / length
    interest = config.interest_rate_pct / 100.0
    clamp = config.interest_clamp_pct / 100.0
    cap = config.funding_cap_pct / 100.0
    # P + clamp(I - P, ±c), written so that it is exactly I inside the band (as on Binance)
    gap = interest - average
    rates = np.where(np.abs(gap) <= clamp, interest, average + np.clip(gap, -clamp, clamp))
    rates = np.clip(rates, -cap, cap)
    return times, rates


def _utc_index(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ns.view("datetime64[ns]"), name="date").tz_localize("UTC")


def generate_market(config: SyntheticMarketConfig | None = None, **overrides: Any) -> SyntheticMarket:
    """Generate a synthetic perpetual-futures market (OHLCV, funding, mark, premium, regimes).

    Parameters
    ----------
    config:
        The parameters; default :class:`SyntheticMarketConfig` ().
    **overrides:
        Fields to change in ``config`` (validated like the config itself), e.g. ``seed=3``.

    Returns
    -------
    SyntheticMarket
        Frames per symbol, ``n_bars`` bars from ``start``, bar t labelled by its open time.
        Guaranteed: prices > 0, ``high >= max(open, close)``, ``low <= min(open, close)``,
        volume > 0, no NaN, sorted unique UTC index; the same config gives identical frames.

    Raises
    ------
    pydantic.ValidationError
        A field is unknown or out of range; the message names it.

    >>> market = generate_market(n_assets=2, n_bars=48, seed=1)
    >>> market.symbols
    ['BTC/USDT:USDT', 'ETH/USDT:USDT']
    >>> market.ohlcv["BTC/USDT:USDT"].shape, len(market.funding["ETH/USDT:USDT"])
    ((48, 5), 5)
    """
    if config is None:
        config = SyntheticMarketConfig(**overrides)
    elif overrides:
        config = SyntheticMarketConfig.model_validate({**config.model_dump(), **overrides})
    n_bars, n_assets = config.n_bars, config.n_assets
    bar_ns = timeframe_to_ms(config.timeframe) * 1_000_000
    hours = bar_ns / _NS_PER_HOUR
    years = hours / _HOURS_PER_YEAR
    rng = np.random.default_rng(config.seed)

    transition = _transition_matrix(config, hours)
    regimes = regime_path_nb(transition, _stationary(transition), rng.random(n_bars))
    crash = (regimes == Regime.CRASH)[:, None]

    normal_root = _cholesky(config.shock_correlation())
    crash_root = _cholesky(config.crash_shock_correlation())
    raw = rng.standard_normal((n_bars, n_assets))
    shocks = np.where(crash, raw @ crash_root.T, raw @ normal_root.T)

    annual_vol = config._per_asset("annual_vol", 2, _SYNTHETIC_VOL)
    jump_scale = annual_vol / _JUMP_REFERENCE_VOL
    rate = np.asarray(config.jump_rate_per_day) * hours / 24.0
    counts = rng.poisson(rate[regimes]).astype(np.float64)[:, None]
    raw = rng.standard_normal((n_bars, n_assets))
    jump_shocks = np.where(crash, raw @ crash_root.T, raw @ normal_root.T)
    jump_mean = np.asarray(config.jump_mean_pct)[regimes, None] / 100.0
    jump_std = np.asarray(config.jump_std_pct)[regimes, None] / 100.0
    jumps = (counts * jump_mean + np.sqrt(counts) * jump_std * jump_shocks) * jump_scale

    vol_multiplier = np.asarray(config.regime_vol_multiplier, dtype=np.float64)
    sigma_base = annual_vol * math.sqrt(years)
    returns, sigma = log_returns_nb(
        regimes,
        shocks,
        jumps,
        np.asarray(config.regime_drift_annual, dtype=np.float64) * years,
        sigma_base,
        vol_multiplier,
        1.0 - 0.5 ** (hours / config.mean_revert_half_life_h),
        config.mean_revert_ar1,
        config.garch_alpha,
        config.garch_beta,
    )

    # bars: open = previous close x gap; high/low = Brownian-bridge extremes of open -> close
    base_price = config._per_asset("base_prices", 1, _SYNTHETIC_PRICE)
    log_close = np.log(base_price) + np.cumsum(returns, axis=0)
    close = np.exp(log_close)
    previous_close = np.vstack([base_price[None, :], close[:-1]])
    gap = config.open_gap_bps / 10_000.0 * rng.standard_normal((n_bars, n_assets))
    open_ = previous_close * np.exp(gap)
    top, bottom = _bridge_extremes(
        returns - gap, sigma, 1.0 - rng.random((n_bars, n_assets)), 1.0 - rng.random((n_bars, n_assets))
    )
    high = np.maximum(open_ * np.exp(top), np.maximum(open_, close))
    low = np.minimum(open_ * np.exp(bottom), np.minimum(open_, close))

    # volume: notional per bar x regime vol x |return| effect x time of day x lognormal noise
    start_ns = int(pd.Timestamp(config.start).as_unit("ns").value)
    open_ns = start_ns + np.arange(n_bars, dtype=np.int64) * bar_ns
    if hours < 24.0:
        mid_hour = ((open_ns + bar_ns // 2) % (24 * _NS_PER_HOUR)) / _NS_PER_HOUR
        season = 1.0 + config.volume_intraday_amplitude * np.cos(2.0 * np.pi * (mid_hour - 15.0) / 24.0)
    else:
        season = np.ones(n_bars)
    z = np.minimum(np.abs(returns) / sigma_base, _MAX_ABS_Z_FOR_VOLUME)
    noise_sd = config.volume_noise_std
    notional = config._per_asset("volume_usd_per_h", 3, _SYNTHETIC_VOLUME) * hours
    volume = (
        notional
        / close
        * (vol_multiplier[regimes] ** config.volume_regime_elasticity * season)[:, None]
        * np.exp(config.volume_return_coef * (z - math.sqrt(2.0 / math.pi)))
        * np.exp(noise_sd * rng.standard_normal((n_bars, n_assets)) - 0.5 * noise_sd**2)
    )

    # premium, mark and funding
    kappa = 1.0 - 0.5 ** (hours / config.premium_half_life_h)
    premium, basis = premium_path_nb(
        returns,
        regimes,
        rng.standard_normal((n_bars, n_assets)),
        config.premium_mean_pct / 100.0,
        config.premium_trend_coef,
        min(1.0, hours / config.premium_trend_window_h),
        kappa,
        config.premium_std_pct / 100.0 * math.sqrt(1.0 - (1.0 - kappa) ** 2),
        vol_multiplier,
        1.0 - 0.5 ** (hours / config.mark_basis_half_life_h),
    )
    factor = (1.0 + basis) / (1.0 + premium)
    previous_factor = np.vstack([factor[:1], factor[:-1]])
    mark_open = open_ * previous_factor
    mark_close = close * factor
    mark_high = np.maximum(high * np.maximum(factor, previous_factor), np.maximum(mark_open, mark_close))
    mark_low = np.minimum(low * np.minimum(factor, previous_factor), np.minimum(mark_open, mark_close))
    funding_ns, funding_rates = _funding_rates(premium, start_ns, bar_ns, config)

    index = _utc_index(open_ns)
    funding_index = _utc_index(funding_ns)
    ohlcv: dict[str, pd.DataFrame] = {}
    funding: dict[str, pd.DataFrame] = {}
    mark: dict[str, pd.DataFrame] = {}
    premia: dict[str, pd.Series] = {}
    for i, symbol in enumerate(config.asset_symbols()):
        attrs = {"symbol": symbol, "timeframe": config.timeframe, "exchange": "synthetic"}
        frame = pd.DataFrame(
            {"open": open_[:, i], "high": high[:, i], "low": low[:, i], "close": close[:, i],
             "volume": volume[:, i]},
            index=index,
        )
        frame.attrs = dict(attrs)
        ohlcv[symbol] = frame
        rates = pd.DataFrame({"funding_rate": funding_rates[:, i]}, index=funding_index)
        rates.attrs = {**attrs, "timeframe": f"{config.funding_interval_h}h"}
        funding[symbol] = rates
        marks = pd.DataFrame(
            {"open": mark_open[:, i], "high": mark_high[:, i], "low": mark_low[:, i],
             "close": mark_close[:, i]},
            index=index,
        )
        marks.attrs = dict(attrs)
        mark[symbol] = marks
        premia[symbol] = pd.Series(premium[:, i], index=index, name="premium")
    return SyntheticMarket(
        ohlcv=ohlcv,
        funding=funding,
        mark=mark,
        premium=premia,
        regimes=pd.Series(regimes, index=index, name="regime"),
        config=config,
    )
