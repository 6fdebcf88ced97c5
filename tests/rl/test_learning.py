"""The learning must-show: on synthetic bars with a planted, learnable pattern, PPO with the
FusedExtractor beats a random policy and buy-and-hold out of sample, with fixed seeds, on one
CPU thread in well under 90 s of CPU.

The pattern: close-to-close log returns follow an AR(1), ``r_t = 0.3·r_{t−1} + ε_t`` with
``ε ~ N(0, 1 %)`` and no drift, so the sign of the next bar's return is predictable from the
last one (``log_return``, an observed feature) — worth about 0.3·0.8 % = 24 bps per bar against
5.5 bps of costs per unit traded. Bars open at the previous close, so a target decided at bar
t's close (filled at t+1's open) earns exactly r_{t+1}. The last 25 % of the bars are held out (the test slice);
the schedule has no validation slice (no early transition), so training sees the first 75 %.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("stable_baselines3")

import torch as th

from quantum_trading.rl.env_config import EnvConfig
from quantum_trading.rl.spec import EnvSpec
from quantum_trading.rl.train import train

SYMBOL = "AR/USDT:USDT"


def ar1_bars(n: int = 3000, *, phi: float = 0.3, sigma: float = 0.01, seed: int = 0
             ) -> dict[str, pd.DataFrame]:
    """One asset whose log returns are AR(1) with coefficient ``phi`` (hourly bars)."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(0.0, sigma, n)
    r = np.zeros(n)
    for t in range(1, n):
        r[t] = phi * r[t - 1] + eps[t]
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0.0, 0.3 * sigma, n))
    frame = pd.DataFrame({
        "open": open_, "high": np.maximum(open_, close) * (1 + wick),
        "low": np.minimum(open_, close) * (1 - wick), "close": close,
        "volume": 1e6 * (1.0 + rng.random(n)),
    }, index=pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC"))
    return {SYMBOL: frame}


@pytest.mark.slow
def test_ppo_with_fused_extractor_beats_random_and_buy_and_hold_out_of_sample(
        tmp_path: Path) -> None:
    th.set_num_threads(1)
    bars = ar1_bars()
    spec = EnvSpec(symbols=(SYMBOL,), timeframe="1h",
                   features=("log_return", "log_return_z", "rsi"), window=8, account_window=4)
    schedule = {"eval_fraction": 0.25, "validation_fraction": 0.0, "phases": [{
        "name": "learn", "timesteps": 8192,
        "ppo": {"learning_rate": 1e-3, "n_steps": 128, "batch_size": 128, "n_epochs": 4,
                "gamma": 0.5, "gae_lambda": 0.9, "ent_coef": 0.0},
        "env": {"episode_bars": 256}}]}
    cpu = time.process_time()
    result = train(schedule, bars, spec=spec, env_config=EnvConfig(risk=None),
                   out_dir=tmp_path, seed=0, n_envs=4, progress=False, n_random=5,
                   policy_kwargs={"d_model": 16, "n_heads": 2, "features_dim": 32,
                                  "lstm_hidden": 8, "net_arch": [32]})
    cpu = time.process_time() - cpu
    ev = result.phases[-1]["test"]
    policy, random, hold = ev["policy"], ev["random"], ev["buy_hold"]
    assert ev["start_bar"] == 2250 and policy["n_bars"] == 749
    # out of sample, on the same bars with the same costs
    assert policy["total_return_pct"] > random["total_return_pct"] + 20.0, ev
    assert policy["total_return_pct"] > hold["total_return_pct"] + 20.0, ev
    assert policy["sharpe"] > max(random["sharpe"], hold["sharpe"]) + 2.0, ev
    assert policy["sharpe"] > 3.0, ev
    assert cpu < 90.0, f"training and evaluation took {cpu:.0f} s of CPU"
