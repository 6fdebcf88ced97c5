"""Position series from entry and exit events (pandas wrapper of the numba state machine).

>>> import pandas as pd
>>> idx = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC")
>>> entry = pd.Series([False, True, False, False, False], index=idx)
>>> exit_ = pd.Series([False, False, False, True, False], index=idx)
>>> position_from_entries_exits(entry, exit_).tolist()
[0.0, 1.0, 1.0, 0.0, 0.0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantum_trading.errors import ConfigError
from quantum_trading.strategies.positions_nb import position_from_entries_exits_nb

__all__ = ["position_from_entries_exits"]


def _events(x: pd.Series | np.ndarray | None, n: int, name: str, index: pd.Index | None
            ) -> np.ndarray:
    if x is None:
        return np.zeros(n, dtype=np.bool_)
    if isinstance(x, pd.Series) and index is not None and not x.index.equals(index):
        raise ConfigError(f"{name}: index must equal long_entry's index")
    arr = np.asarray(x)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ConfigError(f"{name}: expected {n} values, got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if not np.issubdtype(arr.dtype, np.number):
            raise ConfigError(f"{name}: expected booleans, got dtype {arr.dtype}")
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0) != 0.0
    return np.ascontiguousarray(arr)


def position_from_entries_exits(
    long_entry: pd.Series | np.ndarray,
    long_exit: pd.Series | np.ndarray | None = None,
    short_entry: pd.Series | np.ndarray | None = None,
    short_exit: pd.Series | np.ndarray | None = None,
    *,
    size: float = 1.0,
) -> pd.Series | np.ndarray:
    """Stateful position (``{-1, 0, +1} × size``) from boolean entry/exit events.

    Rule per bar (see :func:`~quantum_trading.strategies.positions_nb.position_from_entries_exits_nb`):
    exits first (a long closes on a long exit or a short entry, a short on a short exit or a
    long entry), then, when flat, a lone long entry goes long and a lone short entry goes
    short. The value at bar t is the position decided at bar t's close, to be filled at bar
    t+1's open. Missing event arrays mean "never"; NaN counts as False.

    Returns a Series on ``long_entry``'s index when it is a Series, else an array.

    >>> import numpy as np
    >>> position_from_entries_exits(np.array([1, 0, 0, 0]), None,
    ...                             np.array([0, 0, 1, 0]), None, size=0.5).tolist()
    [0.5, 0.5, -0.5, -0.5]
    """
    index = long_entry.index if isinstance(long_entry, pd.Series) else None
    n = len(long_entry)
    le = _events(long_entry, n, "long_entry", index)
    lx = _events(long_exit, n, "long_exit", index)
    se = _events(short_entry, n, "short_entry", index)
    sx = _events(short_exit, n, "short_exit", index)
    if not (isinstance(size, int | float) and np.isfinite(size)):
        raise ConfigError(f"size must be a finite number, got {size!r}")
    pos = position_from_entries_exits_nb(le, lx, se, sx) * float(size)
    if index is not None:
        return pd.Series(pos, index=index, name=long_entry.name)
    return pos
