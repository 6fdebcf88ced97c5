"""Causality: every indicator computed on ``data[:t]`` equals the first ``t`` values on all data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ._cases import CASES, Case

CUTS = 12


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_prefix_equals_full_run_on_real_data(case: Case, btc_1m: pd.DataFrame) -> None:
    bars = btc_1m.iloc[:20_000].copy()
    # a few holes too, so the restart logic is covered by the same check
    bars.iloc[5_000:5_003, bars.columns.get_loc(case.inputs[0])] = np.nan
    bars.iloc[12_345, bars.columns.get_loc(case.inputs[-1])] = np.inf
    full = case.run(bars)
    rng = np.random.default_rng(sum(map(ord, case.name)))
    cuts = np.concatenate(([1, 2, 60, 5_001, 5_003, 12_346], rng.integers(3, len(bars), CUTS)))
    for t in cuts:
        prefix = case.run(bars.iloc[:t])
        pd.testing.assert_frame_equal(prefix, full.iloc[:t], check_exact=True, obj=f"t={t}")


def _bars(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 160))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    steps = rng.choice([-1.0, 0.0, 0.0, 1.0], size=n) * rng.integers(1, 4, size=n)
    close = 100.0 + np.cumsum(steps) * 0.5  # ticks of 0.5: ties and flat stretches happen
    high = close + rng.integers(0, 3, size=n) * 0.5
    low = close - rng.integers(0, 3, size=n) * 0.5
    volume = rng.integers(0, 5, size=n).astype(float)
    bars = pd.DataFrame({"open": close, "high": high, "low": low, "close": close, "volume": volume})
    holes = draw(
        st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.sampled_from(list(bars))), max_size=6)
    )
    for row, column in holes:
        if n:
            bars.iloc[row, bars.columns.get_loc(column)] = draw(
                st.sampled_from([np.nan, np.inf, -np.inf])
            )
    return bars


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_prefix_equals_full_run_on_random_data(data: st.DataObject) -> None:
    bars = _bars(data.draw)
    t = data.draw(st.integers(0, len(bars)))
    for case in CASES:
        full = case.run(bars)
        prefix = case.run(bars.iloc[:t])
        pd.testing.assert_frame_equal(prefix, full.iloc[:t], check_exact=True, obj=case.name)
