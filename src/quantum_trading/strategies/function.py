"""Plain functions as strategies: ``f(df, **params) -> Series`` (the small user contract).

The function receives a copy of one asset's OHLCV frame (or of ``{symbol: frame}``) and the
validated parameters, and returns the target position per bar: a Series on the data's index
with values in {-1, 0, 1} or fractions between (``|value| <= max_abs_target``), a DataFrame
``[T, N]`` with one column per symbol for several assets, or a ready :class:`Signals`. The
position at bar t is **decided at bar t's close and filled at bar t+1's open**.

User code is wrapped as freqtrade wraps its strategies: an exception inside the function,
or an output with the wrong index, NaN, infinite or out-of-range values, becomes a
:class:`StrategyError` naming the strategy, the problem and the first offending bar.

>>> from quantum_trading.strategies import IntParam
>>> def above_sma(df, period=20):
...     return (df["close"] > df["close"].rolling(period).mean()).astype(float)
>>> strat = strategy_from_function(above_sma, {"period": IntParam(5, 100, default=20)})
>>> strat.name, strat.params.defaults()
('above_sma', {'period': 20})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.domain import Signals
from quantum_trading.errors import ConfigError
from quantum_trading.strategies.base import (
    MarketData,
    Param,
    ParamSpace,
    StrategyError,
    target_column,
)

__all__ = ["FunctionStrategy", "strategy_from_function"]


def _copy_data(data: MarketData) -> MarketData:
    if isinstance(data, pd.DataFrame):
        return data.copy()
    return {sym: frame.copy() for sym, frame in data.items()}


def _data_index(data: MarketData) -> pd.Index:
    if isinstance(data, pd.DataFrame):
        return data.index
    frames = list(data.values())
    return frames[0].index


class FunctionStrategy:
    """A plain function ``f(data, **params)`` made into a :class:`Strategy`.

    Parameters
    ----------
    func:
        ``f(df, **params) -> pd.Series`` for one asset (``df`` is a copy: changing it is
        harmless), or ``f(dict_of_frames, **params) -> pd.DataFrame`` for several. It may also
        return :class:`Signals` to set stops itself; its target is checked the same way.
    params:
        The declared parameters (a :class:`ParamSpace` or ``{name: Param}``); ``None`` = no
        parameters. Values are validated before the call and missing ones take defaults.
    name:
        Name in errors, registry and reports; default ``func.__name__``.
    max_abs_target:
        Largest allowed ``|target|`` (1.0: positions in [-1, 1]; raise it for leverage).
    allow_nan:
        Whether NaN ("no decision, keep the position") may appear in the target.

    >>> import pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC")
    >>> df = pd.DataFrame({"close": [1.0, 2.0, 3.0, 2.0]}, index=idx)
    >>> strat = FunctionStrategy(lambda df: (df["close"].diff() > 0).astype(float), name="up")
    >>> strat.signals(df).target["up"].tolist()
    [0.0, 1.0, 1.0, 0.0]
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        params: ParamSpace | Mapping[str, Param] | None = None,
        name: str | None = None,
        max_abs_target: float = 1.0,
        allow_nan: bool = False,
    ) -> None:
        if not callable(func):
            raise ConfigError(f"FunctionStrategy: func must be callable, got {type(func).__name__}")
        self.func = func
        self.params = params if isinstance(params, ParamSpace) else ParamSpace(params)
        if name is None:
            name = getattr(func, "__name__", None) or type(func).__name__
        if not isinstance(name, str) or not name:
            raise ConfigError("FunctionStrategy: name must be a non-empty string")
        self.name = name
        if not (isinstance(max_abs_target, int | float) and max_abs_target > 0
                and np.isfinite(max_abs_target)):
            raise ConfigError(f"FunctionStrategy: max_abs_target must be a finite number > 0, "
                              f"got {max_abs_target!r}")
        self.max_abs_target = float(max_abs_target)
        self.allow_nan = bool(allow_nan)

    def __repr__(self) -> str:
        return f"FunctionStrategy(name={self.name!r}, params={list(self.params)})"

    def signals(self, data: MarketData, **params: Any) -> Signals:
        """Call the function on (a copy of) ``data`` and check what it returns.

        The target at bar t is decided at bar t's close and filled at bar t+1's open.

        Raises
        ------
        ConfigError
            Unknown or out-of-range parameters (before the function runs).
        StrategyError
            The function raised (the original error is chained and named), or returned
            something that is not a valid target on the data's index.
        """
        values = self.params.validate(params)
        if not isinstance(data, pd.DataFrame | Mapping) or (
            isinstance(data, Mapping) and len(data) == 0
        ):
            raise ConfigError("data must be a DataFrame or a non-empty dict symbol -> DataFrame")
        try:
            out = self.func(_copy_data(data), **values)
        except Exception as exc:
            raise StrategyError(self.name, f"raised {type(exc).__name__}: {exc}") from exc
        if isinstance(out, Signals):
            target = out.target
            self._check_target(target, data)
            return out
        target = self._coerce(out, data)
        self._check_target(target, data)
        return Signals(target)

    # -- output checks ------------------------------------------------------------------------
    def _fail(self, problem: str) -> StrategyError:
        return StrategyError(self.name, problem)

    def _coerce(self, out: Any, data: MarketData) -> pd.DataFrame:
        index = _data_index(data)
        single = isinstance(data, pd.DataFrame)
        if single:
            if isinstance(out, pd.DataFrame):
                if out.shape[1] != 1:
                    raise self._fail(f"returned a DataFrame with {out.shape[1]} columns for one "
                                     "asset; return a Series")
                out = out.iloc[:, 0]
            if isinstance(out, np.ndarray):
                if out.ndim != 1 or len(out) != len(index):
                    raise self._fail(f"returned an array of shape {out.shape}, expected "
                                     f"({len(index)},)")
                out = pd.Series(out, index=index)
            if not isinstance(out, pd.Series):
                raise self._fail(f"returned {type(out).__name__}, expected a pandas Series of "
                                 "positions")
            self._check_index(out.index, index)
            return out.to_frame(name=target_column(data, self.name)).pipe(self._numeric)
        symbols = [str(s) for s in data]
        if isinstance(out, pd.Series) and len(symbols) == 1:
            out = out.to_frame(name=symbols[0])
        if not isinstance(out, pd.DataFrame):
            raise self._fail(f"returned {type(out).__name__} for {len(symbols)} assets, expected "
                             "a DataFrame with one column per symbol")
        self._check_index(out.index, index)
        cols = [str(c) for c in out.columns]
        if sorted(cols) != sorted(symbols):
            raise self._fail(f"returned columns {cols}, expected the symbols {symbols}")
        out = out.copy()
        out.columns = cols
        return self._numeric(out[symbols])

    def _numeric(self, frame: pd.DataFrame) -> pd.DataFrame:
        for col in frame.columns:
            dtype = frame[col].dtype
            if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
                raise self._fail(f"column {col!r} has dtype {dtype}, expected numbers")
        try:
            return frame.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise self._fail(f"values are not numbers ({exc})") from exc

    def _check_index(self, got: pd.Index, expected: pd.Index) -> None:
        if got.equals(expected):
            return
        if len(got) != len(expected):
            raise self._fail(f"returned {len(got)} rows for {len(expected)} bars; the output "
                             "must be on the data's index")
        pos = int(np.argmax(np.asarray(got != expected)))
        raise self._fail(f"output index differs from the data's index at position {pos} "
                         f"({got[pos]} instead of {expected[pos]})")

    def _check_target(self, target: pd.DataFrame, data: MarketData) -> None:
        self._check_index(target.index, _data_index(data))
        arr = target.to_numpy(dtype=np.float64)
        for j, col in enumerate(target.columns):
            x = arr[:, j]
            bad = np.isinf(x) | (np.abs(np.nan_to_num(x)) > self.max_abs_target)
            if not self.allow_nan:
                bad |= np.isnan(x)
            if bad.any():
                i = int(np.argmax(bad))
                what = "NaN" if np.isnan(x[i]) else repr(float(x[i]))
                hint = (" (fill the warm-up with 0, or pass allow_nan=True for 'no decision')"
                        if np.isnan(x[i]) else
                        f" (positions must be within ±{self.max_abs_target:g})")
                raise self._fail(f"target {what} at bar {i} ({target.index[i]}) in column "
                                 f"{col!r}{hint}")


def strategy_from_function(
    func: Callable[..., Any],
    params: ParamSpace | Mapping[str, Param] | None = None,
    name: str | None = None,
    *,
    max_abs_target: float = 1.0,
    allow_nan: bool = False,
) -> FunctionStrategy:
    """Wrap ``func(df, **params) -> Series`` as a :class:`Strategy` (see
    :class:`FunctionStrategy`).

    >>> import pandas as pd
    >>> from quantum_trading.strategies import IntParam
    >>> def rising(df, lookback=3):
    ...     return (df["close"] > df["close"].shift(lookback)).astype(float)
    >>> s = strategy_from_function(rising, {"lookback": IntParam(1, 50, default=3)})
    >>> idx = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC")
    >>> df = pd.DataFrame({"close": [3.0, 1.0, 2.0, 4.0, 5.0]}, index=idx)
    >>> s.signals(df, lookback=1).target["rising"].tolist()
    [0.0, 0.0, 1.0, 1.0, 1.0]
    """
    return FunctionStrategy(func, params=params, name=name, max_abs_target=max_abs_target,
                            allow_nan=allow_nan)
