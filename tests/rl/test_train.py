"""Training runs end to end on tiny budgets: output layout, metrics and recommendations, model
bundles (save → load → predict identical, mismatched spec refused), ``continue_from`` at the
right phase and timestep, seeds → identical parameters, the train | validation | test split
(no decision reads a test bar), and ``quantum train``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

import torch as th
from typer.testing import CliRunner

from quantum_trading.cli.main import app
from quantum_trading.data import generate_market
from quantum_trading.errors import ConfigError
from quantum_trading.rl.env import PerpetualFuturesEnv
from quantum_trading.rl.env_config import EnvConfig
from quantum_trading.rl.model_io import (
    BUNDLE_FILES,
    load_model,
    load_train_meta,
    predict_actions,
    save_bundle,
)
from quantum_trading.rl.spec import EnvSpec
from quantum_trading.rl.train import train

FEATURES = ("log_return", "log_return_z", "rsi")
POLICY = {"d_model": 8, "n_heads": 2, "features_dim": 16, "lstm_hidden": 4, "net_arch": [16]}
SCHEDULE: dict[str, Any] = {
    "eval_fraction": 0.25, "validation_fraction": 0.15, "checkpoint_every_steps": 128,
    "phases": [
        {"name": "a", "timesteps": 256, "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 2},
         "env": {"episode_bars": 64}},
        {"name": "b", "timesteps": 128, "ppo": {"n_steps": 32, "batch_size": 64, "n_epochs": 1,
                                                "learning_rate": 1e-4},
         "env": {"episode_bars": 32, "turnover_penalty": 0.001, "augmentation": True}},
    ]}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    th.set_num_threads(1)


@pytest.fixture(scope="module")
def bars() -> dict:
    return generate_market(n_assets=2, n_bars=400, seed=4).ohlcv


@pytest.fixture(scope="module")
def spec(bars: dict) -> EnvSpec:
    return EnvSpec(symbols=tuple(bars), timeframe="1h", features=FEATURES, window=8,
                   account_window=4)


def _train(bars: dict, spec: EnvSpec, out: Path, schedule: dict | None = None,
           **kw: Any) -> Any:
    kw.setdefault("seed", 7)
    return train(schedule or SCHEDULE, bars, spec=spec, env_config=EnvConfig(), out_dir=out,
                 n_envs=2, progress=False, policy_kwargs=POLICY, n_random=2, **kw)


@pytest.fixture(scope="module")
def run(bars: dict, spec: EnvSpec, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _train(bars, spec, tmp_path_factory.mktemp("run"))


def _obs_batch(bars: dict, spec: EnvSpec, n: int = 20) -> list[dict[str, np.ndarray]]:
    env = PerpetualFuturesEnv(bars, spec=spec, config=EnvConfig(start="first"))
    obs, _ = env.reset()
    out = [obs]
    rng = np.random.default_rng(0)
    for _ in range(n - 1):
        obs, *_ = env.step(rng.uniform(-1, 1, spec.n_assets).astype(np.float32))
        out.append(obs)
    return out


def test_run_writes_bundles_logs_metrics_and_recommendations(run: Any, bars: dict) -> None:
    out = run.out_dir
    index = next(iter(bars.values())).index
    assert run.total_timesteps == 384
    assert [p["phase"] for p in run.phases] == ["a", "b"]
    assert [p["timesteps"] for p in run.phases] == [256, 128]
    for folder in (out / "phases" / "01-a", out / "phases" / "02-b", out / "final",
                   out / "checkpoints" / "step-000000128", out / "checkpoints" / "step-000000384"):
        assert all((folder / f).is_file() for f in BUNDLE_FILES), folder
    assert (out / "logs" / "progress.csv").read_text().count("\n") >= 3
    assert list((out / "logs").glob("events.out.tfevents.*"))
    meta = load_train_meta(out / "checkpoints" / "step-000000128")
    assert (meta["phase"], meta["phase_timesteps_done"], meta["phase_complete"]) == ("a", 128,
                                                                                     False)
    assert meta["seed"] == 7 and len(meta["data_fingerprint"]) == 16
    # 400 bars: train [0, 240) | validation [240, 300) | test [300, 400)
    assert (meta["validation_start_bar"], meta["test_start_bar"], meta["n_bars"]) == (240, 300,
                                                                                      400)
    assert (meta["validation_start"], meta["test_start"]) == (str(index[240]), str(index[300]))
    assert {"torch", "stable_baselines3", "numpy"} <= set(meta["versions"])
    summary = json.loads((out / "metrics.json").read_text())
    assert (summary["validation_start_bar"], summary["test_start_bar"]) == (240, 300)
    assert len(summary["phases"]) == 2
    phase_b = summary["phases"][1]
    val, test = phase_b["validation"], phase_b["test"]
    for ev in (val, test):
        for who in ("policy", "random", "buy_hold"):
            assert {"total_return_pct", "sharpe", "max_drawdown_pct", "turnover"} <= set(ev[who])
    assert {"total_return_pct", "sharpe"} <= set(phase_b["train_window"])
    assert (test["start_bar"], test["end_bar"], test["policy"]["n_bars"]) == (300, 400, 99)
    assert (val["start_bar"], val["end_bar"], val["policy"]["n_bars"]) == (240, 300, 59)
    assert val["end_time"] < test["start_time"]
    assert "approx_kl" in summary["phases"][0]["train"]
    assert summary["phases"][1]["env"]["turnover_penalty"] == 0.001
    recs = json.loads((out / "phases" / "01-a" / "recommendations.json").read_text())
    assert recs["phase"] == "a" and recs["next_phase"] == "b"
    assert "eval_sharpe" in recs["metrics"] and "explained_variance" in recs["metrics"]
    assert recs["metrics_from"] == "training and validation"
    val_a = summary["phases"][0]["validation"]
    assert recs["metrics"]["eval_sharpe"] == val_a["policy"]["sharpe"]
    assert recs["metrics"]["eval_n_bars"] == 59
    for r in recs["recommendations"]:
        assert r["reason"] and r["metric"] and isinstance(r["value"], float)


def test_save_load_predict_gives_identical_actions(run: Any, bars: dict, spec: EnvSpec,
                                                   tmp_path: Path) -> None:
    bundle = load_model(run.final_bundle, spec_expected=spec)
    assert bundle.spec == spec and bundle.vecnormalize.training is False
    obs = _obs_batch(bars, spec)
    first = np.stack([predict_actions(bundle, o) for o in obs])
    again = np.stack([predict_actions(bundle, o) for o in obs])
    np.testing.assert_array_equal(first, again)
    batch = {k: np.stack([o[k] for o in obs]) for k in ("market", "account")}
    np.testing.assert_allclose(predict_actions(bundle, batch), first, rtol=1e-5, atol=1e-7)
    # a save of the loaded bundle loads back to the same parameters and actions
    copy = save_bundle(tmp_path / "copy", model=bundle.model, vecnormalize=bundle.vecnormalize,
                       spec=bundle.spec, env_config=EnvConfig(), meta={"phase": "b"})
    reloaded = load_model(copy, spec_expected=spec)
    np.testing.assert_array_equal(np.stack([predict_actions(reloaded, o) for o in obs]), first)
    for (k, a), (_, b) in zip(bundle.model.policy.state_dict().items(),
                              reloaded.model.policy.state_dict().items(), strict=True):
        assert th.equal(a, b), k
    # the saved normalisation is applied: raw observations would give other actions
    raw = np.stack([bundle.model.predict(o, deterministic=True)[0] for o in obs])
    assert not np.array_equal(raw, first)


@pytest.mark.parametrize(("change", "named"), [
    ({"symbols": ("BTC/USDT:USDT", "SOL/USDT:USDT")}, "symbols=[BTC/USDT:USDT, ETH/USDT:USDT]"),
    ({"window": 16}, "window=8"),
    ({"features": ("log_return", "rsi", "trend")}, "features=[log_return, log_return_z, rsi]"),
    ({"action": "multi_head"}, "action='target'"),
])
def test_loading_against_another_spec_fails_naming_the_mismatch(run: Any, spec: EnvSpec,
                                                                change: dict, named: str) -> None:
    other = spec.model_copy(update=change)
    with pytest.raises(ConfigError) as info:
        load_model(run.final_bundle, spec_expected=other)
    msg = str(info.value)
    assert "\n" not in msg and named in msg and str(run.final_bundle) in msg


def test_incomplete_bundle_is_refused(run: Any, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run.final_bundle, broken)
    (broken / "vecnormalize.pkl").unlink()
    with pytest.raises(ConfigError, match=r"missing vecnormalize\.pkl"):
        load_model(broken)


def test_continue_resumes_at_the_checkpoints_phase_and_timestep(run: Any, bars: dict,
                                                                spec: EnvSpec,
                                                                tmp_path: Path) -> None:
    mid = run.out_dir / "checkpoints" / "step-000000128"  # phase a, 128 of 256 steps done
    resumed = _train(bars, spec, tmp_path / "mid", continue_from=mid)
    assert [p["phase"] for p in resumed.phases] == ["a", "b"]
    assert [p["timesteps"] for p in resumed.phases] == [256, 128]  # phase totals
    assert resumed.total_timesteps == 384
    # VecNormalize statistics were carried over (not restarted from zero)
    assert load_model(resumed.final_bundle).vecnormalize.obs_rms["market"].count > 384
    # from a phase end: only the next phase runs
    after_a = _train(bars, spec, tmp_path / "after_a", continue_from=run.out_dir / "phases" /
                     "01-a")
    assert [p["phase"] for p in after_a.phases] == ["b"]
    assert after_a.phases[0]["phase_index"] == 1 and after_a.total_timesteps == 384
    assert load_train_meta(after_a.final_bundle)["phase"] == "b"
    with pytest.raises(ConfigError, match="no phase 'a'"):
        renamed = {**SCHEDULE, "phases": [{**SCHEDULE["phases"][0], "name": "x"}]}
        _train(bars, spec, tmp_path / "bad", schedule=renamed, continue_from=mid)
    other = spec.model_copy(update={"window": 4})
    with pytest.raises(ConfigError, match="window=8"):
        _train(bars, other, tmp_path / "bad2", continue_from=mid)


def test_same_seed_gives_identical_parameters(bars: dict, spec: EnvSpec,
                                              tmp_path: Path) -> None:
    one = {"eval_fraction": 0.25, "validation_fraction": 0.15, "phases": [
        {"name": "a", "timesteps": 64, "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 2},
         "env": {"episode_bars": 64}}]}
    params = []
    for name, seed in (("x", 3), ("y", 3), ("z", 4)):
        res = _train(bars, spec, tmp_path / name, schedule=one, seed=seed)
        params.append(load_model(res.final_bundle).model.policy.state_dict())
    same = [th.equal(params[0][k], params[1][k]) for k in params[0]]
    assert all(same)
    assert not all(th.equal(params[0][k], params[2][k]) for k in params[0])


def test_bad_inputs_are_clear_errors(bars: dict, spec: EnvSpec, tmp_path: Path) -> None:
    swapped = {s: bars[s] for s in reversed(list(bars))}
    with pytest.raises(ConfigError, match=r"the data has symbols=.*but the EnvSpec has"):
        _train(swapped, spec, tmp_path / "a")
    big_batch = {"phases": [{"name": "a", "timesteps": 64,
                             "ppo": {"n_steps": 16, "batch_size": 64}}]}
    with pytest.raises(ConfigError, match=r"phase a: ppo.batch_size 64 is larger than a "
                                          r"rollout \(n_steps 16 × n_envs 2 = 32\)"):
        _train(bars, spec, tmp_path / "b", schedule=big_batch)
    bad_reward = {"phases": [{"name": "a", "timesteps": 64, "ppo": {"n_steps": 32,
                                                                   "batch_size": 32},
                              "env": {"reward": "profit"}}]}
    with pytest.raises(ConfigError, match=r"phase a \(phases\[0\]\): env.reward: "):
        _train(bars, spec, tmp_path / "c", schedule=bad_reward)
    long_episodes = {"phases": [{"name": "a", "timesteps": 64,
                                 "ppo": {"n_steps": 32, "batch_size": 32},
                                 "env": {"episode_bars": 300}}]}
    with pytest.raises(ConfigError, match=r"phase a: training bars \(260\): data too short"):
        _train(bars, spec, tmp_path / "d", schedule=long_episodes)
    with pytest.raises(ConfigError, match=r"cannot be split 50% / 40% / 10% into training, "
                                          r"validation \(validation_fraction\)"):
        _train({s: f.iloc[:12] for s, f in bars.items()}, spec, tmp_path / "e",
               schedule={**big_batch, "eval_fraction": 0.1, "validation_fraction": 0.4,
                         "phases": [{"name": "a", "timesteps": 64}]})


def test_cli_train_on_synthetic_data_and_errors(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    sched = tmp_path / "s.yaml"
    sched.write_text(
        "eval_fraction: 0.25\nvalidation_fraction: 0.15\n"
        "phases:\n  - name: only\n    timesteps: 64\n"
        "    ppo: {n_steps: 32, batch_size: 32, n_epochs: 1}\n    env: {episode_bars: 64}\n")
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--symbols", "BTC/USDT:USDT,ETH/USDT:USDT",
                                 "--timeframe", "1h", "--bars", "500", "--window", "8",
                                 "--schedule", str(sched), "--out", str(out), "--seed", "1",
                                 "--n-envs", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "synthetic market, 500 1h bars" in result.output
    assert "validation slice" in result.output and "test slice" in result.output
    assert "train / validation / test = 60% / 15% / 25%" in result.output
    assert "test (held out): " in result.output and "buy&hold" in result.output
    assert all((out / "final" / f).is_file() for f in BUNDLE_FILES)
    assert load_train_meta(out / "final")["seed"] == 1

    from quantum_trading.cli.main import main

    capsys.readouterr()
    sched.write_text("phases:\n  - name: only\n    timesteps: 64\n    ppo: {gamma: 3}\n")
    cases = [
        (["--schedule", str(sched)], f"error: {sched}: phase only (phases[0]): ppo.gamma: "),
        (["--symbols", "BTC/USDT:USDT,BTC/USDT:USDT"],
         "error: --symbols: symbols must be unique"),
        (["--data", str(tmp_path / "none")], "error: --data"),
        (["--action", "both"],
         "error: --action: Input should be 'target' or 'multi_head' (got 'both')"),
    ]
    for args, expected in cases:
        assert main(["train", "--out", str(tmp_path / "bad"), *args]) == 1
        text = capsys.readouterr().out.strip()
        assert text.startswith(expected) and "\n" not in text, text


def test_early_transition_and_multi_head_actions(bars: dict, spec: EnvSpec,
                                                 tmp_path: Path) -> None:
    multi = spec.model_copy(update={"action": "multi_head"})
    sched = {"eval_fraction": 0.25, "validation_fraction": 0.15, "phases": [
        {"name": "a", "timesteps": 512, "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
         "env": {"episode_bars": 64},
         "transition": {"metric": "turnover", "threshold": 100.0, "check_every_steps": 64}},
        {"name": "b", "timesteps": 64, "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
         "env": {"episode_bars": 64}}]}
    res = _train(bars, multi, tmp_path / "m", schedule=sched)
    first = res.phases[0]
    assert first["ended_early"] and first["timesteps"] == 64
    assert len(first["transition_checks"]) == 1 and first["transition_checks"][0][0] == 64
    assert [p["phase"] for p in res.phases] == ["a", "b"] and res.total_timesteps == 128
    assert first["train"] == {}  # stopped before its first update
    assert 0.0 < res.phases[1]["train"]["entropy_ratio"] <= 1.5
    bundle = load_model(res.final_bundle, spec_expected=multi)
    action = predict_actions(bundle, _obs_batch(bars, spec, n=1)[0])
    assert action.shape == (3 * multi.n_assets,) and action.dtype.kind == "i"


def test_decisions_never_read_the_test_slice(bars: dict, spec: EnvSpec, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Spies on every evaluation env the trainer builds: the early-transition checks and the
    recommendations read only evaluations whose envs end before the test slice (bar 300 of
    400), while the reported metrics hold both slices."""
    from quantum_trading.rl import train as train_module
    from quantum_trading.rl import train_callbacks
    from quantum_trading.rl.train_envs import EnvFactory

    evaluations: list[dict[str, Any]] = []  # per evaluation: last bar its envs see, result
    seen: list[int] = []  # stack: last bar seen by the envs of the evaluations running now
    real_eval_env = EnvFactory.eval_env

    def eval_env(self: EnvFactory, frames: Any, config: Any, **kw: Any) -> Any:
        env = real_eval_env(self, frames, config, **kw)
        if seen:  # else an up-front check of the slices, before training
            seen[-1] = max(seen[-1], len(env.index) - 1)
        return env

    def spy(fn: Any) -> Any:
        def wrapped(*args: Any, **kw: Any) -> Any:
            seen.append(-1)
            out = fn(*args, **kw)
            evaluations.append({"last_bar": seen.pop(), "out": out})
            return out
        return wrapped

    monkeypatch.setattr(EnvFactory, "eval_env", eval_env)
    for name in ("evaluate_oos", "evaluate_train_window"):
        monkeypatch.setattr(train_module, name, spy(getattr(train_module, name)))

    transition_reads: list[int] = []  # last bars seen by the evaluations of each check
    real_callback = train_callbacks.EarlyTransitionCallback

    class SpyTransition(real_callback):  # type: ignore[misc,valid-type]
        def __init__(self, every_steps: int, evaluate: Any, reached: Any) -> None:
            def checked() -> float:
                before = len(evaluations)
                value = evaluate()
                transition_reads.extend(e["last_bar"] for e in evaluations[before:])
                return float(value)
            super().__init__(every_steps, checked, reached)

    monkeypatch.setattr(train_callbacks, "EarlyTransitionCallback", SpyTransition)
    recommend_inputs: list[dict[str, Any]] = []
    real_recommend = train_module.recommend

    def recommend(metrics: Any, **kw: Any) -> Any:
        recommend_inputs.append(dict(metrics))
        return real_recommend(metrics, **kw)

    monkeypatch.setattr(train_module, "recommend", recommend)
    sched = {"eval_fraction": 0.25, "validation_fraction": 0.15, "phases": [
        {"name": "a", "timesteps": 128, "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
         "env": {"episode_bars": 64},
         "transition": {"metric": "excess_return_vs_random_pct", "threshold": 1e9,
                        "check_every_steps": 64}},
        {"name": "b", "timesteps": 64, "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
         "env": {"episode_bars": 64}}]}
    res = _train(bars, spec, tmp_path / "spy", schedule=sched)
    test_start = 300

    # the transition checks (at 64 and 128 steps) evaluated the validation slice only
    assert [t for t, _ in res.phases[0]["transition_checks"]] == [64, 128]
    assert transition_reads and max(transition_reads) == test_start - 1
    # every out-of-sample number a recommendation read comes from an evaluation that ends
    # before the test slice
    assert len(recommend_inputs) == 2
    for metrics in recommend_inputs:
        read = {k for k in metrics if k.startswith(("eval_", "random_", "buy_hold_",
                                                     "excess_", "train_"))}
        assert {"eval_sharpe", "train_sharpe", "random_total_return_pct"} <= read
        explained: set[str] = set()
        for e in evaluations:
            out = e["out"]
            flat = out["flat"] if "flat" in out else {f"train_{k}": v for k, v in out.items()}
            if all(metrics.get(k) == v for k, v in flat.items()):
                assert e["last_bar"] < test_start, e
                explained |= set(flat)
        assert read <= explained
    # the spy saw the test slice being evaluated: reported, never read by a decision
    assert max(e["last_bar"] for e in evaluations) == len(next(iter(bars.values()))) - 1
    for rec in res.phases:
        assert (rec["validation"]["start_bar"], rec["validation"]["end_bar"]) == (240, 300)
        assert (rec["test"]["start_bar"], rec["test"]["end_bar"]) == (300, 400)
        assert rec["validation"]["policy"] != rec["test"]["policy"]


def test_without_a_validation_slice(bars: dict, spec: EnvSpec, tmp_path: Path) -> None:
    one = {"eval_fraction": 0.25, "validation_fraction": 0.0, "phases": [
        {"name": "a", "timesteps": 64, "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
         "env": {"episode_bars": 64}}]}
    res = _train(bars, spec, tmp_path / "none", schedule=one)
    rec = res.phases[0]
    assert rec["validation"] is None and rec["test"]["start_bar"] == 300
    meta = load_train_meta(res.final_bundle)
    assert meta["validation_start_bar"] == meta["test_start_bar"] == 300
    recs = json.loads((res.out_dir / "phases" / "01-a" / "recommendations.json").read_text())
    assert recs["metrics_from"] == "training only" and "train_sharpe" in recs["metrics"]
    assert not [k for k in recs["metrics"]
                if k.startswith(("eval_", "random_", "buy_hold_", "excess_"))]
    early = {**one, "phases": [{**one["phases"][0], "transition": {
        "metric": "sharpe", "threshold": 1.0, "check_every_steps": 32}}]}
    with pytest.raises(ConfigError, match=r"phase a \(phases\[0\]\): transition.metric "
                                          r"'sharpe' needs a validation slice, but "
                                          r"validation_fraction is 0"):
        _train(bars, spec, tmp_path / "early", schedule=early)
