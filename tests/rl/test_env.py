"""PerpetualFuturesEnv: gymnasium / SB3 checks, termination, errors, reproducibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("stable_baselines3")

from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from quantum_trading.domain import Instrument
from quantum_trading.errors import ConfigError, DataError
from quantum_trading.rl.env import EnvConfig, PerpetualFuturesEnv
from quantum_trading.rl.spec import EnvSpec
from quantum_trading.sim import AccountConfig, CostsConfig

from .conftest import BTC, ETH, walk

SYMS3 = ("A/USDT:USDT", "B/USDT:USDT", "C/USDT:USDT")


def _three() -> dict[str, pd.DataFrame]:
    return {s: walk(400, seed=k) for k, s in enumerate(SYMS3)}


@pytest.mark.parametrize("action", ["target", "multi_head"])
@pytest.mark.parametrize("n_assets", [1, 3])
def test_checkers_pass(action: str, n_assets: int) -> None:
    bars = {s: f for s, f in list(_three().items())[:n_assets]}
    spec = EnvSpec(symbols=tuple(bars), timeframe="1h", action=action, window=16,
                   account_window=8)
    env = PerpetualFuturesEnv(bars, spec=spec, config=EnvConfig(episode_bars=40), seed=1)
    check_env(env, skip_render_check=True)
    with pytest.warns(UserWarning):  # SB3 takes the 3-D market Box for an image; nothing else
        sb3_check_env(env, warn=True)


def _crash(gap: bool) -> pd.DataFrame:
    bars = walk(80, seed=3)
    t = 60
    prev = float(bars["close"].iloc[t - 1])
    if gap:  # opens 60 % lower: past the bankruptcy price of a 10x long
        bars.iloc[t, :4] = [0.4 * prev, 0.41 * prev, 0.39 * prev, 0.4 * prev]
    else:  # a 15 % wick inside the bar: liquidates a 10x long, equity left
        bars.iloc[t, :4] = [prev, prev * 1.001, 0.85 * prev, 0.999 * prev]
    return bars


@pytest.mark.parametrize("gap", [False, True])
def test_liquidation_and_bankruptcy_terminate(gap: bool) -> None:
    spec = EnvSpec(symbols=("X/USDT:USDT",), timeframe="1h", features=("log_return", "rsi"),
                   window=4, max_leverage=10.0)
    # isolated: the liquidated position loses its margin (half the equity), the rest stays;
    # cross with a gap past the bankruptcy price: everything is lost
    account = AccountConfig(leverage=10.0, margin_mode="cross" if gap else "isolated")
    config = EnvConfig(start="first", risk=None, account=account,
                       costs=CostsConfig(default_funding_rate=0.0))
    action = np.array([1.0 if gap else 0.5], dtype=np.float32)
    env = PerpetualFuturesEnv(_crash(gap), spec=spec, config=config,
                              instruments=Instrument.generic("X/USDT:USDT", max_leverage=20.0))
    env.reset()
    while True:
        _, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    assert terminated and not truncated and info["bar"] == 60
    assert info["liquidated"] != gap  # a gap past zero equity is a bankruptcy close at the open
    assert info["bankrupt"] == gap
    assert (info["equity_usd"] == 0.0) == gap and info["positions"][0] == 0.0
    assert reward < (-1.0 if gap else -0.3)  # the log of what was left
    assert gap or 0.3 < info["equity_usd"] / 10_000.0 < 0.6
    with pytest.raises(ConfigError, match="reset"):
        env.step(np.array([0.0], dtype=np.float32))


def test_truncated_at_episode_end_and_reproducible(real_bars: dict[str, pd.DataFrame]) -> None:
    spec = EnvSpec(symbols=(BTC, ETH), timeframe="1h")

    def run(seed: int) -> tuple[list[int], np.ndarray]:
        env = PerpetualFuturesEnv(real_bars, spec=spec, config=EnvConfig(episode_bars=30),
                                  seed=seed)
        rng = np.random.default_rng(5)
        starts, eq = [], []
        for _ in range(3):
            _, info = env.reset()
            starts.append(info["bar"])
            for k in range(30):
                _, _, term, trunc, info = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
                eq.append(info["equity_usd"])
                assert trunc == (k == 29) and not term
        return starts, np.array(eq)

    a, b, c = run(7), run(7), run(8)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    assert a[0] != c[0]
    lo, hi = PerpetualFuturesEnv(real_bars, spec=spec, config=EnvConfig(episode_bars=30)).start_range
    assert lo == 215 + 31 and hi == len(real_bars[BTC]) - 31 and all(lo <= s <= hi for s in a[0])


def test_bad_inputs_are_named(real_bars: dict[str, pd.DataFrame]) -> None:
    spec = EnvSpec(symbols=(BTC, ETH), timeframe="1h")
    bad = real_bars[ETH].copy()
    bad.iloc[300, bad.columns.get_loc("high")] = np.nan
    with pytest.raises(DataError, match=r"ETH/USDT:USDT.*high.*300"):
        PerpetualFuturesEnv({BTC: real_bars[BTC], ETH: bad}, spec=spec)
    with pytest.raises(ConfigError, match=r"symbols=\[BTC/USDT:USDT, ETH/USDT:USDT\].*"
                                          r"symbols=\[ETH/USDT:USDT, BTC/USDT:USDT\]"):
        PerpetualFuturesEnv({ETH: real_bars[ETH], BTC: real_bars[BTC]}, spec=spec)
    with pytest.raises(ConfigError, match=r"timeframe=.4h.*timeframe="):
        PerpetualFuturesEnv(real_bars, spec=spec.model_copy(update={"timeframe": "4h"}))
    with pytest.raises(ConfigError, match=r"max_leverage=3 .*leverage=1"):
        PerpetualFuturesEnv(real_bars, spec=spec.model_copy(update={"max_leverage": 3.0}))
    with pytest.raises(ConfigError, match="data too short"):
        PerpetualFuturesEnv(real_bars, spec=spec, config=EnvConfig(episode_bars=900))
    env = PerpetualFuturesEnv(real_bars, spec=spec, seed=0)
    env.reset()
    with pytest.raises(ConfigError, match=r"action shape \(3,\), expected \(2,\)"):
        env.step(np.zeros(3, dtype=np.float32))
    with pytest.raises(ConfigError, match=r"action\[1\] for 'ETH/USDT:USDT' is nan"):
        env.step(np.array([0.0, np.nan], dtype=np.float32))
    mh = PerpetualFuturesEnv(real_bars, spec=spec.model_copy(update={"action": "multi_head"}))
    mh.reset(seed=0)
    with pytest.raises(ConfigError, match=r"action\[5\] \(stop multiple of 'ETH/USDT:USDT'\) "
                                          r"is 3; expected an integer in \[0, 2\]"):
        mh.step(np.array([2, 1, 1, 0, 0, 3]))


def test_observation_contents(real_bars: dict[str, pd.DataFrame]) -> None:
    spec = EnvSpec(symbols=(BTC, ETH), timeframe="1h", window=8, account_window=4)
    env = PerpetualFuturesEnv(real_bars, spec=spec, config=EnvConfig(risk=None))
    obs, info = env.reset(options={"start_bar": 400})
    assert info["bar"] == 400 and info["time"] == real_bars[BTC].index[400]
    assert not obs["account"].any()  # flat, at the initial cash
    from quantum_trading.rl.features import market_features

    feats, _ = market_features(real_bars, spec.features)
    np.testing.assert_array_equal(obs["market"], feats[393:401])
    obs, _, _, _, info = env.step(np.array([0.6, -0.3], dtype=np.float32))
    row = obs["account"][-1]
    eq = info["equity_usd"]
    close = np.array([real_bars[BTC]["close"].iloc[401], real_bars[ETH]["close"].iloc[401]])
    np.testing.assert_allclose(row[3:5], info["positions"] * close / eq, rtol=1e-6)
    assert row[3] == pytest.approx(0.6, abs=0.01) and row[4] == pytest.approx(-0.3, abs=0.01)
    assert row[0] == pytest.approx(np.log(eq / 10_000.0), abs=1e-6)
    assert info["fees_usd"] > 0 and np.array_equal(obs["account"][:3], np.zeros((3, 7)))


def test_observations_are_fresh_across_pool_blocks() -> None:
    """Observations and info positions come from pool blocks written by the kernel: each step's
    arrays are its own memory, kept intact after later steps and new blocks (more steps than
    one block holds), and the kernel refuses to write past a full block."""
    from quantum_trading.rl import env as env_module
    from quantum_trading.rl.env_nb import RC_POOL_FULL

    bars = walk(600, seed=5)
    spec = EnvSpec(symbols=("X/USDT:USDT",), timeframe="1h", window=8, account_window=4)
    env = PerpetualFuturesEnv(bars, spec=spec, config=EnvConfig(start="first"), seed=0)
    obs, info = env.reset()
    kept = [(obs, info["positions"])]
    copies = [({k: v.copy() for k, v in obs.items()}, info["positions"].copy())]
    rng = np.random.default_rng(0)
    for _ in range(env_module._POOL * 2 + 10):
        obs, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, 1).astype(np.float32))
        assert not (terminated or truncated)
        kept.append((obs, info["positions"]))
        copies.append(({k: v.copy() for k, v in obs.items()}, info["positions"].copy()))
    for (o, p), (oc, pc) in zip(kept, copies, strict=True):
        np.testing.assert_array_equal(o["market"], oc["market"])
        np.testing.assert_array_equal(o["account"], oc["account"])
        np.testing.assert_array_equal(p, pc)
    assert not np.shares_memory(kept[-1][0]["market"], kept[-2][0]["market"])
    assert len({float(p[0]) for _, p in kept}) > 10  # positions really changed
    # a full block: the kernel writes nothing and says so; step() takes a new block
    env._slot[0] = env_module._POOL
    assert env._step_fn(*env._step_args)[0] == RC_POOL_FULL
    np.testing.assert_array_equal(kept[-1][0]["market"], copies[-1][0]["market"])
    obs, *_ = env.step(np.array([0.1], dtype=np.float32))
    assert obs["market"].shape == spec.market_shape


@pytest.mark.parametrize("action", ["target", "multi_head"])
def test_episode_buffers_hold_only_this_episode(action: str) -> None:
    """A reset clears the decisions of the episode before (only those rows are cleared):
    after several episodes at different starts, the targets (and stop distances) are NaN
    everywhere but on this episode's decision bars."""
    bars = walk(600, seed=9)
    spec = EnvSpec(symbols=("X/USDT:USDT",), timeframe="1h", action=action, window=8,
                   account_window=4)
    env = PerpetualFuturesEnv(bars, spec=spec, config=EnvConfig(episode_bars=30), seed=3)
    rng = np.random.default_rng(1)
    for _ in range(4):
        _, info = env.reset()
        first = info["bar"]
        done = False
        while not done:
            if action == "target":
                act = rng.uniform(-1, 1, 1).astype(np.float32)
            else:  # long or short (direction 0 or 2), a stop on every entry
                act = np.array([2 * rng.integers(0, 2), 0, len(spec.stop_multiples) - 1])
            _, _, terminated, truncated, info = env.step(act)
            done = terminated or truncated
        decided = np.flatnonzero(env.episode_targets().notna().to_numpy()[:, 0])
        assert decided.min() == first and decided.max() == info["bar"] - 1
        assert len(decided) == info["bar"] - first
        if action == "multi_head":
            stops = env.episode_stop_distances().notna().to_numpy()[:, 0]
            assert set(np.flatnonzero(stops)) <= set(decided) and stops.any()
