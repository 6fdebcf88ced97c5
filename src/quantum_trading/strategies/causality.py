"""The causality check: a strategy's decision for bar t may not depend on bars after t.

Signals are computed once on all the data and again on prefixes ``data[:t]`` (the first t
bars, as a live trader would see them when bar t-1 has just closed). Every row the prefix
run produces must equal the same row of the full run, exactly (NaN equals NaN): the target
of every asset and the stop-loss / take-profit / trailing-stop values and kinds. A strategy
that looks ahead (``close.shift(-1)``, a centred window, a full-sample normalisation) changes
its past decisions when the future is cut off, and fails with a :class:`CausalityError`
naming the first bar that changed.

>>> import pandas as pd
>>> from quantum_trading.strategies import get_strategy
>>> idx = pd.date_range("2024-01-01", periods=300, freq="1h", tz="UTC")
>>> close = pd.Series(range(300), index=idx, dtype=float) % 37 + 100
>>> df = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close,
...                    "volume": 1.0 + close % 5})
>>> check_causality(get_strategy("trend_following"), df, cut_points=[100, 200])
(100, 200)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.domain import Signals, StopSpec
from quantum_trading.errors import ConfigError
from quantum_trading.strategies.base import MarketData, Strategy, StrategyError

__all__ = ["CausalityError", "check_causality"]


class CausalityError(StrategyError):
    """A strategy's signal for some bar changed when later bars were removed (look-ahead).

    Attributes
    ----------
    strategy:
        The strategy's name.
    position, timestamp:
        The first bar (0-based position and its index label) whose signal differs.
    column:
        What differs: ``"target[<column>]"``, ``"stop_loss[<column>]"``, ``"take_profit"`` …
    cut:
        The prefix length (number of bars) whose run disagreed with the full run.
    full_value, prefix_value:
        The value computed on all data and on the prefix.
    """

    def __init__(
        self,
        strategy: str,
        *,
        position: int | None,
        timestamp: Any,
        column: str,
        cut: int,
        full_value: Any = None,
        prefix_value: Any = None,
        problem: str | None = None,
    ) -> None:
        self.position = position
        self.timestamp = timestamp
        self.column = column
        self.cut = cut
        self.full_value = full_value
        self.prefix_value = prefix_value
        if problem is None:
            problem = (f"{full_value!r} on all data but {prefix_value!r} on the first {cut} bars")
        where = f"bar {position} ({timestamp})" if position is not None else "the output"
        super().__init__(strategy, f"not causal: {column} at {where} differs: {problem}")


def _length_and_index(data: MarketData) -> pd.Index:
    if isinstance(data, pd.DataFrame):
        return data.index
    if not isinstance(data, Mapping) or len(data) == 0:
        raise ConfigError("data must be a DataFrame or a non-empty dict symbol -> DataFrame")
    frames = list(data.values())
    index = frames[0].index
    for sym, frame in data.items():
        if not frame.index.equals(index):
            raise ConfigError(f"check_causality: the index of {sym!r} differs from the first "
                              "asset's; assets must share one index")
    return index


def _prefix(data: MarketData, t: int) -> MarketData:
    if isinstance(data, pd.DataFrame):
        return data.iloc[:t]
    return {sym: frame.iloc[:t] for sym, frame in data.items()}


def _resolve_cuts(cut_points: int | Sequence[int | pd.Timestamp], index: pd.Index) -> list[int]:
    n = len(index)
    if isinstance(cut_points, int | np.integer) and not isinstance(cut_points, bool):
        if cut_points < 1:
            raise ConfigError(f"check_causality: cut_points must be >= 1, got {cut_points}")
        if n < 2:
            return []
        inner = np.linspace(0, n, int(cut_points) + 1)[1:].round().astype(np.int64)
        cuts = {int(min(max(c, 1), n - 1)) for c in inner}
        cuts.add(n - 1)
        return sorted(cuts)
    cuts = set()
    for c in cut_points:
        if isinstance(c, int | np.integer) and not isinstance(c, bool):
            if not 1 <= c <= n:
                raise ConfigError(f"check_causality: cut point {c} outside [1, {n}]")
            cuts.add(int(c))
        elif isinstance(c, pd.Timestamp | str):
            ts = pd.Timestamp(c)
            t = int(index.searchsorted(ts, side="right"))  # bars up to and including ts
            if t < 1:
                raise ConfigError(f"check_causality: cut point {ts} is before the first bar")
            cuts.add(t)
        else:
            raise ConfigError(f"check_causality: cut point {c!r} must be a bar count or a "
                              "timestamp")
    return sorted(cuts)


def _as_matrix(value: Any, t: int) -> tuple[np.ndarray, list[str]]:
    """``value`` (scalar / Series / DataFrame) as a ``[t, k]`` float array and column labels."""
    if isinstance(value, pd.DataFrame):
        return value.iloc[:t].to_numpy(dtype=np.float64), [str(c) for c in value.columns]
    if isinstance(value, pd.Series):
        return value.iloc[:t].to_numpy(dtype=np.float64).reshape(-1, 1), [""]
    return np.full((t, 1), float(value)), [""]


def _first_diff(a: np.ndarray, b: np.ndarray) -> tuple[int, int] | None:
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    if same.all():
        return None
    rows, cols = np.nonzero(~same)
    k = int(np.lexsort((cols, rows))[0])
    return int(rows[k]), int(cols[k])


def _label(name: str, col: str) -> str:
    return f"{name}[{col}]" if col else name


def _compare(name: str, full: Signals, part: Signals, t: int, index: pd.Index
             ) -> CausalityError | None:
    """The earliest difference between ``part`` (computed on ``t`` bars) and ``full[:t]``."""

    def err(position: int | None, column: str, fv: Any = None, pv: Any = None,
            problem: str | None = None) -> CausalityError:
        ts = index[position] if position is not None and position < len(index) else None
        return CausalityError(name, position=position, timestamp=ts, column=column, cut=t,
                              full_value=fv, prefix_value=pv, problem=problem)

    ft, pt = full.target, part.target
    if len(pt) != t or not pt.index.equals(index[:t]):
        return err(None, "target", problem=f"returned {len(pt)} rows for a prefix of {t} bars "
                   "(or a different index)")
    if [str(c) for c in pt.columns] != [str(c) for c in ft.columns]:
        return err(None, "target", problem=f"columns {list(pt.columns)} on the first {t} bars "
                   f"but {list(ft.columns)} on all data")
    candidates: list[CausalityError] = []
    a = ft.iloc[:t].to_numpy(dtype=np.float64)
    b = pt.to_numpy(dtype=np.float64)
    d = _first_diff(a, b)
    if d is not None:
        r, c = d
        candidates.append(err(r, f"target[{ft.columns[c]}]", float(a[r, c]), float(b[r, c])))
    for stop_name in ("stop_loss", "take_profit", "trailing_stop"):
        fs: StopSpec | None = getattr(full, stop_name)
        ps: StopSpec | None = getattr(part, stop_name)
        if fs is None and ps is None:
            continue
        if fs is None or ps is None or fs.kind != ps.kind:
            return err(None, stop_name, problem=(
                f"{fs.kind if fs else None!r} on all data but {ps.kind if ps else None!r} on "
                f"the first {t} bars"))
        fa, fcols = _as_matrix(fs.value, t)
        pa, pcols = _as_matrix(ps.value, t)
        if fa.shape != pa.shape or fcols != pcols:
            return err(None, stop_name, problem=f"shape {pa.shape} on the first {t} bars but "
                       f"{fa.shape} on all data")
        d = _first_diff(fa, pa)
        if d is not None:
            r, c = d
            candidates.append(err(r, _label(stop_name, fcols[c]), float(fa[r, c]),
                                  float(pa[r, c])))
    if full.time_stop_bars != part.time_stop_bars:
        return err(None, "time_stop_bars", full.time_stop_bars, part.time_stop_bars)
    if not candidates:
        return None
    return min(candidates, key=lambda e: e.position if e.position is not None else -1)


def check_causality(
    strategy: Strategy,
    data: MarketData,
    *,
    params: Mapping[str, Any] | None = None,
    cut_points: int | Sequence[int | pd.Timestamp] = 8,
) -> tuple[int, ...]:
    """Check that ``strategy`` decides bar t from bars up to t only.

    Computes ``strategy.signals(data, **params)`` once on all data and once on each prefix
    ``data[:t]``; each prefix's signals must equal the first t rows of the full ones, exactly
    (NaN = NaN): target of every asset, stop values and kinds, ``time_stop_bars``.

    Parameters
    ----------
    strategy:
        Any :class:`~quantum_trading.strategies.base.Strategy`.
    data:
        One asset's OHLCV frame or ``{symbol: frame}`` sharing one index.
    params:
        Strategy parameters (default: its defaults).
    cut_points:
        Prefix lengths to test: an int n = n cuts spread evenly over the data plus
        ``len(data) - 1`` (the live case: the newest bar not there yet); or explicit bar counts
        (``t`` = the first t bars) and/or timestamps (the bars up to and including it).

    Returns
    -------
    tuple of int
        The prefix lengths checked.

    Raises
    ------
    CausalityError
        Naming the strategy, the first bar (position and timestamp) and the column whose
        signal differs, over all the cuts checked (ties: the shortest prefix).
    """
    index = _length_and_index(data)
    cuts = _resolve_cuts(cut_points, index)
    kwargs = dict(params or {})
    name = getattr(strategy, "name", type(strategy).__name__)
    full = strategy.signals(data, **kwargs)
    if not full.target.index.equals(index):
        raise StrategyError(name, "target index differs from the data's index")
    worst: CausalityError | None = None
    for t in cuts:
        part = strategy.signals(_prefix(data, t), **kwargs)
        found = _compare(name, full, part, t, index)
        if found is None:
            continue
        if found.position is None:
            raise found
        if worst is None or found.position < worst.position:  # type: ignore[operator]
            worst = found
    if worst is not None:
        raise worst
    return tuple(cuts)
