"""Repair: sort, dedupe keeping the last, zero-volume gap fill; every change reported."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_trading.data.repair import RepairReport, repair_ohlcv
from quantum_trading.data.validate import validate_ohlcv
from quantum_trading.errors import DataError


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def bars(hours: list[int], closes: list[float] | None = None) -> pd.DataFrame:
    closes = closes or [100.0 + h for h in hours]
    index = pd.DatetimeIndex([_ts("2024-01-01") + pd.Timedelta(hours=h) for h in hours], name="date")
    close = np.array(closes, dtype=float)
    return pd.DataFrame(
        {"open": close, "high": close + 1, "low": close * 0.9, "close": close, "volume": 10.0}, index=index
    )


def test_clean_frame_is_unchanged() -> None:
    df = bars([0, 1, 2])
    df.attrs["source"] = "x.feather"
    fixed, report = repair_ohlcv(df, timeframe="1h")
    pd.testing.assert_frame_equal(fixed, df.set_axis(df.index.as_unit("ns")))
    assert not report.changed
    assert report.summary() == "x.feather (1h): 3 rows in, 3 out; nothing to repair"
    assert fixed.attrs["source"] == "x.feather"
    assert fixed.attrs["repair"] == report.summary()


def test_sort_dedupe_fill_reported() -> None:
    df = bars([0, 3, 1, 1, 5], closes=[100.0, 103.0, 101.0, 111.0, 105.0])
    fixed, report = repair_ohlcv(df, timeframe="1h", source="x.csv")
    assert fixed.index.hour.tolist() == [0, 1, 2, 3, 4, 5]
    assert fixed["close"].tolist() == [100.0, 111.0, 111.0, 103.0, 103.0, 105.0]  # last duplicate kept
    assert fixed["volume"].tolist() == [10.0, 10.0, 0.0, 10.0, 0.0, 10.0]
    filled = fixed.loc[_ts("2024-01-01 02:00")]
    assert filled[["open", "high", "low", "close"]].tolist() == [111.0] * 4  # previous close
    assert report.moved == (_ts("2024-01-01 01:00"), _ts("2024-01-01 01:00"))
    assert report.duplicates_dropped == (_ts("2024-01-01 01:00"),)
    assert report.inserted == (_ts("2024-01-01 02:00"), _ts("2024-01-01 04:00"))
    assert (report.rows_in, report.rows_out) == (5, 6)
    assert report.summary() == (
        "x.csv (1h): 5 rows in, 6 out; 2 out-of-order moved (2024-01-01 01:00, 2024-01-01 01:00); "
        "1 duplicates dropped, last kept (2024-01-01 01:00); "
        "2 zero-volume bars inserted at previous close (2024-01-01 02:00, 2024-01-01 04:00)"
    )
    assert validate_ohlcv(fixed, timeframe="1h", allow_gaps=False).bars == 6
    assert fixed.index.dtype == "datetime64[ns, UTC]"


def test_input_not_changed() -> None:
    df = bars([2, 0])
    before = df.copy()
    repair_ohlcv(df, timeframe="1h")
    pd.testing.assert_frame_equal(df, before)


def test_invalid_rows_raise_unless_dropped() -> None:
    df = bars([0, 1, 2, 3])
    df.loc[df.index[1], "close"] = np.nan
    df.loc[df.index[2], "low"] = -5.0
    with pytest.raises(DataError) as info:
        repair_ohlcv(df, timeframe="1h", source="x.csv")
    assert str(info.value) == (
        "x.csv: NaN value (repair will not guess it; drop_invalid=True drops such rows) in column close at row 1"
    )
    fixed, report = repair_ohlcv(df, timeframe="1h", source="x.csv", drop_invalid=True)
    assert [(row, problem) for row, _, problem in report.invalid_dropped] == [
        (1, "NaN value in close"),
        (2, "non-positive price in low"),
    ]
    assert report.inserted == (_ts("2024-01-01 01:00"), _ts("2024-01-01 02:00"))
    assert fixed["volume"].tolist() == [10.0, 0.0, 0.0, 10.0]
    assert "2 invalid dropped (row 1 NaN value in close, row 2 non-positive price in low)" in report.summary()


def test_nat_rows() -> None:
    df = bars([0, 1, 2])
    df.index = pd.DatetimeIndex([df.index[0], pd.NaT, df.index[2]], name="date")
    with pytest.raises(DataError, match=r"missing timestamp .* at row 1"):
        repair_ohlcv(df, timeframe="1h")
    fixed, report = repair_ohlcv(df, timeframe="1h", drop_invalid=True)
    assert len(report.invalid_dropped) == 1 and len(report.inserted) == 1
    assert len(fixed) == 3


def test_off_grid_raises() -> None:
    df = bars([0, 1, 2])
    df.index = df.index[:2].append(pd.DatetimeIndex([df.index[2] + pd.Timedelta("20min")]))
    with pytest.raises(DataError, match=r"off the 1h grid .* at row 2"):
        repair_ohlcv(df, timeframe="1h")


def test_structure_errors() -> None:
    with pytest.raises(DataError, match="tz-naive"):
        repair_ohlcv(bars([0, 1]).tz_localize(None), timeframe="1h")
    with pytest.raises(DataError, match="column volume"):
        repair_ohlcv(bars([0, 1]).drop(columns="volume"), timeframe="1h")
    with pytest.raises(DataError, match="no rows"):
        repair_ohlcv(bars([0]).iloc[:0], timeframe="1h")


def test_extra_columns_dropped() -> None:
    fixed, _ = repair_ohlcv(bars([0, 1]).assign(note="x"), timeframe="1h")
    assert list(fixed.columns) == ["open", "high", "low", "close", "volume"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hours=st.lists(st.integers(0, 30), min_size=1, max_size=40),
    closes=st.data(),
)
def test_repair_makes_any_messy_series_valid(hours: list[int], closes) -> None:
    values = closes.draw(st.lists(st.floats(1.0, 1000.0), min_size=len(hours), max_size=len(hours)))
    df = bars(hours, values)
    fixed, report = repair_ohlcv(df, timeframe="1h")
    valid = validate_ohlcv(fixed, timeframe="1h", allow_gaps=False)
    assert isinstance(report, RepairReport)
    assert valid.first == df.index.min() and valid.last == df.index.max()
    assert report.rows_out == report.rows_in - len(report.duplicates_dropped) + len(report.inserted)
    assert len(report.duplicates_dropped) == len(hours) - len(set(hours))
    assert set(report.inserted).isdisjoint(df.index)
    assert (fixed.loc[list(report.inserted), "volume"] == 0).all() if report.inserted else True
    # the last occurrence of each time wins
    last = {h: v for h, v in zip(hours, values, strict=True)}
    for hour, value in last.items():
        assert fixed.loc[_ts("2024-01-01") + pd.Timedelta(hours=hour), "close"] == value
