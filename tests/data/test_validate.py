"""Validation: every malformed frame is a DataError naming source/row/column; gaps are reported."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_trading.data.repair import repair_ohlcv
from quantum_trading.data.validate import (
    ValidationReport,
    row_problems,
    validate_funding,
    validate_mark,
    validate_ohlcv,
)
from quantum_trading.errors import DataError

PRICES = ["open", "high", "low", "close"]
TIMEFRAMES = {"1m": "1min", "5m": "5min", "1h": "1h", "4h": "4h", "1d": "1D"}


def bars(n: int = 6, freq: str = "1h") -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC", name="date")
    close = np.linspace(100.0, 110.0, n)
    return pd.DataFrame(
        {"open": close - 1, "high": close + 2, "low": close - 3, "close": close, "volume": 5.0},
        index=index,
    )


# --- each check, with the message ------------------------------------------------------------


def test_valid_frame_report() -> None:
    report = validate_ohlcv(bars(), source="x.csv")
    assert isinstance(report, ValidationReport)
    assert (report.bars, report.timeframe, report.gap_count, report.missing_bars) == (6, "1h", 0, 0)
    assert report.first == pd.Timestamp("2024-01-01", tz="UTC")
    assert report.last == pd.Timestamp("2024-01-01 05:00", tz="UTC")
    assert report.largest_gap == pd.Timedelta(0)
    assert report.summary() == (
        "x.csv: 6 ohlcv bars of 1h from 2024-01-01 00:00 to 2024-01-01 05:00 UTC; no gaps"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda df: df.assign(close=df["close"].where(df.index != df.index[3])),
         "x.csv: NaN value in column close at row 3"),
        (lambda df: df.assign(volume=df["volume"].mask(df.index == df.index[2], np.inf)),
         "x.csv: infinite value in column volume at row 2"),
        (lambda df: df.assign(low=df["low"].mask(df.index == df.index[1], -1.0)),
         "x.csv: non-positive price in column low at row 1"),
        (lambda df: df.assign(high=df["high"].mask(df.index == df.index[4], 50.0)),
         "x.csv: high below max(open, close) in column high at row 4"),
        (lambda df: df.assign(low=df["low"].mask(df.index >= df.index[4], 500.0)),
         "x.csv: low above min(open, close) in column low at rows 4, 5"),
        (lambda df: df.assign(volume=df["volume"].mask(df.index == df.index[0], -3.0)),
         "x.csv: negative volume in column volume at row 0"),
        (lambda df: df.iloc[[0, 1, 3, 2, 4, 5]],
         "x.csv: timestamps not sorted (earlier than the row before) at row 3"),
        (lambda df: df.iloc[[0, 1, 2, 2, 3, 4, 5]], "x.csv: duplicate timestamps at rows 2, 3"),
        (lambda df: df.drop(columns="volume"),
         "x.csv: missing column (required: open, high, low, close, volume) in column volume"),
        (lambda df: df.astype({"open": "int64"}),
         "x.csv: dtype int64 where float64 is required in column open"),
        (lambda df: df.tz_localize(None), "x.csv: index is tz-naive; bar open times must be UTC"),
        (lambda df: df.tz_convert("Asia/Tokyo"), "x.csv: index time zone is Asia/Tokyo, not UTC"),
        (lambda df: df.reset_index(drop=True),
         "x.csv: index is a RangeIndex, not a DatetimeIndex of bar open times"),
        (lambda df: df.iloc[:0], "x.csv: no rows"),
        (lambda df: df.set_axis(df.index[:1].append(df.index[2:]).insert(1, pd.NaT)),
         "x.csv: missing timestamp (NaT) in the index at row 1"),
    ],
)
def test_each_problem_names_source_row_column(change, message: str) -> None:
    with pytest.raises(DataError) as info:
        validate_ohlcv(change(bars()), source="x.csv", timeframe="1h")
    assert str(info.value) == message


def test_source_defaults_to_attrs() -> None:
    df = bars().assign(close=np.nan)
    df.attrs["source"] = "from/attrs.feather"
    with pytest.raises(DataError, match=r"^from/attrs\.feather: NaN value in column close at rows 0, 1"):
        validate_ohlcv(df)


def test_not_a_frame() -> None:
    with pytest.raises(DataError, match="expected a pandas DataFrame, got Series"):
        validate_ohlcv(bars()["close"])  # type: ignore[arg-type]


def test_gaps_reported_not_raised() -> None:
    df = bars(10).drop(bars(10).index[[3, 4, 5, 8]])
    report = validate_ohlcv(df, timeframe="1h", source="g.csv")
    assert report.gap_count == 2
    assert report.missing_bars == 4
    assert report.largest_gap == pd.Timedelta("3h")
    assert report.gaps[0] == (
        pd.Timestamp("2024-01-01 03:00", tz="UTC"), pd.Timestamp("2024-01-01 05:00", tz="UTC")
    )
    assert "2 gaps, 4 missing, largest 3h" in report.summary()
    with pytest.raises(DataError) as info:
        validate_ohlcv(df, timeframe="1h", source="g.csv", allow_gaps=False)
    assert str(info.value) == (
        "g.csv: 4 missing 1h bars (2 gaps); the bar after each gap is at rows 3, 5"
    )


def test_timeframe_inferred_from_attrs_then_spacing() -> None:
    df = bars(5, "4h")
    assert validate_ohlcv(df).timeframe == "4h"
    df.attrs["timeframe"] = "2h"
    report = validate_ohlcv(df)
    assert (report.timeframe, report.missing_bars) == ("2h", 4)
    assert validate_ohlcv(bars(1)).timeframe is None
    assert validate_ohlcv(bars(3, "1D")).timeframe == "1d"


def test_off_grid_bars_raise() -> None:
    df = bars(4)
    df.index = df.index[:2].append(pd.DatetimeIndex([df.index[2] + pd.Timedelta("30min"), df.index[3]]))
    with pytest.raises(DataError, match=r"off the 1h grid .* at rows 2, 3"):
        validate_ohlcv(df, timeframe="1h")


def test_finer_data_than_timeframe_raises() -> None:
    with pytest.raises(DataError, match="off the 1h grid"):
        validate_ohlcv(bars(4, "5min"), timeframe="1h")


def test_bad_timeframe_argument_is_value_error() -> None:
    with pytest.raises(ValueError, match="timeframe"):
        validate_ohlcv(bars(), timeframe="1x")


def test_extra_columns_ignored() -> None:
    assert validate_ohlcv(bars().assign(funding_rate=0.0, note="x")).bars == 6


def test_row_problems_lists_everything() -> None:
    df = bars().assign(close=[np.nan, 1, 1, 1, 1, 1.0])
    df.loc[df.index[5], "volume"] = -1.0
    found = {(p.problem, p.column) for p in row_problems(df)}
    assert ("NaN value", "close") in found and ("negative volume", "volume") in found


def test_validate_funding() -> None:
    index = pd.date_range("2023-07-05", periods=6, freq="8h", tz="UTC", name="date")
    funding = pd.DataFrame({"funding_rate": [1e-4, -1e-4, 0.0, 3e-3, 1e-4, 1e-4]}, index=index)
    report = validate_funding(funding, source="f")
    assert (report.bars, report.timeframe, report.kind) == (6, "8h", "funding")
    assert "6 funding settlements every 8h" in report.summary()
    wild = funding.assign(funding_rate=[1e-4, 0.5, 0, 0, 0, 0.0])
    with pytest.raises(DataError) as info:
        validate_funding(wild, source="f")
    assert str(info.value) == (
        "f: implausible funding rate (|rate| >= 0.1 per settlement) in column funding_rate at row 1"
    )
    irregular = funding.drop(index[2])  # 16h step: a gap, reported only
    assert validate_funding(irregular).gap_count == 1
    four_hourly = pd.DataFrame(
        {"funding_rate": 0.0},
        index=index[:3].append(pd.DatetimeIndex([index[2] + pd.Timedelta("4h")])),
    )
    assert validate_funding(four_hourly).gap_count == 0
    with pytest.raises(DataError, match="duplicate timestamps"):
        validate_funding(funding.iloc[[0, 0, 1]])


def test_validate_mark() -> None:
    mark = bars(5, "8h").drop(columns="volume")
    assert validate_mark(mark).timeframe == "8h"
    with pytest.raises(DataError, match="high below"):
        validate_mark(mark.assign(high=1.0))
    with pytest.raises(DataError, match="column open"):
        validate_mark(mark.drop(columns="open"))


# --- property tests ----------------------------------------------------------------------------


@st.composite
def valid_bars(draw, min_rows: int = 1, max_rows: int = 30) -> tuple[pd.DataFrame, str]:
    n = draw(st.integers(min_rows, max_rows))
    timeframe = draw(st.sampled_from(sorted(TIMEFRAMES)))
    step = pd.Timedelta(TIMEFRAMES[timeframe])
    skips = draw(st.lists(st.sampled_from([1, 1, 1, 1, 2, 5]), min_size=n, max_size=n))
    start = pd.Timestamp("2020-01-01", tz="UTC") + draw(st.integers(0, 5000)) * step
    index = pd.DatetimeIndex([start + step * k for k in np.cumsum(skips)], name="date")
    price = st.floats(0.01, 1e6)
    open_ = np.array(draw(st.lists(price, min_size=n, max_size=n)))
    close = np.array(draw(st.lists(price, min_size=n, max_size=n)))
    up = np.array(draw(st.lists(st.floats(0, 1e3), min_size=n, max_size=n)))
    down = np.array(draw(st.lists(st.floats(0.01, 1.0), min_size=n, max_size=n)))
    volume = np.array(draw(st.lists(st.floats(0, 1e9), min_size=n, max_size=n)))
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + up,
            "low": np.minimum(open_, close) * down,
            "close": close,
            "volume": volume,
        },
        index=index,
    )
    return frame, timeframe


def _mutate(df: pd.DataFrame, how: str, data: st.DataObject, step: pd.Timedelta) -> tuple[object, bool]:
    """A malformed version of a valid frame; the flag asks for allow_gaps=False."""
    n = len(df)
    row = data.draw(st.integers(0, n - 1))
    column = data.draw(st.sampled_from(["open", "high", "low", "close", "volume"]))
    price = data.draw(st.sampled_from(PRICES))
    out = df.copy()
    if how == "nan":
        out.iloc[row, out.columns.get_loc(column)] = np.nan
    elif how == "inf":
        out.iloc[row, out.columns.get_loc(column)] = data.draw(st.sampled_from([np.inf, -np.inf]))
    elif how == "swap":
        i = data.draw(st.integers(0, n - 2))
        j = data.draw(st.integers(i + 1, n - 1))
        order = list(range(n))
        order[i], order[j] = j, i
        out = out.iloc[order]
    elif how == "shuffle":
        order = data.draw(st.permutations(range(n)).filter(lambda p: list(p) != sorted(p)))
        out = out.iloc[list(order)]
    elif how == "duplicate":
        out = out.iloc[sorted([*range(n), row])]
    elif how == "non_positive":
        out.iloc[row, out.columns.get_loc(price)] = data.draw(st.sampled_from([0.0, -1.0, -1e9]))
    elif how == "broken_high":
        out.iloc[row, out.columns.get_loc("high")] = min(out["open"].iloc[row], out["close"].iloc[row]) * 0.5
    elif how == "broken_low":
        out.iloc[row, out.columns.get_loc("low")] = max(out["open"].iloc[row], out["close"].iloc[row]) * 2
    elif how == "negative_volume":
        out.iloc[row, out.columns.get_loc("volume")] = -data.draw(st.floats(1e-6, 1e9))
    elif how == "dtype":
        target = data.draw(st.sampled_from(["int64", "float32", "object", "str", "Float64", "category"]))
        out[column] = out[column].astype(target)
    elif how == "missing_column":
        out = out.drop(columns=column)
    elif how == "duplicate_column":
        out = pd.concat([out, out[[column]]], axis=1)
    elif how == "naive":
        out = out.tz_localize(None)
    elif how == "other_tz":
        out = out.tz_convert(data.draw(st.sampled_from(["Asia/Tokyo", "America/New_York", "Europe/Berlin"])))
    elif how == "range_index":
        out = out.reset_index(drop=True)
    elif how == "string_index":
        out.index = out.index.astype(str)
    elif how == "nat":
        values = out.index.tolist()
        values[row] = pd.NaT
        out.index = pd.DatetimeIndex(values, name="date")
    elif how == "empty":
        out = out.iloc[:0]
    elif how == "junk_strings":
        junk = data.draw(st.lists(st.sampled_from(["abc", "", "1,5", "NaN?", "∞"]), min_size=n, max_size=n))
        out[column] = pd.Series(junk, index=out.index, dtype=object)
    elif how == "junk_mixed":
        values = out[column].astype(object)
        values.iloc[row] = data.draw(st.sampled_from(["abc", None, "12", b"x"]))
        out[column] = values
    elif how == "off_grid":
        values = out.index.tolist()
        values[-1] = values[-1] + step / 2  # half a bar: off the grid
        out.index = pd.DatetimeIndex(values, name="date")
    elif how == "not_a_frame":
        return data.draw(st.sampled_from([out["close"], out.to_numpy(), None, {"open": [1.0]}])), False
    elif how == "gap_strict":
        keep = [0, *range(2, n)] if n >= 3 else []
        return out.iloc[keep], True
    return out, False


MUTATIONS = [
    "nan", "inf", "swap", "shuffle", "duplicate", "non_positive", "broken_high", "broken_low",
    "negative_volume", "dtype", "missing_column", "duplicate_column", "naive", "other_tz",
    "range_index", "string_index", "nat", "empty", "junk_strings", "junk_mixed", "off_grid",
    "not_a_frame", "gap_strict",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=valid_bars(min_rows=2), how=st.sampled_from(MUTATIONS), data=st.data())
def test_every_malformed_frame_is_a_data_error(case, how: str, data) -> None:
    df, timeframe = case
    bad, strict = _mutate(df, how, data, pd.Timedelta(TIMEFRAMES[timeframe]))
    with pytest.raises(DataError):
        validate_ohlcv(bad, timeframe=timeframe, source="fuzz", allow_gaps=not strict)


@settings(max_examples=150, deadline=None)
@given(case=valid_bars())
def test_valid_frames_pass(case) -> None:
    df, timeframe = case
    report = validate_ohlcv(df, timeframe=timeframe)
    assert report.bars == len(df)
    expected_missing = (df.index[-1] - df.index[0]) // pd.Timedelta(TIMEFRAMES[timeframe]) + 1 - len(df)
    assert report.missing_bars == expected_missing
    assert validate_mark(df.drop(columns="volume"), timeframe=timeframe).bars == len(df)
    repaired, _ = repair_ohlcv(df, timeframe=timeframe)
    assert validate_ohlcv(repaired, timeframe=timeframe, allow_gaps=False).missing_bars == 0


_cell = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 5),
    st.text(max_size=3),
    st.none(),
)


@st.composite
def junk_frames(draw) -> pd.DataFrame:
    n = draw(st.integers(0, 6))
    names = draw(st.lists(st.sampled_from(["open", "high", "low", "close", "volume", "funding_rate", "x"]),
                          unique=True, max_size=7))
    frame = pd.DataFrame({name: draw(st.lists(_cell, min_size=n, max_size=n)) for name in names})
    if not names:
        frame = pd.DataFrame(index=range(n))
    kind = draw(st.sampled_from(["range", "utc", "naive", "tokyo", "strings", "unsorted_utc"]))
    start = pd.Timestamp("2024-01-01")
    stamps = [start + pd.Timedelta(hours=h) for h in draw(st.lists(st.integers(0, 10), min_size=n, max_size=n))]
    if kind == "utc":
        frame.index = pd.DatetimeIndex(sorted(stamps)).tz_localize("UTC")
    elif kind == "unsorted_utc":
        frame.index = pd.DatetimeIndex(stamps).tz_localize("UTC")
    elif kind == "naive":
        frame.index = pd.DatetimeIndex(stamps)
    elif kind == "tokyo":
        frame.index = pd.DatetimeIndex(stamps).tz_localize("Asia/Tokyo")
    elif kind == "strings":
        frame.index = [str(s) for s in stamps]
    return frame


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=junk_frames(), timeframe=st.sampled_from([None, "1h", "2h"]))
def test_any_frame_gives_a_report_or_a_data_error(frame: pd.DataFrame, timeframe: str | None) -> None:
    calls = [
        lambda: validate_ohlcv(frame, timeframe=timeframe),
        lambda: validate_ohlcv(frame, timeframe=timeframe, allow_gaps=False),
        lambda: validate_mark(frame, timeframe=timeframe),
        lambda: validate_funding(frame, timeframe=timeframe),
        lambda: repair_ohlcv(frame, timeframe=timeframe or "1h"),
        lambda: repair_ohlcv(frame, timeframe=timeframe or "1h", drop_invalid=True),
    ]
    for call in calls:
        try:
            call()
        except DataError:
            pass
