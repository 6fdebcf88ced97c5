"""Entry/exit state machine (numba): boolean event arrays in, a position per bar out.

The kernel takes only numpy arrays (vectorbt's split); the pandas wrapper is
:func:`quantum_trading.strategies.positions.position_from_entries_exits`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["position_from_entries_exits_nb", "position_next_nb"]


@njit(cache=True)
def position_from_entries_exits_nb(
    long_entry: np.ndarray,
    long_exit: np.ndarray,
    short_entry: np.ndarray,
    short_exit: np.ndarray,
) -> np.ndarray:
    """Position in {-1, 0, +1} per bar from four boolean event arrays of one length.

    Bar by bar, starting flat, with the state ``pos`` carried from the previous bar:

    1. exits first: a long closes on ``long_exit[t]`` or ``short_entry[t]``; a short closes on
       ``short_exit[t]`` or ``long_entry[t]``;
    2. then entries, when flat: ``long_entry[t]`` alone opens a long, ``short_entry[t]`` alone
       opens a short; both at once leave the position flat.

    So an opposite entry reverses a position on the same bar, and an exit and a same-side
    entry on one bar keep the position. ``out[t]`` is the position decided at bar t's close.
    """
    n = long_entry.shape[0]
    out = np.empty(n, dtype=np.float64)
    pos = 0.0
    for t in range(n):
        pos = position_next_nb(pos, long_entry[t], long_exit[t], short_entry[t], short_exit[t])
        out[t] = pos
    return out


@njit(cache=True)
def position_next_nb(pos: float, long_entry: bool, long_exit: bool, short_entry: bool,
                     short_exit: bool) -> float:
    """One bar of :func:`position_from_entries_exits_nb`: the position after bar t's events,
    from the position ``pos`` carried from bar t-1 (also called one bar at a time by the
    live trader's stepped rules, :mod:`~quantum_trading.strategies.library.stepping`)."""
    if pos > 0.0 and (long_exit or short_entry):
        pos = 0.0
    elif pos < 0.0 and (short_exit or long_entry):
        pos = 0.0
    if pos == 0.0:
        if long_entry and not short_entry:
            pos = 1.0
        elif short_entry and not long_entry:
            pos = -1.0
    return pos
