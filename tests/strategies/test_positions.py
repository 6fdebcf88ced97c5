"""The entry/exit state machine kernel and its pandas wrapper."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trading.errors import ConfigError
from quantum_trading.strategies import (
    position_from_entries_exits,
    position_from_entries_exits_nb,
)


def _b(*bits: int) -> np.ndarray:
    return np.array(bits, dtype=np.bool_)


def test_long_entry_then_exit_holds_in_between():
    le = _b(0, 1, 0, 1, 0, 0, 0)
    lx = _b(1, 0, 0, 0, 1, 0, 0)  # the exit at bar 0 (flat) does nothing
    z = _b(0, 0, 0, 0, 0, 0, 0)
    assert position_from_entries_exits_nb(le, lx, z, z).tolist() == [0, 1, 1, 1, 0, 0, 0]


def test_short_side_and_reversals():
    le = _b(1, 0, 0, 0, 1, 0)
    se = _b(0, 0, 1, 0, 0, 0)
    z = _b(0, 0, 0, 0, 0, 0)
    # long at 0, reversed to short by the short entry at 2, back to long at 4
    assert position_from_entries_exits_nb(le, z, se, z).tolist() == [1, 1, -1, -1, 1, 1]
    sx = _b(0, 0, 0, 1, 0, 0)
    assert position_from_entries_exits_nb(z, z, se, sx).tolist() == [0, 0, -1, 0, 0, 0]


def test_simultaneous_events():
    # both entries while flat: stay flat
    assert position_from_entries_exits_nb(_b(1), _b(0), _b(1), _b(0)).tolist() == [0]
    # exit and same-side entry on one bar: stay long
    assert position_from_entries_exits_nb(_b(1, 1), _b(0, 1), _b(0, 0), _b(0, 0)).tolist() == [1, 1]
    # long, then both entries: the long closes (short entry), then both → flat
    assert position_from_entries_exits_nb(_b(1, 1), _b(0, 0), _b(0, 1), _b(0, 0)).tolist() == [1, 0]


def test_wrapper_series_size_and_nan():
    idx = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC")
    le = pd.Series([np.nan, 1.0, 0.0, 0.0], index=idx)
    lx = pd.Series([False, False, False, True], index=idx)
    out = position_from_entries_exits(le, lx, size=0.25)
    assert isinstance(out, pd.Series) and out.index.equals(idx)
    assert out.tolist() == [0.0, 0.25, 0.25, 0.0]
    arr = position_from_entries_exits(np.array([0, 0, 1]), short_entry=np.array([1, 0, 0]))
    assert arr.tolist() == [-1.0, -1.0, 1.0]


def test_wrapper_errors():
    idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    le = pd.Series([True, False, False], index=idx)
    with pytest.raises(ConfigError, match="long_exit: index"):
        position_from_entries_exits(le, pd.Series([False] * 3))
    with pytest.raises(ConfigError, match="short_entry: expected 3 values"):
        position_from_entries_exits(le, short_entry=np.zeros(2, dtype=bool))
    with pytest.raises(ConfigError, match="booleans"):
        position_from_entries_exits(np.array(["a", "b", "c"]))
    with pytest.raises(ConfigError, match="size"):
        position_from_entries_exits(le, size=float("nan"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
                min_size=1, max_size=60))
def test_state_machine_properties(events):
    le, lx, se, sx = (np.array(col, dtype=np.bool_) for col in zip(*events, strict=True))
    pos = position_from_entries_exits_nb(le, lx, se, sx)
    assert set(np.unique(pos)) <= {-1.0, 0.0, 1.0}
    n = len(pos)
    for t in range(1, n + 1):  # causal: a prefix gives the same first t positions
        assert np.array_equal(position_from_entries_exits_nb(le[:t], lx[:t], se[:t], sx[:t]),
                              pos[:t])
    for t in range(n):  # a position only appears on its entry bar
        prev = pos[t - 1] if t else 0.0
        if pos[t] == 1.0 and prev != 1.0:
            assert le[t] and not se[t]
        if pos[t] == -1.0 and prev != -1.0:
            assert se[t] and not le[t]
        if prev == 1.0 and pos[t] != 1.0:
            assert lx[t] or se[t]
