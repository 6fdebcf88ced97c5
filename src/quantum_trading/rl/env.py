"""Gymnasium environment on the simulator core: :class:`PerpetualFuturesEnv`.

The agent trades perpetual futures on one or several assets through the same kernel as the
backtest (the two halves of :func:`quantum_trading.sim.engine_nb.step_nb`, ``bar_nb`` and
``close_decision_nb``, called one bar at a time by :mod:`quantum_trading.rl.env_nb`): fees, spread, slippage, impact, funding, leverage, margin,
liquidation and the risk limits are exactly those of a backtest with the same configs, and
replaying an episode's targets (:meth:`PerpetualFuturesEnv.episode_targets`) through
:func:`quantum_trading.sim.simulate` or :class:`quantum_trading.backtest.Backtest` gives the
same equity, bar for bar (``tests/rl/test_replay.py``).

Timing: an observation shows bar ``t``'s close (market features of bars ``<= t``, the account
after ``t``'s close); the action is the decision at that close; the target fills at bar
``t + 1``'s open; the next observation, reward and flags are at ``t + 1``'s close.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pandas as pd

from quantum_trading.domain import Instrument
from quantum_trading.errors import ConfigError
from quantum_trading.rl import _storage
from quantum_trading.rl._core import EnvCore
from quantum_trading.rl.env_config import EnvConfig
from quantum_trading.rl.env_nb import (
    I_BAD,
    RC_BAD_ACTION,
    RC_NEED_ROOM,
    RC_OK,
    RC_POOL_FULL,
    V_BANKRUPT,
    V_BAR,
    V_EQUITY,
    V_FEES,
    V_FUNDING,
    V_LIQUIDATED,
    V_TURNOVER,
    env_reset_obs_nb,
)
from quantum_trading.rl.packed import SinglePack, env_step_packed_nb
from quantum_trading.rl.spec import EnvSpec
from quantum_trading.sim.fastcall import bound_kernel
from quantum_trading.sim.inputs import SeriesInput

__all__ = ["EnvConfig", "PerpetualFuturesEnv", "action_error"]

_DEFAULT_CONFIG = EnvConfig()
_POOL = 128  # observations per pool block (see PerpetualFuturesEnv._new_pool)


def action_error(spec: EnvSpec, action: np.ndarray, bad: int, where: str) -> ConfigError:
    """The error for a bad action element ``bad`` (NaN target, or a multi-head index out of
    range), naming the asset and the allowed values."""
    if spec.action == "target":
        return ConfigError(f"{where}: action[{bad}] for {spec.symbols[bad]!r} is "
                           f"{action.reshape(-1)[bad].item()!r}; expected a finite number in [-1, 1]")
    head = ("direction", "size bucket", "stop multiple")[bad % 3]
    size = (3, len(spec.size_buckets), len(spec.stop_multiples))[bad % 3]
    return ConfigError(f"{where}: action[{bad}] ({head} of {spec.symbols[bad // 3]!r}) is "
                       f"{action.reshape(-1)[bad].item()!r}; expected an integer in [0, {size - 1}]")


class PerpetualFuturesEnv(gym.Env):
    """Trade perpetual futures on the simulator core (gymnasium API).

    Parameters
    ----------
    bars:
        One OHLCV frame (one asset) or ``{symbol: frame}`` in ``spec.symbols`` order, on one
        UTC bar-open-time index (optional ``funding_rate`` / ``mark_price`` columns, as for a
        backtest).
    spec:
        :class:`~quantum_trading.rl.spec.EnvSpec`: assets, features, windows, action kind.
        Checked against the data (symbols and their order, timeframe): a mismatch raises
        :class:`~quantum_trading.errors.ConfigError` naming the field.
    config:
        :class:`~quantum_trading.rl.env_config.EnvConfig`: reward, penalties, episodes, costs,
        account and risk limits (default: the backtest's defaults, risk limits on).
    instruments, funding, mark:
        As for :func:`quantum_trading.sim.simulate`.
    seed:
        Seed of the first :meth:`reset` (when it gets none).

    Observation: ``{"market": [window, N, F], "account": [account_window, 3 + 2N]}`` float32
    (see :mod:`quantum_trading.rl.spec`). Action: ``Box(-1, 1, (N,))`` targets × max leverage,
    or ``MultiDiscrete`` (direction, size bucket, ATR stop multiple) per asset. Reward per
    :class:`EnvConfig`. ``terminated`` on liquidation or bankruptcy, ``truncated`` at the
    episode's last bar. ``info``: ``equity_usd``, ``time`` (bar open time of the observed
    close, a UTC ``pd.Timestamp``), ``bar``, ``positions`` (signed sizes), ``fees_usd``,
    ``funding_usd`` (paid, this episode), ``turnover``, ``liquidated``, ``bankrupt``.

    >>> from quantum_trading.data import generate_market
    >>> bars = generate_market(n_assets=1, n_bars=600, seed=1).ohlcv
    >>> spec = EnvSpec(symbols=tuple(bars), timeframe="1h")
    >>> env = PerpetualFuturesEnv(bars, spec=spec, config=EnvConfig(episode_bars=50), seed=0)
    >>> obs, info = env.reset()
    >>> obs["market"].shape, obs["account"].shape
    ((32, 1, 8), (16, 5))
    >>> obs, reward, terminated, truncated, info = env.step(np.array([0.5], dtype=np.float32))
    >>> info["positions"][0] > 0
    True
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        bars: pd.DataFrame | Mapping[str, pd.DataFrame],
        *,
        spec: EnvSpec,
        config: EnvConfig = _DEFAULT_CONFIG,
        instruments: Instrument | Mapping[str, Instrument] | None = None,
        funding: SeriesInput | None = None,
        mark: SeriesInput | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self._core = core = EnvCore(bars, spec=spec, config=config, instruments=instruments,
                                    funding=funding, mark=mark, n_envs=1)
        self.env_spec: EnvSpec = spec
        self.config: EnvConfig = config
        self.symbols: tuple[str, ...] = spec.symbols
        self.observation_space = spec.observation_space()
        self.action_space = spec.action_space()
        self._seed = seed
        self._pack = pack = SinglePack(core.states, ctl=core.ctl, ctli=core.ctli,
                                       prev_pos=core.prev_pos, cfg=core.cfg, sizes=core.sizes,
                                       stops=core.stops, n_actions=core.n_actions,
                                       params=core.params)
        core.states, core.ctl, core.ctli, core.prev_pos = (pack.states, pack.ctl, pack.ctli,
                                                           pack.prev_pos)
        self._act, self._info_vec, self._slot = pack.act, pack.info, pack.slot
        self._act_shape: tuple[int, ...] = self.action_space.shape
        self._times = core.times
        self._ready = False
        self._new_pool()
        self._bind()

    # -- kernel arguments -----------------------------------------------------------------------
    def _new_pool(self) -> None:
        """Fresh blocks for the next :data:`_POOL` observations. The kernel writes step ``k``'s
        observation into row ``k`` and :meth:`step` hands out that row's views (made here,
        all at once), so every observation is its own memory and a step copies nothing."""
        spec = self.env_spec
        market = np.empty((_POOL, *spec.market_shape), dtype=np.float32)
        account = np.empty((_POOL, *spec.account_shape), dtype=np.float32)
        positions = np.empty((_POOL, spec.n_assets))
        self._pool = (market, account, positions)
        self._markets, self._accounts, self._positions = list(market), list(account), list(positions)
        self._slot[0] = 0
        self._k = 0

    def _bind(self) -> None:
        """(Re)build env 0's views and the kernels' entry points (after buffers grew);
        :func:`~quantum_trading.sim.fastcall.bound_kernel` skips numba's argument typing."""
        core = self._core
        self._state = _storage.state_view(core.states, 0)
        self._bind_args()
        self._step_fn = bound_kernel(env_step_packed_nb, *self._step_args)
        self._reset_fn = bound_kernel(env_reset_obs_nb, *self._reset_head, 0, 0,
                                      *self._reset_tail)

    def _bind_args(self) -> None:
        """The kernels' argument tuples (after the buffers grew or a new pool)."""
        core = self._core
        out = (core.feats, *self._pool, self._info_vec, self._slot)
        self._step_args = self._pack.step_args(
            core.states, bars_pack=core.bars_pack, nan_row=core.nan_row, atr=core.atr,
            feats=core.feats, tgt=core.tgt_w[0], sld=core.sld_w[0], ring=core.rings[0],
            pool=self._pool)
        self._reset_head = (self._state, core.fresh, core.bars_pack, core.params, core.tgt_w[0],
                            core.sld_w[0], core.ctl[0], core.ctli[0], core.cfg, core.rings[0])
        self._reset_tail = out

    def _take(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The observation and positions the kernel just wrote (pool row ``k``)."""
        k = self._k
        obs = {"market": self._markets[k], "account": self._accounts[k]}
        positions = self._positions[k]
        if k + 1 == _POOL:
            self._new_pool()
            self._bind_args()
        else:
            self._k = k + 1
        return obs, positions

    def _grow(self) -> None:
        self._core.grow()
        self._bind()

    # -- gymnasium API --------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode: flat account with the initial cash, start bar per
        ``config.start`` (``options={"start_bar": t}`` forces one); the first observation is
        the start bar's close."""
        if seed is None and self._seed is not None:
            seed, self._seed = self._seed, None
        super().reset(seed=seed)
        t0, t_end = self._core.sample_start(self.np_random, options)
        while (code := self._reset_fn(*self._reset_head, t0, t_end, *self._reset_tail)) != RC_OK:
            if code == RC_NEED_ROOM:
                self._grow()
            else:  # RC_POOL_FULL
                self._new_pool()
                self._bind_args()
        self._ready = True
        obs, positions = self._take()
        return obs, self._info(positions)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool,
                                                dict[str, Any]]:
        """Decide at the observed close: targets fill at the next bar's open; returns the
        observation at that bar's close, the reward, ``terminated`` (liquidation or
        bankruptcy), ``truncated`` (episode or data end) and ``info``."""
        if not self._ready:
            raise ConfigError("PerpetualFuturesEnv.step: call reset() first (the episode ended "
                              "or never started)")
        act = action if type(action) is np.ndarray else np.asarray(action)
        if act.shape != self._act_shape:
            raise ConfigError(f"PerpetualFuturesEnv.step: action shape {act.shape}, expected "
                              f"{self._act_shape} ({self.env_spec.action} action for "
                              f"{list(self.symbols)})")
        self._act[...] = act  # (``[...]`` copies faster than ``[:]``)
        (code, reward, terminated, truncated, t, equity, fees, funding, turnover, liquidated,
         bankrupt) = self._step_fn(*self._step_args)
        if code:
            while code in (RC_NEED_ROOM, RC_POOL_FULL):
                if code == RC_NEED_ROOM:
                    self._grow()
                else:
                    self._new_pool()
                    self._bind_args()
                (code, reward, terminated, truncated, t, equity, fees, funding, turnover,
                 liquidated, bankrupt) = self._step_fn(*self._step_args)
            if code == RC_BAD_ACTION:
                raise action_error(self.env_spec, act, int(self._core.ctli[0, I_BAD]),
                                   "PerpetualFuturesEnv.step")
        if terminated or truncated:
            self._ready = False
        # the observation the kernel just wrote: pool row k (as _take(), inlined: hot path)
        k = self._k
        obs = {"market": self._markets[k], "account": self._accounts[k]}
        info = {"equity_usd": equity, "time": self._times[t], "bar": t,
                "positions": self._positions[k], "fees_usd": fees, "funding_usd": funding,
                "turnover": turnover, "liquidated": liquidated, "bankrupt": bankrupt}
        if k + 1 == _POOL:
            self._new_pool()
            self._bind_args()
        else:
            self._k = k + 1
        return obs, reward, terminated, truncated, info

    def _info(self, positions: np.ndarray) -> dict[str, Any]:
        """The info dict of the current observation (see :meth:`step`)."""
        v = self._info_vec.tolist()
        t = int(v[V_BAR])
        return {
            "equity_usd": v[V_EQUITY],
            "time": self._times[t],
            "bar": t,
            "positions": positions,
            "fees_usd": v[V_FEES],
            "funding_usd": v[V_FUNDING],
            "turnover": v[V_TURNOVER],
            "liquidated": v[V_LIQUIDATED] != 0.0,
            "bankrupt": v[V_BANKRUPT] != 0.0,
        }

    # -- reading --------------------------------------------------------------------------------
    @property
    def bar(self) -> int:
        """Bar of the current observation (its close)."""
        return int(self._info_vec[V_BAR])

    @property
    def start_range(self) -> tuple[int, int]:
        """First and last bar an episode may start at (after the features' warm-up)."""
        return self._core.start_lo, self._core.start_hi

    @property
    def index(self) -> pd.DatetimeIndex:
        """The data's bar index (UTC bar open times)."""
        return self._core.index

    def episode_targets(self) -> pd.DataFrame:
        """This episode's decisions as targets ``[T, N]`` (multiples of equity, decided at each
        bar's close; NaN outside the episode, so the account is flat before it): give them
        (and :meth:`episode_stop_distances`) to a backtest to replay the episode."""
        return self._core.episode_targets(0)

    def episode_stop_distances(self) -> pd.DataFrame | None:
        """Multi-head stop-loss distances (USDT from the entry fill) per decision, NaN where
        none; None for target actions. Replay with ``StopSpec.distance(...)``."""
        return self._core.episode_stop_distances(0)
