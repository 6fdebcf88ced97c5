"""Phase-scheduled PPO training on the perpetual-futures environment: :func:`train`.

What a run does, in order:

1. Splits the bars in time into three slices, train | validation | test
   (:func:`~quantum_trading.rl.train_envs.split_bars`). The test slice is the last
   ``schedule.eval_fraction`` of the bars, the validation slice the
   ``schedule.validation_fraction`` just before it. Training environments see only the bars
   before the validation slice. An evaluation env of a slice
   sees the bars up to the slice's end and none after (features at its first bar use the
   history before it, causally; trading starts at its first bar).
2. For each phase (in order; from the checkpoint's position with ``continue_from``): builds
   ``n_envs`` training environments with the phase's env overrides (the batched numba VecEnv
   when available, else a ``DummyVecEnv``; augmented data when the phase says so), wraps them
   in ``VecNormalize`` (statistics carried over from phase to phase), sets the phase's PPO
   hyperparameters on the one model and learns the phase's timesteps (fewer when its
   transition metric, checked on the validation slice, reaches the threshold).
3. After each phase: saves a bundle (:mod:`quantum_trading.rl.model_io`) in
   ``phases/NN-<name>/``, evaluates the policy deterministically on the validation and the
   test slices against a random policy and buy-and-hold on the same bars
   (:mod:`quantum_trading.rl.evaluate`), and on the last training bars; writes
   ``metrics.json`` (both slices) and ``recommendations.json``
   (:mod:`quantum_trading.rl.recommend`, from the training-side and validation metrics).

4. At the end: the last bundle is copied to ``final/`` and ``metrics.json`` (all phases) is
   written at the top of ``out_dir``.

Nothing that decides anything (early transitions, recommendations, and so
``apply_recommendations``) reads the test slice: it is reported only, so its figures stay
out of sample. Without a validation slice (``validation_fraction: 0``) the schedule may not
ask for early transitions and recommendations read training-side metrics only (the rules on
out-of-sample metrics do not fire).

Output layout::

    out_dir/
      logs/progress.csv, logs/events.out.tfevents.*   SB3 CSV and TensorBoard logs
      checkpoints/step-000020000/                       a bundle every checkpoint_every_steps
      phases/01-explore/                                bundle + metrics.json + recommendations.json
      final/                                            bundle of the last phase
      metrics.json                                      every phase's metrics
      schedule.yaml                                     the schedule that ran

Reproducibility: ``seed`` seeds Python, numpy and torch (SB3's ``set_random_seed``), the
environments (``seed + 1000·phase``) and the augmentations; with the same inputs, seed and
``n_envs`` two runs produce identical parameters on the same machine and thread count.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from quantum_trading.errors import ConfigError
from quantum_trading.rl.evaluate import evaluate_oos, evaluate_train_window
from quantum_trading.rl.model_io import data_fingerprint, load_train_meta, save_bundle
from quantum_trading.rl.recommend import recommend, write_recommendations
from quantum_trading.rl.schedule import Phase, PPOParams, TrainSchedule, load_schedule
from quantum_trading.rl.spec import EnvSpec, load_env_spec
from quantum_trading.rl.train_envs import BarSplit, EnvFactory, check_bars, split_bars

__all__ = ["TrainResult", "train"]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced: the output folder, the final bundle, each phase's metrics
    (as in ``metrics.json``) and the run's total timesteps."""

    out_dir: Path
    final_bundle: Path
    phases: list[dict[str, Any]] = field(default_factory=list)
    total_timesteps: int = 0


def _policy(spec: EnvSpec, policy_kwargs: Mapping[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    from quantum_trading.rl.policies import policy_and_kwargs

    return policy_and_kwargs(spec.action, **dict(policy_kwargs or {}))


def _entropy_ref(spec: EnvSpec) -> float:
    """Entropy of the initial policy [nats]: a unit Gaussian per asset (SB3's log_std_init=0)
    for ``target``; for ``multi_head`` the hierarchical distribution of
    :class:`~quantum_trading.rl.policies.MultiHeadActorCriticPolicy` with uniform heads:
    direction over 3, then size (K buckets) and stop (J multiples) only for short and long
    (2/3 of the mass), i.e. ``N·(ln 3 + ⅔·(ln K + ln J))``."""
    if spec.action == "target":
        return spec.n_assets * 0.5 * math.log(2.0 * math.pi * math.e)
    k, j = len(spec.size_buckets), len(spec.stop_multiples)
    return spec.n_assets * (math.log(3.0) + 2.0 / 3.0 * (math.log(k) + math.log(j)))


def _apply_ppo(model: Any, ppo: PPOParams) -> None:
    """Set one phase's hyperparameters on an existing PPO model (new rollout buffer when the
    rollout size changes)."""
    from stable_baselines3.common.utils import FloatSchedule

    model.learning_rate = ppo.learning_rate
    model._setup_lr_schedule()
    model.clip_range = FloatSchedule(ppo.clip_range)
    for name in ("n_epochs", "gamma", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm",
                 "batch_size"):
        setattr(model, name, getattr(ppo, name))
    model.n_steps = ppo.n_steps
    model.rollout_buffer = model.rollout_buffer_class(
        model.n_steps, model.observation_space, model.action_space, device=model.device,
        gamma=model.gamma, gae_lambda=model.gae_lambda, n_envs=model.n_envs,
        **model.rollout_buffer_kwargs)


def _wrap_normalize(venv: Any, gamma: float, previous: Any | None) -> Any:
    from stable_baselines3.common.vec_env import VecNormalize

    from quantum_trading.rl.spec import OBS_CLIP

    vn = VecNormalize(venv, norm_obs=True, norm_reward=True, clip_obs=OBS_CLIP, gamma=gamma)
    if previous is not None:  # statistics carry over; the previous wrapper keeps its own
        vn.obs_rms = copy.deepcopy(previous.obs_rms)
        vn.ret_rms = copy.deepcopy(previous.ret_rms)
    return vn


def _configure_logger(log_dir: Path) -> tuple[Any, Any]:
    from stable_baselines3.common.logger import configure

    from quantum_trading.rl.train_callbacks import MetricRecorder

    formats = ["csv"]
    try:
        import tensorboard  # noqa: F401

        formats.append("tensorboard")
    except ImportError:  # CSV only; the run still works without TensorBoard
        pass
    logger = configure(str(log_dir), formats)
    recorder = MetricRecorder()
    logger.output_formats.append(recorder)
    return logger, recorder


def _resume_position(continue_from: Path, schedule: TrainSchedule, spec: EnvSpec
                     ) -> tuple[int, int]:
    """(phase index, timesteps already done in it) of a checkpoint; ConfigError when it was
    trained with another spec or its phase is not in the schedule."""
    meta = load_train_meta(continue_from)
    saved = load_env_spec(continue_from)
    saved.check_matches(spec, what=f"checkpoint {continue_from}")
    name = meta.get("phase")
    if not isinstance(name, str):
        raise ConfigError(f"{continue_from}: train_meta.json has no phase name")
    index = schedule.phase_index(name)
    done = int(meta.get("phase_timesteps_done", 0))
    if meta.get("phase_complete") or done >= schedule.phases[index].timesteps:
        return index + 1, 0
    return index, done


def _check_phase(phase: Phase, n_envs: int) -> None:
    rollout = phase.ppo.n_steps * n_envs
    if phase.ppo.batch_size > rollout:
        raise ConfigError(f"phase {phase.name}: ppo.batch_size {phase.ppo.batch_size} is larger "
                          f"than a rollout (n_steps {phase.ppo.n_steps} × n_envs {n_envs} = "
                          f"{rollout})")


def _progress(enabled: bool, total: int) -> tuple[Any, Any]:
    if not enabled:
        return None, None
    from quantum_trading.progress import progress_bar

    bar = progress_bar()
    task = bar.add_task("training", total=total)
    bar.start()
    return bar, task


def _phase_dir(out: Path, index: int, name: str) -> Path:
    return out / "phases" / f"{index + 1:02d}-{name}"


def _report(evaluation: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """An evaluation as written to ``metrics.json`` (without the flat copy for the rules)."""
    if evaluation is None:
        return None
    return {k: v for k, v in evaluation.items() if k != "flat"}


class _Run:
    """State of one training run across its phases (see :func:`train`)."""

    def __init__(self, sched: TrainSchedule, frames: dict[str, pd.DataFrame], *, spec: EnvSpec,
                 factory: EnvFactory, out: Path, seed: int, n_envs: int, split: BarSplit,
                 n_random: int, policy_kwargs: Mapping[str, Any] | None) -> None:
        self.sched, self.frames, self.spec, self.factory = sched, frames, spec, factory
        self.out, self.seed, self.n_envs, self.split = out, seed, n_envs, split
        self.n_random, self.policy_kwargs = n_random, policy_kwargs
        self.train_bars = split.train_frames(frames)
        self.fingerprint = data_fingerprint(frames)
        self.model: Any = None
        self.vecnorm: Any = None
        self.results: list[dict[str, Any]] = []
        self.logger, self.recorder = _configure_logger(out / "logs")

    # -- bookkeeping ---------------------------------------------------------------------------
    def split_record(self) -> dict[str, Any]:
        """Where the slices start (bar numbers and UTC bar open times): training is
        ``[0, validation_start_bar)``, validation ``[validation_start_bar, test_start_bar)``
        (empty without one), test ``[test_start_bar, n_bars)``."""
        index_ = self.frames[self.spec.symbols[0]].index
        sp = self.split
        return {"validation_start_bar": sp.validation_start,
                "validation_start": str(index_[sp.validation_start]),
                "test_start_bar": sp.test_start, "test_start": str(index_[sp.test_start]),
                "n_bars": sp.n_bars}

    def meta(self, index: int, phase: Phase, phase_start: int, complete: bool) -> dict[str, Any]:
        """``train_meta.json`` of a bundle saved now."""
        steps = int(self.model.num_timesteps)
        index_ = self.frames[self.spec.symbols[0]].index
        return {"seed": self.seed, "phase": phase.name, "phase_index": index,
                "phase_timesteps_done": steps - phase_start, "phase_complete": complete,
                "num_timesteps": steps, "n_envs": self.n_envs, **self.split_record(),
                "data_fingerprint": self.fingerprint, "data_start": str(index_[0]),
                "data_end": str(index_[-1])}

    def write_summary(self) -> None:
        """Top-level ``metrics.json``: every finished phase so far."""
        summary = {"seed": self.seed, "symbols": list(self.spec.symbols),
                   "timeframe": self.spec.timeframe, **self.split_record(),
                   "phases": self.results}
        (self.out / "metrics.json").write_text(json.dumps(summary, indent=2, default=float)
                                               + "\n")

    # -- model ---------------------------------------------------------------------------------
    def attach(self, phase: Phase, vecnorm: Any, continue_from: Path | None) -> None:
        """Create, load or re-target the model for a phase on ``vecnorm``."""
        from stable_baselines3 import PPO

        if self.model is None and continue_from is not None:
            self.model = PPO.load(continue_from / "model.zip", env=vecnorm, device="cpu")
            _apply_ppo(self.model, phase.ppo)
        elif self.model is None:
            policy, kwargs = _policy(self.spec, self.policy_kwargs)
            self.model = PPO(policy, vecnorm, seed=self.seed, device="cpu", verbose=0,
                             policy_kwargs=kwargs, **phase.ppo.model_dump())
        else:
            self.model.set_env(vecnorm)
            _apply_ppo(self.model, phase.ppo)
        self.model.set_logger(self.logger)
        self.vecnorm = vecnorm

    def evaluate_validation(self, cfg: Any, *, n_random: int) -> dict[str, Any]:
        """Evaluation of the current model on the validation slice, bars
        ``[validation_start, test_start)``; its env never sees a test bar. The only
        evaluation that decisions (transitions, recommendations) read."""
        if not self.split.has_validation:
            raise ConfigError("train: no validation slice (validation_fraction is 0)")
        return evaluate_oos(self.model, self.vecnorm, self.frames, spec=self.spec, config=cfg,
                            factory=self.factory, split=self.split.validation_start,
                            end=self.split.test_start, seed=self.seed, n_random=n_random,
                            what="the validation slice")

    def evaluate_test(self, cfg: Any, *, n_random: int) -> dict[str, Any]:
        """Evaluation of the current model on the test slice, bars ``[test_start, n_bars)``:
        reported in ``metrics.json``, never read by a decision."""
        return evaluate_oos(self.model, self.vecnorm, self.frames, spec=self.spec, config=cfg,
                            factory=self.factory, split=self.split.test_start, seed=self.seed,
                            n_random=n_random, what="the test slice")

    def train_window(self, cfg: Any) -> dict[str, float]:
        """The policy over the last training bars, before ``validation_start`` (as many as
        the validation slice has; without one, as the test slice has): the training side of
        the train-vs-validation Sharpe gap."""
        sp = self.split
        n_bars = (sp.test_start - sp.validation_start if sp.has_validation
                  else sp.n_bars - sp.test_start)
        return evaluate_train_window(self.model, self.vecnorm, self.frames, spec=self.spec,
                                     config=cfg, factory=self.factory,
                                     end=sp.validation_start, n_bars=n_bars)

    def transition_value(self, cfg: Any, metric: str) -> float:
        """The value of a transition metric on the validation slice now."""
        ev = self.evaluate_validation(cfg, n_random=3 if metric.endswith("random_pct") else 0)
        value = ev["policy"][metric] if metric in ev["policy"] else ev.get(metric, math.nan)
        return float(value)

    # -- one phase -----------------------------------------------------------------------------
    def run_phase(self, index: int, phase: Phase, *, done: int, progress: tuple[Any, Any],
                  continue_from: Path | None) -> dict[str, Any]:
        """Train one phase (``done`` of its timesteps already done), save its bundle, evaluate
        it and write its metrics and recommendations; returns the recommendations."""
        from quantum_trading.rl.train_callbacks import (
            CheckpointCallback,
            EarlyTransitionCallback,
            RichProgressCallback,
            phase_train_metrics,
        )

        cfg = self.factory.phase_config(phase)
        seed_i = self.seed + 1000 * index
        venv = self.factory.train_venv(self.train_bars, cfg, phase, n_envs=self.n_envs,
                                       seed=seed_i)
        vecnorm = _wrap_normalize(venv, phase.ppo.gamma, self.vecnorm)
        self.attach(phase, vecnorm, continue_from)
        vecnorm.seed(seed_i)
        phase_start = int(self.model.num_timesteps) - done
        callbacks: list[Any] = []
        if self.sched.checkpoint_every_steps:
            def save(steps: int) -> None:
                save_bundle(self.out / "checkpoints" / f"step-{steps:09d}", model=self.model,
                            vecnormalize=vecnorm, spec=self.spec, env_config=cfg,
                            meta=self.meta(index, phase, phase_start, False))

            callbacks.append(CheckpointCallback(self.sched.checkpoint_every_steps, save))
        early = None
        if phase.transition.early:
            metric = str(phase.transition.metric)
            early = EarlyTransitionCallback(phase.transition.check_every_steps,
                                            lambda: self.transition_value(cfg, metric),
                                            phase.transition.reached)
            callbacks.append(early)
        bar, task = progress
        if bar is not None:
            callbacks.append(RichProgressCallback(bar, task, phase.name))
        if phase.timesteps - done > 0:
            self.model.learn(phase.timesteps - done, callback=callbacks,
                             reset_num_timesteps=False, progress_bar=False)
        self.logger.dump(self.model.num_timesteps)
        phase_dir = _phase_dir(self.out, index, phase.name)
        save_bundle(phase_dir, model=self.model, vecnormalize=vecnorm, spec=self.spec,
                    env_config=cfg, meta=self.meta(index, phase, phase_start, True))
        validation = (self.evaluate_validation(cfg, n_random=self.n_random)
                      if self.split.has_validation else None)
        train_window = self.train_window(cfg)
        test = self.evaluate_test(cfg, n_random=self.n_random)
        stats = phase_train_metrics(self.recorder.rows, start=phase_start,
                                    end=int(self.model.num_timesteps),
                                    entropy_ref=_entropy_ref(self.spec))
        # decisions read training-side and validation metrics only, never `test`
        decision_metrics = {**stats, **{f"train_{k}": v for k, v in train_window.items()}}
        if validation is not None:
            decision_metrics.update(validation["flat"])
        phases = self.sched.phases
        nxt = phases[index + 1] if index + 1 < len(phases) else None
        recs = recommend(decision_metrics, phase=phase, next_phase=nxt,
                         env_values=self.factory.phase_config(nxt or phase).model_dump())
        recs["metrics_from"] = ("training and validation" if validation is not None
                                else "training only")
        write_recommendations(recs, phase_dir / "recommendations.json")
        record = {
            "phase": phase.name, "phase_index": index,
            "timesteps": int(self.model.num_timesteps) - phase_start,
            "num_timesteps": int(self.model.num_timesteps),
            "ended_early": bool(early is not None and early.stopped_at is not None),
            "transition_checks": [] if early is None else early.history,
            "ppo": phase.ppo.model_dump(), "env": cfg.model_dump(mode="json"),
            "augmentation": bool(phase.env.augmentation),
            "train": stats,
            "train_window": train_window,
            "validation": _report(validation),
            "test": _report(test),
            "recommendations": [r["rule"] for r in recs["recommendations"]],
        }
        (phase_dir / "metrics.json").write_text(json.dumps(record, indent=2, default=float)
                                                + "\n")
        self.results.append(record)
        self.write_summary()
        venv.close()
        return recs


def train(
    schedule: TrainSchedule | str | Path | Mapping[str, Any],
    bars: Mapping[str, pd.DataFrame],
    *,
    spec: EnvSpec,
    env_config: Any = None,
    out_dir: str | Path,
    seed: int = 0,
    n_envs: int = 4,
    continue_from: str | Path | None = None,
    progress: bool = True,
    funding: Mapping[str, Any] | None = None,
    policy_kwargs: Mapping[str, Any] | None = None,
    n_random: int = 5,
) -> TrainResult:
    """Train PPO through the phases of ``schedule`` and write bundles, logs and metrics.

    Parameters
    ----------
    schedule:
        A :class:`TrainSchedule`, a YAML path or a dict (see :mod:`quantum_trading.rl.schedule`).
    bars:
        ``{symbol: OHLCV frame}`` on one UTC bar-open-time index, symbols in ``spec.symbols``
        order; optional ``funding_rate`` columns. Split in time: train | validation (the
        ``validation_fraction`` of bars before the test slice) | test (the last
        ``eval_fraction``, held out and only reported).
    spec:
        The observation/action interface; saved with every bundle.
    env_config:
        The env's :class:`~quantum_trading.rl.env_config.EnvConfig` (default ``EnvConfig()``);
        each phase's ``env`` overrides are applied on top of it.
    out_dir:
        Output folder (created; see the module docstring for its layout).
    seed:
        Seeds torch, numpy, Python, the envs and the augmentations.
    n_envs:
        Training environments stepped together (batched when the numba VecEnv is available).
    continue_from:
        A bundle written by a previous run (a checkpoint or a phase end): the model,
        VecNormalize statistics and position (phase, timesteps done) are restored and the
        run goes on from there with ``schedule`` (same phase names); ``out_dir`` may be the
        folder of the first run.
    progress:
        Show a rich progress bar (timesteps, current phase).
    funding:
        Funding settlements per symbol (as the env takes them); None: the frames'
        ``funding_rate`` columns, else the simulator's default rate.
    policy_kwargs:
        Arguments of :func:`quantum_trading.rl.policies.policy_and_kwargs` (``d_model``,
        ``features_dim`` …) for a new model; ignored when continuing.
    n_random:
        Random-policy runs averaged for the baseline in each evaluation.

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        Bad schedule (file, phase, field; an early transition without a validation slice),
        data that does not fit ``spec`` or is too short for a slice or a phase's training
        episodes, a phase whose batch is larger than its rollout, a checkpoint trained with
        another spec.

    Timing: dominated by PPO updates, a few hundred to a few thousand env steps per second
    on one CPU core depending on the extractor size and window; plus, per phase end, one
    evaluation of each slice and of the last training bars, and one validation evaluation
    per transition check (one forward pass per bar).

    >>> from quantum_trading.data import generate_market                      # doctest: +SKIP
    >>> bars = generate_market(n_assets=2, n_bars=3000, seed=1).ohlcv         # doctest: +SKIP
    >>> spec = EnvSpec(symbols=tuple(bars), timeframe="1h")                   # doctest: +SKIP
    >>> result = train("sched.yaml", bars, spec=spec, out_dir="runs/a")      # doctest: +SKIP
    >>> result.phases[-1]["validation"]["policy"]["sharpe"]                   # doctest: +SKIP
    >>> result.phases[-1]["test"]["policy"]["sharpe"]                         # doctest: +SKIP
    """
    from stable_baselines3.common.utils import set_random_seed

    sched = load_schedule(schedule)
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ConfigError(f"train: n_envs must be a positive integer, got {n_envs!r}")
    for phase in sched.phases:
        _check_phase(phase, n_envs)
    frames = check_bars(bars, spec)
    split = split_bars(frames, spec, eval_fraction=sched.eval_fraction,
                       validation_fraction=sched.validation_fraction)
    factory = EnvFactory(spec=spec, base_config=env_config, funding=funding,
                         augment=sched.augment)
    train_frames = split.train_frames(frames)
    for phase in sched.phases:  # every phase's env overrides and episode length, up front
        factory.check_train_bars(train_frames, phase)
    first_cfg = factory.phase_config(sched.phases[0])
    if split.has_validation:
        factory.eval_env({s: f.iloc[:split.test_start] for s, f in frames.items()}, first_cfg,
                         start_bar=split.validation_start, what="the validation slice")
    factory.eval_env(frames, first_cfg, start_bar=split.test_start, what="the test slice")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    start, done, ckpt, recs = 0, 0, None, None
    if continue_from is not None:
        ckpt = Path(continue_from)
        start, done = _resume_position(ckpt, sched, spec)
    (out / "schedule.yaml").write_text(sched.to_yaml())
    run = _Run(sched, frames, spec=spec, factory=factory, out=out, seed=seed, n_envs=n_envs,
               split=split, n_random=n_random, policy_kwargs=policy_kwargs)
    if ckpt is not None:
        import pickle

        with (ckpt / "vecnormalize.pkl").open("rb") as fh:
            run.vecnorm = pickle.load(fh)
        if (out / "metrics.json").is_file():
            old = json.loads((out / "metrics.json").read_text()).get("phases", [])
            run.results = [r for r in old if r.get("phase_index", len(sched.phases)) < start]
        if start > 0:
            prev = _phase_dir(out, start - 1, sched.phases[start - 1].name)
            if (prev / "recommendations.json").is_file():
                recs = json.loads((prev / "recommendations.json").read_text())
    set_random_seed(seed)
    remaining = sum(p.timesteps for p in sched.phases[start:]) - done
    progress_bar = _progress(progress, max(remaining, 0))
    try:
        for i in range(start, len(sched.phases)):
            phase = sched.phases[i]
            if sched.apply_recommendations and recs and recs.get("changes"):
                phase = phase.with_changes(recs["changes"])
                _check_phase(phase, n_envs)
            recs = run.run_phase(i, phase, done=done, progress=progress_bar,
                                 continue_from=ckpt if run.model is None else None)
            done = 0
    finally:
        if progress_bar[0] is not None:
            progress_bar[0].stop()
        run.logger.close()
    if run.model is None:
        if ckpt is None:
            raise ConfigError("train: the schedule has no phase left to run")
        last = ckpt
    else:
        last = _phase_dir(out, len(sched.phases) - 1, sched.phases[-1].name)
    final = out / "final"
    if final.resolve() != last.resolve():
        if final.exists():
            shutil.rmtree(final)
        shutil.copytree(last, final)
    total = int(run.model.num_timesteps) if run.model is not None else 0
    return TrainResult(out_dir=out, final_bundle=final, phases=run.results,
                       total_timesteps=total)
