"""A trained policy as a :class:`~quantum_trading.strategies.Strategy`: :class:`PolicyStrategy`.

The observation holds the account (equity, margin, positions, unrealised PnL, drawdown), so a
policy's decision at bar t depends on what it did before: the strategy steps the simulator
(:class:`~quantum_trading.rl.env.PerpetualFuturesEnv`) while it decides, in one deterministic
episode from the first bar after the features' warm-up (:func:`~quantum_trading.rl.rollout.
run_policy`), with the bundle's VecNormalize statistics. The targets it returns, replayed by
:class:`~quantum_trading.backtest.Backtest` with the same costs, account, risk limits and
instruments (:meth:`PolicyStrategy.backtest_kwargs`), give the env's equity bar for bar.

Timing: as every strategy, the target at bar t is decided at t's close and fills at t+1's
open; rows before the first decision are NaN (flat). ``multi_head`` policies also return
stop-loss distances (USDT, ``stop_multiple × ATR(14)`` at the decision bar) as
``Signals.stop_loss``. Cost: about 1 ms per bar (one forward pass and one simulator step).

>>> strat = PolicyStrategy("user_data/models/run1/final")              # doctest: +SKIP
>>> Backtest(bars, strat, **strat.backtest_kwargs()).run().stats        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from quantum_trading.domain import Instrument, Signals, StopSpec
from quantum_trading.errors import ConfigError
from quantum_trading.rl.spec import EnvSpec
from quantum_trading.sim.inputs import SeriesInput
from quantum_trading.strategies.base import MarketData, ParamSpace, StrategyError

if TYPE_CHECKING:
    from quantum_trading.rl.rollout import Rollout

__all__ = ["PolicyStrategy", "data_spec", "load_model_bars", "model_backtest"]


def data_spec(spec: EnvSpec, data: MarketData) -> EnvSpec:
    """``spec`` with the symbols (in order) and the timeframe of ``data``: what the data
    offers, for :meth:`EnvSpec.check_matches`.

    >>> import numpy as np
    >>> idx = pd.date_range("2024-01-01", periods=3, freq="4h", tz="UTC")
    >>> f = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}, index=idx)
    >>> s = data_spec(EnvSpec(symbols=("A", "B"), timeframe="1h"), {"A": f})
    >>> s.symbols, s.timeframe
    (('A',), '4h')
    """
    from quantum_trading.data.timeframes import timeframe_to_timedelta
    from quantum_trading.sim.inputs import infer_timeframe

    if isinstance(data, pd.DataFrame):
        frames = {str(data.attrs.get("symbol") or (spec.symbols[0] if spec.n_assets == 1
                                                    else "<unnamed>")): data}
    elif isinstance(data, Mapping) and data:
        frames = {str(k): v for k, v in data.items()}
    else:
        raise ConfigError("data: expected an OHLCV DataFrame or a non-empty dict symbol -> "
                          "DataFrame")
    first = next(iter(frames.values()))
    timeframe = spec.timeframe
    if isinstance(first.index, pd.DatetimeIndex) and len(first.index) > 1:
        got = infer_timeframe(first.index)  # from the bars, not a (possibly stale) label
        if got != timeframe_to_timedelta(spec.timeframe):
            timeframe = _timedelta_label(got)
    return spec.model_copy(update={"symbols": tuple(frames), "timeframe": timeframe})


def _timedelta_label(delta: pd.Timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def load_model_bars(
    data: str | Path, spec: EnvSpec, *, symbol: str | None = None, exchange: str | None = None,
    data_dir: str | Path | None = None,
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The bars a model runs on, from a file, a freqtrade data folder or the store (as
    :func:`~quantum_trading.backtest.inputs.load_bars`, with the funding and mark files found
    next to them), and notes for the user.

    A file gives its one symbol; a folder or an exchange name gives ``symbol`` when named,
    else every symbol of the spec at the spec's timeframe. Several symbols are cut to the
    bars they all have (noted). The result is not checked against the spec here:
    :meth:`PolicyStrategy.check_data` names any mismatch.
    """
    from quantum_trading.backtest.inputs import load_bars

    path = Path(data)
    symbols = [None] if path.is_file() else [symbol] if symbol else list(spec.symbols)
    frames: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    for sym in symbols:
        loaded = load_bars(data, symbol=sym, exchange=exchange,
                           timeframe=None if path.is_file() else spec.timeframe,
                           data_dir=data_dir)
        frames[loaded.symbol] = loaded.bars
        notes.extend(loaded.notes)
    common = None
    for frame in frames.values():
        common = frame.index if common is None else common.intersection(frame.index)
    assert common is not None
    if any(len(f) != len(common) for f in frames.values()):
        if len(common) < 2:
            raise ConfigError(f"--data {data}: {', '.join(frames)} share fewer than 2 bars")
        notes.append(f"data: cut to the {len(common):,} bars all of {', '.join(frames)} have "
                     f"({common[0]:%Y-%m-%d %H:%M} → {common[-1]:%Y-%m-%d %H:%M} UTC)")
        frames = {s: _keep_attrs(f, f.loc[common]) for s, f in frames.items()}
    return frames, notes


def _keep_attrs(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    new = new.copy()
    new.attrs = dict(old.attrs)
    return new


class PolicyStrategy:
    """A saved RL policy (a ``quantum train`` model bundle) as a strategy.

    Parameters
    ----------
    model:
        The bundle directory, or a loaded :class:`~quantum_trading.rl.model_io.ModelBundle`
        (then ``config`` is needed unless the defaults are wanted).
    config:
        The :class:`~quantum_trading.rl.env_config.EnvConfig` to step under (costs, account,
        risk limits); default: the bundle's ``env_config.json`` (what it was trained with).
    instruments, funding, mark:
        As for :class:`~quantum_trading.backtest.Backtest`; give the backtest the same
        (``backtest_kwargs`` does). Default instruments: the presets, as Backtest's.
    name:
        The strategy's name (default ``"rl:<bundle folder>"``).

    ``params`` is empty: a trained policy has no tunable parameters. Data whose symbols,
    order or timeframe differ from the model's spec raise :class:`ConfigError` naming the
    field (``EnvSpec.check_matches``).
    """

    def __init__(
        self,
        model: str | Path | Any,
        *,
        config: Any = None,
        instruments: Instrument | Mapping[str, Instrument] | None = None,
        funding: SeriesInput | None = None,
        mark: SeriesInput | None = None,
        name: str | None = None,
    ) -> None:
        from quantum_trading.rl.env_config import EnvConfig
        from quantum_trading.rl.model_io import load_env_config, load_model

        if isinstance(model, str | Path):
            path = Path(model)
            self.bundle = load_model(path)
            if config is None:
                try:
                    config = EnvConfig.model_validate(load_env_config(path))
                except ValueError as exc:
                    raise ConfigError(f"{path / 'env_config.json'}: {exc}") from exc
            default_name = f"rl:{path.name if path.name != 'final' else path.parent.name}"
            self.path: Path | None = path
        else:
            self.bundle, self.path, default_name = model, None, "rl:policy"
        if config is None:
            config = EnvConfig()
        if not isinstance(config, EnvConfig):
            raise ConfigError(f"PolicyStrategy: config must be an EnvConfig, got "
                              f"{type(config).__name__}")
        self.spec: EnvSpec = self.bundle[2]
        self.config = config
        self.instruments = instruments
        self.funding = funding
        self.mark = mark
        self.name: str = name or default_name
        self.params: ParamSpace = ParamSpace({})
        self.last_rollout: Any = None

    def __repr__(self) -> str:
        return (f"PolicyStrategy(name={self.name!r}, symbols={list(self.spec.symbols)}, "
                f"action={self.spec.action!r})")

    def check_data(self, data: MarketData) -> None:
        """Raise :class:`ConfigError` naming the first field where ``data`` does not fit the
        model (asset set and order, timeframe)."""
        what = f"model {self.path}" if self.path is not None else "model"
        self.spec.check_matches(data_spec(self.spec, data), what=what)

    def backtest_kwargs(self) -> dict[str, Any]:
        """``costs``, ``account``, ``risk`` (and ``instruments`` / ``funding`` / ``mark`` when
        given) for :class:`~quantum_trading.backtest.Backtest`: the conditions the policy's
        decisions were stepped under, so the backtest reproduces the env's equity."""
        out: dict[str, Any] = {"costs": self.config.costs, "account": self.config.account,
                               "risk": self.config.risk}
        for key in ("instruments", "funding", "mark"):
            value = getattr(self, key)
            if value is not None:
                out["instrument" if key == "instruments" else key] = value
        return out

    def rollout(self, data: MarketData, *, deterministic: bool = True, seed: int | None = 0
                ) -> Rollout:
        """One episode of the policy over ``data`` under this strategy's config, instruments,
        funding and mark (:func:`~quantum_trading.rl.rollout.run_policy`): the data checked
        against the model first (:meth:`check_data`), then the policy decides at every close
        from the first bar after the warm-up. ``deterministic`` / ``seed`` as for
        ``run_policy``. Returns the :class:`~quantum_trading.rl.rollout.Rollout`."""
        from quantum_trading.rl.rollout import run_policy

        self.check_data(data)
        frames = data if isinstance(data, Mapping) else {self.spec.symbols[0]: data}
        return run_policy(self.bundle, {s: frames[s] for s in self.spec.symbols},
                          spec=self.spec, config=self.config, instruments=self.instruments,
                          funding=self.funding, mark=self.mark, deterministic=deterministic,
                          seed=seed)

    def signals(self, data: MarketData, **params: Any) -> Signals:
        """Targets per bar and asset (multiples of equity, decided at each close, filled at
        the next open; NaN before the first decision) and, for ``multi_head``, stop-loss
        distances. The episode's :class:`~quantum_trading.rl.rollout.Rollout` is kept in
        ``last_rollout`` (env equity per bar, raw actions)."""
        if params:
            raise ConfigError(f"strategy {self.name!r} has no parameters, got "
                              f"{sorted(params)}")
        self.check_data(data)  # outside the wrapping below: a data error is the caller's
        try:
            rollout = self.rollout(data, deterministic=True)
        except ConfigError:
            raise
        except Exception as exc:  # the policy's own code: name it
            raise StrategyError(self.name, f"the policy failed while stepping the env "
                                f"({type(exc).__name__}: {exc})") from exc
        self.last_rollout = rollout
        stop = (None if rollout.stop_distances is None
                else StopSpec.distance(rollout.stop_distances))
        return Signals(rollout.targets, stop_loss=stop)


def model_backtest(
    model: str | Path, data: str | Path, *, symbol: str | None = None,
    exchange: str | None = None, data_dir: str | Path | None = None,
    say: Callable[..., Any] = print,
) -> tuple[Any, str]:
    """``quantum backtest --model``: load the bundle and its bars (:func:`load_model_bars`),
    check them against the model's spec, and backtest the policy under the conditions it
    was stepped under (:meth:`PolicyStrategy.backtest_kwargs`), with the equal-weight
    buy-and-hold benchmark. ``say`` prints notes. Returns ``(BacktestResult, "<symbols>
    <timeframe>")``.

    Raises :class:`ConfigError` naming the first mismatch (e.g. ``model … was trained with
    symbols=[BTC/USDT:USDT, ETH/USDT:USDT], but the environment / data has
    symbols=[BTC/USDT:USDT]``).
    """
    from quantum_trading.backtest import Backtest

    strat = PolicyStrategy(model)
    bars, notes = load_model_bars(data, strat.spec, symbol=symbol, exchange=exchange,
                                  data_dir=data_dir)
    for note in notes:
        say(note, highlight=False, soft_wrap=True)
    strat.check_data(bars)
    cfg = strat.config
    risk = "off" if cfg.risk is None else "on"
    say(f"model: {strat.name} ({strat.spec.action} actions, max leverage "
        f"{strat.spec.max_leverage:g}); costs, account ({cfg.account.initial_cash_usd:,.0f} "
        f"USDT) and risk limits ({risk}) from its env_config.json; --fee-bps, --slippage-bps, "
        f"--leverage, --initial-cash, --risk and --no-risk do not apply", highlight=False,
        soft_wrap=True)
    result = Backtest(bars, strat, **strat.backtest_kwargs()).run()
    return result, f"{', '.join(strat.spec.symbols)} {strat.spec.timeframe}"
