"""Augmentations: invariants (returns, OHLC validity, block contents, notional volume),
determinism by seed, permutation round trips, the config and the noise wrappers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from quantum_trading.data import generate_market
from quantum_trading.errors import ConfigError
from quantum_trading.rl import augment as aug
from quantum_trading.rl.augment import (
    AssetPermutation,
    AugmentConfig,
    FeatureNoiseWrapper,
    add_feature_noise,
    augment_bars,
    join_market_series,
    permute_assets,
    scale_prices,
    segment_order,
    shuffle_segments,
)

SYMS = ("AAA/USDT:USDT", "BBB/USDT:USDT")


def _frame(rets: list[float], seed: int) -> pd.DataFrame:
    """Valid OHLCV bars from close-to-close log returns (random wicks, gaps and volume)."""
    rng = np.random.default_rng(seed)
    n = len(rets)
    close = 100.0 * np.exp(np.cumsum(rets))
    prev = np.concatenate([[100.0], close[:-1]])
    opens = prev * np.exp(rng.normal(0, 0.001, n))
    high = np.maximum(opens, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(opens, close) * (1 - rng.uniform(0, 0.01, n))
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    return pd.DataFrame({"open": opens, "high": high, "low": low, "close": close,
                         "volume": rng.uniform(1, 100, n),
                         "funding_rate": np.where(np.arange(n) % 8 == 0, rng.normal(0, 1e-4, n),
                                                  0.0)}, index=idx)


returns_lists = st.lists(st.floats(-0.05, 0.05, allow_nan=False), min_size=4, max_size=80)


def _ohlc_valid(frame: pd.DataFrame) -> bool:
    o, h, lo, c = (frame[k].to_numpy() for k in ("open", "high", "low", "close"))
    tol = 1e-9 * np.abs(h)
    return bool(np.all(lo > 0) and np.all(h >= np.maximum(o, c) - tol)
                and np.all(lo <= np.minimum(o, c) + tol))


def _bars(rets: list[float], seed: int) -> dict[str, pd.DataFrame]:
    return {SYMS[0]: _frame(rets, seed), SYMS[1]: _frame(rets[::-1], seed + 1)}


# -- price scaling ---------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(rets=returns_lists, seed=st.integers(0, 10_000))
def test_scaling_keeps_returns_validity_and_notional_volume(rets: list[float], seed: int) -> None:
    bars = _bars(rets, seed)
    out, factors = scale_prices(bars, np.random.default_rng(seed), low=0.01, high=100.0)
    for sym, frame in bars.items():
        new = out[sym]
        assert _ohlc_valid(new)
        np.testing.assert_allclose(np.diff(np.log(new["close"])), np.diff(np.log(frame["close"])),
                                   atol=1e-12)
        np.testing.assert_allclose(new["high"] / new["low"], frame["high"] / frame["low"],
                                   rtol=1e-12)
        np.testing.assert_allclose(new["volume"] * new["close"], frame["volume"] * frame["close"],
                                   rtol=1e-12)
        np.testing.assert_array_equal(new["funding_rate"], frame["funding_rate"])
        np.testing.assert_allclose(new["close"] / frame["close"], factors[sym], rtol=1e-12)
        assert 0.01 <= factors[sym] <= 100.0


def test_scaling_changes_levels_and_leaves_input_alone() -> None:
    bars = generate_market(n_assets=2, n_bars=100, seed=3).ohlcv
    before = {s: f.copy() for s, f in bars.items()}
    out, factors = scale_prices(bars, np.random.default_rng(1), low=0.5, high=2.0)
    assert len(set(factors.values())) == 2 and all(f != 1.0 for f in factors.values())
    for s in bars:
        pd.testing.assert_frame_equal(bars[s], before[s])
        assert not np.allclose(out[s]["close"], bars[s]["close"])
    with pytest.raises(ConfigError, match="low <= high"):
        scale_prices(bars, np.random.default_rng(1), low=2.0, high=1.0)


# -- segment shuffling -----------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(rets=returns_lists, seed=st.integers(0, 10_000), block=st.integers(2, 12))
def test_shuffle_keeps_block_contents_validity_and_index(rets: list[float], seed: int,
                                                         block: int) -> None:
    bars = _bars(rets, seed)
    out = shuffle_segments(bars, np.random.default_rng(seed), block_bars=block)
    order = segment_order(len(rets), block, np.random.default_rng(seed))
    for sym, frame in bars.items():
        new = out[sym]
        assert new.index.equals(frame.index)
        assert _ohlc_valid(new)
        o, c = frame["open"].to_numpy(), frame["close"].to_numpy()
        pos = 0
        for rows in order:
            seg = new.iloc[pos:pos + len(rows)]
            src = frame.iloc[rows]
            # one factor per block: returns and OHLC shape are the block's own
            k = seg["close"].to_numpy() / src["close"].to_numpy()
            np.testing.assert_allclose(k, k[0], rtol=1e-9)
            for col in ("open", "high", "low"):
                np.testing.assert_allclose(seg[col].to_numpy(), src[col].to_numpy() * k[0],
                                           rtol=1e-9)
            np.testing.assert_allclose(seg["volume"] * seg["close"], src["volume"] * src["close"],
                                       rtol=1e-9)
            np.testing.assert_array_equal(seg["funding_rate"], src["funding_rate"])
            if pos > 0:  # stitched: the block's own gap from the previous close
                gap = o[rows[0]] / c[rows[0] - 1] if rows[0] > 0 else 1.0
                np.testing.assert_allclose(seg["open"].iloc[0] / new["close"].iloc[pos - 1],
                                           gap, rtol=1e-9)
            pos += len(rows)
        assert new["open"].iloc[0] == pytest.approx(frame["open"].iloc[0], rel=1e-12)


def test_shuffle_reorders_and_is_deterministic_by_seed() -> None:
    m = generate_market(n_assets=2, n_bars=400, seed=5)
    bars = join_market_series(m.ohlcv, funding=m.funding, mark=m.mark)
    a = shuffle_segments(bars, np.random.default_rng(11), block_bars=24)
    b = shuffle_segments(bars, np.random.default_rng(11), block_bars=24)
    c = shuffle_segments(bars, np.random.default_rng(12), block_bars=24)
    for s in bars:
        pd.testing.assert_frame_equal(a[s], b[s])
        assert not np.allclose(a[s]["close"], c[s]["close"])
        r_new = np.diff(np.log(a[s]["close"].to_numpy()))
        r_old = np.diff(np.log(bars[s]["close"].to_numpy()))
        assert not np.allclose(r_new, r_old)  # the order did change
        # the multiset of within-bar returns is the same (rows are only moved)
        np.testing.assert_allclose(np.sort(np.log(a[s]["close"] / a[s]["open"])),
                                   np.sort(np.log(bars[s]["close"] / bars[s]["open"])), atol=1e-12)
        # mark is a price: scaled with its bar
        ratio = (a[s]["mark_price"] / a[s]["open"]).to_numpy()
        assert np.allclose(np.sort(ratio), np.sort(bars[s]["mark_price"] / bars[s]["open"]))
    # one block order for every asset: the cross-asset return pairs stay together
    s0, s1 = list(bars)
    pairs_new = set(zip(np.round(np.log(a[s0]["close"] / a[s0]["open"]), 12),
                        np.round(np.log(a[s1]["close"] / a[s1]["open"]), 12), strict=True))
    pairs_old = set(zip(np.round(np.log(bars[s0]["close"] / bars[s0]["open"]), 12),
                        np.round(np.log(bars[s1]["close"] / bars[s1]["open"]), 12), strict=True))
    assert pairs_new == pairs_old


def test_shuffle_rejects_bad_arguments() -> None:
    bars = generate_market(n_assets=2, n_bars=50, seed=1).ohlcv
    with pytest.raises(ConfigError, match="block_bars"):
        shuffle_segments(bars, np.random.default_rng(0), block_bars=1)
    with pytest.raises(ConfigError, match="Generator"):
        shuffle_segments(bars, 3, block_bars=8)  # type: ignore[arg-type]
    other = dict(bars)
    other["X"] = bars[next(iter(bars))].iloc[1:]
    with pytest.raises(ConfigError, match="one bar index"):
        shuffle_segments(other, np.random.default_rng(0), block_bars=8)


# -- feature noise ---------------------------------------------------------------------------

def test_feature_noise_statistics_and_determinism() -> None:
    x = np.zeros((64, 3, 8), dtype=np.float32)
    y = add_feature_noise(x, np.random.default_rng(0), std=0.5)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert abs(float(y.std()) - 0.5) < 0.03 and abs(float(y.mean())) < 0.03
    np.testing.assert_array_equal(y, add_feature_noise(x, np.random.default_rng(0), std=0.5))
    z = add_feature_noise(np.full((4, 4), 9.9), np.random.default_rng(0), std=5.0, clip=10.0)
    assert np.abs(z).max() <= 10.0
    np.testing.assert_array_equal(add_feature_noise(x, np.random.default_rng(0), std=0.0), x)


class _DictEnv(gym.Env):
    """A constant Dict-observation env (stands in for the market/account observation)."""

    observation_space = gym.spaces.Dict({
        "market": gym.spaces.Box(-10, 10, (4, 2, 3), np.float32),
        "account": gym.spaces.Box(-10, 10, (2, 7), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        return {k: np.ones(s.shape, np.float32) for k, s in self.observation_space.items()}, {}

    def step(self, action: np.ndarray) -> tuple:
        obs, _ = self.reset()
        return obs, 0.0, False, False, {}


def test_noise_wrapper_touches_market_only_and_reseeds() -> None:
    env = FeatureNoiseWrapper(_DictEnv(), std=0.2)
    obs1, _ = env.reset(seed=3)
    obs2, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs1["market"], obs2["market"])
    assert not np.allclose(obs1["market"], 1.0)
    np.testing.assert_array_equal(obs1["account"], 1.0)
    step_obs = env.step(np.zeros(2, np.float32))[0]
    assert not np.allclose(step_obs["market"], obs1["market"])
    assert env.observation_space.contains(step_obs)


def test_vec_noise_wrapper() -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = aug.VecFeatureNoise(DummyVecEnv([_DictEnv, _DictEnv]), std=0.1, seed=0)
    obs = venv.reset()
    assert obs["market"].shape == (2, 4, 2, 3)
    assert not np.allclose(obs["market"], 1.0)
    np.testing.assert_array_equal(obs["account"], 1.0)
    obs, rewards, _dones, _ = venv.step(np.zeros((2, 2), np.float32))
    assert not np.allclose(obs["market"], 1.0) and rewards.shape == (2,)
    with pytest.raises(AttributeError):
        _ = aug.NoSuchThing  # type: ignore[attr-defined]


# -- asset permutation -----------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), width=st.integers(1, 3), seed=st.integers(0, 1000))
def test_permutation_round_trips(n: int, width: int, seed: int) -> None:
    perm = AssetPermutation.random(n, np.random.default_rng(seed))
    acts = np.random.default_rng(seed).normal(size=(5, n * width))
    np.testing.assert_array_equal(perm.actions_to_slots(perm.actions_to_assets(acts)), acts)
    by_asset = perm.actions_to_assets(acts)
    for slot, asset in enumerate(perm.perm):  # the triplet of slot i acts on asset perm[i]
        np.testing.assert_array_equal(by_asset[:, asset * width:(asset + 1) * width],
                                      acts[:, slot * width:(slot + 1) * width])


def test_permute_assets_moves_data_between_slots() -> None:
    bars = generate_market(n_assets=3, n_bars=30, seed=4).ohlcv
    names = list(bars)
    for seed in range(20):  # find a seed that is not the identity
        out, perm = permute_assets(bars, np.random.default_rng(seed))
        if perm.perm != (0, 1, 2):
            break
    assert list(out) == names
    for slot, asset in enumerate(perm.perm):
        np.testing.assert_array_equal(out[names[slot]]["close"], bars[names[asset]]["close"])
        assert out[names[slot]].attrs["source_symbol"] == names[asset]
        assert perm.inverse[asset] == slot
    with pytest.raises(ConfigError, match="permutation"):
        AssetPermutation((0, 0, 1))


# -- config and the combined pipeline --------------------------------------------------------

def test_config_is_strict_and_frozen() -> None:
    cfg = AugmentConfig(segment_shuffle=True, price_scale=True, feature_noise_std=0.1,
                        permute_assets=True)
    assert cfg.active == ("segment_shuffle", "price_scale", "permute_assets", "feature_noise")
    with pytest.raises(ValidationError, match="segment_bar"):
        AugmentConfig(segment_bar=10)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="price_scale_min"):
        AugmentConfig(price_scale_min=3.0, price_scale_max=2.0)
    with pytest.raises(ValidationError):
        cfg.segment_bars = 3  # type: ignore[misc]
    assert AugmentConfig().active == ()


def test_augment_bars_is_deterministic_and_valid() -> None:
    m = generate_market(n_assets=3, n_bars=200, seed=8)
    cfg = AugmentConfig(segment_shuffle=True, segment_bars=16, price_scale=True,
                        permute_assets=True)
    a, pa = augment_bars(m.ohlcv, cfg, np.random.default_rng(1), funding=m.funding)
    b, pb = augment_bars(m.ohlcv, cfg, np.random.default_rng(1), funding=m.funding)
    assert pa == pb and pa is not None
    for s in m.ohlcv:
        pd.testing.assert_frame_equal(a[s], b[s])
        assert _ohlc_valid(a[s]) and "funding_rate" in a[s].columns
        assert a[s].index.equals(m.ohlcv[s].index)
    # total funding paid is only moved around, never changed
    assert sum(a[s]["funding_rate"].sum() for s in a) == pytest.approx(
        sum(float(m.funding[s]["funding_rate"].sum()) for s in m.funding), rel=1e-9)
    off, perm = augment_bars(m.ohlcv, AugmentConfig(), np.random.default_rng(1))
    assert perm is None
    for s in m.ohlcv:
        pd.testing.assert_frame_equal(off[s], m.ohlcv[s])
        assert off[s] is not m.ohlcv[s]
