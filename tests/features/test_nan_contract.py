"""The NaN contract of :mod:`quantum_trading.features`, checked for every indicator.

Leading NaNs are skipped; a NaN or inf later makes the output NaN in every window holding it
and restarts recursive indicators: each run of finite bars is computed as a series of its own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ._cases import CASES, Case, runs


def holed(bars: pd.DataFrame, case: Case) -> pd.DataFrame:
    """``bars`` with NaN and +-inf holes of several shapes in the columns ``case`` reads."""
    out = bars.copy()
    cols = list(case.inputs)
    n = len(out)

    def poke(rows: slice | list[int], column: str, value: float) -> None:
        out.iloc[rows, out.columns.get_loc(column)] = value

    poke(slice(0, 25), cols[0], np.nan)  # leading NaNs
    poke([300], cols[-1], np.nan)  # one isolated NaN
    poke(slice(700, 706), cols[0], np.nan)  # a gap of several bars
    poke([900], cols[len(cols) // 2], np.inf)
    poke([905], cols[0], -np.inf)  # a run of 4 finite bars, shorter than any warm-up
    poke([1500], cols[-1], np.nan)
    poke([1501], cols[0], np.nan)  # two adjacent holes in different columns
    poke(slice(n - 3, n), cols[-1], np.nan)  # trailing NaNs
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_finite_run_is_computed_on_its_own(case: Case, btc_1m: pd.DataFrame) -> None:
    bars = holed(btc_1m.iloc[:2000], case)
    result = case.run(bars)
    valid = case.valid(bars)
    expected = pd.DataFrame(np.nan, index=result.index, columns=result.columns)
    for start, stop in runs(valid):
        expected.iloc[start:stop] = case.run(bars.iloc[start:stop]).to_numpy()
    pd.testing.assert_frame_equal(result, expected, check_exact=True)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_output_is_nan_at_every_missing_input(case: Case, btc_1m: pd.DataFrame) -> None:
    bars = holed(btc_1m.iloc[:2000], case)
    result = case.run(bars)
    assert result[~case.valid(bars)].isna().all().all()
    # and well-defined again after the longest warm-up following the last internal hole
    assert result.iloc[1600:1990].notna().all().all()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_all_missing_and_too_short_inputs(case: Case, eth_1h: pd.DataFrame) -> None:
    empty = case.run(eth_1h.iloc[:0])
    assert empty.shape[0] == 0
    nothing = case.run(eth_1h.iloc[:50] * np.nan)
    assert nothing.isna().all().all()
    short = case.run(eth_1h.iloc[:3])
    assert short.shape[0] == 3


def test_indicator_of_an_indicator(eth_1h: pd.DataFrame) -> None:
    """Leading NaNs of an inner indicator only delay the outer one's warm-up."""
    from quantum_trading import features as qf

    inner = qf.ema(eth_1h["close"], 20)
    outer = qf.rsi(inner, 14)
    first = outer.first_valid_index()
    assert eth_1h.index.get_loc(first) == 19 + 14
    direct = qf.rsi(inner.iloc[19:], 14)
    pd.testing.assert_series_equal(outer.iloc[19:], direct, check_exact=True)
