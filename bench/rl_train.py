"""Benchmark PPO training throughput on our environment (prints JSON).

Data: the real Binance BTC/USDT:USDT and ETH/USDT:USDT 1h bars (July–August 2023) with their
funding settlements and mark prices. One PPO ``learn()`` of ``--timesteps`` environment steps
per configuration, after a short warm-up run (numba kernels loaded, torch initialised); the
figure is environment steps per second of wall clock, rollouts and gradient updates included.

* ``fused_batched``: :class:`~quantum_trading.rl.vec_env.PerpetualFuturesVecEnv` (``n_envs``
  envs in one numba call) + ``VecNormalize`` + our ``FusedExtractor`` (market transformer,
  cross-asset attention, risk LSTM) — what ``quantum train`` runs.
* ``fused_dummy``: the same policy over SB3's ``DummyVecEnv`` of single
  :class:`~quantum_trading.rl.env.PerpetualFuturesEnv` (one Python step per env).
* ``mlp_batched``: SB3's default ``MultiInputPolicy`` (flatten + MLP) on the batched env: the
  cost of the extractor itself.
* ``mlp_anytrading``: SB3's ``MlpPolicy`` on gym-anytrading's ``StocksEnv`` (same BTC close
  series, window 32) in a ``DummyVecEnv`` of ``n_envs``: the peer's throughput in the same run.

torch runs on ``--threads`` threads (default 1, as in the tests).

    .venv/bin/python bench/rl_train.py [--timesteps 8192] [--n-envs 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.data import join_funding, join_mark, load_funding, load_mark, load_ohlcv
from quantum_trading.paths import real_data_dir
from quantum_trading.rl.env import EnvConfig, PerpetualFuturesEnv
from quantum_trading.rl.spec import EnvSpec
from quantum_trading.rl.vec_env import PerpetualFuturesVecEnv

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
WINDOW = 32
N_STEPS = 128  # PPO rollout length per env


def _bars() -> dict[str, pd.DataFrame]:
    folder = real_data_dir() / "binance" / "futures"
    out = {}
    for sym in SYMBOLS:
        stem = sym.split(":")[0].replace("/", "_") + "_USDT"
        bars = load_ohlcv(folder / f"{stem}-1h-futures.feather")
        bars = join_funding(bars, load_funding(folder / f"{stem}-8h-funding_rate.feather"))
        out[sym] = join_mark(bars, load_mark(folder / f"{stem}-8h-mark.feather"))
    common = out[SYMBOLS[0]].index.intersection(out[SYMBOLS[1]].index)
    return {s: f.loc[common] for s, f in out.items()}


def _rate(make_model: Callable[[], Any], timesteps: int) -> float:
    """Environment steps per second of one ``learn(timesteps)`` (after a warm-up learn)."""
    model = make_model()
    model.learn(N_STEPS * model.n_envs)  # warm-up: kernels, torch, buffers
    t0 = time.perf_counter()
    model.learn(timesteps, reset_num_timesteps=False)
    return timesteps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=8192, help="timed steps per config")
    parser.add_argument("--n-envs", type=int, default=8, help="environments per rollout")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch
    from gym_anytrading.envs import StocksEnv
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from quantum_trading.rl.policies import policy_and_kwargs

    torch.set_num_threads(args.threads)
    bars = _bars()
    spec = EnvSpec(symbols=SYMBOLS, timeframe="1h", window=WINDOW)
    config = EnvConfig(episode_bars=256)
    policy, policy_kwargs = policy_and_kwargs("target")
    n = args.n_envs
    ppo_kwargs: dict[str, Any] = {"n_steps": N_STEPS, "batch_size": 256, "n_epochs": 4,
                                  "seed": 0, "verbose": 0, "device": "cpu"}

    def batched_env() -> Any:
        return VecNormalize(PerpetualFuturesVecEnv(bars, spec=spec, n_envs=n, config=config,
                                                   seed=0))

    def dummy_env() -> Any:
        return VecNormalize(DummyVecEnv([
            (lambda i=i: PerpetualFuturesEnv(bars, spec=spec, config=config, seed=i))
            for i in range(n)]))

    btc = bars[SYMBOLS[0]]
    frame = pd.DataFrame({"Close": btc["close"].to_numpy(), "Open": btc["open"].to_numpy(),
                          "High": btc["high"].to_numpy(), "Low": btc["low"].to_numpy()})

    def anytrading_env() -> Any:
        return DummyVecEnv([
            (lambda: StocksEnv(df=frame, window_size=WINDOW, frame_bound=(WINDOW, len(frame))))
            for _ in range(n)])

    configs: dict[str, Callable[[], Any]] = {
        "fused_batched": lambda: PPO(policy, batched_env(), policy_kwargs=policy_kwargs,
                                     **ppo_kwargs),
        "fused_dummy": lambda: PPO(policy, dummy_env(), policy_kwargs=policy_kwargs,
                                   **ppo_kwargs),
        "mlp_batched": lambda: PPO("MultiInputPolicy", batched_env(), **ppo_kwargs),
        "mlp_anytrading": lambda: PPO("MlpPolicy", anytrading_env(), **ppo_kwargs),
    }
    rates = {name: round(_rate(make, args.timesteps)) for name, make in configs.items()}
    ref = rates["mlp_anytrading"]
    out = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__, "torch_threads": args.threads, "n_envs": n,
        "timesteps": args.timesteps, "assets": len(SYMBOLS), "window": WINDOW,
        "env_steps_per_s": rates,
        "ratios": {name: round(rate / ref, 2) for name, rate in rates.items()},
        "extractor_params": int(sum(
            p.numel() for p in PPO(policy, batched_env(), policy_kwargs=policy_kwargs,
                                   **ppo_kwargs).policy.parameters())),
    }
    np.set_printoptions(precision=3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
