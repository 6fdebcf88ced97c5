"""The batched env steps n envs in one numba call and equals n single envs exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("stable_baselines3")

from stable_baselines3.common.vec_env import VecNormalize

from quantum_trading.errors import ConfigError
from quantum_trading.rl.env import EnvConfig, PerpetualFuturesEnv
from quantum_trading.rl.spec import EnvSpec
from quantum_trading.rl.vec_env import PerpetualFuturesVecEnv

from .conftest import BTC, ETH


@pytest.mark.parametrize("action", ["target", "multi_head"])
def test_batched_equals_single_envs(real_bars: dict[str, pd.DataFrame], action: str) -> None:
    spec = EnvSpec(symbols=(BTC, ETH), timeframe="1h", action=action, window=8,
                   account_window=4)
    config = EnvConfig(episode_bars=60, reward="differential_sharpe", drawdown_penalty=1.0,
                       turnover_penalty=0.01)
    n, seed, steps = 5, 100, 150  # several episodes each: auto-reset is compared too
    vec = PerpetualFuturesVecEnv(real_bars, spec=spec, n_envs=n, config=config, seed=seed)
    singles = [PerpetualFuturesEnv(real_bars, spec=spec, config=config, seed=seed + i)
               for i in range(n)]
    space = singles[0].action_space
    space.seed(0)
    actions = np.stack([np.stack([space.sample() for _ in range(n)]) for _ in range(steps)])
    obs_v = vec.reset()
    obs_s = [env.reset()[0] for env in singles]
    for key in ("market", "account"):
        np.testing.assert_array_equal(obs_v[key], np.stack([o[key] for o in obs_s]))
    n_done = 0
    for k in range(steps):
        obs_v, rew_v, done_v, infos = vec.step(actions[k])
        for i, env in enumerate(singles):
            obs, rew, term, trunc, info = env.step(actions[k, i])
            assert rew_v[i] == np.float32(rew) and done_v[i] == (term or trunc)
            assert infos[i]["equity_usd"] == info["equity_usd"]
            if term or trunc:
                n_done += 1
                final = infos[i]["terminal_observation"]
                np.testing.assert_array_equal(final["account"], obs["account"])
                assert infos[i]["TimeLimit.truncated"] == (trunc and not term)
                obs, _ = env.reset()
            for key in ("market", "account"):
                np.testing.assert_array_equal(obs_v[key][i], obs[key])
    assert n_done >= 2 * n


def test_sb3_wrappers_accept_it(real_bars: dict[str, pd.DataFrame]) -> None:
    spec = EnvSpec(symbols=(BTC,), timeframe="1h")
    vec = VecNormalize(PerpetualFuturesVecEnv({BTC: real_bars[BTC]}, spec=spec, n_envs=3,
                                              config=EnvConfig(episode_bars=20), seed=0))
    obs = vec.reset()
    assert obs["market"].shape == (3, 32, 1, 8)
    for _ in range(25):
        obs, rewards, _, _ = vec.step(np.zeros((3, 1), dtype=np.float32))
    assert np.isfinite(obs["account"]).all() and rewards.shape == (3,)


def test_thread_count_changes_nothing(real_bars: dict[str, pd.DataFrame]) -> None:
    """70 envs run as one chunk (1 thread) or as 2 chunks on 2 threads: same numbers."""
    spec = EnvSpec(symbols=(BTC, ETH), timeframe="1h", window=8, account_window=4)
    config = EnvConfig(episode_bars=40)
    n, steps = 70, 90  # 2 chunks of >= 32 envs; every env ends an episode twice
    actions = np.random.default_rng(3).uniform(-1, 1, (steps, n, 2)).astype(np.float32)
    runs = []
    for threads in (1, 2):
        vec = PerpetualFuturesVecEnv(real_bars, spec=spec, n_envs=n, config=config, seed=7,
                                     n_threads=threads)
        assert vec.n_threads == threads
        out = [vec.reset()["account"]]
        for k in range(steps):
            obs, rew, done, infos = vec.step(actions[k])
            out += [obs["market"], obs["account"], rew, done,
                    np.array([info["equity_usd"] for info in infos])]
        vec.close()
        runs.append(out)
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_n_threads_is_checked(real_bars: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(ConfigError, match="n_threads"):
        PerpetualFuturesVecEnv({BTC: real_bars[BTC]}, spec=EnvSpec(symbols=(BTC,), timeframe="1h"),
                               n_envs=2, n_threads=0)
