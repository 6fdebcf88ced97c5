"""The training schedule: PPO phases read from a YAML file (:class:`TrainSchedule`).

A schedule is a list of phases run in order by :func:`quantum_trading.rl.train.train`. Each
phase has a name, a timestep budget, PPO hyperparameters, overrides of the environment config
(reward, penalties, episode length, augmentation) and a transition rule: a phase ends when its
timesteps are done, or earlier when a metric of the validation slice, checked every
``check_every_steps``, reaches ``threshold``. After each phase the trainer writes
``recommendations.json`` for the next phase (see :mod:`quantum_trading.rl.recommend`).

The bars are split in time into three slices: train | validation | test. The test slice is
the last ``eval_fraction`` of all bars (reported only, never used for a decision); the
validation slice is the ``validation_fraction`` of all bars just before it (early transitions
and recommendations read it); training environments see only the bars before the validation
slice. ``validation_fraction: 0`` means no validation slice: phases may not then ask for an
early transition, and recommendations read training-side metrics only.

File format (every key but ``phases`` optional; unknown keys are errors)::

    version: 1
    eval_fraction: 0.2            # last fraction of bars: the test slice (held out, reported)
    validation_fraction: 0.15     # fraction of bars just before it: transitions, advice
    checkpoint_every_steps: 20000 # 0 = only at phase ends
    apply_recommendations: false  # true: each phase starts from the last one's advice
    augment: {segment_shuffle: true, segment_bars: 168, price_scale: true,
              feature_noise_std: 0.05}   # used by phases with env.augmentation: true
    phases:
      - name: explore
        timesteps: 50000
        ppo: {learning_rate: 3.0e-4, n_steps: 512, batch_size: 128, ent_coef: 0.01}
        env: {reward: log_equity, turnover_penalty: 0.0, episode_bars: 512, augmentation: true}
        transition: {metric: sharpe, threshold: 1.5, check_every_steps: 10000}

>>> s = TrainSchedule.model_validate({"phases": [{"name": "a", "timesteps": 1000}]})
>>> s.phases[0].ppo.learning_rate, s.total_timesteps
(0.0003, 1000)
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from quantum_trading.config_files import read_yaml
from quantum_trading.errors import ConfigError
from quantum_trading.rl.augment import AugmentConfig

__all__ = [
    "EVAL_METRICS",
    "MIN_TRAIN_FRACTION",
    "EnvOverrides",
    "PPOParams",
    "Phase",
    "TrainSchedule",
    "Transition",
    "default_schedule_path",
    "load_schedule",
]

EVAL_METRICS: dict[str, str] = {
    "sharpe": "above",
    "total_return_pct": "above",
    "excess_return_vs_random_pct": "above",
    "excess_return_vs_buy_hold_pct": "above",
    "max_drawdown_pct": "above",
    "turnover": "below",
}
"""Metrics of the validation slice a transition may watch, and the side of the threshold
that ends a phase (``above``: metric ≥ threshold; ``below``: metric ≤ threshold). ``sharpe`` is
annualised, returns and drawdown are in % (drawdown ≤ 0: a threshold of -10 ends the phase
once the drawdown is no worse than 10 %), ``turnover`` is traded notional / equity per bar."""

MIN_TRAIN_FRACTION = 0.4
"""Smallest fraction of all bars left for training: ``eval_fraction + validation_fraction``
may be at most ``1 − MIN_TRAIN_FRACTION``."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class PPOParams(BaseModel):
    """PPO hyperparameters of one phase (Stable-Baselines3 names and defaults, except
    ``n_steps``/``batch_size`` which suit short financial episodes)."""

    model_config = _FROZEN

    learning_rate: float = Field(3e-4, gt=0.0, le=1.0, description="Adam step size.")
    n_steps: int = Field(
        512, ge=8, le=1_000_000, description="Rollout steps per environment per update [steps].")
    batch_size: int = Field(
        128, ge=2, le=10_000_000, description="Minibatch size [samples]; ≤ n_steps × n_envs.")
    n_epochs: int = Field(10, ge=1, le=100, description="Passes over each rollout.")
    gamma: float = Field(0.99, gt=0.0, le=1.0, description="Discount factor per step.")
    gae_lambda: float = Field(0.95, ge=0.0, le=1.0, description="GAE λ.")
    clip_range: float = Field(0.2, gt=0.0, le=1.0, description="PPO ratio clip ε.")
    ent_coef: float = Field(0.0, ge=0.0, le=1.0, description="Entropy bonus coefficient.")
    vf_coef: float = Field(0.5, gt=0.0, le=10.0, description="Value-loss coefficient.")
    max_grad_norm: float = Field(0.5, gt=0.0, le=100.0, description="Gradient-norm clip.")


class EnvOverrides(BaseModel):
    """Changes to the environment config for one phase; ``None`` keeps the base value.

    Only fields that leave the observation and action spaces alone may change between phases
    (those are fixed by :class:`~quantum_trading.rl.spec.EnvSpec`)."""

    model_config = _FROZEN

    reward: Literal["log_equity", "differential_sharpe"] | None = Field(
        None, description="Reward per step (EnvConfig.reward): log equity change or "
        "differential Sharpe.")
    drawdown_penalty: float | None = Field(
        None, ge=0.0, le=1000.0, description="Weight of the drawdown penalty in the reward.")
    turnover_penalty: float | None = Field(
        None, ge=0.0, le=1000.0, description="Weight of the turnover penalty in the reward.")
    episode_bars: int | None = Field(
        None, ge=2, le=10_000_000, description="Bars per training episode [bars].")
    augmentation: bool | None = Field(
        None, description="Train on augmented data (rl.augment: segment shuffle, feature "
        "noise, price scaling, asset permutation); evaluation never is.")

    def env_updates(self) -> dict[str, Any]:
        """The env-config fields this phase sets (``augmentation`` excluded: the trainer
        applies it to the data, not to the env config)."""
        return {k: v for k, v in self.model_dump().items()
                if v is not None and k != "augmentation"}


class Transition(BaseModel):
    """When a phase ends: after ``timesteps`` always; earlier when ``metric`` (of the
    validation slice, checked every ``check_every_steps`` timesteps) reaches ``threshold``."""

    model_config = _FROZEN

    metric: str | None = Field(
        None, description=f"Validation-slice metric to watch, one of {sorted(EVAL_METRICS)}.")
    threshold: float | None = Field(None, description="Value that ends the phase early.")
    check_every_steps: int = Field(
        10_000, ge=1, le=1_000_000_000, description="Timesteps between checks [steps].")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str | None) -> str | None:
        if v is not None and v not in EVAL_METRICS:
            raise ValueError(f"unknown metric {v!r}; choose from {sorted(EVAL_METRICS)}")
        return v

    @model_validator(mode="after")
    def _metric_with_threshold(self) -> Transition:
        if (self.metric is None) != (self.threshold is None):
            raise ValueError("metric and threshold go together: give both or neither")
        return self

    @property
    def early(self) -> bool:
        """Whether an early transition is configured."""
        return self.metric is not None

    def reached(self, value: float) -> bool:
        """Whether ``value`` of :attr:`metric` ends the phase."""
        if self.metric is None or self.threshold is None:
            return False
        if EVAL_METRICS[self.metric] == "above":
            return value >= self.threshold
        return value <= self.threshold


class Phase(BaseModel):
    """One training phase."""

    model_config = _FROZEN

    name: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                      description="Phase name (letters, digits, _ . -); names its output folder.")
    timesteps: int = Field(..., ge=1, le=10_000_000_000, description="Budget [env steps].")
    ppo: PPOParams = Field(default_factory=PPOParams, description="PPO hyperparameters.")
    env: EnvOverrides = Field(default_factory=EnvOverrides, description="Env overrides.")
    transition: Transition = Field(default_factory=Transition, description="Early transition.")

    def with_changes(self, changes: Mapping[str, Any]) -> Phase:
        """A copy with dotted-key changes applied, e.g. ``{"ppo.ent_coef": 0.02}``; values are
        validated as in a file."""
        raw = self.model_dump()
        for key, value in changes.items():
            section, _, field = key.partition(".")
            if section not in ("ppo", "env") or not field:
                raise ConfigError(f"phase {self.name}: cannot change {key!r} "
                                  "(only ppo.<field> and env.<field>)")
            raw[section][field] = value
        try:
            return Phase.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"phase {self.name}: {_describe(exc.errors()[0])}") from exc


class TrainSchedule(BaseModel):
    """The schedule file: settings for the whole run and the phases in order."""

    model_config = _FROZEN

    version: Literal[1] = Field(1, description="Schedule format version.")
    eval_fraction: float = Field(
        0.2, ge=0.05, le=0.5, description="Last fraction of all bars: the test slice, held "
        "out and only reported (never read by a transition or a recommendation).")
    validation_fraction: float = Field(
        0.15, ge=0.0, le=0.4, description="Fraction of all bars just before the test slice: "
        "the validation slice that early transitions and recommendations read; 0 = none "
        "(then no phase may ask for an early transition).")
    checkpoint_every_steps: int = Field(
        0, ge=0, le=10_000_000_000,
        description="Timesteps between checkpoints [steps]; 0 = only at phase ends.")
    apply_recommendations: bool = Field(
        False, description="Start each phase from the previous phase's recommendations.")
    augment: AugmentConfig = Field(
        default_factory=lambda: AugmentConfig(
            segment_shuffle=True, price_scale=True, feature_noise_std=0.05),
        description="Augmentations used by phases with env.augmentation: true "
        "(rl.augment.AugmentConfig; training data only, never evaluation).")
    phases: tuple[Phase, ...] = Field(..., min_length=1, description="Phases, run in order.")

    @field_validator("phases")
    @classmethod
    def _unique_names(cls, v: tuple[Phase, ...]) -> tuple[Phase, ...]:
        names = [p.name for p in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"phase names must be unique, repeated: {dupes}")
        return v

    @model_validator(mode="after")
    def _split_and_transitions(self) -> TrainSchedule:
        held = self.eval_fraction + self.validation_fraction
        if held > 1.0 - MIN_TRAIN_FRACTION + 1e-9:
            raise ValueError(
                f"eval_fraction ({self.eval_fraction:g}) + validation_fraction "
                f"({self.validation_fraction:g}) = {held:g} leaves {1.0 - held:.0%} of the bars "
                f"for training; keep their sum at most {1.0 - MIN_TRAIN_FRACTION:g}")
        if self.validation_fraction == 0.0:
            for i, p in enumerate(self.phases):
                if p.transition.early:
                    raise ValueError(
                        f"phase {p.name} (phases[{i}]): transition.metric "
                        f"{p.transition.metric!r} needs a validation slice, but "
                        "validation_fraction is 0 (early transitions never read the test "
                        "slice); set validation_fraction > 0 or remove the transition")
        return self

    @property
    def has_validation(self) -> bool:
        """Whether the run has a validation slice (``validation_fraction > 0``)."""
        return self.validation_fraction > 0.0

    @property
    def total_timesteps(self) -> int:
        """Sum of the phase budgets [env steps]."""
        return sum(p.timesteps for p in self.phases)

    def phase_index(self, name: str) -> int:
        """Position of the phase called ``name``; ConfigError listing the names if none."""
        for i, p in enumerate(self.phases):
            if p.name == name:
                return i
        raise ConfigError(f"schedule has no phase {name!r} (phases: "
                          f"{[p.name for p in self.phases]})")

    def to_yaml(self) -> str:
        """The schedule as YAML that :func:`load_schedule` reads back to an equal schedule."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def default_schedule_path() -> Path:
    """The example schedule shipped with the package (``rl/schedules/default.yaml``)."""
    return Path(str(resources.files("quantum_trading.rl") / "schedules" / "default.yaml"))


def _describe(err: Mapping[str, Any]) -> str:
    loc = [str(x) for x in err["loc"]]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if not loc:  # a check of the whole schedule: its message names the fields
        return msg
    field = ".".join(loc)
    if err.get("type") == "extra_forbidden":
        msg = "unknown field"
    elif "input" in err and not isinstance(err["input"], Mapping | list):
        msg = f"{msg}, got {err['input']!r}"
    return f"{field}: {msg[0].lower() + msg[1:] if msg else msg}"


def _locate(err: Mapping[str, Any], raw: Any) -> str:
    """``phase <name> (phases[i]): <field>: <message>`` for an error inside a phase."""
    loc = list(err["loc"])
    if len(loc) >= 2 and loc[0] == "phases" and isinstance(loc[1], int):
        i = loc[1]
        name = None
        phases = raw.get("phases") if isinstance(raw, Mapping) else None
        if isinstance(phases, list) and i < len(phases) and isinstance(phases[i], Mapping):
            name = phases[i].get("name")
        where = f"phase {name} (phases[{i}])" if name else f"phases[{i}]"
        rest = dict(err)
        rest["loc"] = tuple(loc[2:])
        return f"{where}: {_describe(rest)}"
    return _describe(err)


def load_schedule(source: str | Path | Mapping[str, Any] | TrainSchedule) -> TrainSchedule:
    """Read a schedule from a YAML file, a dict, or return a :class:`TrainSchedule` as is.

    Raises
    ------
    ConfigError
        One line naming the file, the phase and the field: ``sched.yaml: phase explore
        (phases[0]): ppo.learning_rate: input should be greater than 0, got -1.0``.

    >>> load_schedule({"phases": [{"name": "a", "timesteps": 10, "ppo": {"gamma": 2}}]})
    Traceback (most recent call last):
    ...
    quantum_trading.errors.ConfigError: schedule: phase a (phases[0]): ppo.gamma: input should be less than or equal to 1, got 2
    """
    if isinstance(source, TrainSchedule):
        return source
    where = "schedule"
    if isinstance(source, str | Path):
        where = str(Path(source))
        raw = read_yaml(source, what="schedule")
    else:
        raw = source
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a schedule must be a mapping with a 'phases' list, "
                          f"got {type(raw).__name__}")
    try:
        return TrainSchedule.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_locate(exc.errors()[0], raw)}") from None
