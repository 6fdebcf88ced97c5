"""Stable-Baselines3 plumbing of :func:`quantum_trading.rl.train.train`: an in-memory copy of
the logged metrics, the rich progress bar, periodic checkpoints and the early phase transition.

All callbacks run in the training process between environment steps; none changes what the
policy learns (two runs with the same seed log, checkpoint and stop identically).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter

__all__ = [
    "TRAIN_KEYS",
    "CheckpointCallback",
    "EarlyTransitionCallback",
    "MetricRecorder",
    "RichProgressCallback",
    "phase_train_metrics",
]

TRAIN_KEYS: dict[str, str] = {
    "train/entropy_loss": "entropy_loss",
    "train/approx_kl": "approx_kl",
    "train/clip_fraction": "clip_fraction",
    "train/explained_variance": "explained_variance",
    "train/value_loss": "value_loss",
    "train/policy_gradient_loss": "policy_gradient_loss",
    "train/std": "action_std",
    "rollout/ep_rew_mean": "episode_reward_mean",
}
"""SB3 logger keys kept per phase, and their names in ``metrics.json``."""


class MetricRecorder(KVWriter):  # type: ignore[misc]
    """A logger output that keeps every dump in memory as ``(timestep, {key: value})``."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any],
              step: int = 0) -> None:
        """Store the numeric values of one dump."""
        row = {k: float(v) for k, v in key_values.items()
               if isinstance(v, int | float | np.integer | np.floating)}
        self.rows.append((int(step), row))

    def close(self) -> None:
        """Nothing to release."""


def phase_train_metrics(rows: Sequence[tuple[int, Mapping[str, float]]], *, start: int,
                        end: int, last_n: int = 3, entropy_ref: float = math.nan
                        ) -> dict[str, float]:
    """PPO diagnostics of the phase covering timesteps ``(start, end]``: each key of
    :data:`TRAIN_KEYS` averaged over its last ``last_n`` logged values, plus ``entropy``
    (= −entropy_loss, nats) and ``entropy_ratio`` (entropy / ``entropy_ref``)."""
    series: dict[str, list[float]] = {}
    for step, row in rows:
        if start < step <= end:
            for key, name in TRAIN_KEYS.items():
                if key in row and math.isfinite(row[key]):
                    series.setdefault(name, []).append(row[key])
    out = {name: float(np.mean(values[-last_n:])) for name, values in series.items()}
    if "entropy_loss" in out:
        out["entropy"] = -out["entropy_loss"]
        if math.isfinite(entropy_ref) and entropy_ref > 0:
            out["entropy_ratio"] = out["entropy"] / entropy_ref
    return out


class RichProgressCallback(BaseCallback):  # type: ignore[misc]
    """Advance a shared ``rich.progress.Progress`` task by the env steps taken (phase name in
    the description). The bar is created and closed by the trainer."""

    def __init__(self, progress: Any, task: Any, phase: str) -> None:
        super().__init__()
        self._progress, self._task, self._phase = progress, task, phase
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps
        self._progress.update(self._task, description=f"phase {self._phase}")

    def _on_step(self) -> bool:
        self._progress.advance(self._task, self.num_timesteps - self._last)
        self._last = self.num_timesteps
        return True


class CheckpointCallback(BaseCallback):  # type: ignore[misc]
    """Call ``save(num_timesteps)`` each time the run's total timesteps cross a multiple of
    ``every_steps`` (checked after every vectorised step, so at most ``n_envs − 1`` late)."""

    def __init__(self, every_steps: int, save: Callable[[int], Any]) -> None:
        super().__init__()
        self.every_steps = int(every_steps)
        self._save = save
        self._next = 0

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.every_steps + 1) * self.every_steps

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._save(self.num_timesteps)
            self._next = (self.num_timesteps // self.every_steps + 1) * self.every_steps
        return True


class EarlyTransitionCallback(BaseCallback):  # type: ignore[misc]
    """Every ``every_steps`` timesteps of the phase, ``evaluate()`` → metric value; stops the
    phase (``learn`` returns) when ``reached(value)`` is true. ``history`` keeps
    ``(timestep, value)`` of each check and ``stopped_at`` the timestep that ended it.

    The trainer's ``evaluate`` reads the validation slice only (never the test slice, which
    a decision taken on it would leak)."""

    def __init__(self, every_steps: int, evaluate: Callable[[], float],
                 reached: Callable[[float], bool]) -> None:
        super().__init__()
        self.every_steps = int(every_steps)
        self._evaluate, self._reached = evaluate, reached
        self._next = 0
        self.history: list[tuple[int, float]] = []
        self.stopped_at: int | None = None

    def _on_training_start(self) -> None:
        self._next = self.num_timesteps + self.every_steps

    def _on_step(self) -> bool:
        if self.num_timesteps < self._next:
            return True
        self._next = self.num_timesteps + self.every_steps
        value = float(self._evaluate())
        self.history.append((self.num_timesteps, value))
        if math.isfinite(value) and self._reached(value):
            self.stopped_at = self.num_timesteps
            return False
        return True
