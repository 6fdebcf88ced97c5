"""Evaluation of a policy on a slice of bars against a random policy and buy-and-hold.

Each run is one episode of :class:`~quantum_trading.rl.env.PerpetualFuturesEnv` on the bars
up to the end of the slice (a validation or test slice of
:func:`quantum_trading.rl.train.train`), starting at the slice's first bar and running to its
last, with the phase's costs, funding and risk limits; the env is built on the frames cut at
the slice's end, so nothing at or after it is seen (features use the bars before the slice,
causally). The observation at bar ``t``'s close gives the decision that fills at ``t + 1``'s
open (the env's timing). Three policies meet the same bars:

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
from quantum_trading.rl.rollout import policy_actor
from quantum_trading.rl.spec import EnvSpec

__all__ = [
    "buy_hold_action",
    "equity_metrics",
    "evaluate_oos",
    "evaluate_train_window",
    "run_episode",
]


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


def _cut(frames: Mapping[str, pd.DataFrame], end: int) -> dict[str, pd.DataFrame]:
    """Every frame cut before bar ``end`` (bars ``[0, end)``)."""
    return {s: f.iloc[:end] for s, f in frames.items()}


def evaluate_train_window(
    model: Any,
    vecnormalize: Any,
    frames: Mapping[str, pd.DataFrame],
    *,
    spec: EnvSpec,
    config: Any,
    factory: Any,
    end: int,
    n_bars: int,
) -> dict[str, float]:
    """Metrics of the deterministic policy over the last training bars before bar ``end``:
    about ``n_bars`` of them (fewer if the features' warm-up needs them, up to ``end − 1``).
    The env sees only bars ``[0, end)``. Used for the train-vs-validation Sharpe gap."""
    env = factory.eval_env(_cut(frames, end), config, start_bar=None)
    first = max(env.start_range[0], end - 1 - n_bars)
    policy = policy_actor((model, vecnormalize, spec))
    return equity_metrics(*run_episode(env, policy, start_bar=first),
                          periods=periods_per_year(spec.timeframe))


def evaluate_oos(
    model: Any,
    vecnormalize: Any,
    frames: Mapping[str, pd.DataFrame],
    *,
    spec: EnvSpec,
    config: Any,
    factory: Any,
    split: int,
    end: int | None = None,
    seed: int = 0,
    n_random: int = 5,
    train_too: bool = False,
    what: str = "the held-out part",
) -> dict[str, Any]:
    """Evaluate ``model`` on the bars ``[split, end)`` (``end`` None: to the last bar), against
    a random policy (mean of ``n_random`` seeded runs; 0 = skip) and buy-and-hold on the same
    bars. The env is built on the frames cut at ``end``: no bar at or after ``end`` is seen.

    With ``train_too`` the policy is also run over the last bars before ``split`` (as many as
    the slice has, see :func:`evaluate_train_window`) for the train-vs-eval Sharpe gap.
    ``what`` names the slice in errors.

    Returns ``{"start_bar", "end_bar" (exclusive), "start_time", "end_time" (last bar),
    "policy": …, "random": …, "buy_hold": …, "excess_return_vs_random_pct",
    "excess_return_vs_buy_hold_pct", "train": … (train_too), "flat": {…}}``: ``flat`` is the
    one-level dict the recommendation rules read (``eval_sharpe``, ``train_sharpe`` …).

    Timing: one model forward pass per bar of the slice (about 1 ms each on a CPU core).
    """
    periods = periods_per_year(spec.timeframe)
    n_total = len(next(iter(frames.values())))
    stop = n_total if end is None else int(end)
    if not 0 < split < stop <= n_total:
        raise ValueError(f"evaluate_oos: need 0 < split ({split}) < end ({stop}) <= bars "
                         f"({n_total})")
    env = factory.eval_env(_cut(frames, stop) if stop < n_total else frames, config,
                           start_bar=split, what=what)
    policy = policy_actor((model, vecnormalize, spec))

    out: dict[str, Any] = {"start_bar": int(split), "end_bar": int(stop),
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
        out["train"] = evaluate_train_window(model, vecnormalize, frames, spec=spec,
                                             config=config, factory=factory, end=split,
                                             n_bars=stop - split)
        flat.update({f"train_{k}": v for k, v in out["train"].items()})
    out["flat"] = {k: v for k, v in flat.items() if not (isinstance(v, float)
                                                          and math.isnan(v))}
    return out
