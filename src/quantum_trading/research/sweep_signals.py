"""Vectorised target builders: the targets of many parameter sets of one strategy at once.

A sweep (:mod:`quantum_trading.research.sweep`) batches a strategy when it has a builder
registered here (:func:`register_batch_signals`; the library's ``trend_following`` and
``momentum_breakout`` are registered below). A builder's ``plan`` computes each indicator
**once per distinct parameter value** over the grid (every EMA period, every Donchian window,
every volume-mean period) with the same :mod:`quantum_trading.features` functions the strategy
calls, and returns a ``fill`` that writes the targets of a batch of parameter sets in one
numba kernel (``prange`` over sets, the strategy's own entry/exit state machine,
:mod:`~quantum_trading.research.sweep_nb`).

Row ``j`` of ``fill(indices, out)`` equals ``strategy.signals(frame, **sets[indices[j]])
.target``: a target fraction of equity per bar, decided at bar t's close (the simulator fills
it at bar t+1's open). Building the targets of 1,000 sets × 100,000 bars takes about a
second on one core.

>>> from quantum_trading.data import generate_market
>>> from quantum_trading.strategies import get_strategy
>>> import numpy as np
>>> bars = generate_market(n_assets=1, n_bars=300, seed=3).ohlcv["BTC/USDT:USDT"]
>>> strat = get_strategy("trend_following")
>>> sets = [strat.params.validate({"fast": f, "slow": 50}) for f in (10, 20)]
>>> out = np.empty((2, len(bars)))
>>> batch_signals_for(strat).plan(bars, sets)(np.arange(2), out)
>>> bool(np.array_equal(out[1], strat.signals(bars, **sets[1]).target.iloc[:, 0].to_numpy()))
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import pandas as pd

from quantum_trading.errors import ConfigError
from quantum_trading.features import atr, donchian_channel, ema, sma
from quantum_trading.research import sweep_nb as k
from quantum_trading.strategies import MomentumBreakout, Strategy, TrendFollowing

__all__ = ["BatchSignals", "Fill", "batch_signals_for", "register_batch_signals"]

Fill = Callable[[np.ndarray, np.ndarray], None]
"""``fill(indices, out)``: write the targets of parameter sets ``indices`` into
``out[len(indices), T]``."""


@dataclass(frozen=True)
class BatchSignals:
    """A strategy's vectorised target builder for sweeps.

    Attributes
    ----------
    strategy_type:
        The strategy class it was written for (a registered name is only batched when the
        strategy is an instance of it).
    varying:
        Parameters that may differ between the parameter sets of one sweep; every other
        parameter must be the same in all of them (the stop-loss / take-profit arrays are
        taken from the first set's signals).
    plan:
        ``plan(frame, param_sets) -> fill``: computes what the sets share (indicators once per
        distinct value) and returns ``fill(indices, out)``, which writes the target each set
        ``i`` in ``indices`` gives — equal to ``strategy.signals(frame, **param_sets[i])
        .target`` — into row ``out[j]``.
    """

    strategy_type: type
    varying: frozenset[str]
    plan: Callable[[pd.DataFrame, Sequence[Mapping[str, Any]]], Fill]


_BATCH: dict[str, BatchSignals] = {}


def register_batch_signals(name: str, builder: BatchSignals) -> None:
    """Use ``builder`` to batch sweeps of the strategy named ``name``."""
    if not isinstance(builder, BatchSignals):
        raise ConfigError("register_batch_signals: builder must be a BatchSignals")
    _BATCH[name] = builder


def batch_signals_for(strategy: Strategy) -> BatchSignals | None:
    """The registered builder of ``strategy`` (None if it has none)."""
    builder = _BATCH.get(getattr(strategy, "name", ""))
    if builder is None or not isinstance(strategy, builder.strategy_type):
        return None
    return builder


_DIRECTIONS = {"long": k.DIR_LONG, "short": k.DIR_SHORT, "both": k.DIR_BOTH}


def _common(frame: pd.DataFrame, sets: Sequence[Mapping[str, Any]]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Direction codes, sizes and the readiness mask of the ATR stops (as the library does:
    entries only where the ATR of ATR-based stops is > 0)."""
    direction = np.array([_DIRECTIONS[p.get("direction", "long")] for p in sets], dtype=np.int64)
    size = np.array([float(p.get("size", 1.0)) for p in sets], dtype=np.float64)
    p0 = sets[0]
    if p0.get("stop_loss_atr", 0.0) > 0 or p0.get("take_profit_atr", 0.0) > 0:
        values = atr(frame["high"], frame["low"], frame["close"], p0["atr_period"])
        ready = np.ascontiguousarray(values.gt(0.0).to_numpy(dtype=np.bool_))
    else:
        ready = np.ones(len(frame), dtype=np.bool_)
    return direction, size, ready


def _chunks(n_sets: int) -> int:
    """Parallel chunks of a target batch: a few per numba thread."""
    return max(1, min(n_sets, 4 * numba.get_num_threads()))


def _rows(values: list[int]) -> tuple[dict[int, int], list[int]]:
    distinct = sorted(set(values))
    return {v: j for j, v in enumerate(distinct)}, distinct


def _trend_plan(frame: pd.DataFrame, sets: Sequence[Mapping[str, Any]]) -> Fill:
    close = frame["close"]
    row, periods = _rows([p["fast"] for p in sets] + [p["slow"] for p in sets])
    table = np.empty((len(periods), len(frame)))
    for j, n in enumerate(periods):
        table[j] = ema(close, n).to_numpy(dtype=np.float64)
    fast = np.array([row[p["fast"]] for p in sets], dtype=np.int64)
    slow = np.array([row[p["slow"]] for p in sets], dtype=np.int64)
    direction, size, ready = _common(frame, sets)

    def fill(idx: np.ndarray, out: np.ndarray) -> None:
        k.ema_cross_targets_nb(table, fast[idx], slow[idx], direction[idx], size[idx], ready,
                               _chunks(len(idx)), out)

    return fill


def _breakout_plan(frame: pd.DataFrame, sets: Sequence[Mapping[str, Any]]) -> Fill:
    high, low = frame["high"], frame["low"]
    wrow, windows = _rows([p["lookback"] for p in sets] + [p["exit_lookback"] for p in sets])
    upper = np.empty((len(windows), len(frame)))
    lower = np.empty((len(windows), len(frame)))
    for j, n in enumerate(windows):
        dc = donchian_channel(high, low, n).shift(1)
        upper[j] = dc["dc_upper"].to_numpy(dtype=np.float64)
        lower[j] = dc["dc_lower"].to_numpy(dtype=np.float64)
    vrow, vperiods = _rows([p["volume_period"] for p in sets])
    vol_mean = np.empty((len(vperiods), len(frame)))
    for j, n in enumerate(vperiods):
        vol_mean[j] = sma(frame["volume"], n).shift(1).to_numpy(dtype=np.float64)
    entry = np.array([wrow[p["lookback"]] for p in sets], dtype=np.int64)
    exit_ = np.array([wrow[p["exit_lookback"]] for p in sets], dtype=np.int64)
    vol = np.array([vrow[p["volume_period"]] for p in sets], dtype=np.int64)
    factor = np.array([float(p["volume_factor"]) for p in sets], dtype=np.float64)
    direction, size, ready = _common(frame, sets)
    close = np.ascontiguousarray(frame["close"].to_numpy(dtype=np.float64))
    volume = np.ascontiguousarray(frame["volume"].to_numpy(dtype=np.float64))

    def fill(idx: np.ndarray, out: np.ndarray) -> None:
        k.breakout_targets_nb(close, volume, upper, lower, vol_mean, entry[idx], exit_[idx],
                              vol[idx], factor[idx], direction[idx], size[idx], ready,
                              _chunks(len(idx)), out)

    return fill


register_batch_signals("trend_following", BatchSignals(
    TrendFollowing, frozenset({"fast", "slow", "direction", "size"}), _trend_plan))
register_batch_signals("momentum_breakout", BatchSignals(
    MomentumBreakout,
    frozenset({"lookback", "exit_lookback", "volume_factor", "volume_period", "direction",
               "size"}),
    _breakout_plan))

