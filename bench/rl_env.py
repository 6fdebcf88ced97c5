"""Benchmark the RL environment against gym-anytrading, in the same run (prints JSON).

Data: the real Binance BTC/USDT:USDT 1h bars (July–August 2023, 1,054 bars) with their
funding settlements and mark prices. Random actions, window 32, episodes to the end of the
data (then reset; reset time is included in every figure).

* ``ours_single``: :class:`quantum_trading.rl.env.PerpetualFuturesEnv`, one asset, default
  features (8), ``Box`` target actions, default costs (fees, spread, slippage), real funding,
  the Binance BTC instrument (margin tiers, liquidation), default risk limits — the full
  perp mechanics of a backtest, one simulator bar step per agent step.
* ``anytrading_stocks`` / ``anytrading_forex``: gym-anytrading 2's ``StocksEnv`` /
  ``ForexEnv`` on the same close series (``Close`` column), ``window_size=32``,
  ``frame_bound=(32, len)``, ``Discrete(2)`` random actions.
* ``ours_batched_<n>``: :class:`quantum_trading.rl.vec_env.PerpetualFuturesVecEnv` with
  ``n`` envs on one thread (one numba call per step for all), aggregate env-steps per second,
  SB3 auto-reset included; ``ours_batched_<n>_<k>threads``: the same with the default
  ``n_threads`` (numba's thread count ``k``; chunks of at least 32 envs), when that splits the
  envs.

The single envs take turns round after round (best round of each kept; the per-round ratio
is printed too), so a change in the machine's load between rounds hits them alike.

Goals (issue 7): single ≥ 1× gym-anytrading's steps/s; batched ≥ 10× it in aggregate.

    .venv/bin/python bench/rl_env.py [--steps 20000] [--repeat 7] [--batched 16,64,256]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from typing import Any

import numba
import numpy as np
import pandas as pd

from quantum_trading.data import join_funding, join_mark, load_funding, load_mark, load_ohlcv
from quantum_trading.domain import BINANCE_BTCUSDT_PERP
from quantum_trading.paths import real_data_dir
from quantum_trading.rl.env import EnvConfig, PerpetualFuturesEnv
from quantum_trading.rl.spec import EnvSpec
from quantum_trading.rl.vec_env import PerpetualFuturesVecEnv

BTC = "BTC/USDT:USDT"
WINDOW = 32


def _bars() -> pd.DataFrame:
    folder = real_data_dir() / "binance" / "futures"
    bars = load_ohlcv(folder / "BTC_USDT_USDT-1h-futures.feather")
    bars = join_funding(bars, load_funding(folder / "BTC_USDT_USDT-8h-funding_rate.feather"))
    return join_mark(bars, load_mark(folder / "BTC_USDT_USDT-8h-mark.feather"))


def _gym_loop(env: Any, actions: np.ndarray) -> float:
    """Steps per second of a gymnasium env over ``actions`` (reset at episode end)."""
    env.reset(seed=0)
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    return len(actions) / (time.perf_counter() - t0)


def _best(fn: Any, repeat: int) -> float:
    return max(fn() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="single-env steps per round")
    parser.add_argument("--batched", default="16,64,256", help="batch sizes")
    parser.add_argument("--repeat", type=int, default=7, help="rounds (best is kept)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import gym_anytrading  # noqa: F401  (registers the envs)
    from gym_anytrading.envs import ForexEnv, StocksEnv

    bars = _bars()
    rng = np.random.default_rng(0)
    spec = EnvSpec(symbols=(BTC,), timeframe="1h", window=WINDOW)
    ours = PerpetualFuturesEnv({BTC: bars}, spec=spec, config=EnvConfig(),
                               instruments=BINANCE_BTCUSDT_PERP, seed=0)
    ours_actions = rng.uniform(-1, 1, (args.steps, 1)).astype(np.float32)
    df = pd.DataFrame({"Close": bars["close"].to_numpy(), "Open": bars["open"].to_numpy(),
                       "High": bars["high"].to_numpy(), "Low": bars["low"].to_numpy()})
    stocks = StocksEnv(df=df, window_size=WINDOW, frame_bound=(WINDOW, len(df)))
    forex = ForexEnv(df=df, window_size=WINDOW, frame_bound=(WINDOW, len(df)))
    gym_actions = rng.integers(0, 2, args.steps)
    _gym_loop(ours, ours_actions[:2000])  # warm-up (compiles / loads the kernels)
    # the three envs take turns, round after round, so a change in the machine's load
    # between rounds hits all of them alike; the best round of each is kept
    loops = {"ours_single": lambda: _gym_loop(ours, ours_actions),
             "anytrading_stocks": lambda: _gym_loop(stocks, gym_actions),
             "anytrading_forex": lambda: _gym_loop(forex, gym_actions)}
    rounds: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.repeat):
        for name, loop in loops.items():
            rounds[name].append(loop())
    out: dict[str, Any] = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "numba_threads": numba.get_num_threads(),
        "bars": len(bars), "window": WINDOW, "steps_per_round": args.steps,
        "single_steps_per_s": {name: round(max(r)) for name, r in rounds.items()},
        "single_x_stocks_per_round": [round(a / b, 2) for a, b in
                                      zip(rounds["ours_single"], rounds["anytrading_stocks"],
                                          strict=True)],
    }
    single = out["single_steps_per_s"]
    ref = single["anytrading_stocks"]
    batched: dict[str, Any] = {}
    n_threads = numba.get_num_threads()
    for n in (int(x) for x in args.batched.split(",")):
        n_steps = max(200, args.steps // n)
        acts = rng.uniform(-1, 1, (n_steps, n, 1)).astype(np.float32)
        for threads in sorted({1, n_threads}):
            vec = PerpetualFuturesVecEnv({BTC: bars}, spec=spec, n_envs=n, config=EnvConfig(),
                                         instruments=BINANCE_BTCUSDT_PERP, seed=0,
                                         n_threads=threads)
            k_used = vec.n_threads
            if threads > 1 and k_used == 1:
                continue  # too few envs to split: the same as one thread
            vec.reset()
            for k in range(len(bars) + 50):  # a pass over the data: buffers at full size
                vec.step(acts[k % n_steps])

            def run(vec: PerpetualFuturesVecEnv = vec, acts: np.ndarray = acts) -> float:
                t0 = time.perf_counter()
                for a in acts:
                    vec.step(a)
                return acts.shape[0] * acts.shape[1] / (time.perf_counter() - t0)

            rate = _best(run, args.repeat)
            vec.close()
            name = f"ours_batched_{n}" if k_used == 1 else f"ours_batched_{n}_{k_used}threads"
            batched[name] = {"aggregate_steps_per_s": round(rate),
                             "x_anytrading_stocks": round(rate / ref, 2)}
    out["batched"] = batched
    out["ratios"] = {
        "single_x_anytrading_stocks": round(single["ours_single"] / ref, 2),
        "single_x_anytrading_forex": round(single["ours_single"] / single["anytrading_forex"], 2),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
