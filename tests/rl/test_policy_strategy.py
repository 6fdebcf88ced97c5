"""A trained policy as a strategy, its bias analysis and the CLI, on real Binance data.

A tiny PPO (a few hundred steps) is trained once per module; what is tested is the plumbing:
the env's equity equals the backtest's bar for bar, the targets are causal, mismatched data
is refused naming the field, and the CLI commands run end to end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from quantum_trading.backtest import Backtest
from quantum_trading.cli.main import app
from quantum_trading.errors import ConfigError
from quantum_trading.rl.bias import analyze_bias
from quantum_trading.rl.env_config import EnvConfig
from quantum_trading.rl.spec import EnvSpec
from quantum_trading.rl.strategy import PolicyStrategy, load_model_bars
from quantum_trading.strategies import check_causality

SYMS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
CONFIG = EnvConfig(episode_bars=64, account={"leverage": 2.0})


def _spec(action: str) -> EnvSpec:
    return EnvSpec(symbols=SYMS, timeframe="1h", window=8, account_window=4, action=action,
                   max_leverage=2.0, features=("log_return", "rsi", "atr_pct", "funding"))


@pytest.fixture(scope="module")
def bars(binance_futures_dir: Path) -> dict[str, pd.DataFrame]:
    frames, notes = load_model_bars(binance_futures_dir, _spec("target"))
    assert any("cut to the" in n for n in notes) is False  # BTC and ETH share their bars
    return frames


def _train(bars: dict[str, pd.DataFrame], action: str, out: Path) -> Path:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from quantum_trading.rl.env import PerpetualFuturesEnv
    from quantum_trading.rl.model_io import save_bundle
    from quantum_trading.rl.policies import policy_and_kwargs

    spec = _spec(action)
    train_bars = {s: f.iloc[:500] for s, f in bars.items()}
    venv = VecNormalize(DummyVecEnv([lambda: PerpetualFuturesEnv(
        train_bars, spec=spec, config=CONFIG, seed=1)]), norm_reward=False)
    policy, kwargs = policy_and_kwargs(action, d_model=8, n_heads=2, lstm_hidden=8,
                                       features_dim=16, net_arch=[16])
    model = PPO(policy, venv, policy_kwargs=kwargs, n_steps=64, batch_size=32, n_epochs=1,
                seed=3, device="cpu")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: threads only add contention on a shared machine
    try:
        model.learn(128)
    finally:
        torch.set_num_threads(threads)
    venv.training = False
    return save_bundle(out, model=model, vecnormalize=venv, spec=spec, env_config=CONFIG,
                       meta={"seed": 3})


@pytest.fixture(scope="module")
def target_model(bars: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
                 ) -> Path:
    return _train(bars, "target", tmp_path_factory.mktemp("models") / "run-target" / "final")


@pytest.fixture(scope="module")
def multi_model(bars: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(bars, "multi_head", tmp_path_factory.mktemp("models") / "run-multi")


@pytest.mark.parametrize("which", ["target_model", "multi_model"])
def test_backtest_of_the_policy_equals_the_env_bar_for_bar(
        which: str, request: pytest.FixtureRequest, bars: dict[str, pd.DataFrame]) -> None:
    strat = PolicyStrategy(request.getfixturevalue(which))
    assert strat.config == CONFIG and strat.name in ("rl:run-target", "rl:run-multi")
    result = Backtest(bars, strat, **strat.backtest_kwargs()).run()
    roll = strat.last_rollout
    assert len(roll.index) > 600 and not roll.terminated
    env_equity = roll.equity
    np.testing.assert_allclose(result.sim.equity.loc[env_equity.index].to_numpy(),
                               env_equity.to_numpy(), rtol=1e-12, atol=1e-9)
    target = result.signals.target
    first = target.index.get_loc(roll.index[0])
    assert target.iloc[:first].isna().all().all() and target.iloc[first:].notna().all().all()
    assert float(target.abs().max().max()) <= 2.0 + 1e-12
    assert len(result.trades) > 0
    if which == "multi_model":
        assert result.signals.stop_loss is not None
        assert result.signals.stop_loss.kind == "distance"
    else:
        assert result.signals.stop_loss is None


def test_policy_targets_are_causal(target_model: Path, bars: dict[str, pd.DataFrame]) -> None:
    strat = PolicyStrategy(target_model)
    assert check_causality(strat, bars, cut_points=[300, 650]) == (300, 650)


def test_mismatched_data_is_refused_naming_the_field(
        target_model: Path, bars: dict[str, pd.DataFrame]) -> None:
    strat = PolicyStrategy(target_model)
    with pytest.raises(ConfigError, match=r"symbols=\[BTC/USDT:USDT, ETH/USDT:USDT\].*"
                                          r"symbols=\[BTC/USDT:USDT\]"):
        strat.signals({SYMS[0]: bars[SYMS[0]]})
    with pytest.raises(ConfigError, match=r"symbols=\[ETH/USDT:USDT, BTC/USDT:USDT\]"):
        strat.signals({SYMS[1]: bars[SYMS[1]], SYMS[0]: bars[SYMS[0]]})
    four_h = {s: f.iloc[::4] for s, f in bars.items()}
    with pytest.raises(ConfigError, match=r"timeframe='1h'.*timeframe='4h'"):
        strat.signals(four_h)
    with pytest.raises(ConfigError, match="no parameters"):
        strat.signals(bars, lookback=3)


runner = CliRunner()


def test_cli_backtest_with_a_model(target_model: Path, binance_futures_dir: Path,
                                   tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    res = runner.invoke(app, ["backtest", "--model", str(target_model), "--data",
                              str(binance_futures_dir), "--report", str(out), "--trades", "3"])
    assert res.exit_code == 0, res.output
    assert "rl:run-target on BTC/USDT:USDT, ETH/USDT:USDT 1h" in res.output
    assert "Sharpe Ratio" in res.output and "buy & hold" in res.output
    assert "env_config.json" in res.output and "funding:" in res.output
    assert out.is_file() and out.stat().st_size > 1_000_000
    assert "Equity vs buy &amp; hold" in out.read_text()
    # another asset set: a clear error naming the mismatch
    res = runner.invoke(app, ["backtest", "--model", str(target_model), "--data",
                              str(binance_futures_dir), "--symbol", "BTC/USDT:USDT"])
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError)
    assert "symbols=[BTC/USDT:USDT, ETH/USDT:USDT]" in str(res.exception)
    assert "data has symbols=[BTC/USDT:USDT]" in str(res.exception)
    res = runner.invoke(app, ["backtest", "--model", str(target_model), "--strategy",
                              "buy_and_hold", "--data", str(binance_futures_dir)])
    assert isinstance(res.exception, ConfigError) and "one of --strategy" in str(res.exception)


def test_cli_analyze_bias(multi_model: Path, binance_futures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bias.html"
    res = runner.invoke(app, ["rl", "analyze-bias", "--model", str(multi_model), "--data",
                              str(binance_futures_dir), "--episodes", "2", "--out", str(out)],
                        env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert "action bias of rl:run-multi" in res.output
    assert "deterministic" in res.output and "stochastic" in res.output
    page = out.read_text()
    assert "Target distribution (stochastic)" in page and "ETH/USDT:USDT" in page


# -- bias of known policies (fake model objects with the SB3 predict signature) ---------------

class _Identity:
    training = False

    def normalize_obs(self, obs: Any) -> Any:
        return obs


class _Fixed:
    """Always the same action; stochastic mode adds small noise."""

    def __init__(self, action: list[float]) -> None:
        self.action = np.asarray(action, dtype=np.float32)
        self.rng = np.random.default_rng(0)

    def predict(self, obs: Any, deterministic: bool = True) -> tuple[np.ndarray, None]:
        if deterministic:
            return self.action.copy(), None
        return np.clip(self.action + self.rng.normal(0, 0.05, self.action.shape), -1, 1), None


def test_bias_of_a_long_biased_policy(bars: dict[str, pd.DataFrame]) -> None:
    spec = _spec("target")
    strat = PolicyStrategy((_Fixed([1.0, -0.3]), _Identity(), spec), config=CONFIG)
    report = analyze_bias(strat, bars, episodes=2)
    btc, eth = report.row(SYMS[0]), report.row(SYMS[1])
    assert btc["Verdict"] == "long-biased, saturated" and btc["At +1 [%]"] == 100.0
    assert eth["Verdict"] == "short-biased" and eth["Mean Target"] == pytest.approx(-0.3)
    sto = report.row(SYMS[0], "stochastic")
    assert sto["Bars"] == 2 * btc["Bars"] and sto["Long [%]"] == 100.0
    assert report.row(SYMS[1], "stochastic")["Short [%]"] == 100.0
