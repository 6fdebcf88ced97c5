"""What the single and the batched environment share: checked inputs, features, kernel
arguments and the stacked simulator states of ``n_envs`` accounts.

Everything is built once from the whole data: the simulator inputs by
:func:`quantum_trading.sim.prepare` (the same checks and arrays a backtest uses), the features
by :func:`~quantum_trading.rl.features.market_features`. Per env there is a target buffer and
a stop-distance buffer ``[T, N]`` (NaN = no decision) behind ``SignalArrays.target`` /
``sl_dist``: the env writes the decision of bar ``t`` into row ``t``, so after an episode the
buffers hold exactly the targets a backtest must be given to replay it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from quantum_trading.domain import Instrument, Signals, default_instrument
from quantum_trading.errors import ConfigError
from quantum_trading.rl import _storage
from quantum_trading.rl.env_config import EnvConfig
from quantum_trading.rl.env_nb import (
    C_DD_PEN,
    C_ETA,
    C_INIT,
    C_MAX_LEV,
    C_MODE,
    C_REWARD,
    C_TO_PEN,
    N_CFG,
    N_CTL,
    N_CTLI,
    _decide_nb,
)
from quantum_trading.rl.features import ATR_PERIOD, atr_array, market_features
from quantum_trading.rl.spec import EnvSpec
from quantum_trading.sim.inputs import SeriesInput, infer_timeframe, prepare
from quantum_trading.sim.state import readonly_2d, risk_params

__all__ = ["EnvCore"]


def _readonly(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


def _frames(bars: object, spec: EnvSpec) -> dict[str, pd.DataFrame]:
    if isinstance(bars, pd.DataFrame):
        if spec.n_assets != 1:
            raise ConfigError(f"bars: one DataFrame, but the spec trades {spec.n_assets} assets "
                              f"{list(spec.symbols)}; pass a dict symbol -> DataFrame")
        return {spec.symbols[0]: bars}
    if not isinstance(bars, Mapping) or not bars:
        raise ConfigError("bars: expected a DataFrame or a non-empty dict symbol -> DataFrame")
    frames = {str(k): v for k, v in bars.items()}
    for sym, frame in frames.items():
        if not isinstance(frame, pd.DataFrame):
            raise ConfigError(f"bars[{sym!r}]: expected a DataFrame, got {type(frame).__name__}")
    return frames


def _timeframe_label(spec: EnvSpec, frame: pd.DataFrame) -> str:
    from quantum_trading.data.timeframes import timeframe_to_timedelta

    try:
        want = timeframe_to_timedelta(spec.timeframe)
    except Exception as exc:
        raise ConfigError(f"EnvSpec.timeframe: {exc}") from None
    got = infer_timeframe(frame.index, frame.attrs)
    return spec.timeframe if got == want else str(got)


def _with_defaults(instruments: Instrument | Mapping[str, Instrument] | None,
                   symbols: tuple[str, ...]) -> Instrument | dict[str, Instrument]:
    """The instruments a :class:`~quantum_trading.backtest.Backtest` would use: those given,
    and :func:`~quantum_trading.domain.default_instrument` (the Binance presets for BTC and
    ETH, else generic) for every symbol without one — so the env trades under the same fees,
    tiers and lot sizes as the backtest that replays it."""
    if isinstance(instruments, Instrument):
        return instruments
    given = dict(instruments or {})  # symbols not traded here are ignored (a preset table)
    return {s: given.get(s) or default_instrument(s) for s in symbols}


class EnvCore:
    """Checked inputs and stacked states for ``n_envs`` environments on the same data."""

    def __init__(self, bars: pd.DataFrame | Mapping[str, pd.DataFrame], *, spec: EnvSpec,
                 config: EnvConfig, instruments: Instrument | Mapping[str, Instrument] | None,
                 funding: SeriesInput | None, mark: SeriesInput | None, n_envs: int) -> None:
        if not isinstance(spec, EnvSpec):
            raise ConfigError(f"spec: expected an EnvSpec, got {type(spec).__name__}")
        if not isinstance(config, EnvConfig):
            raise ConfigError(f"config: expected an EnvConfig, got {type(config).__name__}")
        frames = _frames(bars, spec)
        first = next(iter(frames.values()))
        if isinstance(first.index, pd.DatetimeIndex) and len(first.index) > 1:
            data_spec = spec.model_copy(update={"symbols": tuple(frames),
                                                "timeframe": _timeframe_label(spec, first)})
            spec.check_matches(data_spec, what="EnvSpec")
        elif tuple(frames) != spec.symbols:
            raise ConfigError(f"EnvSpec has symbols={list(spec.symbols)}, but the data has "
                              f"symbols={list(frames)}")
        self.spec, self.config, self.n_envs = spec, config, int(n_envs)
        n = spec.n_assets
        lev = config.account.leverage
        for sym in spec.symbols:
            value = lev.get(sym, 1.0) if isinstance(lev, dict) else lev
            if spec.max_leverage > value:
                raise ConfigError(
                    f"EnvSpec.max_leverage={spec.max_leverage:g} is above "
                    f"EnvConfig.account.leverage={value:g} for {sym!r}: targets beyond it would "
                    f"be capped; raise the account leverage or lower max_leverage")
        target = pd.DataFrame(np.nan, index=first.index, columns=list(spec.symbols))
        instruments = _with_defaults(instruments, spec.symbols)
        prep = prepare(frames, Signals(target), instruments=instruments, costs=config.costs,
                       account=config.account, funding=funding, mark=mark)
        self.index = prep.index
        self.times = prep.index.to_numpy(dtype=object)  # Timestamps: indexing costs nothing
        n_bars = len(prep.index)
        self.n_bars = n_bars
        params = prep.params
        risk = config.risk
        if risk is not None:
            params = params._replace(risk=risk_params(risk, prep.index.as_unit("ns").asi8))
        self.params = params
        self.bars = prep.bars
        # the single env's packed bars: the eight BarArrays fields as one [8, T, N] array
        self.bars_pack = _readonly(np.ascontiguousarray(np.stack(
            [np.broadcast_to(a, (n_bars, n)) for a in prep.bars])))
        self.nan_row = readonly_2d(np.full((1, n), np.nan))
        rates = np.broadcast_to(prep.bars.funding_rate, (n_bars, n))
        feats, first_valid = market_features(frames, spec.features, funding=np.array(rates))
        self.feats = _readonly(np.ascontiguousarray(feats))
        self.atr = readonly_2d(atr_array(frames))
        # episode bounds: the first observation needs `window` valid feature rows
        lo = first_valid + spec.window - 1
        if spec.action == "multi_head":
            lo = max(lo, ATR_PERIOD)
        length = config.episode_bars
        hi = n_bars - 1 - length if length is not None else n_bars - 2
        if hi < lo:
            need = lo + (length if length is not None else 1) + 1
            raise ConfigError(
                f"data too short: {n_bars} bars, but the features' warm-up ({first_valid} bars) "
                f"+ window ({spec.window}) + episode ({length or 1} bars) need at least {need}")
        self.start_lo, self.start_hi = int(lo), int(hi)
        cfg = np.zeros(N_CFG)
        cfg[C_REWARD] = 0.0 if config.reward == "log_equity" else 1.0
        cfg[C_ETA] = config.dsr_eta
        cfg[C_DD_PEN] = config.drawdown_penalty
        cfg[C_TO_PEN] = config.turnover_penalty
        cfg[C_MAX_LEV] = spec.max_leverage
        cfg[C_MODE] = 0.0 if spec.action == "target" else 1.0
        cfg[C_INIT] = config.account.initial_cash_usd
        self.cfg = cfg
        self.sizes = np.asarray(spec.size_buckets, dtype=np.float64)
        self.stops = np.asarray(spec.stop_multiples, dtype=np.float64)
        # per-env buffers
        k_max = params.tiers.shape[1]
        mult = risk.risk_multiplier if risk is not None else 1.0
        self.fresh = _storage.fresh_saved(n, config.account.initial_cash_usd, n_tiers_max=k_max,
                                          risk=risk is not None, risk_multiplier=mult)
        self.states = _storage.alloc_states(
            self.n_envs, n, config.account.initial_cash_usd, n_bars=n_bars, n_tiers_max=k_max,
            risk=risk is not None, risk_multiplier=mult)
        self.prev_pos = np.zeros((self.n_envs, n, self.fresh.pos.shape[1]))  # turnover scratch
        self.tgt_w = np.full((self.n_envs, n_bars, n), np.nan)
        self.tgt_ro = _readonly(self.tgt_w)
        sl_shape = (n_bars, n) if spec.action == "multi_head" else (1, 1)
        self.sld_w = np.full((self.n_envs, *sl_shape), np.nan)
        self.sld_ro = _readonly(self.sld_w)
        self.sig = prep.signals
        aw, n_acc = spec.account_shape
        self.rings = np.zeros((self.n_envs, 2 * aw, n_acc), dtype=np.float32)
        self.ctl = np.zeros((self.n_envs, N_CTL))
        self.ctli = np.zeros((self.n_envs, N_CTLI), dtype=np.int64)
        self.n_actions = n if spec.action == "target" else 3 * n

    def grow(self) -> None:
        """Double every env's record buffers (a step said they could overflow)."""
        self.states = _storage.grow(self.states)

    def sample_start(self, rng: np.random.Generator, options: Mapping | None) -> tuple[int, int]:
        """``(t0, t_end)`` of a new episode: ``options["start_bar"]`` if given, else the
        config's start rule with ``rng``."""
        if options and options.get("start_bar") is not None:
            t0 = int(options["start_bar"])
            if not self.start_lo <= t0 <= self.start_hi:
                raise ConfigError(f"options['start_bar']={t0} outside the allowed starts "
                                  f"[{self.start_lo}, {self.start_hi}]")
        elif self.config.start == "first":
            t0 = self.start_lo
        else:
            t0 = int(rng.integers(self.start_lo, self.start_hi + 1))
        length = self.config.episode_bars
        t_end = t0 + length if length is not None else self.n_bars - 1
        return t0, t_end

    def decide(self, i: int, t: int, action: np.ndarray) -> bool:
        """Write ``action`` into env ``i``'s target and stop-distance buffers as the decision
        at bar ``t``'s close, decoded by the env's own kernel (target × max leverage; for
        ``multi_head`` also the stop distance from the ATR of bar ``t``), without stepping.

        For the decision at the last bar's close, which no step can take (there is no next
        open) but a live trader would send. False for a bad action (NaN target, head index
        out of range), which a step would reject: the bad element's index is then in
        ``ctli[i, I_BAD]`` and the elements after it are not written.
        """
        act = np.ascontiguousarray(action, dtype=np.float64).reshape(-1)
        if act.shape != (self.n_actions,):
            raise ConfigError(f"action: {act.size} values, expected {self.n_actions} "
                              f"({self.spec.action} action for {list(self.spec.symbols)})")
        return bool(_decide_nb(int(t), act, self.tgt_w[i], self.sld_w[i], self.atr, self.cfg,
                               self.sizes, self.stops, self.ctli[i]))

    def episode_targets(self, i: int) -> pd.DataFrame:
        """Env ``i``'s decisions so far this episode: targets ``[T, N]`` on the bar index
        (NaN outside the episode), ready for :func:`quantum_trading.sim.simulate`."""
        return pd.DataFrame(self.tgt_w[i].copy(), index=self.index, columns=list(self.spec.symbols))

    def episode_stop_distances(self, i: int) -> pd.DataFrame | None:
        """Env ``i``'s stop-loss distances (USDT) per decision (multi_head), else None."""
        if self.spec.action != "multi_head":
            return None
        return pd.DataFrame(self.sld_w[i].copy(), index=self.index,
                            columns=list(self.spec.symbols))
