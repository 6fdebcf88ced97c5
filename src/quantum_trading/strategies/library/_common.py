"""What the library strategies share: direction / size / stop parameters, input checks, the
per-asset dispatch and the entry/exit state machine.

A library rule defines four boolean event arrays on one asset's bars (long entry, long exit,
short entry, short exit) and a "ready" mask (its indicators are warm), computed on numpy arrays
with the indicator kernels (``*_nb``): the live trader calls a strategy on every bar, and
pandas' per-operation overhead would cost more than the rule itself. This module turns them
into a clean position series ``{-1, 0, +1} × size`` with
:func:`~quantum_trading.strategies.positions_nb.position_from_entries_exits_nb` (0 during the
warm-up; entries only where the rule, and the ATR of ATR-based stops, are ready), and builds
the stop-loss / take-profit :class:`~quantum_trading.domain.StopSpec`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from quantum_trading.domain import Signals, StopSpec
from quantum_trading.errors import ConfigError, DataError
from quantum_trading.features._validation import check_series
from quantum_trading.features.volatility_nb import atr_nb
from quantum_trading.strategies.base import (
    CategoricalParam,
    Constraint,
    FloatParam,
    IntParam,
    MarketData,
    Param,
    ParamSpace,
    target_column,
)
from quantum_trading.strategies.library.stepping import EventStep, SignalStepper
from quantum_trading.strategies.positions_nb import position_from_entries_exits_nb

__all__ = [
    "DIRECTION_PARAM",
    "SIZE_PARAM",
    "STOP_CONSTRAINTS",
    "STOP_PARAMS",
    "AssetSignals",
    "Events",
    "LibraryStrategy",
    "float_columns",
    "input_columns",
    "ohlcv_frame",
    "shift_one",
]

DIRECTION_PARAM = CategoricalParam(
    ("long", "short", "both"), default="long", optimize=False,
    doc="which side may be traded: long only, short only, or both (perps)",
)
SIZE_PARAM = FloatParam(
    0.1, 3.0, default=1.0, optimize=False,
    doc="target exposure while in a position, as a multiple of equity",
)
STOP_PARAMS: dict[str, Param] = {
    "stop_loss_pct": FloatParam(
        0.0, 50.0, default=0.0, optimize=False,
        doc="stop-loss distance in % of the entry fill price; 0 = none"),
    "take_profit_pct": FloatParam(
        0.0, 200.0, default=0.0, optimize=False,
        doc="take-profit distance in % of the entry fill price; 0 = none"),
    "stop_loss_atr": FloatParam(
        0.0, 10.0, default=0.0, optimize=False,
        doc="stop-loss distance as a multiple of the ATR at the decision bar; 0 = none"),
    "take_profit_atr": FloatParam(
        0.0, 20.0, default=0.0, optimize=False,
        doc="take-profit distance as a multiple of the ATR at the decision bar; 0 = none"),
    "atr_period": IntParam(
        2, 100, default=14, optimize=False, doc="ATR period (bars) for the ATR-based stops"),
}
STOP_CONSTRAINTS = (
    Constraint("stop_loss_pct and stop_loss_atr not both set",
               lambda p: not (p["stop_loss_pct"] > 0 and p["stop_loss_atr"] > 0)),
    Constraint("take_profit_pct and take_profit_atr not both set",
               lambda p: not (p["take_profit_pct"] > 0 and p["take_profit_atr"] > 0)),
)

_OHLCV = ("open", "high", "low", "close", "volume")
_ATR_INPUTS = ("high", "low", "close")


def ohlcv_frame(frame: Any, strategy: str, columns: tuple[str, ...] = _OHLCV) -> pd.DataFrame:
    """``frame`` checked to be a DataFrame with a DatetimeIndex and ``columns``.

    Raises :class:`DataError` naming the strategy and the missing column (and
    :class:`ConfigError` when ``frame`` is not a DataFrame).
    """
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"strategy {strategy!r}: data must be a DataFrame or a dict symbol -> "
                          f"DataFrame, got {type(frame).__name__}")
    for col in columns:
        if col not in frame.columns:
            raise DataError(f"strategy {strategy!r}: no data",
                            source=str(frame.attrs.get("source", "")) or None, column=col)
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise DataError(f"strategy {strategy!r} needs a DatetimeIndex (bar open times), got "
                        f"{type(frame.index).__name__}")
    return frame


def float_columns(frame: pd.DataFrame, names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """The columns ``names`` of a checked ``frame`` as contiguous float64 arrays (NA -> NaN),
    as the indicator API converts its inputs.

    Read through ``frame.to_numpy()``, which is free for the usual all-float64 frame (one
    block, as the live trader's window), instead of building a Series per column (about
    15 µs each). Frames holding other dtypes (NA-able, text) are converted column by column.
    """
    values = frame.to_numpy()
    if values.dtype == np.float64:
        locs = [frame.columns.get_loc(name) for name in names]
        if all(isinstance(loc, int) for loc in locs):
            return tuple(np.ascontiguousarray(values[:, loc]) for loc in locs)
    return tuple(check_series(frame[name], name) for name in names)


def shift_one(x: np.ndarray) -> np.ndarray:
    """``x`` one bar later along its last axis (NaN at bar 0), as pandas' ``shift(1)``."""
    out = np.empty_like(x)
    out[..., :1] = np.nan
    out[..., 1:] = x[..., :-1]
    return out


class Events(NamedTuple):
    """Boolean event arrays of one asset (one value per bar) and the rule's warm-up mask."""

    long_entry: np.ndarray
    long_exit: np.ndarray
    short_entry: np.ndarray
    short_exit: np.ndarray
    ready: np.ndarray


class AssetSignals(NamedTuple):
    """One asset's target (float64 array, one value per bar) and stops, before the assets
    are put together."""

    target: np.ndarray
    stop_loss: StopSpec | None
    take_profit: StopSpec | None


def _bools(x: np.ndarray | pd.Series) -> np.ndarray:
    """A contiguous bool array (a Series' missing values are False)."""
    if isinstance(x, pd.Series):
        x = x.to_numpy(dtype=np.bool_, na_value=False)
    return np.ascontiguousarray(x, dtype=np.bool_)


def _atr_stops(p: Mapping[str, Any]) -> bool:
    return p.get("stop_loss_atr", 0.0) > 0 or p.get("take_profit_atr", 0.0) > 0


def input_columns(required: tuple[str, ...], p: Mapping[str, Any]) -> tuple[str, ...]:
    """The columns a rule reads with parameters ``p``: its ``required`` ones, plus high, low
    and close when a stop is a multiple of the ATR."""
    if not _atr_stops(p):
        return required
    return required + tuple(c for c in _ATR_INPUTS if c not in required)


def _stop(pct: float, atr_mult: float, atr_values: np.ndarray | None, index: pd.Index,
          name: str) -> StopSpec | None:
    """A % stop, or ``atr_mult`` × the ATR at the decision bar (``atr_values``: NaN where
    the ATR is not > 0, i.e. no stop), as :meth:`StopSpec.atr` makes it."""
    if pct > 0:
        return StopSpec.fraction(pct / 100.0)
    if atr_mult > 0 and atr_values is not None:
        return StopSpec.distance(pd.Series(atr_values * float(atr_mult), index=index, name=name))
    return None


@functools.lru_cache(maxsize=256)
def _column_index(names: tuple[str, ...]) -> pd.Index:
    return pd.Index(list(names))


def _target_frame(targets: list[np.ndarray], index: pd.Index, names: list[str]) -> pd.DataFrame:
    """The targets as one column per asset. Building a text column index costs about 30 µs,
    so each is built once and the frame gets a (shallow, cheap) copy of it."""
    values = targets[0].reshape(-1, 1) if len(targets) == 1 else np.column_stack(targets)
    return pd.DataFrame(values, index=index, columns=_column_index(tuple(names)).copy(),
                        copy=False)


def _combine_stops(specs: list[StopSpec | None], symbols: list[str], index: pd.Index
                   ) -> StopSpec | None:
    if specs[0] is None:
        return None
    kind = specs[0].kind
    values = [s.value for s in specs if s is not None]
    if all(not isinstance(v, pd.Series | pd.DataFrame) for v in values) and len(set(values)) == 1:
        return StopSpec(kind, values[0])
    frame = pd.DataFrame(
        {sym: (v if isinstance(v, pd.Series) else pd.Series(float(v), index=index))
         for sym, v in zip(symbols, values, strict=True)},
        index=index,
    )
    return StopSpec(kind, frame)


class LibraryStrategy:
    """Base of the library strategies: parameter validation, one- or many-asset dispatch,
    entry/exit state machine, size and stops.

    Subclasses set ``name`` and ``params`` and implement :meth:`events` (or, for rules that
    are not entry/exit machines, :meth:`asset_signals`).
    """

    name: str = ""
    params: ParamSpace = ParamSpace()
    required_columns: tuple[str, ...] = _OHLCV

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def events(self, frame: pd.DataFrame, p: Mapping[str, Any]) -> Events:
        """The rule's events on one asset's bars (all known at bar t's close), as arrays."""
        raise NotImplementedError

    def event_stepper(self, p: Mapping[str, Any]) -> EventStep | None:
        """The rule's :meth:`events` one bar at a time, with its own indicator state (see
        :mod:`~quantum_trading.strategies.library.stepping`), or None when the rule is only
        vectorised (the default). The live trader steps a rule that has one instead of
        recomputing its whole history each bar."""
        return None

    def stepper(self, p: Mapping[str, Any]) -> SignalStepper | None:
        """A fresh :class:`~quantum_trading.strategies.library.stepping.SignalStepper` of one
        asset with parameters ``p`` (validated): the targets of :meth:`asset_signals`, bar
        by bar. None when the rule has no :meth:`event_stepper`, overrides
        :meth:`asset_signals`, or has ATR stops."""
        if type(self).asset_signals is not LibraryStrategy.asset_signals or _atr_stops(p):
            return None
        events = self.event_stepper(p)
        return None if events is None else SignalStepper(events, p)

    def asset_signals(self, frame: pd.DataFrame, p: Mapping[str, Any]) -> AssetSignals:
        """Target and stops of one asset: the entry/exit state machine on :meth:`events`.

        ``frame`` has been checked by :meth:`signals` (the rule's columns, and high, low and
        close for ATR-based stops).
        """
        ev = self.events(frame, p)
        atr_values = None
        atr_name = ""
        ok = _bools(ev.ready)
        if _atr_stops(p):
            period = int(p["atr_period"])
            values = atr_nb(*float_columns(frame, _ATR_INPUTS), period, np.empty(len(frame)))
            positive = values > 0.0
            ok = ok & positive
            atr_values = np.where(positive, values, np.nan)
            atr_name = f"atr_{period}"
        direction = p.get("direction", "long")
        zeros = np.zeros(len(frame), dtype=np.bool_)
        long_entry = _bools(ev.long_entry) & ok if direction != "short" else zeros
        short_entry = _bools(ev.short_entry) & ok if direction != "long" else zeros
        pos = position_from_entries_exits_nb(
            long_entry, _bools(ev.long_exit), short_entry, _bools(ev.short_exit)
        )
        target = pos * float(p.get("size", 1.0)) + 0.0
        sl = _stop(p.get("stop_loss_pct", 0.0), p.get("stop_loss_atr", 0.0), atr_values,
                   frame.index, atr_name)
        tp = _stop(p.get("take_profit_pct", 0.0), p.get("take_profit_atr", 0.0), atr_values,
                   frame.index, atr_name)
        return AssetSignals(target, sl, tp)

    def signals(self, data: MarketData, **params: Any) -> Signals:
        """Target exposure per bar (and asset), decided at bar t's close, filled at t+1's open.

        ``data`` is one OHLCV frame or ``{symbol: frame}`` sharing one index (the rule runs on
        each asset alone; the target has one column per symbol). Missing parameters take
        their defaults; unknown or out-of-range ones raise :class:`ConfigError`.
        """
        p = self.params.validate(params)
        columns = input_columns(self.required_columns, p)
        if isinstance(data, Mapping):
            if len(data) == 0:
                raise ConfigError(f"strategy {self.name!r}: no assets in data")
            symbols = [str(s) for s in data]
            frames = [ohlcv_frame(f, self.name, columns) for f in data.values()]
            index = frames[0].index
            for sym, f in zip(symbols[1:], frames[1:], strict=True):
                if not f.index.equals(index):
                    raise DataError(f"strategy {self.name!r}: bar index differs from "
                                    f"{symbols[0]}'s", source=sym)
            per_asset = [self.asset_signals(f, p) for f in frames]
            return Signals(
                _target_frame([a.target for a in per_asset], index, symbols),
                stop_loss=_combine_stops([a.stop_loss for a in per_asset], symbols, index),
                take_profit=_combine_stops([a.take_profit for a in per_asset], symbols, index),
            )
        frame = ohlcv_frame(data, self.name, columns)
        one = self.asset_signals(frame, p)
        target = _target_frame([one.target], frame.index, [target_column(frame, self.name)])
        return Signals(target, stop_loss=one.stop_loss, take_profit=one.take_profit)
