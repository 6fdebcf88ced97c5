"""The synthetic market: determinism, bar invariants, regime statistics, funding, config errors."""

from __future__ import annotations

import doctest
import time

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from quantum_trading.data import synthetic
from quantum_trading.data.synthetic import (
    REGIME_NAMES,
    Regime,
    SyntheticMarket,
    SyntheticMarketConfig,
    generate_market,
)
from quantum_trading.data.timeframes import timeframe_to_timedelta

N_BARS = 100_000


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return generate_market(n_assets=3, n_bars=N_BARS, timeframe="1h", seed=11)


def _log_returns(market: SyntheticMarket) -> tuple[np.ndarray, np.ndarray]:
    """``[T-1, N]`` close-to-close log returns and the regime of each return's bar."""
    closes = np.column_stack([df["close"].to_numpy() for df in market.ohlcv.values()])
    return np.diff(np.log(closes), axis=0), market.regimes.to_numpy()[1:]


def _rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(pd.Series(a).rank(), pd.Series(b).rank())[0, 1])


def assert_strict_ohlcv(df: pd.DataFrame, timeframe: str) -> None:
    """Canonical OHLCV: UTC ``date`` index on a regular grid, float64 columns, sane prices."""
    assert isinstance(df.index, pd.DatetimeIndex)
    assert str(df.index.tz) == "UTC" and df.index.name == "date"
    assert df.index.is_unique and df.index.is_monotonic_increasing
    assert (np.diff(df.index.asi8) == timeframe_to_timedelta(timeframe).value).all()
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert (df.dtypes == np.float64).all()
    values = df.to_numpy()
    assert np.isfinite(values).all()
    o, h, low, c, v = values.T
    assert (low > 0).all() and (o > 0).all() and (c > 0).all()
    assert (h >= np.maximum(o, c)).all()
    assert (low <= np.minimum(o, c)).all()
    assert (v > 0).all()


def test_docstring_examples_run() -> None:
    assert doctest.testmod(synthetic, raise_on_error=True).failed == 0


def test_same_seed_gives_identical_frames_and_another_seed_differs() -> None:
    first = generate_market(n_bars=3000, seed=42)
    again = generate_market(SyntheticMarketConfig(n_bars=3000, seed=42))
    other = generate_market(n_bars=3000, seed=43)
    for symbol in first.symbols:
        pd.testing.assert_frame_equal(first.ohlcv[symbol], again.ohlcv[symbol], check_exact=True)
        pd.testing.assert_frame_equal(first.funding[symbol], again.funding[symbol], check_exact=True)
        pd.testing.assert_frame_equal(first.mark[symbol], again.mark[symbol], check_exact=True)
        pd.testing.assert_series_equal(first.premium[symbol], again.premium[symbol], check_exact=True)
        assert not np.allclose(first.ohlcv[symbol]["close"], other.ohlcv[symbol]["close"])
    pd.testing.assert_series_equal(first.regimes, again.regimes, check_exact=True)
    assert not first.regimes.equals(other.regimes)


def test_overrides_are_validated_and_applied() -> None:
    base = SyntheticMarketConfig(n_bars=200)
    market = generate_market(base, seed=5, n_assets=2)
    assert market.config.seed == 5 and market.config.n_bars == 200
    assert market.symbols == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    with pytest.raises(ValidationError, match="n_assets"):
        generate_market(base, n_assets=0)


@pytest.mark.parametrize(
    ("timeframe", "n_assets", "gap_bps"),
    [("1m", 2, 0.0), ("15m", 3, 1.0), ("1h", 5, 0.0), ("4h", 1, 3.0), ("1d", 3, 0.0), ("1w", 2, 0.0)],
)
def test_bars_pass_a_strict_ohlcv_check(timeframe: str, n_assets: int, gap_bps: float) -> None:
    market = generate_market(
        n_assets=n_assets, n_bars=3000, timeframe=timeframe, seed=3, open_gap_bps=gap_bps
    )
    assert len(market.ohlcv) == n_assets
    first_open = pd.Timestamp("2024-01-01", tz="UTC")
    for symbol, df in market.ohlcv.items():
        assert_strict_ohlcv(df, timeframe)
        assert len(df) == 3000 and df.index[0] == first_open
        previous_close = df["close"].to_numpy()[:-1]
        opens = df["open"].to_numpy()[1:]
        if gap_bps == 0.0:
            np.testing.assert_array_equal(opens, previous_close)
        else:
            gap = np.abs(opens / previous_close - 1.0)
            assert 0 < gap.max() < 10 * gap_bps / 1e4
        mark = market.mark[symbol]
        assert mark.index.equals(df.index) and list(mark.columns) == ["open", "high", "low", "close"]
        m = mark.to_numpy()
        assert np.isfinite(m).all() and (m > 0).all()
        assert (m[:, 1] >= np.maximum(m[:, 0], m[:, 3])).all()
        assert (m[:, 2] <= np.minimum(m[:, 0], m[:, 3])).all()
        assert np.abs(mark["close"] / df["close"] - 1.0).max() < 0.01
    assert market.regimes.index.equals(market.ohlcv[market.symbols[0]].index)
    assert set(np.unique(market.regimes)) <= {int(r) for r in Regime}


def test_symbols_are_ccxt_names_then_synthetic_ones() -> None:
    market = generate_market(n_assets=5, n_bars=50)
    assert market.symbols == [
        "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "SYN1/USDT:USDT", "SYN2/USDT:USDT"
    ]
    custom = generate_market(n_assets=2, n_bars=50, symbols=("AAA/USDT:USDT", "BBB/USDT:USDT"),
                             base_prices=(5.0, 7.0))
    assert custom.symbols == ["AAA/USDT:USDT", "BBB/USDT:USDT"]
    assert abs(custom.ohlcv["AAA/USDT:USDT"]["open"].iloc[0] - 5.0) < 1e-12


def test_regime_names_cover_every_regime() -> None:
    assert {int(r): r.name.lower() for r in Regime} == REGIME_NAMES


def test_regimes_are_persistent_with_the_configured_durations(market: SyntheticMarket) -> None:
    codes = market.regimes.to_numpy()
    change = np.flatnonzero(np.diff(codes)) + 1
    run_starts = np.concatenate(([0], change))
    run_lengths = np.diff(np.append(run_starts, codes.size))[1:-1]  # cut runs at both ends
    run_codes = codes[run_starts][1:-1]
    for regime, duration_h in zip(Regime, market.config.regime_durations_h, strict=True):
        lengths = run_lengths[run_codes == regime]
        assert lengths.size > 30, regime
        assert abs(lengths.mean() / duration_h - 1.0) < 0.35, (regime, lengths.mean())


def test_realised_correlation_matches_the_configuration(market: SyntheticMarket) -> None:
    returns, regimes = _log_returns(market)
    calm = np.corrcoef(returns[regimes != Regime.CRASH].T)
    crash = np.corrcoef(returns[regimes == Regime.CRASH].T)
    pairs = np.triu_indices(3, 1)
    np.testing.assert_allclose(calm[pairs], market.config.correlation, atol=0.05)
    np.testing.assert_allclose(crash[pairs], market.config.crash_correlation, atol=0.07)
    assert crash[pairs].min() > calm[pairs].max()


def test_a_full_correlation_matrix_is_reproduced() -> None:
    matrix = ((1.0, 0.8, 0.2), (0.8, 1.0, 0.4), (0.2, 0.4, 1.0))
    market = generate_market(
        n_bars=60_000, seed=2, correlation_matrix=matrix, crash_correlation=0.5,
        jump_rate_per_day=(0.0, 0.0, 0.0, 0.0),
    )
    returns, regimes = _log_returns(market)
    realised = np.corrcoef(returns[regimes != Regime.CRASH].T)
    np.testing.assert_allclose(realised, np.asarray(matrix), atol=0.04)


def test_regime_statistics_follow_their_design(market: SyntheticMarket) -> None:
    returns, regimes = _log_returns(market)
    for i in range(returns.shape[1]):
        r = returns[:, i]
        stats = {}
        for regime in Regime:
            x = r[regimes == regime]
            stats[regime] = (x.mean(), x.std(), x.mean() / x.std() * np.sqrt(x.size))
        assert stats[Regime.TREND_UP][2] > 3.0, stats  # mean > 0 at t > 3
        assert stats[Regime.TREND_DOWN][2] < -3.0, stats
        assert stats[Regime.CRASH][0] < stats[Regime.TREND_DOWN][0]
        vols = {regime: s[1] for regime, s in stats.items()}
        assert max(vols, key=vols.get) == Regime.CRASH
        assert vols[Regime.CRASH] > 2 * max(v for k, v in vols.items() if k != Regime.CRASH)
        # lag-1 autocorrelation within runs of one regime
        same = regimes[1:] == regimes[:-1]
        for regime, low, high in ((Regime.MEAN_REVERT, -1.0, -0.15), (Regime.TREND_UP, -0.05, 0.05)):
            keep = same & (regimes[1:] == regime)
            ac1 = np.corrcoef(r[1:][keep], r[:-1][keep])[0, 1]
            assert low < ac1 < high, (regime, ac1)


def test_bar_range_and_volume_scale_with_volatility(market: SyntheticMarket) -> None:
    returns, _ = _log_returns(market)
    codes = market.regimes.to_numpy()
    for i, df in enumerate(market.ohlcv.values()):
        log_range = np.log(df["high"] / df["low"]).to_numpy()
        mean_range = {regime: log_range[codes == regime].mean() for regime in Regime}
        assert max(mean_range, key=mean_range.get) == Regime.CRASH
        assert mean_range[Regime.MEAN_REVERT] == min(mean_range.values())
        # in quote currency: base-unit volume also moves inversely with the price level
        notional = (df["volume"] * df["close"]).to_numpy()
        assert _rank_corr(np.abs(returns[:, i]), notional[1:]) > 0.35
        assert notional[codes == Regime.CRASH].mean() > 2 * notional[codes == Regime.MEAN_REVERT].mean()


def test_funding_is_paid_at_00_08_16_utc_and_follows_the_premium(market: SyntheticMarket) -> None:
    config = market.config
    index = market.ohlcv[market.symbols[0]].index
    for symbol in market.symbols:
        funding = market.funding[symbol]
        assert list(funding.columns) == ["funding_rate"] and funding.index.name == "date"
        times = funding.index
        assert set(times.hour) == {0, 8, 16}
        assert (times.minute == 0).all() and (times.second == 0).all()
        assert (np.diff(times.asi8) == pd.Timedelta("8h").value).all()
        assert times[0] > index[0] and times[-1] <= index[-1]
        assert len(times) == (N_BARS - 1) // 8
        rate = funding["funding_rate"]
        assert rate.abs().max() <= config.funding_cap_pct / 100
        assert (rate == config.interest_rate_pct / 100).mean() > 0.5  # mostly the 0.01% default
        # Binance: clamp(P + clamp(I - P, ±0.05%), ±cap), P = premium averaged over the interval
        premium = market.premium[symbol]
        average = premium.rolling(8).mean().shift(1).reindex(times).to_numpy()
        expected = np.clip(average + np.clip(0.0001 - average, -0.0005, 0.0005), -0.0075, 0.0075)
        np.testing.assert_allclose(rate.to_numpy(), expected, rtol=0, atol=1e-15)
        assert np.corrcoef(rate, average)[0, 1] > 0.3


def test_premium_rises_with_the_recent_trend(market: SyntheticMarket) -> None:
    for symbol, df in market.ohlcv.items():
        trailing = np.log(df["close"]).diff(24)
        assert market.premium[symbol].corr(trailing) > 0.3


def test_other_funding_intervals() -> None:
    market = generate_market(n_bars=500, funding_interval_h=4, n_assets=1)
    funding = market.funding["BTC/USDT:USDT"]
    assert set(funding.index.hour) == {0, 4, 8, 12, 16, 20}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"bogus": 1}, "bogus"),
        ({"n_assets": 0}, "n_assets"),
        ({"n_bars": 1}, "n_bars"),
        ({"correlation": 1.5}, "correlation"),
        ({"crash_correlation": -0.1}, "crash_correlation"),
        ({"regime_durations_h": (10.0, 10.0, 10.0, -1.0)}, "regime_durations_h"),
        ({"regime_vol_multiplier": (1.0, 1.0, 1.0)}, "regime_vol_multiplier"),
        ({"annual_vol": (0.5, 0.5)}, "annual_vol"),
        ({"annual_vol": (0.5, 0.5, 9.0)}, "annual_vol"),
        ({"symbols": ("BTC/USDT:USDT", "ETH", "SOL/USDT:USDT")}, "ETH"),
        ({"timeframe": "7x"}, "timeframe"),
        ({"timeframe": "2w"}, "timeframe"),
        ({"start": "2024-01-01 00:30"}, "start"),
        ({"garch_alpha": 0.2, "garch_beta": 0.85}, "garch_alpha"),
        ({"funding_interval_h": 5}, "funding_interval_h"),
        ({"correlation": 0.9, "crash_correlation": 0.5}, "crash_correlation"),
        ({"correlation_matrix": ((1.0, 0.9), (0.9, 1.0))}, "correlation_matrix"),
        ({"n_assets": 3, "correlation": -0.8}, "correlation"),
    ],
)
def test_bad_config_raises_naming_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SyntheticMarketConfig(**overrides)
    assert field in str(caught.value)


def test_config_is_frozen_and_documented() -> None:
    config = SyntheticMarketConfig()
    with pytest.raises(ValidationError):
        config.seed = 3  # type: ignore[misc]
    for name, info in SyntheticMarketConfig.model_fields.items():
        assert info.description and "[" in info.description, name


def test_generation_is_fast() -> None:
    generate_market(n_bars=100)  # compiled (or loaded from the numba cache)
    began = time.perf_counter()
    generate_market(n_assets=3, n_bars=100_000, timeframe="1h")
    assert time.perf_counter() - began < 2.0  # ~0.1 s on one idle core; loose for busy CI
