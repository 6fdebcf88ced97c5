"""Environments for training and evaluation, built from one data set and a phase's settings.

:class:`EnvFactory` turns ``(bars, EnvSpec, EnvConfig, phase)`` into

* a training ``VecEnv`` of ``n_envs`` environments on the training bars: the batched numba
  :class:`~quantum_trading.rl.vec_env.PerpetualFuturesVecEnv` when it is available and the
  phase trains on unaugmented data, else a ``DummyVecEnv`` of
  :class:`~quantum_trading.rl.env.PerpetualFuturesEnv` (one augmented data set per env when
  the phase says ``augmentation: true``, plus feature noise on the observations);
* an evaluation env on the bars it is given (all bars up to the end of the slice it
  evaluates, never a bar after it) whose episodes start at a given bar (the slice's first
  bar) and run to the last bar it was given, never augmented.

:func:`check_bars` checks the data against the spec; :func:`split_bars` splits it in time into
train | validation | test (:class:`BarSplit`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from quantum_trading.errors import ConfigError
from quantum_trading.rl.augment import AugmentConfig, augment_bars
from quantum_trading.rl.env import PerpetualFuturesEnv
from quantum_trading.rl.env_config import EnvConfig
from quantum_trading.rl.schedule import Phase
from quantum_trading.rl.spec import EnvSpec

__all__ = ["BarSplit", "EnvFactory", "check_bars", "split_bars"]


def check_bars(bars: Mapping[str, pd.DataFrame], spec: EnvSpec) -> dict[str, pd.DataFrame]:
    """``bars`` as a dict in ``spec.symbols`` order; ConfigError naming the first problem
    (not a dict of frames, another asset set or order, indexes that differ)."""
    if isinstance(bars, pd.DataFrame):
        bars = {str(bars.attrs.get("symbol") or spec.symbols[0]): bars}
    if not isinstance(bars, Mapping) or not bars:
        raise ConfigError("train: bars must be a non-empty dict symbol -> OHLCV DataFrame")
    if tuple(bars) != spec.symbols:
        raise ConfigError(f"train: the data has symbols={list(bars)}, but the EnvSpec has "
                          f"symbols={list(spec.symbols)} (same assets, same order)")
    frames = {s: bars[s] for s in spec.symbols}
    first = frames[spec.symbols[0]].index
    for sym, frame in frames.items():
        if not isinstance(frame, pd.DataFrame):
            raise ConfigError(f"train: bars[{sym!r}] must be a DataFrame, got "
                              f"{type(frame).__name__}")
        if not frame.index.equals(first):
            raise ConfigError(f"train: bars[{sym!r}] has another bar index than "
                              f"{spec.symbols[0]!r}; align them first (e.g. their intersection)")
    return frames


@dataclass(frozen=True)
class BarSplit:
    """Positions (bar numbers, 0-based) of the three slices of a training run, in time order:
    train ``[0, validation_start)``, validation ``[validation_start, test_start)`` (empty when
    there is none), test ``[test_start, n_bars)``.

    >>> BarSplit(validation_start=260, test_start=320, n_bars=400).has_validation
    True
    """

    validation_start: int
    test_start: int
    n_bars: int

    @property
    def has_validation(self) -> bool:
        """Whether the validation slice has bars."""
        return self.test_start > self.validation_start

    def train_frames(self, frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """The training bars: every frame cut before ``validation_start``."""
        return {s: f.iloc[:self.validation_start] for s, f in frames.items()}


def split_bars(frames: Mapping[str, pd.DataFrame], spec: EnvSpec, *, eval_fraction: float,
               validation_fraction: float = 0.0) -> BarSplit:
    """Split the bars in time: the last ``eval_fraction`` of them are the test slice (from
    ``round(n · (1 − eval_fraction))``), the ``validation_fraction`` of them just before are the
    validation slice (from ``round(n · (1 − eval_fraction − validation_fraction))``), the rest
    train. ConfigError naming both fractions when a slice would have fewer than 2 bars."""
    n = len(frames[spec.symbols[0]])
    test_start = round(n * (1.0 - eval_fraction))
    validation_start = round(n * (1.0 - eval_fraction - validation_fraction))
    too_small = (validation_start < 2 or n - test_start < 2
                 or (validation_fraction > 0 and test_start - validation_start < 2))
    if too_small:
        train_pct = 1.0 - eval_fraction - validation_fraction
        raise ConfigError(f"train: {n} bars cannot be split {train_pct:.0%} / "
                          f"{validation_fraction:.0%} / {eval_fraction:.0%} into training, "
                          "validation (validation_fraction) and test (eval_fraction) slices "
                          "of at least 2 bars each")
    return BarSplit(validation_start=validation_start, test_start=test_start, n_bars=n)


def _batched_vec_env() -> Any | None:
    try:
        from quantum_trading.rl.vec_env import PerpetualFuturesVecEnv
    except ImportError:
        return None
    return PerpetualFuturesVecEnv


class EnvFactory:
    """Builds the environments of a training run (see the module docstring).

    Parameters
    ----------
    spec:
        The run's :class:`EnvSpec`.
    base_config:
        The :class:`EnvConfig` phases override (default ``EnvConfig()``).
    funding, mark, instruments:
        Passed to every env (as :class:`PerpetualFuturesEnv` takes them).
    augment:
        What ``augmentation: true`` phases apply.
    """

    def __init__(self, *, spec: EnvSpec, base_config: EnvConfig | None = None,
                 funding: Any = None, mark: Any = None, instruments: Any = None,
                 augment: AugmentConfig | None = None) -> None:
        if base_config is not None and not isinstance(base_config, EnvConfig):
            raise ConfigError(f"train: env_config must be an EnvConfig, got "
                              f"{type(base_config).__name__}")
        self.spec = spec
        self.base_config = base_config or EnvConfig()
        self.funding, self.mark, self.instruments = funding, mark, instruments
        self.augment = augment or AugmentConfig()
        self._eval_cache: dict[tuple[int, str], PerpetualFuturesEnv] = {}

    def phase_config(self, phase: Phase) -> EnvConfig:
        """The base config with the phase's env overrides; ConfigError naming phase and field."""
        raw = self.base_config.model_dump()
        raw.update(phase.env.env_updates())
        try:
            return EnvConfig.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"])
            raise ConfigError(f"phase {phase.name}: env.{field}: {err['msg']}") from None

    def _env(self, bars: Mapping[str, pd.DataFrame], config: EnvConfig, *, funding: Any,
             mark: Any, what: str) -> PerpetualFuturesEnv:
        try:
            return PerpetualFuturesEnv(bars, spec=self.spec, config=config,
                                       instruments=self.instruments, funding=funding,
                                       mark=mark)
        except ConfigError as exc:
            raise ConfigError(f"{what}: {exc}") from None

    def train_venv(self, bars: Mapping[str, pd.DataFrame], config: EnvConfig, phase: Phase,
                   *, n_envs: int, seed: int) -> Any:
        """``n_envs`` training environments on ``bars`` with ``config`` (episode statistics
        recorded by ``VecMonitor``); augmented per env when the phase says so."""
        from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

        what = f"phase {phase.name}: training bars ({len(next(iter(bars.values())))})"
        augmented = bool(phase.env.augmentation)
        batched = _batched_vec_env()
        if not augmented and batched is not None:
            try:
                venv = batched(bars, spec=self.spec, config=config, n_envs=n_envs,
                               instruments=self.instruments, funding=self.funding,
                               mark=self.mark, seed=seed)
            except ConfigError as exc:
                raise ConfigError(f"{what}: {exc}") from None
        else:
            envs = []
            for i in range(n_envs):
                data, funding, mark = bars, self.funding, self.mark
                if augmented:  # funding and mark become columns of the augmented frames
                    rng = np.random.default_rng([seed, i, 0xA06])
                    data, _ = augment_bars(bars, self.augment, rng, funding=self.funding,
                                           mark=self.mark)
                    funding, mark = None, None
                envs.append(self._env(data, config, funding=funding, mark=mark, what=what))
            venv = DummyVecEnv([lambda e=e: e for e in envs])
        venv = VecMonitor(venv)
        if augmented and self.augment.feature_noise_std > 0:
            from quantum_trading.rl.augment import VecFeatureNoise

            venv = VecFeatureNoise(venv, std=self.augment.feature_noise_std, seed=seed)
        venv.seed(seed)
        return venv

    def check_train_bars(self, bars: Mapping[str, pd.DataFrame], phase: Phase) -> None:
        """ConfigError naming the phase when its training episodes do not fit in ``bars``
        (warm-up + window + ``episode_bars``); checked before any training starts."""
        n = len(next(iter(bars.values())))
        what = f"phase {phase.name}: training bars ({n})"
        env = self._env(bars, self.phase_config(phase), funding=self.funding, mark=self.mark,
                        what=what)
        env.close()

    def eval_env(self, frames: Mapping[str, pd.DataFrame], config: EnvConfig, *,
                 start_bar: int | None, what: str = "the held-out part") -> PerpetualFuturesEnv:
        """An env on ``frames`` for episodes from ``start_bar`` (checked; None: not checked,
        use ``env.start_range[0]``) to the last bar of ``frames``, with ``config``'s reward
        and costs (cached per data length and config: ``frames`` are always prefixes of one
        data set). ``what`` names the slice in errors."""
        cfg = config.model_copy(update={"episode_bars": None, "start": "first"})
        key = (len(next(iter(frames.values()))), json.dumps(cfg.model_dump(mode="json"),
                                                             sort_keys=True))
        env = self._eval_cache.get(key)
        if env is None:
            env = self._env(frames, cfg, funding=self.funding, mark=self.mark,
                            what=f"evaluation bars ({key[0]})")
            self._eval_cache[key] = env
        lo, hi = env.start_range
        if start_bar is not None and not lo <= start_bar <= hi:
            raise ConfigError(f"evaluation: {what} starts at bar {start_bar}, but episodes can "
                              f"start only in [{lo}, {hi}] (features' warm-up + window); use "
                              "more data or a smaller eval_fraction / validation_fraction")
        return env
