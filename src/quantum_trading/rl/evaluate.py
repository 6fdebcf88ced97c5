"""Out-of-sample evaluation of a policy against a random policy and buy-and-hold.

Each run is one episode of :class:`~quantum_trading.rl.env.PerpetualFuturesEnv` on all bars,
starting at the first held-out bar and running to the last, with the phase's costs, funding
and risk limits; the observation at bar ``t``'s close gives the decision that fills at
``t + 1``'s open (the env's timing). Three policies meet the same bars:

* the trained policy, deterministic, its observations normalised with the training
  ``VecNormalize`` statistics (which evaluation never updates);
* a random policy (actions sampled uniformly from the action space, seeded), averaged over
  ``n_random`` runs;
* buy-and-hold: an equal-weight long of every asset for the whole episode (target
  ``1 / (N · max_leverage)`` per asset — 1× equity in total — or, for multi-head actions,
  long with the size bucket closest to it and no stop).

Metrics of a run (keys with units): ``total_return_pct`` [%], ``sharpe`` (annualised, bar
returns, risk-free 0), ``max_drawdown_pct`` [%, ≤ 0], ``turnover`` [traded notional / equity
per bar], ``final_equity_usd``, ``n_bars``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.backtest.metrics import max_drawdown_pct, sharpe_ratio
from quantum_trading.data.timeframes import periods_per_year
from quantum_trading.rl.spec import EnvSpec

__all__ = ["buy_hold_action", "equity_metrics", "evaluate_oos", "run_episode"]


def equity_metrics(equity: np.ndarray, turnover: np.ndarray, *, periods: float
                   ) -> dict[str, float]:
    """Metrics of an equity curve (``n + 1`` values, USDT: before the first decision and
    after each bar) and per-bar turnover (``n`` values)."""
    eq = np.asarray(equity, dtype=np.float64)
    rets = eq[1:] / np.where(eq[:-1] > 0, eq[:-1], np.nan) - 1.0
    rets = np.nan_to_num(rets, nan=0.0)
    return {
        "total_return_pct": float(100.0 * (eq[-1] / eq[0] - 1.0)),
        "sharpe": float(sharpe_ratio(rets, periods)) if rets.std() > 0 else 0.0,
        "max_drawdown_pct": float(max_drawdown_pct(eq)),
        "turnover": float(np.mean(turnover)) if len(turnover) else 0.0,
        "final_equity_usd": float(eq[-1]),
        "n_bars": int(len(eq) - 1),
    }


def run_episode(env: Any, act: Callable[[dict[str, np.ndarray]], np.ndarray], *,
                start_bar: int) -> tuple[np.ndarray, np.ndarray]:
    """Run ``act`` from ``start_bar`` to the end of the env's data; returns equity (USDT,
    ``n + 1`` values, flat after a liquidation/bankruptcy ends the episode early) and turnover
    per bar (``n`` values)."""
    obs, info = env.reset(options={"start_bar": int(start_bar)})
    n = len(env.index) - 1 - int(start_bar)
    equity = np.empty(n + 1)
    turnover = np.zeros(n)
    equity[0] = info["equity_usd"]
    k = 0
    done = False
    while not done and k < n:
        obs, _, terminated, truncated, info = env.step(act(obs))
        k += 1
        equity[k] = info["equity_usd"]
        turnover[k - 1] = info["turnover"]
        done = terminated or truncated
    equity[k + 1:] = equity[k]
    return equity, turnover


def buy_hold_action(spec: EnvSpec) -> np.ndarray:
    """The constant action of the buy-and-hold benchmark (see the module docstring)."""
    weight = 1.0 / (spec.n_assets * spec.max_leverage)
    if spec.action == "target":
        return np.full(spec.n_assets, min(weight, 1.0), dtype=np.float32)
    buckets = np.asarray(spec.size_buckets)
    size = int(np.argmin(np.abs(buckets - weight)))
    stops = np.asarray(spec.stop_multiples)
    stop = int(np.argmin(stops))
    return np.array([2, size, stop] * spec.n_assets, dtype=np.int64)


def _mean(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}


def evaluate_oos(
    model: Any,
    vecnormalize: Any,
    frames: Mapping[str, pd.DataFrame],
    *,
    spec: EnvSpec,
    config: Any,
    factory: Any,
    split: int,
    seed: int = 0,
    n_random: int = 5,
    train_too: bool = False,
) -> dict[str, Any]:
    """Evaluate ``model`` on the bars from ``split`` to the end, against a random policy
    (mean of ``n_random`` seeded runs; 0 = skip) and buy-and-hold on the same bars.

    With ``train_too`` the policy is also run over the last training bars (as many as are
    held out, fewer if the warm-up needs them, up to ``split − 1``) for the train-vs-eval
    Sharpe gap.

    Returns ``{"policy": …, "random": …, "buy_hold": …, "excess_return_vs_random_pct",
    "excess_return_vs_buy_hold_pct", "train": … (train_too), "flat": {…}}``: ``flat`` is
    the one-level dict the recommendation rules read (``eval_sharpe``, ``train_sharpe`` …).

    Timing: one model forward pass per held-out bar (about 1 ms each on a CPU core).
    """
    periods = periods_per_year(spec.timeframe)
    env = factory.eval_env(frames, config, start_bar=split)

    def policy(obs: dict[str, np.ndarray]) -> np.ndarray:
        normed = vecnormalize.normalize_obs({k: v[None] for k, v in obs.items()})
        action, _ = model.predict(normed, deterministic=True)
        return np.asarray(action)[0]

    out: dict[str, Any] = {"start_bar": int(split),
                           "start_time": str(env.index[split]), "end_time": str(env.index[-1])}
    out["policy"] = equity_metrics(*run_episode(env, policy, start_bar=split), periods=periods)
    hold = buy_hold_action(spec)
    out["buy_hold"] = equity_metrics(*run_episode(env, lambda _o: hold, start_bar=split),
                                     periods=periods)
    if n_random > 0:
        space = spec.action_space()
        runs = []
        for k in range(n_random):
            space.seed(seed + 7919 * (k + 1))
            runs.append(equity_metrics(*run_episode(env, lambda _o: space.sample(),
                                                    start_bar=split), periods=periods))
        out["random"] = _mean(runs)
        out["excess_return_vs_random_pct"] = (out["policy"]["total_return_pct"]
                                              - out["random"]["total_return_pct"])
    out["excess_return_vs_buy_hold_pct"] = (out["policy"]["total_return_pct"]
                                            - out["buy_hold"]["total_return_pct"])
    flat: dict[str, float] = {f"eval_{k}": v for k, v in out["policy"].items()}
    flat.update({f"buy_hold_{k}": v for k, v in out["buy_hold"].items()})
    if "random" in out:
        flat.update({f"random_{k}": v for k, v in out["random"].items()})
        flat["excess_return_vs_random_pct"] = out["excess_return_vs_random_pct"]
    flat["excess_return_vs_buy_hold_pct"] = out["excess_return_vs_buy_hold_pct"]
    if train_too:
        train_frames = {s: f.iloc[:split] for s, f in frames.items()}
        tenv = factory.eval_env(train_frames, config, start_bar=None)
        n_eval = len(env.index) - split
        first = max(tenv.start_range[0], split - 1 - n_eval)
        out["train"] = equity_metrics(*run_episode(tenv, policy, start_bar=first),
                                      periods=periods)
        flat.update({f"train_{k}": v for k, v in out["train"].items()})
    out["flat"] = {k: v for k, v in flat.items() if not (isinstance(v, float)
                                                          and math.isnan(v))}
    return out

