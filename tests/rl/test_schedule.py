"""Training schedule files (parsing, one-line errors naming file / phase / field) and the
next-phase recommendation rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")

from quantum_trading.errors import ConfigError
from quantum_trading.rl.recommend import Thresholds, recommend, write_recommendations
from quantum_trading.rl.schedule import (
    Phase,
    TrainSchedule,
    default_schedule_path,
    load_schedule,
)

GOOD = """\
version: 1
eval_fraction: 0.25
validation_fraction: 0.2
checkpoint_every_steps: 500
phases:
  - name: explore
    timesteps: 1000
    ppo: {learning_rate: 1.0e-3, n_steps: 64, batch_size: 32, ent_coef: 0.02}
    env: {reward: log_equity, turnover_penalty: 0.001, episode_bars: 128, augmentation: true}
  - name: refine
    timesteps: 2000
    transition: {metric: sharpe, threshold: 1.5, check_every_steps: 400}
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sched.yaml"
    p.write_text(text)
    return p


def test_parses_phases_defaults_and_overrides(tmp_path: Path) -> None:
    s = load_schedule(_write(tmp_path, GOOD))
    assert [p.name for p in s.phases] == ["explore", "refine"]
    assert s.total_timesteps == 3000 and s.eval_fraction == 0.25
    assert s.validation_fraction == 0.2 and s.has_validation
    explore, refine = s.phases
    assert explore.ppo.learning_rate == 1e-3 and explore.ppo.n_steps == 64
    assert explore.ppo.gamma == 0.99  # default kept
    assert explore.env.env_updates() == {"reward": "log_equity", "turnover_penalty": 0.001,
                                         "episode_bars": 128}
    assert explore.env.augmentation is True and not explore.transition.early
    assert refine.transition.early and refine.transition.reached(1.6)
    assert not refine.transition.reached(1.4)
    assert load_schedule(_write(tmp_path, s.to_yaml())) == s


def test_default_schedule_ships_and_parses() -> None:
    path = default_schedule_path()
    assert path.is_file()
    s = load_schedule(path)
    assert len(s.phases) >= 2 and s.total_timesteps > 0
    assert (s.eval_fraction, s.validation_fraction) == (0.2, 0.15)
    one = TrainSchedule.model_validate({"phases": [{"name": "a", "timesteps": 1}]})
    assert one.validation_fraction == 0.15  # the default without the key


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD.replace("learning_rate: 1.0e-3", "learning_rate: -1"),
     "phase explore (phases[0]): ppo.learning_rate: input should be greater than 0, got -1"),
    (GOOD.replace("ent_coef: 0.02", "ent_coeff: 0.02"),
     "phase explore (phases[0]): ppo.ent_coeff: unknown field"),
    (GOOD.replace("metric: sharpe", "metric: profit"),
     "phase refine (phases[1]): transition.metric: unknown metric 'profit'"),
    (GOOD.replace("timesteps: 2000", "timesteps: 0"),
     "phase refine (phases[1]): timesteps: input should be greater than or equal to 1"),
    (GOOD.replace("turnover_penalty: 0.001", "turnover_penalty: -0.1"),
     "phase explore (phases[0]): env.turnover_penalty: input should be greater than"),
    (GOOD.replace("eval_fraction: 0.25", "eval_fraction: 0.9"),
     "eval_fraction: input should be less than or equal to 0.5"),
    (GOOD.replace("validation_fraction: 0.2", "validation_fraction: 0.5"),
     "validation_fraction: input should be less than or equal to 0.4, got 0.5"),
    (GOOD.replace("validation_fraction: 0.2", "validation_fraction: -0.1"),
     "validation_fraction: input should be greater than or equal to 0, got -0.1"),
    (GOOD.replace("eval_fraction: 0.25", "eval_fraction: 0.5").replace(
        "validation_fraction: 0.2", "validation_fraction: 0.3"),
     "eval_fraction (0.5) + validation_fraction (0.3) = 0.8 leaves 20% of the bars for "
     "training; keep their sum at most 0.6"),
    (GOOD.replace("validation_fraction: 0.2", "validation_fraction: 0"),
     "phase refine (phases[1]): transition.metric 'sharpe' needs a validation slice, but "
     "validation_fraction is 0"),
    (GOOD.replace("name: refine", "name: explore"), "phase names must be unique"),
    (GOOD.replace("threshold: 1.5, ", ""),
     "phase refine (phases[1]): transition: metric and threshold go together"),
    ("phases: [\n", "invalid YAML at line"),
    ("- 1\n- 2\n", "a schedule must be a mapping"),
])
def test_bad_field_is_one_line_naming_file_phase_and_field(tmp_path: Path, text: str,
                                                           expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_schedule(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_missing_file_and_phase_lookup(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such schedule file"):
        load_schedule(tmp_path / "nope.yaml")
    s = load_schedule(_write(tmp_path, GOOD))
    assert s.phase_index("refine") == 1
    with pytest.raises(ConfigError, match="no phase 'x'"):
        s.phase_index("x")


def test_frozen_and_with_changes_validates() -> None:
    p = Phase(name="a", timesteps=10)
    with pytest.raises(Exception, match="frozen"):
        p.timesteps = 3  # type: ignore[misc]
    q = p.with_changes({"ppo.ent_coef": 0.05, "env.augmentation": True})
    assert q.ppo.ent_coef == 0.05 and q.env.augmentation is True and p.ppo.ent_coef == 0.0
    with pytest.raises(ConfigError, match=r"phase a: ppo.gamma: input should be less"):
        p.with_changes({"ppo.gamma": 3.0})
    with pytest.raises(ConfigError, match="only ppo"):
        p.with_changes({"timesteps": 3})


# -- recommendations ---------------------------------------------------------------------------

def _rules(out: dict) -> dict[str, dict]:
    return {r["rule"]: r for r in out["recommendations"]}


def test_healthy_metrics_give_no_recommendation() -> None:
    metrics = {"entropy_ratio": 0.8, "approx_kl": 0.01, "clip_fraction": 0.1,
               "explained_variance": 0.7, "train_sharpe": 1.2, "eval_sharpe": 1.0,
               "eval_turnover": 0.02, "eval_total_return_pct": 3.0,
               "random_total_return_pct": -2.0}
    out = recommend(metrics, phase=Phase(name="a", timesteps=10))
    assert out["recommendations"] == [] and out["changes"] == {}
    assert out["metrics"] == metrics and out["phase"] == "a" and out["next_phase"] is None


def test_each_rule_fires_with_value_reason_and_change() -> None:
    nxt = Phase.model_validate({"name": "b", "timesteps": 10, "ppo": {
        "learning_rate": 4e-4, "ent_coef": 0.01, "n_epochs": 10, "vf_coef": 0.5},
        "env": {"turnover_penalty": 0.002}})
    metrics = {"entropy_ratio": 0.05, "approx_kl": 0.12, "clip_fraction": 0.45,
               "explained_variance": -0.3, "train_sharpe": 3.0, "eval_sharpe": 0.2,
               "eval_turnover": 0.8, "eval_total_return_pct": -5.0,
               "random_total_return_pct": -1.0}
    out = recommend(metrics, phase=Phase(name="a", timesteps=10), next_phase=nxt)
    rules = _rules(out)
    assert set(rules) == {"entropy_collapse", "kl_too_high", "clipping_too_often",
                          "value_fit_poor", "overfitting", "turnover_too_high", "no_edge"}
    assert rules["entropy_collapse"]["value"] == 0.05
    assert rules["entropy_collapse"]["changes"] == {"ppo.ent_coef": 0.02}
    assert rules["kl_too_high"]["changes"] == {"ppo.learning_rate": 2e-4}
    assert rules["value_fit_poor"]["changes"] == {"ppo.n_epochs": 15, "ppo.vf_coef": 0.75}
    assert rules["overfitting"]["severity"] == "warning"
    assert rules["overfitting"]["value"] == pytest.approx(2.8)
    assert rules["overfitting"]["changes"] == {"env.augmentation": True}
    assert rules["turnover_too_high"]["changes"] == {"env.turnover_penalty": 0.004}
    assert rules["no_edge"]["changes"] == {}
    assert all(r["reason"] for r in out["recommendations"])
    assert out["next_phase"] == "b"
    # the merged changes apply cleanly to the next phase
    applied = nxt.with_changes(out["changes"])
    assert applied.ppo.learning_rate == 2e-4 and applied.env.turnover_penalty == 0.004


def test_turnover_penalty_from_env_values_and_small_updates() -> None:
    out = recommend({"eval_turnover": 0.5}, phase=Phase(name="a", timesteps=10),
                    env_values={"turnover_penalty": 0.0})
    assert out["changes"] == {"env.turnover_penalty": 0.0001}
    out = recommend({"approx_kl": 1e-4, "clip_fraction": 0.0},
                    phase=Phase(name="a", timesteps=10))
    assert _rules(out)["updates_too_small"]["changes"] == {"ppo.learning_rate": 0.0006}


def test_thresholds_are_configurable_and_nan_is_skipped(tmp_path: Path) -> None:
    out = recommend({"approx_kl": 0.03, "explained_variance": float("nan")},
                    phase=Phase(name="a", timesteps=10), thresholds=Thresholds(approx_kl_max=0.02))
    assert list(_rules(out)) == ["kl_too_high"]
    path = write_recommendations(out, tmp_path)
    assert path.name == "recommendations.json"
    assert json.loads(path.read_text())["recommendations"][0]["metric"] == "approx_kl"


def test_schedule_rejects_unknown_top_level_and_augment_fields() -> None:
    with pytest.raises(ConfigError, match=r"augment\.noise: unknown field"):
        load_schedule({"augment": {"noise": 1}, "phases": [{"name": "a", "timesteps": 1}]})
    assert TrainSchedule.model_validate(
        {"phases": [{"name": "a", "timesteps": 1}]}).augment.active


def test_reward_choices_match_the_env_config() -> None:
    from typing import get_args

    from quantum_trading.rl.env_config import EnvConfig
    from quantum_trading.rl.schedule import EnvOverrides

    ours = get_args(get_args(EnvOverrides.model_fields["reward"].annotation)[0])
    assert set(ours) == set(get_args(EnvConfig.model_fields["reward"].annotation))
    with pytest.raises(ConfigError, match=r"phase a \(phases\[0\]\): env.reward: input should be"):
        load_schedule({"phases": [{"name": "a", "timesteps": 1, "env": {"reward": "pnl"}}]})


def test_no_validation_slice_is_allowed_without_early_transitions() -> None:
    s = load_schedule({"validation_fraction": 0, "eval_fraction": 0.5,
                       "phases": [{"name": "a", "timesteps": 1}]})
    assert s.validation_fraction == 0.0 and not s.has_validation
    edge = load_schedule({"validation_fraction": 0.4, "eval_fraction": 0.2,
                          "phases": [{"name": "a", "timesteps": 1}]})
    assert edge.validation_fraction == 0.4  # sum 0.6: 40 % left for training
