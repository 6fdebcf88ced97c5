"""The backtest runner: strategy → signals → the one simulator → trade log and statistics.

Timing (the simulator's contract, see ``docs/simulator.md``): the target a strategy decides
at bar t's close fills at bar t+1's open; stops, take-profits and liquidations are checked
against each later bar's high/low; funding is settled at the open of the bar that contains
the settlement time. Fills are never re-implemented here: :func:`quantum_trading.sim.simulate`
does all of it, for the strategy and for the buy-and-hold benchmark alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.backtest import metrics as m
from quantum_trading.backtest.result import BacktestResult
from quantum_trading.backtest.stats import compute_stats
from quantum_trading.backtest.trades import trade_log
from quantum_trading.domain import INSTRUMENT_PRESETS, Instrument, Signals, default_instrument
from quantum_trading.errors import ConfigError
from quantum_trading.risk.config import load_risk_config
from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig, SimResult, simulate
from quantum_trading.strategies import (
    BuyAndHold,
    Strategy,
    resolve_strategy,
)

__all__ = ["PRESETS", "Backtest", "default_instrument"]

PRESETS = INSTRUMENT_PRESETS
"""Instruments used when none is given (see :data:`~quantum_trading.domain.INSTRUMENT_PRESETS`)."""

_DEFAULT_COSTS = CostsConfig()
_DEFAULT_ACCOUNT = AccountConfig()
_DEFAULT_RISK = RiskConfig()
_PRICES = ("open", "high", "low", "close")
_DEFAULT_SYMBOL = "ASSET"

StrategyLike = Strategy | str | Callable[..., Any]


def _bad(name: str, why: str) -> ConfigError:
    return ConfigError(f"Backtest: {name} {why}")


def _check_frame(frame: Any, name: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise _bad(name, f"must be an OHLCV DataFrame, got {type(frame).__name__}")
    if not isinstance(frame.index, pd.DatetimeIndex) or frame.index.tz is None:
        raise _bad(name, "must have a tz-aware UTC DatetimeIndex of bar open times")
    missing = [c for c in _PRICES if c not in frame.columns]
    if missing:
        raise _bad(name, f"has no column {', '.join(missing)} (needs open, high, low, close)")
    if len(frame) < 2:
        raise _bad(name, f"needs at least 2 bars, got {len(frame)}")


def _resolve_data(data: Any) -> dict[str, pd.DataFrame]:
    if isinstance(data, pd.DataFrame):
        _check_frame(data, "data")
        symbol = str(data.attrs.get("symbol") or _DEFAULT_SYMBOL)
        return {symbol: data}
    if isinstance(data, Mapping):
        if len(data) == 0:
            raise _bad("data", "must not be an empty dict")
        out: dict[str, pd.DataFrame] = {}
        for sym, frame in data.items():
            if not isinstance(sym, str) or not sym:
                raise _bad("data", f"keys must be symbols (non-empty strings), got {sym!r}")
            _check_frame(frame, f"data[{sym!r}]")
            out[sym] = frame
        first = next(iter(out.values())).index
        for sym, frame in out.items():
            if not frame.index.equals(first):
                raise _bad(f"data[{sym!r}]", "must share one bar index with the other symbols")
        return out
    raise _bad("data", f"must be a DataFrame or a dict symbol -> DataFrame, got "
               f"{type(data).__name__}")


def _resolve_strategy(strategy: Any, name: str = "strategy") -> Strategy:
    try:
        return resolve_strategy(strategy)
    except ConfigError as exc:
        raise ConfigError(f"Backtest: {name}: {exc}") from None


def _resolve_instruments(instrument: Any, symbols: list[str]) -> dict[str, Instrument]:
    if instrument is None:
        return {s: default_instrument(s) for s in symbols}
    if isinstance(instrument, Instrument):
        if len(symbols) != 1:
            raise _bad("instrument", "must be a dict symbol -> Instrument for several symbols")
        return {symbols[0]: instrument}
    if isinstance(instrument, Mapping):
        out = {}
        for s in symbols:
            inst = instrument.get(s)
            if inst is None:
                inst = default_instrument(s)
            if not isinstance(inst, Instrument):
                raise _bad("instrument", f"for {s!r} must be an Instrument, got "
                           f"{type(inst).__name__}")
            out[s] = inst
        unknown = sorted(set(instrument) - set(symbols))
        if unknown:
            raise _bad("instrument", f"names symbols not in the data: {unknown}")
        return out
    raise _bad("instrument", f"must be an Instrument, a dict symbol -> Instrument or None, got "
               f"{type(instrument).__name__}")


def _check_leverage(account: AccountConfig, instruments: dict[str, Instrument]) -> None:
    lev = account.leverage
    if isinstance(lev, dict):
        unknown = sorted(set(lev) - set(instruments))
        if unknown:
            raise _bad("account", f"leverage names symbols not in the data: {unknown}")
    for sym, inst in instruments.items():
        value = lev.get(sym, 1.0) if isinstance(lev, dict) else lev
        if value > inst.max_leverage:
            raise _bad("account", f"leverage {value:g} for {sym!r} is above the instrument's "
                       f"max_leverage {inst.max_leverage:g}")


class Backtest:
    """Backtest a strategy on perpetual-futures bars with the one simulator.

    Parameters
    ----------
    data:
        One asset's OHLCV frame (UTC ``DatetimeIndex`` of bar open times; optional
        ``funding_rate`` / ``mark_price`` columns as
        :func:`~quantum_trading.data.join_funding` / :func:`~quantum_trading.data.join_mark`
        write them; the symbol from ``attrs["symbol"]``), or ``{symbol: frame}`` on one index.
    strategy:
        A :class:`~quantum_trading.strategies.Strategy`, a registered name
        (``"momentum_breakout"``) or a plain function ``f(df) -> Series`` of positions in
        [-1, 1] (wrapped by :func:`~quantum_trading.strategies.strategy_from_function`
        without parameters; wrap it yourself to declare some).
    instrument:
        An :class:`~quantum_trading.domain.Instrument` (one asset) or ``{symbol: Instrument}``;
        None (and symbols missing from the dict) → :func:`default_instrument`.
    costs, account:
        :class:`~quantum_trading.sim.CostsConfig` and :class:`~quantum_trading.sim.AccountConfig`
        (leverage checked against each instrument here).
    params:
        Strategy parameters; validated against the strategy's ``ParamSpace`` (unknown or out
        of range → :class:`ConfigError` naming the parameter), defaults fill the rest.
    funding, mark:
        Funding settlements and mark prices at their times (see
        :func:`~quantum_trading.sim.simulate`); default: the frame's columns, else the
        simulator's default funding schedule.
    benchmark:
        Strategy run through the same simulator, costs and account for
        ``Buy & Hold Return [%]`` (default ``"buy_and_hold"``, equal weights ``1/N`` for N
        symbols); None = no benchmark.
    risk:
        The risk engine's limits (:class:`~quantum_trading.sim.RiskConfig`, a dict or a YAML
        path): every order of the strategy passes them inside the simulator, as in paper and
        live trading. Default: ``RiskConfig()`` (10 % of equity per position, daily −5 %,
        weekly −15 %, drawdown −20 %); None = no risk engine (e.g. for parity with other
        backtesters). The benchmark always runs without it.

    Every argument is checked here; a bad one raises :class:`ConfigError` naming it.

    >>> from quantum_trading.data import generate_market
    >>> bars = generate_market(n_assets=1, n_bars=500, seed=1).ohlcv["BTC/USDT:USDT"]
    >>> bt = Backtest(bars, "trend_following", params={"fast": 10, "slow": 50})
    >>> result = bt.run()
    >>> result.symbols, "Sharpe Ratio" in result.stats
    (('BTC/USDT:USDT',), True)
    >>> Backtest(bars, "trend_following", params={"fastest": 3})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    quantum_trading.errors.ConfigError: Backtest: params: unknown parameter 'fastest' (known parameters: fast, slow, ...)
    """

    def __init__(
        self,
        data: pd.DataFrame | Mapping[str, pd.DataFrame],
        strategy: StrategyLike,
        *,
        instrument: Instrument | Mapping[str, Instrument] | None = None,
        costs: CostsConfig = _DEFAULT_COSTS,
        account: AccountConfig = _DEFAULT_ACCOUNT,
        params: Mapping[str, Any] | None = None,
        funding: pd.Series | pd.DataFrame | Mapping[str, Any] | None = None,
        mark: pd.Series | pd.DataFrame | Mapping[str, Any] | None = None,
        benchmark: StrategyLike | None = "buy_and_hold",
        risk: RiskConfig | Mapping[str, Any] | str | Path | None = _DEFAULT_RISK,
    ) -> None:
        self.bars = _resolve_data(data)
        self.symbols = tuple(self.bars)
        self.strategy = _resolve_strategy(strategy)
        if not isinstance(costs, CostsConfig):
            raise _bad("costs", f"must be a CostsConfig, got {type(costs).__name__}")
        if not isinstance(account, AccountConfig):
            raise _bad("account", f"must be an AccountConfig, got {type(account).__name__}")
        self.costs = costs
        self.account = account
        self.instruments = _resolve_instruments(instrument, list(self.symbols))
        _check_leverage(account, self.instruments)
        if params is not None and not isinstance(params, Mapping):
            raise _bad("params", f"must be a dict name -> value, got {type(params).__name__}")
        try:
            self.params = self.strategy.params.validate(dict(params or {}))
        except ConfigError as exc:
            raise ConfigError(f"Backtest: params: {exc}") from None
        for name, value in (("funding", funding), ("mark", mark)):
            if value is not None and not isinstance(value, pd.Series | pd.DataFrame | Mapping):
                raise _bad(name, f"must be a Series, a DataFrame or a dict symbol -> series, "
                           f"got {type(value).__name__}")
        self.funding = funding
        self.mark = mark
        self.benchmark = None if benchmark is None else _resolve_strategy(benchmark, "benchmark")
        try:
            self.risk = None if risk is None else load_risk_config(risk)
        except ConfigError as exc:
            raise ConfigError(f"Backtest: risk: {exc}") from None

    def __repr__(self) -> str:
        return (f"Backtest(strategy={self.strategy.name!r}, symbols={list(self.symbols)}, "
                f"params={self.params})")

    def strategy_data(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """What the strategy sees in :meth:`run`: the frame for one symbol (``attrs["symbol"]``
        set), else the dict symbol → frame."""
        if len(self.symbols) == 1:
            sym = self.symbols[0]
            frame = self.bars[sym]
            if frame.attrs.get("symbol") != sym:
                frame = frame.copy()
                frame.attrs["symbol"] = sym
            return frame
        return dict(self.bars)

    def _simulate(self, data: pd.DataFrame | dict[str, pd.DataFrame],
                  signals: Signals, *, risk: RiskConfig | None = None) -> SimResult:
        return simulate(data, signals, instruments=self.instruments, costs=self.costs,
                        account=self.account, funding=self.funding, mark=self.mark, risk=risk)

    def _benchmark_signals(self, data: pd.DataFrame | dict[str, pd.DataFrame]) -> Signals:
        assert self.benchmark is not None
        sig = self.benchmark.signals(data)
        if isinstance(self.benchmark, BuyAndHold) and len(self.symbols) > 1:
            sig = Signals(sig.target / len(self.symbols))  # equal weights, total 1× equity
        return sig

    def run(self) -> BacktestResult:
        """Signals → :func:`~quantum_trading.sim.simulate` → trade log → statistics.

        Returns
        -------
        BacktestResult
            The simulation, the trade log, the benchmark run and the stats Series.

        Raises
        ------
        StrategyError
            The strategy failed or returned an unusable target.
        DataError, ConfigError
            The simulator rejected the bars or the settings.
        """
        data = self.strategy_data()
        signals = self.strategy.signals(data, **self.params)
        sim = self._simulate(data, signals, risk=self.risk)
        bench = None
        if self.benchmark is not None:
            bench = self._simulate(data, self._benchmark_signals(data))
        trades = trade_log(sim)
        ppy = m.periods_per_year(sim.index)
        stats = compute_stats(sim, trades, benchmark_equity=None if bench is None else bench.equity,
                              periods=ppy)
        bars = {s: (data if isinstance(data, pd.DataFrame) else data[s]) for s in self.symbols}
        return BacktestResult(
            strategy=self.strategy.name,
            params=dict(self.params),
            symbols=tuple(sim.symbols),
            bars=bars,
            signals=signals,
            sim=sim,
            trades=trades,
            stats=stats,
            periods_per_year=float(ppy) if np.isfinite(ppy) else float("nan"),
            benchmark=bench,
            benchmark_name="" if self.benchmark is None else self.benchmark.name,
            instruments=dict(self.instruments),
            costs=self.costs,
            account=self.account,
            risk=self.risk,
        )
