"""Argument checks and pandas <-> numpy conversion shared by the indicator API.

Every check raises ``ValueError`` (``TypeError`` for a non-Series input) whose message names
the argument and the allowed range, e.g. ``"period must be an integer >= 1, got 0"``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

__all__ = [
    "as_frame",
    "as_series",
    "check_float",
    "check_int",
    "check_same_index",
    "check_series",
]


def check_int(value: object, name: str, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``; bools and non-integers are refused."""
    allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    result = int(value)
    if result < minimum or (maximum is not None and result > maximum):
        raise ValueError(f"{name} must be an integer {allowed}, got {result}")
    return result


def check_float(
    value: object,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_inclusive: bool = True,
) -> float:
    """``value`` as a finite ``float`` within the given bounds."""
    lo = "" if minimum is None else (f">= {minimum:g}" if min_inclusive else f"> {minimum:g}")
    hi = "" if maximum is None else f"<= {maximum:g}"
    allowed = " and ".join(part for part in (lo, hi) if part) or "finite"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number {allowed}, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be a finite number {allowed}, got {result}")
    if minimum is not None and (result < minimum or (not min_inclusive and result == minimum)):
        raise ValueError(f"{name} must be a number {allowed}, got {result:g}")
    if maximum is not None and result > maximum:
        raise ValueError(f"{name} must be a number {allowed}, got {result:g}")
    return result


def check_series(value: object, name: str) -> np.ndarray:
    """The values of the ``pd.Series`` ``value`` as a contiguous float64 array (NA -> NaN)."""
    if not isinstance(value, pd.Series):
        raise TypeError(f"{name} must be a pandas Series, got {type(value).__name__}")
    try:
        values = value.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold numbers, got dtype {value.dtype}") from exc
    return np.ascontiguousarray(values)


def check_same_index(**series: pd.Series) -> pd.Index:
    """The common index of ``series`` (keyword name -> Series); refuse differing indexes."""
    items = list(series.items())
    first_name, first = items[0]
    for name, other in items[1:]:
        if not other.index.equals(first.index):
            names = ", ".join(n for n, _ in items)
            raise ValueError(f"{names} must share one index; {name} differs from {first_name}")
    return first.index


def as_series(values: np.ndarray, index: pd.Index, name: str) -> pd.Series:
    """Wrap a kernel output as a Series on the input's index."""
    return pd.Series(values, index=index, name=name, copy=False)


def as_frame(rows: np.ndarray, index: pd.Index, columns: list[str]) -> pd.DataFrame:
    """Wrap a ``(k, n)`` kernel output (one row per column) as a DataFrame on ``index``."""
    return pd.DataFrame(rows.T, index=index, columns=columns, copy=False)
