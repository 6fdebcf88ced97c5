"""Policies for the RL env: extractors (shapes, equivariance, gradients, space checks), the
hierarchical multi-head distribution (exact joint probability), and PPO through
``policy_kwargs`` on a tiny bandit env built from :class:`EnvSpec` (learns, save → load)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

import gymnasium as gym
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO

from quantum_trading.errors import ConfigError
from quantum_trading.rl.extractors import check_observation_space
from quantum_trading.rl.policies import (
    FLAT,
    LONG,
    CrossAssetAttention,
    FusedExtractor,
    HierarchicalMultiDiscreteDistribution,
    MarketTransformerExtractor,
    MultiHeadActorCriticPolicy,
    RiskLSTMExtractor,
    policy_and_kwargs,
)
from quantum_trading.rl.spec import EnvSpec

_LR = lambda _progress: 1e-3  # noqa: E731  (an SB3 Schedule)
SMALL = {"d_model": 16, "n_heads": 2, "n_layers": 1, "lstm_hidden": 16, "features_dim": 32}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    th.set_num_threads(1)


def _spec(n_assets: int, action: str = "target") -> EnvSpec:
    return EnvSpec(symbols=tuple(f"A{i}/USDT:USDT" for i in range(n_assets)), timeframe="1h",
                   window=8, account_window=4, action=action)  # type: ignore[arg-type]


def _batch(space: spaces.Dict, n: int, seed: int = 0) -> dict[str, th.Tensor]:
    rng = np.random.default_rng(seed)
    return {k: th.as_tensor(rng.normal(size=(n, *space[k].shape)).astype(np.float32))
            for k in ("market", "account")}


class _BanditEnv(gym.Env):
    """Random observations; the reward pays for one particular action.

    ``target``: reward ``1 − mean |clip(a) − 0.5|``; ``multi_head``: per asset 1 for long, plus
    0.5 for long with the largest size bucket (averaged over assets).
    """

    def __init__(self, spec: EnvSpec, *, episode_len: int = 16) -> None:
        self.spec_ = spec
        self.observation_space = spec.observation_space()
        self.action_space = spec.action_space()
        self.episode_len = episode_len
        self._t = 0

    def _obs(self) -> dict[str, np.ndarray]:
        return {k: np.clip(self.np_random.normal(size=self.observation_space[k].shape), -10, 10)
                .astype(np.float32) for k in ("market", "account")}

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict]:
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        self._t += 1
        return self._obs(), _reward(self.spec_, np.asarray(action)[None])[0], False, \
            self._t >= self.episode_len, {}


def _reward(spec: EnvSpec, actions: np.ndarray) -> np.ndarray:
    """Reward of each row of ``actions`` ``[B, action_dim]`` → ``[B]``."""
    if spec.action == "target":
        return 1.0 - np.abs(np.clip(actions, -1, 1) - 0.5).mean(axis=1)
    per_asset = actions.reshape(len(actions), spec.n_assets, 3)
    long = per_asset[..., 0] == LONG
    biggest = per_asset[..., 1] == len(spec.size_buckets) - 1
    return (long + 0.5 * (long & biggest)).mean(axis=1)


def _mean_reward(model: PPO, spec: EnvSpec, n: int = 256) -> float:
    obs = {k: v.numpy() for k, v in _batch(spec.observation_space(), n, seed=123).items()}
    model.policy.set_training_mode(False)
    actions, _ = model.predict(obs, deterministic=False)
    return float(_reward(spec, actions).mean())


# -- extractors ---------------------------------------------------------------------------
@pytest.mark.parametrize("n_assets", [1, 3])
def test_shapes(n_assets: int) -> None:
    space = _spec(n_assets).observation_space()
    obs = _batch(space, 5)
    market = MarketTransformerExtractor(space, d_model=16, n_heads=2)
    assert market.encode(obs["market"]).shape == (5, n_assets, 16)
    assert market(obs).shape == (5, n_assets * 16) and market.features_dim == n_assets * 16
    assert CrossAssetAttention(d_model=16, n_heads=2)(th.zeros(5, n_assets, 16)).shape == \
        (5, n_assets, 16)
    risk = RiskLSTMExtractor(space, lstm_hidden=12)
    assert risk(obs).shape == (5, 12) and risk.features_dim == 12
    fused = FusedExtractor(space, **SMALL)
    assert fused(obs).shape == (5, 32) and fused.features_dim == 32
    assert FusedExtractor(space)(obs).shape == (5, 128)  # the defaults


def test_market_transformer_weights_are_shared_across_assets() -> None:
    market = MarketTransformerExtractor(_spec(3).observation_space(), d_model=16, n_heads=2)
    other_n = _batch(_spec(5).observation_space(), 4)["market"]
    out = market.encode(other_n)
    assert out.shape == (4, 5, 16)
    # asset 2 alone gives the same vector as asset 2 among others (no cross-asset mixing yet)
    market.eval()
    th.testing.assert_close(market.encode(other_n[:, :, 2:3])[:, 0], market.encode(other_n)[:, 2])


def test_cross_asset_attention_is_permutation_equivariant() -> None:
    th.manual_seed(0)
    attn = CrossAssetAttention(d_model=16, n_heads=4, n_layers=2).eval()
    x = th.randn(6, 5, 16)
    perm = th.tensor([3, 0, 4, 1, 2])
    th.testing.assert_close(attn(x[:, perm]), attn(x)[:, perm], rtol=1e-5, atol=1e-5)
    # the whole market path (temporal transformer → cross-asset attention) too
    fused = FusedExtractor(_spec(5).observation_space(), **SMALL).eval()
    market = _batch(_spec(5).observation_space(), 3)["market"]
    per_asset = fused.cross_asset(fused.market.encode(market))
    permuted = fused.cross_asset(fused.market.encode(market[:, :, perm]))
    th.testing.assert_close(permuted, per_asset[:, perm], rtol=1e-5, atol=1e-5)
    assert not th.allclose(per_asset[:, 0], per_asset[:, 1])  # assets do differ


def _assert_all_grads(module: th.nn.Module) -> None:
    missing = [name for name, p in module.named_parameters()
               if p.grad is None or not th.any(p.grad != 0)]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("n_assets", [1, 3])
def test_gradients_reach_every_extractor_parameter(n_assets: int) -> None:
    th.manual_seed(0)
    space = _spec(n_assets).observation_space()
    fused = FusedExtractor(space, **SMALL)
    (fused(_batch(space, 4)) ** 2).sum().backward()
    _assert_all_grads(fused)


@pytest.mark.parametrize("n_assets", [1, 3])
def test_gradients_reach_every_multi_head_policy_parameter(n_assets: int) -> None:
    th.manual_seed(0)
    spec = _spec(n_assets, "multi_head")
    policy = MultiHeadActorCriticPolicy(
        spec.observation_space(), spec.action_space(), _LR,
        features_extractor_kwargs=SMALL, net_arch=[32])
    obs = _batch(spec.observation_space(), 16)
    actions, _, _ = policy(obs)
    assert actions.shape == (16, 3 * n_assets)
    values, log_prob, entropy = policy.evaluate_actions(obs, actions)
    assert values.shape == (16, 1) and log_prob.shape == (16,) and entropy.shape == (16,)
    (values.pow(2).mean() - log_prob.mean() - entropy.mean()).backward()
    _assert_all_grads(policy)


# -- the hierarchical distribution --------------------------------------------------------
def test_hierarchical_distribution_is_an_exact_joint_distribution() -> None:
    th.manual_seed(1)
    n_sizes, n_stops = 3, 2
    dist = HierarchicalMultiDiscreteDistribution(n_assets=1, n_sizes=n_sizes, n_stops=n_stops)
    dist.proba_distribution(th.randn(2, 1, 3), th.randn(2, 1, 2, n_sizes) * 2,
                            th.randn(2, 1, 2, n_stops) * 2)
    # every distinct outcome: flat (size and stop fixed at 0), or an opening direction with any
    # size and stop
    outcomes = [(FLAT, 0, 0)] + [(d, s, j) for d in (0, LONG) for s, j in
                                 itertools.product(range(n_sizes), range(n_stops))]
    actions = th.tensor(outcomes).repeat_interleave(2, dim=0).reshape(len(outcomes), 2, 3)
    log_p = th.stack([dist.log_prob(a) for a in actions])  # [outcomes, batch]
    th.testing.assert_close(log_p.exp().sum(dim=0), th.ones(2))
    th.testing.assert_close(dist.entropy(), -(log_p.exp() * log_p).sum(dim=0))
    # samples are canonical outcomes (a flat direction carries size 0 and stop 0)
    samples = th.cat([dist.sample() for _ in range(200)])
    assert {tuple(row) for row in samples[:, :3].tolist()} <= set(outcomes)
    mode = dist.mode()[0].tolist()
    assert mode[0] == int(th.argmax(dist.direction.probs[0, 0]))  # type: ignore[union-attr]


def test_multi_head_log_prob_matches_between_rollout_and_update() -> None:
    spec = _spec(3, "multi_head")
    policy = MultiHeadActorCriticPolicy(
        spec.observation_space(), spec.action_space(), _LR,
        features_extractor_kwargs=SMALL)
    obs = _batch(spec.observation_space(), 8)
    with th.no_grad():
        actions, _, log_prob = policy(obs)
        _, again, _ = policy.evaluate_actions(obs, actions)
    th.testing.assert_close(log_prob, again)
    per_asset = actions.reshape(8, 3, 3)
    flat = per_asset[..., 0] == FLAT
    assert th.all(per_asset[..., 1][flat] == 0) and th.all(per_asset[..., 2][flat] == 0)


# -- space checks -------------------------------------------------------------------------
def test_wrong_observation_space_gives_a_clear_error() -> None:
    good = _spec(2).observation_space()
    with pytest.raises(ConfigError, match="Dict with keys 'market' and 'account'"):
        FusedExtractor(spaces.Box(-1, 1, (8, 2, 8)))
    with pytest.raises(ConfigError, match=r"missing \['account'\]"):
        FusedExtractor(spaces.Dict({"market": good["market"]}))
    with pytest.raises(ConfigError, match=r"'market' must have shape \[window, n_assets"):
        FusedExtractor(spaces.Dict({"market": spaces.Box(-1, 1, (8, 16)),
                                    "account": good["account"]}))
    bad_account = spaces.Dict({"market": good["market"], "account": spaces.Box(-1, 1, (4, 9))})
    with pytest.raises(ConfigError, match=r"'account' has shape \(4, 9\).*3 \+ 2·n_assets = 7"):
        FusedExtractor(bad_account)
    with pytest.raises(ConfigError, match="multiple of n_heads"):
        FusedExtractor(good, d_model=10, n_heads=4)
    # through PPO: the error surfaces as it is
    env = _BanditEnv(_spec(2))
    env.observation_space = bad_account
    with pytest.raises(ConfigError, match="'account'"):
        PPO("MultiInputPolicy", env, policy_kwargs={"features_extractor_class": FusedExtractor})
    assert check_observation_space(good).n_assets == 2


def test_multi_head_policy_rejects_mismatched_action_space() -> None:
    obs_space = _spec(2).observation_space()
    with pytest.raises(ConfigError, match="MultiDiscrete"):
        MultiHeadActorCriticPolicy(obs_space, _spec(2).action_space(), _LR)
    with pytest.raises(ConfigError, match="action space has 3 asset"):
        MultiHeadActorCriticPolicy(obs_space, _spec(3, "multi_head").action_space(),
                                   _LR)
    with pytest.raises(ConfigError, match="repeat"):
        MultiHeadActorCriticPolicy(obs_space, spaces.MultiDiscrete([3, 3, 3, 2, 3, 3]),
                                   _LR)


# -- PPO end to end -----------------------------------------------------------------------
_PPO = {"n_steps": 128, "batch_size": 64, "n_epochs": 6, "learning_rate": 3e-3, "gamma": 0.0,
        "gae_lambda": 0.0, "ent_coef": 0.0, "seed": 0, "device": "cpu"}


@pytest.mark.parametrize(("action", "steps", "margin"), [("target", 768, 0.15),
                                                         ("multi_head", 512, 0.4)])
def test_ppo_learns_the_rewarded_action_and_reloads_identically(
        action: str, steps: int, margin: float, tmp_path: Path) -> None:
    spec = _spec(2, action)
    policy, kwargs = policy_and_kwargs(action, **SMALL, net_arch=[32])  # type: ignore[arg-type]
    env = _BanditEnv(spec)
    model = PPO(policy, env, policy_kwargs=kwargs, **_PPO)
    if action == "target":
        assert type(model.policy).__name__ == "MultiInputActorCriticPolicy"
    else:
        assert isinstance(model.policy, MultiHeadActorCriticPolicy)
    before = _mean_reward(model, spec)
    model.learn(total_timesteps=steps)
    after = _mean_reward(model, spec)
    print(f"{action}: mean reward {before:.3f} -> {after:.3f}")
    assert after > before + margin, (before, after)

    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    assert type(loaded.policy) is type(model.policy)
    obs = {k: v.numpy() for k, v in _batch(spec.observation_space(), 32, seed=7).items()}
    expected, _ = model.predict(obs, deterministic=True)
    got, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(got, expected)


def test_multi_input_policy_string_with_fused_extractor() -> None:
    model = PPO("MultiInputPolicy", _BanditEnv(_spec(1)), n_steps=32, batch_size=32, n_epochs=1,
                seed=0, device="cpu",
                policy_kwargs={"features_extractor_class": FusedExtractor,
                               "features_extractor_kwargs": SMALL})
    model.learn(total_timesteps=32)
    assert isinstance(model.policy.features_extractor, FusedExtractor)
