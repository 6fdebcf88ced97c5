"""Actor-critic policies for :class:`~quantum_trading.rl.env.PerpetualFuturesEnv`, plugged into
SB3's PPO through ``policy_kwargs`` (PPO itself is never subclassed).

* ``action="target"`` (``Box(-1, 1, (N,))``): SB3's ``MultiInputPolicy`` with
  ``features_extractor_class=FusedExtractor``; the standard diagonal-Gaussian head.
* ``action="multi_head"`` (``MultiDiscrete([3, K, J] × N)``): :class:`MultiHeadActorCriticPolicy`,
  with a hierarchical head per asset: first the direction (short / flat / long), then the size
  bucket and the stop multiple *given the sampled direction*.

The hierarchical distribution, per asset ``i`` (``d`` direction, ``s`` size, ``j`` stop)::

    p(d, s, j) = p(d) · p(s | d) · p(j | d)   if d opens a position (short or long)
    p(d)                                     if d is flat (size and stop do not matter)

is exact, so PPO's ratio and entropy bonus are computed on the true joint probability. A flat
direction always comes with size bucket 0 and stop multiple 0 in sampled actions (the env
ignores both when the target is 0).

>>> policy, kwargs = policy_and_kwargs("multi_head", d_model=16)  # doctest: +SKIP
>>> PPO(policy, env, policy_kwargs=kwargs)  # doctest: +SKIP
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal, Self

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy, MultiInputActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn
from torch.distributions import Categorical

from quantum_trading.errors import ConfigError
from quantum_trading.rl.extractors import (
    CrossAssetAttention,
    FusedExtractor,
    MarketTransformerExtractor,
    RiskLSTMExtractor,
    check_observation_space,
)

__all__ = [
    "FLAT",
    "LONG",
    "SHORT",
    "CrossAssetAttention",
    "FusedExtractor",
    "HierarchicalActionHead",
    "HierarchicalMultiDiscreteDistribution",
    "MarketTransformerExtractor",
    "MultiHeadActorCriticPolicy",
    "RiskLSTMExtractor",
    "policy_and_kwargs",
]

SHORT, FLAT, LONG = 0, 1, 2
"""Direction codes of the multi-head action (see :mod:`quantum_trading.rl.spec`)."""


class HierarchicalActionHead(nn.Module):
    """Logits of the hierarchical multi-head action from the policy latent.

    * direction: ``Linear(latent) → [B, N, 3]``;
    * per asset a context ``Linear(latent) → [B, N, hidden_dim]``; for each opening direction
      (short, long) ``z = tanh(context + embedding[direction])`` ``[B, N, 2, hidden_dim]``;
    * size ``Linear(z) → [B, N, 2, n_sizes]`` and stop ``Linear(z) → [B, N, 2, n_stops]``:
      the size and stop logits *given* short (index 0) or long (index 1).

    The size and stop layers and the direction embedding are shared across assets.
    """

    def __init__(self, *, latent_dim: int, n_assets: int, n_sizes: int, n_stops: int,
                 hidden_dim: int = 32) -> None:
        super().__init__()
        self.n_assets = n_assets
        self.hidden_dim = hidden_dim
        self.direction = nn.Linear(latent_dim, n_assets * 3)
        self.context = nn.Linear(latent_dim, n_assets * hidden_dim)
        self.direction_embedding = nn.Embedding(2, hidden_dim)
        self.size = nn.Linear(hidden_dim, n_sizes)
        self.stop = nn.Linear(hidden_dim, n_stops)

    def forward(self, latent: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """``[B, latent_dim]`` → direction logits ``[B, N, 3]``, size logits ``[B, N, 2, K]``,
        stop logits ``[B, N, 2, J]`` (axis 2: given short, given long)."""
        batch = latent.shape[0]
        direction = self.direction(latent).reshape(batch, self.n_assets, 3)
        context = self.context(latent).reshape(batch, self.n_assets, 1, self.hidden_dim)
        z = th.tanh(context + self.direction_embedding.weight)
        return direction, self.size(z), self.stop(z)


class HierarchicalMultiDiscreteDistribution(Distribution):
    """Per asset: direction, then size bucket and stop multiple given the direction.

    Actions are laid out as the spec's ``MultiDiscrete([3, K, J] × N)``: ``[B, 3·N]`` =
    ``(d_0, s_0, j_0, d_1, s_1, j_1, …)``. Log-probabilities and entropies are summed over the
    assets, ``[B]``. For a flat direction only ``log p(d)`` counts (size and stop are irrelevant),
    and sampled actions carry size 0 and stop 0.

    Entropy (exact): ``H(d) + Σ_{d ∈ {short, long}} p(d) · (H(s | d) + H(j | d))`` per asset.
    """

    def __init__(self, *, n_assets: int, n_sizes: int, n_stops: int) -> None:
        super().__init__()
        self.n_assets = n_assets
        self.n_sizes = n_sizes
        self.n_stops = n_stops
        self.direction: Categorical | None = None
        self.size_logits: th.Tensor | None = None
        self.stop_logits: th.Tensor | None = None

    def proba_distribution_net(self, latent_dim: int, hidden_dim: int = 32) -> nn.Module:
        """The :class:`HierarchicalActionHead` that maps the latent to this distribution's
        parameters."""
        return HierarchicalActionHead(latent_dim=latent_dim, n_assets=self.n_assets,
                                      n_sizes=self.n_sizes, n_stops=self.n_stops,
                                      hidden_dim=hidden_dim)

    def proba_distribution(self, direction_logits: th.Tensor, size_logits: th.Tensor,
                           stop_logits: th.Tensor) -> Self:
        """Set the parameters: ``[B, N, 3]``, ``[B, N, 2, K]``, ``[B, N, 2, J]``."""
        self.direction = Categorical(logits=direction_logits)
        self.size_logits = size_logits
        self.stop_logits = stop_logits
        return self

    def _params(self) -> tuple[Categorical, th.Tensor, th.Tensor]:
        if self.direction is None or self.size_logits is None or self.stop_logits is None:
            raise RuntimeError("call proba_distribution() before using the distribution")
        return self.direction, self.size_logits, self.stop_logits

    def _conditionals(self, direction: th.Tensor) -> tuple[Categorical, Categorical]:
        """Size and stop distributions ``[B, N]`` given directions ``[B, N]`` (flat → the
        'short' row, masked out by the callers)."""
        _, size_logits, stop_logits = self._params()
        opening = (direction == LONG).long()[..., None, None]  # 0: short (or flat), 1: long
        size = size_logits.gather(2, opening.expand(-1, -1, 1, self.n_sizes)).squeeze(2)
        stop = stop_logits.gather(2, opening.expand(-1, -1, 1, self.n_stops)).squeeze(2)
        return Categorical(logits=size), Categorical(logits=stop)

    def _split(self, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        per_asset = actions.long().reshape(actions.shape[0], self.n_assets, 3)
        return per_asset[..., 0], per_asset[..., 1], per_asset[..., 2]

    def _join(self, direction: th.Tensor, size: th.Tensor, stop: th.Tensor) -> th.Tensor:
        flat = direction == FLAT
        size = th.where(flat, th.zeros_like(size), size)
        stop = th.where(flat, th.zeros_like(stop), stop)
        return th.stack([direction, size, stop], dim=-1).reshape(direction.shape[0], -1)

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        """Joint log-probability of ``actions`` ``[B, 3·N]`` → ``[B]``."""
        direction_dist, _, _ = self._params()
        direction, size, stop = self._split(actions)
        size_dist, stop_dist = self._conditionals(direction)
        given = size_dist.log_prob(size) + stop_dist.log_prob(stop)
        log_p = direction_dist.log_prob(direction) + th.where(
            direction == FLAT, th.zeros_like(given), given)
        return log_p.sum(dim=1)

    def entropy(self) -> th.Tensor:
        """Exact joint entropy in nats, summed over assets → ``[B]``."""
        direction_dist, size_logits, stop_logits = self._params()
        given = Categorical(logits=size_logits).entropy() + Categorical(
            logits=stop_logits).entropy()  # [B, N, 2]
        p_open = direction_dist.probs[..., [SHORT, LONG]]
        return (direction_dist.entropy() + (p_open * given).sum(dim=-1)).sum(dim=1)

    def sample(self) -> th.Tensor:
        """Direction first, then size and stop given it → ``[B, 3·N]`` (int64)."""
        direction_dist, _, _ = self._params()
        direction = direction_dist.sample()
        size_dist, stop_dist = self._conditionals(direction)
        return self._join(direction, size_dist.sample(), stop_dist.sample())

    def mode(self) -> th.Tensor:
        """Most likely direction, then the most likely size and stop given it → ``[B, 3·N]``."""
        direction_dist, _, _ = self._params()
        direction = th.argmax(direction_dist.probs, dim=-1)
        size_dist, stop_dist = self._conditionals(direction)
        return self._join(direction, th.argmax(size_dist.probs, dim=-1),
                          th.argmax(stop_dist.probs, dim=-1))

    def actions_from_params(self, direction_logits: th.Tensor, size_logits: th.Tensor,
                            stop_logits: th.Tensor, deterministic: bool = False) -> th.Tensor:
        """Set the parameters and return actions (sampled, or the mode)."""
        self.proba_distribution(direction_logits, size_logits, stop_logits)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(self, direction_logits: th.Tensor, size_logits: th.Tensor,
                             stop_logits: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Sampled actions ``[B, 3·N]`` and their log-probabilities ``[B]``."""
        actions = self.actions_from_params(direction_logits, size_logits, stop_logits)
        return actions, self.log_prob(actions)


def _multi_head_sizes(action_space: spaces.Space) -> tuple[int, int, int]:
    """``(n_assets, n_sizes, n_stops)`` of a ``MultiDiscrete([3, K, J] × N)`` space."""
    if not isinstance(action_space, spaces.MultiDiscrete) or action_space.nvec.ndim != 1:
        raise ConfigError(
            "MultiHeadActorCriticPolicy needs the spec's MultiDiscrete([3, n_size_buckets, "
            f"n_stop_multiples] × n_assets) action space (action='multi_head'), got {action_space}")
    nvec = action_space.nvec
    if len(nvec) % 3 != 0 or len(nvec) == 0:
        raise ConfigError(f"multi_head action space must have 3 entries per asset, got "
                          f"{len(nvec)}: {nvec.tolist()}")
    per_asset = nvec.reshape(-1, 3)
    if not (np.all(per_asset[:, 0] == 3) and np.all(per_asset[:, 1] == per_asset[0, 1])
            and np.all(per_asset[:, 2] == per_asset[0, 2])):
        raise ConfigError("multi_head action space must repeat [3, n_size_buckets, "
                          f"n_stop_multiples] for every asset, got {nvec.tolist()}")
    return len(per_asset), int(per_asset[0, 1]), int(per_asset[0, 2])


class MultiHeadActorCriticPolicy(ActorCriticPolicy):
    """Actor-critic for the ``multi_head`` action: hierarchical direction → (size, stop) heads.

    Takes every ``ActorCriticPolicy`` keyword (``net_arch``, ``features_extractor_kwargs``,
    ``ortho_init``, …); the features extractor defaults to :class:`FusedExtractor`. The actor's
    latent feeds a :class:`HierarchicalActionHead`; actions follow
    :class:`HierarchicalMultiDiscreteDistribution`. The critic is SB3's linear value head.

    Parameters
    ----------
    head_hidden_dim:
        Width of the per-asset context that the size and stop heads see together with the
        direction embedding.

    >>> PPO(MultiHeadActorCriticPolicy, env,  # doctest: +SKIP
    ...     policy_kwargs=dict(features_extractor_kwargs=dict(d_model=16)))
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 lr_schedule: Schedule, *args: Any, head_hidden_dim: int = 32,
                 **kwargs: Any) -> None:
        n_assets, n_sizes, n_stops = _multi_head_sizes(action_space)
        if isinstance(observation_space, spaces.Dict):
            n_obs_assets = check_observation_space(observation_space).n_assets
            if n_obs_assets != n_assets:
                raise ConfigError(
                    f"action space has {n_assets} asset(s) but observation key 'market' has "
                    f"{n_obs_assets}: {tuple(observation_space['market'].shape)}")
        if head_hidden_dim < 1:
            raise ConfigError(f"head_hidden_dim must be >= 1, got {head_hidden_dim}")
        if kwargs.get("use_sde"):
            raise ConfigError("use_sde is for continuous actions; multi_head is discrete")
        self._head_sizes = (n_assets, n_sizes, n_stops)
        self.head_hidden_dim = head_hidden_dim
        kwargs.setdefault("features_extractor_class", FusedExtractor)
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        """Networks and optimizer, as ``ActorCriticPolicy._build`` but with the hierarchical
        head."""
        self._build_mlp_extractor()
        n_assets, n_sizes, n_stops = self._head_sizes
        self.action_dist = HierarchicalMultiDiscreteDistribution(
            n_assets=n_assets, n_sizes=n_sizes, n_stops=n_stops)
        self.action_net = self.action_dist.proba_distribution_net(
            self.mlp_extractor.latent_dim_pi, hidden_dim=self.head_hidden_dim)
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        if self.ortho_init:
            module_gains: dict[nn.Module, float] = {
                self.mlp_extractor: np.sqrt(2), self.action_net: 0.01, self.value_net: 1.0}
            if self.share_features_extractor:
                module_gains[self.features_extractor] = np.sqrt(2)
            else:
                module_gains[self.pi_features_extractor] = np.sqrt(2)
                module_gains[self.vf_features_extractor] = np.sqrt(2)
            # The per-asset context is a hidden layer, not an output: the usual hidden gain.
            module_gains[self.action_net.context] = np.sqrt(2)
            for module, gain in module_gains.items():
                module.apply(partial(self.init_weights, gain=gain))
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor) -> Distribution:
        """Actor latent ``[B, latent_dim_pi]`` → :class:`HierarchicalMultiDiscreteDistribution`."""
        direction, size, stop = self.action_net(latent_pi)
        assert isinstance(self.action_dist, HierarchicalMultiDiscreteDistribution)
        return self.action_dist.proba_distribution(direction, size, stop)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["head_hidden_dim"] = self.head_hidden_dim
        return data


def policy_and_kwargs(
    action: Literal["target", "multi_head"], *, d_model: int = 32, n_heads: int = 4,
    n_layers: int = 1, dropout: float = 0.0, lstm_hidden: int = 32, features_dim: int = 128,
    net_arch: list[int] | dict[str, list[int]] | None = None, head_hidden_dim: int = 32,
) -> tuple[type[ActorCriticPolicy], dict[str, Any]]:
    """The policy class and ``policy_kwargs`` for ``PPO(policy, env, policy_kwargs=kwargs)``.

    ``action`` is the spec's action mode: ``"target"`` → SB3's ``MultiInputActorCriticPolicy``
    (Gaussian head) with :class:`FusedExtractor`; ``"multi_head"`` →
    :class:`MultiHeadActorCriticPolicy`. The other arguments are :class:`FusedExtractor`'s,
    ``net_arch`` (SB3's, default ``[64, 64]`` for actor and critic) and, for ``multi_head``,
    ``head_hidden_dim``.

    >>> policy, kwargs = policy_and_kwargs("target", d_model=16)
    >>> policy.__name__, kwargs["features_extractor_kwargs"]["d_model"]
    ('MultiInputActorCriticPolicy', 16)
    """
    kwargs: dict[str, Any] = {
        "features_extractor_class": FusedExtractor,
        "features_extractor_kwargs": {
            "d_model": d_model, "n_heads": n_heads, "n_layers": n_layers, "dropout": dropout,
            "lstm_hidden": lstm_hidden, "features_dim": features_dim},
        "net_arch": net_arch if net_arch is not None else [64, 64],
    }
    if action == "target":
        return MultiInputActorCriticPolicy, kwargs
    if action == "multi_head":
        kwargs["head_hidden_dim"] = head_hidden_dim
        return MultiHeadActorCriticPolicy, kwargs
    raise ConfigError(f"action must be 'target' or 'multi_head', got {action!r}")
