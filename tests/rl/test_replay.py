"""Replaying an episode's actions through the backtest gives the env's equity, bar for bar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("gymnasium")

from quantum_trading.backtest import Backtest
from quantum_trading.domain import BINANCE_BTCUSDT_PERP, BINANCE_ETHUSDT_PERP, Signals, StopSpec
from quantum_trading.rl.env import EnvConfig, PerpetualFuturesEnv
from quantum_trading.rl.spec import EnvSpec
from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig, simulate
from quantum_trading.strategies import strategy_from_function

from .conftest import BTC, ETH

INSTRUMENTS = {BTC: BINANCE_BTCUSDT_PERP, ETH: BINANCE_ETHUSDT_PERP}


def _episode(env: PerpetualFuturesEnv, seed: int, n_steps: int) -> pd.Series:
    _, info = env.reset(seed=seed)
    times, equity = [info["time"]], [info["equity_usd"]]
    for _ in range(n_steps):
        _, _, term, trunc, info = env.step(env.action_space.sample())
        times.append(info["time"])
        equity.append(info["equity_usd"])
        if term or trunc:
            break
    return pd.Series(equity, index=pd.DatetimeIndex(times))


@pytest.mark.parametrize("risk", [RiskConfig(), RiskConfig(max_position_frac=1.0), None])
def test_target_actions_replay_equal_backtest(real_bars: dict[str, pd.DataFrame],
                                              risk: RiskConfig | None) -> None:
    spec = EnvSpec(symbols=(BTC, ETH), timeframe="1h", max_leverage=3.0)
    config = EnvConfig(episode_bars=400, risk=risk, costs=CostsConfig(impact_k=0.5),
                       account=AccountConfig(leverage=3.0))
    env = PerpetualFuturesEnv(real_bars, spec=spec, config=config, instruments=INSTRUMENTS)
    env.action_space.seed(11)
    equity = _episode(env, 3, 400)
    targets = env.episode_targets()
    assert targets.notna().any(axis=1).sum() == len(equity) - 1  # one decision per step
    res = simulate(real_bars, Signals(targets), instruments=INSTRUMENTS, costs=config.costs,
                   account=config.account, risk=risk)
    replay = res.equity.loc[equity.index]
    np.testing.assert_array_equal(replay.to_numpy(), equity.to_numpy())
    assert res.equity.loc[: equity.index[0]].eq(10_000.0).all()  # flat before the episode
    assert res.totals["fees_usd"] > 0 and len(res.fills) > 50


def test_multi_head_stops_replay_equal_backtest(real_bars: dict[str, pd.DataFrame]) -> None:
    spec = EnvSpec(symbols=(BTC, ETH), timeframe="1h", action="multi_head", max_leverage=2.0,
                   stop_multiples=(0.0, 0.5, 1.0))
    config = EnvConfig(episode_bars=500, account=AccountConfig(leverage=2.0),
                       risk=RiskConfig(max_position_frac=2.0))
    env = PerpetualFuturesEnv(real_bars, spec=spec, config=config, instruments=INSTRUMENTS)
    env.action_space.seed(5)
    equity = _episode(env, 9, 500)
    targets, stops = env.episode_targets(), env.episode_stop_distances()
    assert stops is not None and stops.notna().to_numpy().sum() > 100
    res = simulate(real_bars, Signals(targets, stop_loss=StopSpec.distance(stops)),
                   instruments=INSTRUMENTS, costs=config.costs, account=config.account,
                   risk=config.risk)
    np.testing.assert_array_equal(res.equity.loc[equity.index].to_numpy(), equity.to_numpy())
    assert (res.fills["order_type"] == "stop_loss").sum() >= 5  # the stops did fire


def test_backtest_runner_replays_too(real_bars: dict[str, pd.DataFrame]) -> None:
    """The public Backtest (default risk limits, funding and mark from the frames) as well."""
    spec = EnvSpec(symbols=(BTC,), timeframe="1h")
    env = PerpetualFuturesEnv({BTC: real_bars[BTC]}, spec=spec, instruments=INSTRUMENTS)
    env.action_space.seed(2)
    equity = _episode(env, 4, 300)
    targets = env.episode_targets()[BTC]
    frame = real_bars[BTC].copy()
    frame.attrs["symbol"] = BTC
    strategy = strategy_from_function(lambda df: targets, name="replay", allow_nan=True)
    result = Backtest(frame, strategy, instrument=INSTRUMENTS[BTC], benchmark=None).run()
    np.testing.assert_array_equal(result.equity.loc[equity.index].to_numpy(),
                                  equity.to_numpy())
