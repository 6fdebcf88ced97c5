"""Many environments stepped in one numba call: :class:`PerpetualFuturesVecEnv`.

An SB3 :class:`~stable_baselines3.common.vec_env.VecEnv` (so ``PPO(..., env=vec)`` and
``VecNormalize(vec)`` work as with ``DummyVecEnv``) whose ``n_envs`` environments run on the
same data with their own accounts, episodes and random starts. One step is one call of
:func:`quantum_trading.rl.batch_nb.batch_step_nb`, which calls the single environment's step
kernel for every env; episodes that end are reset at once (SB3's auto-reset: the final
observation is in ``info["terminal_observation"]``, ``info["TimeLimit.truncated"]`` tells a
truncation). With the same seeds and actions, env ``i`` gives exactly what a
:class:`~quantum_trading.rl.env.PerpetualFuturesEnv` seeded with ``seed + i`` gives when reset
after each episode (tested).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
import pandas as pd
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from quantum_trading.domain import Instrument
from quantum_trading.errors import ConfigError
from quantum_trading.rl._core import EnvCore
from quantum_trading.rl.batch_nb import batch_reset_nb, batch_step_nb
from quantum_trading.rl.env import action_error
from quantum_trading.rl.env_config import EnvConfig
from quantum_trading.rl.env_nb import (
    F_REWARD,
    I_BAD,
    I_LIQUIDATED,
    I_T,
    I_TERMINATED,
    I_TRUNCATED,
    RC_BAD_ACTION,
    RC_NEED_ROOM,
    RC_OK,
)
from quantum_trading.rl.spec import EnvSpec
from quantum_trading.sim.fastcall import bound_kernel
from quantum_trading.sim.inputs import SeriesInput
from quantum_trading.sim.records import A_EQUITY, A_FEES, A_FUNDING, C_BANKRUPT, P_SIZE

__all__ = ["PerpetualFuturesVecEnv"]

_DEFAULT_CONFIG = EnvConfig()
_MIN_CHUNK = 32  # fewer envs per thread: the hand-off (~10-20 µs) costs more than it saves


def _chunks(n_envs: int, n_threads: int) -> list[tuple[int, int]]:
    """Contiguous env ranges ``[lo, hi)``, one per thread, each of at least
    :data:`_MIN_CHUNK` envs (so one range below ``2 * _MIN_CHUNK`` envs)."""
    k = max(1, min(n_threads, n_envs // _MIN_CHUNK))
    edges = [n_envs * j // k for j in range(k + 1)]
    return [(edges[j], edges[j + 1]) for j in range(k)]


class PerpetualFuturesVecEnv(VecEnv):
    """``n_envs`` :class:`~quantum_trading.rl.env.PerpetualFuturesEnv` in one numba loop.

    Parameters are those of the single env, plus ``n_envs`` (1 to 65,536); env ``i`` is
    seeded with ``seed + i`` at the first :meth:`reset` (SB3's :meth:`seed` convention).
    ``n_threads`` (default ``numba.get_num_threads()``): a step runs the envs in that many
    contiguous chunks at once, each on its own thread, with at least 32 envs a chunk (so
    fewer than 64 envs run on the calling thread alone); the numbers never depend on it.
    Observations are dicts of stacked arrays ``{"market": [n, window, N, F], "account":
    [n, account_window, 3 + 2N]}``. ``infos[i]`` holds ``equity_usd``; at an episode's end
    also ``terminal_observation``, ``TimeLimit.truncated``, ``bar``, ``fees_usd``,
    ``funding_usd``, ``positions``, ``liquidated``, ``bankrupt``.

    >>> from quantum_trading.data import generate_market
    >>> bars = generate_market(n_assets=1, n_bars=600, seed=1).ohlcv
    >>> vec = PerpetualFuturesVecEnv(bars, spec=EnvSpec(symbols=tuple(bars), timeframe="1h"),
    ...                              n_envs=4, config=EnvConfig(episode_bars=50), seed=0)
    >>> obs = vec.reset()
    >>> obs["market"].shape
    (4, 32, 1, 8)
    >>> obs, rewards, dones, infos = vec.step(np.zeros((4, 1), dtype=np.float32))
    >>> rewards.shape, dones.tolist()
    ((4,), [False, False, False, False])
    """

    def __init__(
        self,
        bars: pd.DataFrame | Mapping[str, pd.DataFrame],
        *,
        spec: EnvSpec,
        n_envs: int,
        config: EnvConfig = _DEFAULT_CONFIG,
        instruments: Instrument | Mapping[str, Instrument] | None = None,
        funding: SeriesInput | None = None,
        mark: SeriesInput | None = None,
        seed: int | None = None,
        n_threads: int | None = None,
    ) -> None:
        if not isinstance(n_envs, int) or not 1 <= n_envs <= 65_536:
            raise ConfigError(f"n_envs: expected an int in [1, 65536], got {n_envs!r}")
        if n_threads is None:
            n_threads = numba.get_num_threads()
        if not isinstance(n_threads, int) or not 1 <= n_threads <= 256:
            raise ConfigError(f"n_threads: expected an int in [1, 256] or None, got "
                              f"{n_threads!r}")
        self._core = core = EnvCore(bars, spec=spec, config=config, instruments=instruments,
                                    funding=funding, mark=mark, n_envs=n_envs)
        self.render_mode = None  # nothing to render (read by VecEnv.__init__)
        super().__init__(n_envs, spec.observation_space(), spec.action_space())
        self.env_spec: EnvSpec = spec
        self.config: EnvConfig = config
        if seed is not None:
            self.seed(seed)
        self._rngs: list[np.random.Generator | None] = [None] * n_envs
        self._acts = np.zeros((n_envs, core.n_actions))
        self._market = np.zeros((n_envs, *spec.market_shape), dtype=np.float32)
        self._account = np.zeros((n_envs, *spec.account_shape), dtype=np.float32)
        self._codes = np.zeros(n_envs, dtype=np.int64)
        self._active = np.ones(n_envs, dtype=np.int64)
        self._starts = np.zeros(n_envs, dtype=np.int64)
        self._ends = np.zeros(n_envs, dtype=np.int64)
        self._ready = False
        self._chunks = _chunks(n_envs, n_threads)
        self._pool: ThreadPoolExecutor | None = None
        self._bind()

    def _bind(self) -> None:
        c = self._core
        out = (self._active, self._codes, self._market, self._account)
        self._step_args = (c.states, c.prev_pos, c.bars, c.sig, c.params, c.tgt_w, c.tgt_ro,
                           c.sld_w, c.sld_ro, c.atr, self._acts, c.ctl, c.ctli, c.cfg, c.sizes,
                           c.stops, c.rings, c.feats, *out)
        self._reset_args = (c.states, c.fresh, c.bars, c.params, c.tgt_w, c.sld_w, c.ctl, c.ctli,
                            c.cfg, c.rings, c.feats, self._starts, self._ends, *out)
        self._step_fn = bound_kernel(batch_step_nb, *self._step_args, 0, 1)
        self._reset_fn = bound_kernel(batch_reset_nb, *self._reset_args, 0, 1)

    def _call_step(self) -> int:
        """The step kernel over every env: one call per chunk, the first on this thread and
        the others on the pool's threads at the same time (the kernel releases the GIL)."""
        fn, args, chunks = self._step_fn, self._step_args, self._chunks
        if len(chunks) == 1:
            return fn(*args, 0, self.num_envs)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=len(chunks) - 1,
                                            thread_name_prefix="perp-vec-env")
        futures = [self._pool.submit(fn, *args, lo, hi) for lo, hi in chunks[1:]]
        failed = fn(*args, *chunks[0])
        for future in futures:
            failed += future.result()
        return failed

    def _run(self, fn_name: str, mask: np.ndarray) -> None:
        """Run the step or reset kernel on the envs in ``mask``, growing buffers and running
        again those that lacked room; raise on a bad action."""
        self._active[:] = mask
        while True:
            if fn_name == "step":
                failed = self._call_step()
            else:
                failed = self._reset_fn(*self._reset_args, 0, self.num_envs)
            if failed == 0:
                return
            codes = self._codes
            bad = np.flatnonzero((codes == RC_BAD_ACTION) & (self._active != 0))
            if bad.size:
                i = int(bad[0])
                raise action_error(self.env_spec, self._acts[i],
                                   int(self._core.ctli[i, I_BAD]),
                                   f"PerpetualFuturesVecEnv.step (env {i})")
            again = (codes == RC_NEED_ROOM) & (self._active != 0)
            self._core.grow()
            self._bind()
            self._active[:] = again

    def _rng(self, i: int, seed: int | None) -> np.random.Generator:
        rng = self._rngs[i]
        if seed is not None or rng is None:
            rng, _ = seeding.np_random(seed)
            self._rngs[i] = rng
        return rng

    def _reset_envs(self, which: Iterable[int], seeds: Sequence[int | None] | None) -> None:
        mask = np.zeros(self.num_envs, dtype=np.int64)
        for i in which:
            seed = seeds[i] if seeds is not None else None
            opts = self._options[i] if self._options[i] else None
            t0, t_end = self._core.sample_start(self._rng(i, seed), opts)
            self._starts[i], self._ends[i] = t0, t_end
            mask[i] = 1
        self._codes[:] = RC_OK
        self._run("reset", mask)

    # -- VecEnv API ------------------------------------------------------------------------------
    def reset(self) -> dict[str, np.ndarray]:
        """Start a new episode in every env (seeds from :meth:`seed`, used once)."""
        self._reset_envs(range(self.num_envs), self._seeds)
        self._reset_seeds()
        self._reset_options()
        self._ready = True
        return self._obs()

    def step_async(self, actions: np.ndarray) -> None:
        """Record the actions of the next :meth:`step_wait` (``[n_envs, *action shape]``)."""
        acts = np.asarray(actions)
        want = (self.num_envs, *self.action_space.shape)
        if acts.shape != want:
            raise ConfigError(f"PerpetualFuturesVecEnv.step: actions shape {acts.shape}, "
                              f"expected {want}")
        self._acts[:] = acts

    def step_wait(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict]]:
        """Step every env by its action; auto-reset the envs whose episode ended."""
        if not self._ready:
            raise ConfigError("PerpetualFuturesVecEnv.step: call reset() first")
        self._run("step", np.ones(self.num_envs, dtype=np.int64))
        core = self._core
        rewards = core.ctl[:, F_REWARD].astype(np.float32)
        term = core.ctli[:, I_TERMINATED] != 0
        trunc = core.ctli[:, I_TRUNCATED] != 0
        dones = term | trunc
        equity = core.states.acct[:, A_EQUITY].tolist()
        infos: list[dict[str, Any]] = [{"equity_usd": e} for e in equity]
        done_idx = np.flatnonzero(dones)
        if done_idx.size:
            acct = core.states.acct
            for i in done_idx.tolist():
                info = infos[i]
                info["terminal_observation"] = {"market": self._market[i].copy(),
                                                "account": self._account[i].copy()}
                info["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
                info["bar"] = int(core.ctli[i, I_T])
                info["fees_usd"] = float(acct[i, A_FEES])
                info["funding_usd"] = float(acct[i, A_FUNDING])
                info["positions"] = core.states.pos[i, :, P_SIZE].copy()
                info["liquidated"] = bool(core.ctli[i, I_LIQUIDATED])
                info["bankrupt"] = bool(core.states.counters[i, C_BANKRUPT])
            self._reset_envs(done_idx.tolist(), None)
        return self._obs(), rewards, dones, infos

    def _obs(self) -> dict[str, np.ndarray]:
        return {"market": self._market.copy(), "account": self._account.copy()}

    def close(self) -> None:
        """Stop the worker threads (if any ran); a later step starts them again."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The vec env's attribute ``attr_name``, once per index (the envs share it)."""
        return [getattr(self, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute on the vec env (shared by every env)."""
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        """Call a method of the vec env once per index (the envs are not objects of their own)."""
        method = getattr(self, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """False: the envs are not gymnasium envs and carry no wrappers."""
        return [False for _ in self._indices(indices)]

    # -- reading ---------------------------------------------------------------------------------
    @property
    def n_threads(self) -> int:
        """Threads a step runs on: the number of env chunks (1 below 64 envs)."""
        return len(self._chunks)

    @property
    def equity_usd(self) -> np.ndarray:
        """Equity of every env at its observed close (USDT)."""
        return self._core.states.acct[:, A_EQUITY].copy()

    def episode_targets(self, i: int) -> pd.DataFrame:
        """Env ``i``'s targets this episode (see
        :meth:`~quantum_trading.rl.env.PerpetualFuturesEnv.episode_targets`)."""
        return self._core.episode_targets(i)
