"""Run a trained policy over a whole data set through the environment: :func:`run_policy`.

Used by the bias analysis (:mod:`quantum_trading.rl.bias`) and by
:class:`~quantum_trading.rl.strategy.PolicyStrategy`. One episode of
:class:`~quantum_trading.rl.env.PerpetualFuturesEnv` starts at the first bar after the
features' warm-up and runs to the last bar (or to a liquidation / bankruptcy); at every
observed close the policy decides (observations normalised with the bundle's saved
VecNormalize statistics, which never move here), and the env fills the target at the next
open. The policy also decides at the last bar's close, which the env cannot step (there is
no next open): that decision is what a live trader would send, and it keeps the targets
causal (a run on ``data[:t]`` gives the first ``t`` rows of a run on all data).

Timing: about one policy forward pass plus one simulator step per bar (≈ 1 ms on a CPU core
for the default extractor).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.domain import Instrument
from quantum_trading.errors import ConfigError
from quantum_trading.rl.spec import EnvSpec
from quantum_trading.sim.inputs import SeriesInput

__all__ = ["Rollout", "policy_actor", "run_policy"]


@dataclass(frozen=True)
class Rollout:
    """One deterministic or stochastic pass of a policy over the data.

    Attributes
    ----------
    index:
        Decision bars (UTC bar open times): the first bar after the warm-up up to the last
        bar (earlier if the episode ended by liquidation / bankruptcy).
    actions:
        ``[len(index), action_dim]`` raw actions as the policy returned them.
    targets:
        ``[T, N]`` on the full bar index: target exposure (multiple of equity) decided at each
        bar's close, filled at the next open; NaN before the first decision (flat) and after
        an early end.
    stop_distances:
        ``multi_head``: stop-loss distances (USDT from the entry fill) per decision, NaN = no
        stop; None for ``target`` actions.
    equity:
        Equity (USDT) at each decision bar's close, as the env computed it (before the last
        decision; the account after the last bar's close for the last row).
    terminated:
        True when a liquidation or bankruptcy ended the episode early.
    """

    index: pd.DatetimeIndex
    actions: np.ndarray
    targets: pd.DataFrame
    stop_distances: pd.DataFrame | None
    equity: pd.Series
    terminated: bool


def _is_bundle(policy: Any) -> bool:
    return (isinstance(policy, tuple) and len(policy) == 3 and isinstance(policy[2], EnvSpec)
            and hasattr(policy[1], "normalize_obs"))


def policy_actor(policy: Any, *, deterministic: bool = True
                 ) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """A function ``obs -> action`` for one env observation.

    ``policy`` is a :class:`~quantum_trading.rl.model_io.ModelBundle` (its VecNormalize
    statistics normalise the observation first, as in training) or any object with an
    SB3-style ``predict(obs, deterministic=...) -> (action, state)`` taking raw observations.
    """
    if _is_bundle(policy):
        from quantum_trading.rl.model_io import predict_actions

        def act_bundle(obs: dict[str, np.ndarray]) -> np.ndarray:
            return predict_actions(policy, obs, deterministic=deterministic)

        return act_bundle
    if not callable(getattr(policy, "predict", None)):
        raise ConfigError(f"policy: expected a ModelBundle (quantum_trading.rl.model_io."
                          f"load_model) or an object with .predict(obs, deterministic=...), got "
                          f"{type(policy).__name__}")

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        action, _ = policy.predict(obs, deterministic=deterministic)
        return np.asarray(action)

    return act


@contextlib.contextmanager
def _torch_context(seed: int | None) -> Iterator[None]:
    """One torch thread (a single observation's forward pass gains nothing from intra-op
    threads and loses much to contention) and, with ``seed``, seeded action sampling; the
    global thread count and RNG state are restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if seed is None:
            yield
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                yield
    finally:
        torch.set_num_threads(threads)


def run_policy(
    policy: Any,
    bars: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    spec: EnvSpec,
    config: Any = None,
    instruments: Instrument | Mapping[str, Instrument] | None = None,
    funding: SeriesInput | None = None,
    mark: SeriesInput | None = None,
    deterministic: bool = True,
    seed: int | None = 0,
) -> Rollout:
    """Run ``policy`` over ``bars`` in one episode from the first bar after the warm-up.

    Parameters
    ----------
    policy:
        A model bundle or an object with ``predict`` (see :func:`policy_actor`).
    bars, instruments, funding, mark:
        As for :class:`~quantum_trading.rl.env.PerpetualFuturesEnv` (``bars`` in
        ``spec.symbols`` order; a mismatch raises ConfigError naming the field).
        ``instruments=None`` (and symbols missing from a dict) use
        :func:`~quantum_trading.domain.default_instrument` per symbol, as the env and
        :class:`~quantum_trading.backtest.Backtest` do.
    spec:
        The model's :class:`EnvSpec`.
    config:
        :class:`~quantum_trading.rl.env_config.EnvConfig` (costs, account, risk, reward);
        its ``start`` / ``episode_bars`` are replaced by "first bar, to the end of the data".
    deterministic:
        The policy's mode action (True) or a sampled one.
    seed:
        Seeds the action sampling (``deterministic=False``) inside this call only.
    """
    from quantum_trading.rl.env import PerpetualFuturesEnv, action_error
    from quantum_trading.rl.env_config import EnvConfig
    from quantum_trading.rl.env_nb import I_BAD

    if config is None:
        config = EnvConfig()
    if not isinstance(config, EnvConfig):
        raise ConfigError(f"run_policy: config must be an EnvConfig, got {type(config).__name__}")
    config = config.model_copy(update={"start": "first", "episode_bars": None})
    env = PerpetualFuturesEnv(bars, spec=spec, config=config, instruments=instruments,
                              funding=funding, mark=mark)
    act = policy_actor(policy, deterministic=deterministic)
    start = env.start_range[0]
    index = env.index
    actions: list[np.ndarray] = []
    equity: list[float] = []
    terminated = False
    with _torch_context(seed if not deterministic else None):
        obs, info = env.reset(options={"start_bar": start})
        while True:
            action = np.asarray(act(obs))
            actions.append(action.reshape(-1))
            equity.append(float(info["equity_usd"]))
            if info["bar"] >= len(index) - 1:
                break
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or (truncated and info["bar"] < len(index) - 1):
                break  # liquidated / bankrupt at this bar: no decision there
    if not terminated:  # the decision at the last bar's close (after the data ends)
        core = env._core  # the env's own decoding, into its buffers, without a step
        if not core.decide(0, start + len(actions) - 1, actions[-1]):
            raise action_error(spec, actions[-1], int(core.ctli[0, I_BAD]), "run_policy")
    targets = env.episode_targets()
    stops = env.episode_stop_distances()
    n_dec = len(actions)
    return Rollout(index=index[start:start + n_dec], actions=np.vstack(actions),
                   targets=targets, stop_distances=stops,
                   equity=pd.Series(equity[:n_dec], index=index[start:start + n_dec],
                                    name="equity_usd"),
                   terminated=bool(terminated))
