"""Augmentations of the RL training data, each a pure function of its inputs and a seeded
:class:`numpy.random.Generator`.

The training data is a dict ``{symbol: OHLCV frame}`` on one UTC bar index (bar open times),
optionally with ``funding_rate`` (rate settled at the bar's open) and ``mark_price`` (mark at
the bar's open) columns, as :func:`quantum_trading.data.join_funding` / ``join_mark`` write
them. Nothing here touches the input frames; every function returns new ones.

* :func:`shuffle_segments` cuts the series into blocks of ``block_bars`` bars and reorders
  the blocks (the same order for every asset). Each block keeps its own bar-to-bar returns,
  its OHLC shape (every price of a block is multiplied by one factor) and the gap from the
  close before it to its first open; its notional volume (``volume × close``, USDT) is kept;
  funding and mark move with their bars; the timestamps stay the original, regular ones.
* :func:`scale_prices` multiplies every price of each asset by a random factor
  (log-uniform): returns are unchanged, volume is divided by the factor so notional volume is
  unchanged, funding rates are unchanged.
* :func:`add_feature_noise` / :class:`FeatureNoiseWrapper` / :class:`VecFeatureNoise` add
  Gaussian noise to the ``"market"`` observation (normalised features; the account state is
  never perturbed, so the policy always sees its true equity and positions).
* :class:`AssetPermutation` puts asset ``perm[i]``'s data in slot ``i``: see its docstring for
  how a policy trained with it sees assets.

:func:`augment_bars` applies the data-level ones as an :class:`AugmentConfig` says.

>>> import pandas as pd
>>> from quantum_trading.data import generate_market
>>> bars = generate_market(n_assets=2, n_bars=300, seed=1).ohlcv
>>> out = shuffle_segments(bars, np.random.default_rng(0), block_bars=50)
>>> all(out[s].index.equals(bars[s].index) for s in bars)
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from quantum_trading.errors import ConfigError

__all__ = [
    "PRICE_COLUMNS",
    "AssetPermutation",
    "AugmentConfig",
    "FeatureNoiseWrapper",
    "VecFeatureNoise",  # noqa: F822 -- built lazily by __getattr__ (needs SB3 / torch)
    "add_feature_noise",
    "augment_bars",
    "join_market_series",
    "permute_assets",
    "scale_prices",
    "segment_order",
    "shuffle_segments",
]

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "mark_price")
"""Columns multiplied by a price factor (those present); ``volume`` is divided by it."""

Bars = Mapping[str, pd.DataFrame]


class AugmentConfig(BaseModel):
    """Which augmentations a training phase applies, and how strongly (frozen, no extra keys).

    Data augmentations (:func:`augment_bars`) are drawn again for every new training data
    set (e.g. once per phase or per environment copy); feature noise is drawn at every step.

    >>> AugmentConfig(segment_shuffle=True, segment_bars=168).active
    ('segment_shuffle',)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    segment_shuffle: bool = Field(False, description="Reorder blocks of bars (shuffle_segments).")
    segment_bars: int = Field(
        168, ge=2, le=1_000_000,
        description="Bars per shuffled block; a multiple of the funding interval in bars keeps "
        "settlements on their usual hours.")
    price_scale: bool = Field(False, description="Multiply each asset's prices by a random "
                              "factor (scale_prices).")
    price_scale_min: float = Field(0.5, gt=0.0, le=1e6,
                                   description="Smallest price factor (dimensionless).")
    price_scale_max: float = Field(2.0, gt=0.0, le=1e6,
                                   description="Largest price factor (dimensionless).")
    feature_noise_std: float = Field(
        0.0, ge=0.0, le=5.0,
        description="Std of the Gaussian noise added to the normalised market features, in "
        "feature units (0 = off).")
    permute_assets: bool = Field(False, description="Put the assets' data in random slots "
                                 "(AssetPermutation).")

    @model_validator(mode="after")
    def _scale_range(self) -> AugmentConfig:
        if self.price_scale_min > self.price_scale_max:
            raise ValueError(f"price_scale_min ({self.price_scale_min}) must be <= "
                             f"price_scale_max ({self.price_scale_max})")
        return self

    @property
    def active(self) -> tuple[str, ...]:
        """Names of the augmentations switched on, in the order they are applied."""
        names = []
        if self.segment_shuffle:
            names.append("segment_shuffle")
        if self.price_scale:
            names.append("price_scale")
        if self.permute_assets:
            names.append("permute_assets")
        if self.feature_noise_std > 0:
            names.append("feature_noise")
        return tuple(names)


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------

def _check_bars(bars: Bars, what: str) -> tuple[list[str], pd.DatetimeIndex]:
    if not isinstance(bars, Mapping) or not bars:
        raise ConfigError(f"{what}: bars must be a non-empty dict symbol -> OHLCV DataFrame")
    symbols = list(bars)
    index = None
    for sym in symbols:
        frame = bars[sym]
        if not isinstance(frame, pd.DataFrame):
            raise ConfigError(f"{what}: bars[{sym!r}] must be a DataFrame, got "
                              f"{type(frame).__name__}")
        missing = [c for c in ("open", "high", "low", "close") if c not in frame.columns]
        if missing:
            raise ConfigError(f"{what}: bars[{sym!r}] has no column {', '.join(missing)}")
        if index is None:
            index = frame.index
        elif not frame.index.equals(index):
            raise ConfigError(f"{what}: bars[{sym!r}] must share one bar index with "
                              f"{symbols[0]!r}")
    assert isinstance(index, pd.DatetimeIndex)
    return symbols, index


def _rng(rng: Any, what: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"{what}: rng must be a numpy Generator (np.random.default_rng(seed)), "
                          f"got {type(rng).__name__}")
    return rng


def _scaled(frame: pd.DataFrame, factor: np.ndarray | float) -> pd.DataFrame:
    """``frame`` with prices × ``factor`` and volume ÷ ``factor`` (row-wise if an array)."""
    out = frame.copy()
    for col in PRICE_COLUMNS:
        if col in out.columns:
            out[col] = out[col].to_numpy(dtype=np.float64) * factor
    if "volume" in out.columns:
        out["volume"] = out["volume"].to_numpy(dtype=np.float64) / factor
    return out


def join_market_series(
    bars: Bars, *, funding: Mapping[str, pd.DataFrame | pd.Series] | None = None,
    mark: Mapping[str, pd.DataFrame] | None = None,
) -> dict[str, pd.DataFrame]:
    """Copies of ``bars`` with funding settlements and mark candles joined as columns, so
    the augmentations move them with their bars.

    ``funding[symbol]``: rates at settlement times (a ``funding_rate`` frame as
    :func:`~quantum_trading.data.generate_market` and the loaders give, or a Series) →
    ``funding_rate``, the rate settled inside each bar (paid at its open). ``mark[symbol]``:
    mark candles → ``mark_price``, the mark known at each bar's open. See
    :func:`~quantum_trading.data.join_funding` / ``join_mark`` for the timing.
    Symbols missing from a dict keep their bars as they are.

    >>> from quantum_trading.data import generate_market
    >>> m = generate_market(n_assets=1, n_bars=24, seed=1)
    >>> out = join_market_series(m.ohlcv, funding=m.funding, mark=m.mark)
    >>> sorted(set(out["BTC/USDT:USDT"].columns) - set(m.ohlcv["BTC/USDT:USDT"].columns))
    ['funding_rate', 'mark_price']
    """
    from quantum_trading.data.loaders import join_funding, join_mark

    symbols, _ = _check_bars(bars, "join_market_series")
    out = {}
    for sym in symbols:
        frame = bars[sym]
        rates = None if funding is None else funding.get(sym)
        if rates is not None:
            if isinstance(rates, pd.Series):
                rates = rates.rename("funding_rate").to_frame()
            frame = join_funding(frame, rates)
        marks = None if mark is None else mark.get(sym)
        if marks is not None:
            frame = join_mark(frame, marks)
        out[sym] = frame.copy() if frame is bars[sym] else frame
    return out


# --------------------------------------------------------------------------------------------
# segment shuffling
# --------------------------------------------------------------------------------------------

def segment_order(n_bars: int, block_bars: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Row positions of the blocks in their new order: ``n_bars`` rows cut into blocks of
    ``block_bars`` (the last may be shorter), shuffled by ``rng``.

    >>> [b.tolist() for b in segment_order(5, 2, np.random.default_rng(3))]
    [[4], [2, 3], [0, 1]]
    """
    if block_bars < 1:
        raise ConfigError(f"segment_order: block_bars must be >= 1, got {block_bars}")
    starts = np.arange(0, n_bars, block_bars)
    blocks = [np.arange(s, min(s + block_bars, n_bars)) for s in starts]
    return [blocks[i] for i in rng.permutation(len(blocks))]


def shuffle_segments(
    bars: Bars, rng: np.random.Generator, *, block_bars: int,
) -> dict[str, pd.DataFrame]:
    """Reorder blocks of ``block_bars`` bars (one order for every asset), stitching prices.

    Invariants (per asset):

    * the index is the input's (regular timestamps); row ``t`` of the output is some row of
      the input, and each block's rows stay together and in order;
    * within a block, every price (``open high low close mark_price``) is the original times
      one positive factor, so the block's close-to-close returns, its gap from the previous
      close to its first open (1 for the block that was first), and each bar's OHLC shape
      (``high/low``, ``close/open`` …) are the original ones; OHLC validity is preserved;
    * volume is divided by the factor: notional volume (USDT) is unchanged;
    * ``funding_rate`` and any other column move with their bars unchanged;
    * the first output bar opens at the original first open (the price level is anchored).

    Funding settlements move with their bars: use a ``block_bars`` that is a multiple of the
    funding interval in bars (8 for 1h bars) to keep them on their usual hours. Without a
    ``funding_rate`` column the simulator's default schedule still follows the timestamps.

    Parameters
    ----------
    bars:
        ``{symbol: frame}`` on one bar index.
    rng:
        The randomness (same seed → same output).
    block_bars:
        Bars per block, ≥ 2 (the last block holds the rest).

    >>> from quantum_trading.data import generate_market
    >>> bars = generate_market(n_assets=1, n_bars=100, seed=2).ohlcv
    >>> out = shuffle_segments(bars, np.random.default_rng(1), block_bars=24)
    >>> sym = next(iter(bars))
    >>> bool(np.isclose(out[sym]["open"].iloc[0], bars[sym]["open"].iloc[0]))
    True
    """
    symbols, index = _check_bars(bars, "shuffle_segments")
    rng = _rng(rng, "shuffle_segments")
    if not isinstance(block_bars, int | np.integer) or block_bars < 2:
        raise ConfigError(f"shuffle_segments: block_bars must be an int >= 2, got {block_bars!r}")
    order = segment_order(len(index), int(block_bars), rng)
    rows = np.concatenate(order)
    out: dict[str, pd.DataFrame] = {}
    for sym in symbols:
        frame = bars[sym]
        o = frame["open"].to_numpy(dtype=np.float64)
        c = frame["close"].to_numpy(dtype=np.float64)
        factors = np.empty(len(rows))
        pos = 0
        prev_close = np.nan
        for block in order:
            first = int(block[0])
            if pos == 0:
                k = o[0] / o[first]
            else:
                gap = o[first] / c[first - 1] if first > 0 else 1.0
                k = prev_close * gap / o[first]
            factors[pos:pos + len(block)] = k
            prev_close = c[int(block[-1])] * k
            pos += len(block)
        moved = frame.iloc[rows].set_axis(frame.index, axis=0)
        shuffled = _scaled(moved, factors)
        shuffled.attrs = dict(frame.attrs)
        out[sym] = shuffled
    return out


# --------------------------------------------------------------------------------------------
# price scaling
# --------------------------------------------------------------------------------------------

def scale_prices(
    bars: Bars, rng: np.random.Generator, *, low: float = 0.5, high: float = 2.0,
) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """Multiply every price of each asset by its own factor, log-uniform in ``[low, high]``.

    Invariants: log returns (close to close, open to close, gaps) and OHLC ratios are
    unchanged (up to float rounding); OHLC validity is preserved; volume is divided by the
    factor so notional volume (USDT, hence market impact) is unchanged; funding rates are
    unchanged. Fixed-size instrument rules (lot size, tick size, minimum notional) do see the
    new price level.

    Returns the new bars and ``{symbol: factor}``.

    >>> from quantum_trading.data import generate_market
    >>> bars = generate_market(n_assets=2, n_bars=50, seed=3).ohlcv
    >>> out, factors = scale_prices(bars, np.random.default_rng(0), low=0.1, high=10.0)
    >>> all(0.1 <= f <= 10.0 for f in factors.values())
    True
    """
    symbols, _ = _check_bars(bars, "scale_prices")
    rng = _rng(rng, "scale_prices")
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low <= high):
        raise ConfigError(f"scale_prices: need 0 < low <= high, got low={low!r}, high={high!r}")
    logs = rng.uniform(np.log(low), np.log(high), size=len(symbols))
    factors = {sym: float(np.clip(np.exp(v), low, high)) for sym, v in zip(symbols, logs,
                                                                          strict=True)}
    out = {}
    for sym in symbols:
        scaled = _scaled(bars[sym], factors[sym])
        scaled.attrs = dict(bars[sym].attrs)
        out[sym] = scaled
    return out, factors


# --------------------------------------------------------------------------------------------
# feature noise
# --------------------------------------------------------------------------------------------

def add_feature_noise(market: np.ndarray, rng: np.random.Generator, *, std: float,
                      clip: float | None = None) -> np.ndarray:
    """``market`` plus i.i.d. Gaussian noise of standard deviation ``std`` (feature units),
    in the input's dtype, clipped to ``±clip`` when given. ``std=0`` returns a copy.

    >>> x = np.zeros((4, 2, 3), dtype=np.float32)
    >>> y = add_feature_noise(x, np.random.default_rng(0), std=0.1, clip=10.0)
    >>> y.shape, y.dtype, bool(np.all(np.abs(y) < 1))
    ((4, 2, 3), dtype('float32'), True)
    """
    rng = _rng(rng, "add_feature_noise")
    if not (np.isfinite(std) and std >= 0):
        raise ConfigError(f"add_feature_noise: std must be >= 0, got {std!r}")
    arr = np.asarray(market)
    if std == 0:
        return arr.copy()
    noisy = arr + rng.normal(0.0, std, size=arr.shape)
    if clip is not None:
        noisy = np.clip(noisy, -clip, clip)
    return noisy.astype(arr.dtype, copy=False)


def _noise_obs(obs: Any, rng: np.random.Generator, std: float, key: str) -> Any:
    from quantum_trading.rl.spec import OBS_CLIP

    if isinstance(obs, Mapping):
        out = dict(obs)
        out[key] = add_feature_noise(obs[key], rng, std=std, clip=OBS_CLIP)
        return out
    return add_feature_noise(obs, rng, std=std, clip=OBS_CLIP)


class FeatureNoiseWrapper(gymnasium.ObservationWrapper):  # type: ignore[misc]
    """A gymnasium ``ObservationWrapper`` adding Gaussian noise (``std``, feature units) to the
    ``"market"`` part of every observation, after the env computed it (so at decision time:
    the policy sees noisy features of bars up to the decision bar's close; the simulator and
    the rewards are untouched). Values stay clipped to ±``OBS_CLIP``.

    The noise generator is seeded by ``seed`` and re-seeded by ``reset(seed=...)``, so an
    episode is reproducible. Use it for training only, never for evaluation.

    >>> import gymnasium as gym
    >>> wrapped = FeatureNoiseWrapper(gym.make("CartPole-v1"), std=0.0, key=None)
    >>> wrapped.std
    0.0
    """

    def __init__(self, env: Any, *, std: float, key: str | None = "market",
                 seed: int | None = None) -> None:
        super().__init__(env)
        if not (np.isfinite(std) and std >= 0):
            raise ConfigError(f"FeatureNoiseWrapper: std must be >= 0, got {std!r}")
        self.std = float(std)
        self.key = key
        self._noise_rng = np.random.default_rng(seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        """Reset the env (and the noise generator when ``seed`` is given)."""
        if seed is not None:
            self._noise_rng = np.random.default_rng([seed, 0x5EED])
        return super().reset(seed=seed, options=options)

    def observation(self, observation: Any) -> Any:
        """The observation with noise on its market features."""
        if self.std == 0:
            return observation
        if self.key is None:
            return add_feature_noise(observation, self._noise_rng, std=self.std)
        return _noise_obs(observation, self._noise_rng, self.std, self.key)


def _make_vec_feature_noise() -> type:
    """Build :class:`VecFeatureNoise` on first use (Stable-Baselines3 imports torch, which
    the data augmentations do not need)."""
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class VecFeatureNoise(VecEnvWrapper):  # type: ignore[misc]
        """The same noise for a Stable-Baselines3 ``VecEnv`` (e.g. the batched env): Gaussian
        noise of ``std`` (feature units) on the ``"market"`` observations of every sub-env, at
        every step and reset, from a generator seeded by ``seed``. Place it under
        ``VecNormalize`` (noise on raw features) or above it (noise in normalised units).
        Terminal observations in ``infos`` are left as the env returned them.
        """

        def __init__(self, venv: Any, *, std: float, key: str = "market",
                     seed: int | None = None) -> None:
            super().__init__(venv)
            if not (np.isfinite(std) and std >= 0):
                raise ConfigError(f"VecFeatureNoise: std must be >= 0, got {std!r}")
            self.std = float(std)
            self.key = key
            self._noise_rng = np.random.default_rng(seed)

        def reset(self) -> Any:
            """Reset every sub-env; noisy first observations."""
            return self._apply(self.venv.reset())

        def step_wait(self) -> tuple[Any, np.ndarray, np.ndarray, list[dict[str, Any]]]:
            """Step every sub-env; noisy observations."""
            obs, rewards, dones, infos = self.venv.step_wait()
            return self._apply(obs), rewards, dones, infos

        def _apply(self, obs: Any) -> Any:
            if self.std == 0:
                return obs
            return _noise_obs(obs, self._noise_rng, self.std, self.key)

    VecFeatureNoise.__module__ = __name__
    return VecFeatureNoise


_LAZY: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    """``VecFeatureNoise`` is built on first access (see :func:`_make_vec_feature_noise`)."""
    if name == "VecFeatureNoise":
        if name not in _LAZY:
            _LAZY[name] = _make_vec_feature_noise()
        return _LAZY[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------
# asset-order permutation
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AssetPermutation:
    """Slot ``i`` (the spec's ``symbols[i]``) holds asset ``symbols[perm[i]]``'s data.

    How a policy trained with it sees assets: the :class:`~quantum_trading.rl.spec.EnvSpec`
    never changes (its ``symbols`` are *slots*), but during training the market data behind
    each slot is a random asset of the set, redrawn with every permutation. The policy cannot
    rely on "slot 0 is BTC" and learns one per-asset rule applied to whatever is in a slot
    (weights are effectively shared across assets; cross-asset attention sees a set, not a
    sequence). At evaluation and in :class:`~quantum_trading.rl.strategy.PolicyStrategy` no
    permutation is applied: slot ``i`` is ``symbols[i]``. Instruments stay with their slots
    (their lot sizes, tiers and leverage caps apply to the data moved there).

    Action ``a`` taken in the permuted env targets asset ``symbols[perm[i]]`` with ``a[i]``;
    :meth:`actions_to_assets` gives the per-asset view, :meth:`actions_to_slots` the inverse.
    For ``multi_head`` actions the per-asset triplets move together.

    >>> p = AssetPermutation((2, 0, 1))
    >>> p.actions_to_assets(np.array([0.1, 0.2, 0.3])).tolist()
    [0.2, 0.3, 0.1]
    >>> p.actions_to_slots(p.actions_to_assets(np.array([0.1, 0.2, 0.3]))).tolist()
    [0.1, 0.2, 0.3]
    """

    perm: tuple[int, ...]

    def __post_init__(self) -> None:
        perm = tuple(int(i) for i in self.perm)
        if sorted(perm) != list(range(len(perm))):
            raise ConfigError(f"AssetPermutation: perm must be a permutation of 0..{len(perm) - 1}"
                              f", got {list(self.perm)}")
        object.__setattr__(self, "perm", perm)

    @classmethod
    def random(cls, n_assets: int, rng: np.random.Generator) -> AssetPermutation:
        """A uniformly random permutation of ``n_assets`` slots."""
        return cls(tuple(int(i) for i in _rng(rng, "AssetPermutation").permutation(n_assets)))

    @property
    def inverse(self) -> tuple[int, ...]:
        """``inverse[j]`` = the slot holding asset ``j``."""
        inv = [0] * len(self.perm)
        for slot, asset in enumerate(self.perm):
            inv[asset] = slot
        return tuple(inv)

    def apply_bars(self, bars: Bars, symbols: Sequence[str] | None = None
                   ) -> dict[str, pd.DataFrame]:
        """``{symbols[i]: bars[symbols[perm[i]]]}`` (copies; ``attrs["symbol"]`` names the
        slot, ``attrs["source_symbol"]`` the asset whose data it holds)."""
        names = list(symbols) if symbols is not None else list(bars)
        if len(names) != len(self.perm):
            raise ConfigError(f"AssetPermutation: {len(self.perm)} slots but {len(names)} "
                              f"symbols")
        missing = [s for s in names if s not in bars]
        if missing:
            raise ConfigError(f"AssetPermutation: no bars for {missing}")
        out = {}
        for slot, asset in enumerate(self.perm):
            frame = bars[names[asset]].copy()
            frame.attrs = dict(bars[names[asset]].attrs)
            frame.attrs["symbol"] = names[slot]
            frame.attrs["source_symbol"] = names[asset]
            out[names[slot]] = frame
        return out

    def _per_asset(self, actions: np.ndarray, order: Sequence[int]) -> np.ndarray:
        arr = np.asarray(actions)
        n = len(self.perm)
        width = arr.shape[-1] // n if n else 0
        if width * n != arr.shape[-1] or width == 0:
            raise ConfigError(f"AssetPermutation: last axis {arr.shape[-1]} is not a multiple "
                              f"of {n} assets")
        cols = np.concatenate([np.arange(k * width, (k + 1) * width) for k in order])
        return arr[..., cols]

    def actions_to_assets(self, actions: np.ndarray) -> np.ndarray:
        """Actions by slot → by asset (``out[..., j]`` = the action on asset ``j``)."""
        return self._per_asset(actions, self.inverse)

    def actions_to_slots(self, actions: np.ndarray) -> np.ndarray:
        """Actions by asset → by slot (the inverse of :meth:`actions_to_assets`)."""
        return self._per_asset(actions, self.perm)


def permute_assets(bars: Bars, rng: np.random.Generator
                   ) -> tuple[dict[str, pd.DataFrame], AssetPermutation]:
    """Put a random asset's data in each slot (see :class:`AssetPermutation`); returns the
    permuted bars (keys and order as ``bars``) and the permutation.

    >>> from quantum_trading.data import generate_market
    >>> bars = generate_market(n_assets=3, n_bars=20, seed=4).ohlcv
    >>> out, perm = permute_assets(bars, np.random.default_rng(0))
    >>> list(out) == list(bars), sorted(perm.perm)
    (True, [0, 1, 2])
    """
    symbols, _ = _check_bars(bars, "permute_assets")
    perm = AssetPermutation.random(len(symbols), rng)
    return perm.apply_bars(bars, symbols), perm


# --------------------------------------------------------------------------------------------
# all data augmentations of a config
# --------------------------------------------------------------------------------------------

def augment_bars(
    bars: Bars, config: AugmentConfig, rng: np.random.Generator, *,
    funding: Mapping[str, pd.DataFrame | pd.Series] | None = None,
    mark: Mapping[str, pd.DataFrame] | None = None,
) -> tuple[dict[str, pd.DataFrame], AssetPermutation | None]:
    """Apply the data augmentations ``config`` switches on, in order: segment shuffle, price
    scale, asset permutation (feature noise is applied to observations, by the wrappers).
    Explicit ``funding`` / ``mark`` series are first joined as columns
    (:func:`join_market_series`), so the result carries them: pass no separate funding to
    the env with it. Returns the new bars and the permutation (None when off). Same seed →
    same result.

    >>> from quantum_trading.data import generate_market
    >>> bars = generate_market(n_assets=2, n_bars=60, seed=5).ohlcv
    >>> cfg = AugmentConfig(segment_shuffle=True, segment_bars=8, price_scale=True)
    >>> out, perm = augment_bars(bars, cfg, np.random.default_rng(7))
    >>> perm is None, list(out) == list(bars)
    (True, True)
    """
    if not isinstance(config, AugmentConfig):
        raise ConfigError(f"augment_bars: config must be an AugmentConfig, got "
                          f"{type(config).__name__}")
    symbols, _ = _check_bars(bars, "augment_bars")
    rng = _rng(rng, "augment_bars")
    out: dict[str, pd.DataFrame] = {s: bars[s] for s in symbols}
    if funding is not None or mark is not None:
        out = join_market_series(out, funding=funding, mark=mark)
    if config.segment_shuffle:
        out = shuffle_segments(out, rng, block_bars=config.segment_bars)
    if config.price_scale:
        out, _ = scale_prices(out, rng, low=config.price_scale_min, high=config.price_scale_max)
    perm = None
    if config.permute_assets:
        out, perm = permute_assets(out, rng)
    return {s: out[s] if out[s] is not bars[s] else bars[s].copy() for s in symbols}, perm
