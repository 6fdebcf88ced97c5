"""Readers: every format, tolerant time and column handling, DataError naming file/row/column."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_trading.data.readers import (
    floor_funding_times,
    funding_from_frame,
    mark_from_frame,
    ohlcv_from_frame,
    read_funding,
    read_mark,
    read_ohlcv,
    read_table,
    write_frame,
)
from quantum_trading.errors import DataError

COLUMNS = ["open", "high", "low", "close", "volume"]


def _bars(n: int = 5, start: str = "2024-01-01", freq: str = "1h") -> pd.DataFrame:
    rng = np.random.default_rng(1)
    close = 100 + rng.standard_normal(n).cumsum()
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) + rng.random(n)
    low = np.minimum(open_, close) - rng.random(n)
    volume = rng.random(n) * 1000
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="date").as_unit("ns")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_freq=False)


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["x.csv", "x.csv.gz", "x.parquet", "x.feather", "x.json", "x.json.gz"])
def test_write_frame_round_trip(tmp_path: Path, name: str) -> None:
    bars = _bars(50)
    if name.startswith("x.json"):  # freqtrade JSON keeps milliseconds
        bars.index = bars.index.floor("ms")
    path = write_frame(bars, tmp_path / name)
    back = read_ohlcv(path)
    _same(back, bars)
    assert back.attrs["source"] == str(path)


def test_pandas_written_csv_parquet_round_trip(tmp_path: Path) -> None:
    bars = _bars(20)
    bars.to_csv(tmp_path / "a.csv")  # index written as a 'date' column of ISO strings
    bars.to_parquet(tmp_path / "a.parquet")  # DatetimeIndex restored on read
    bars.reset_index().to_feather(tmp_path / "a.feather")
    for suffix in ("csv", "parquet", "feather"):
        _same(read_ohlcv(tmp_path / f"a.{suffix}"), bars)


def test_freqtrade_json_round_trip(tmp_path: Path) -> None:
    bars = _bars(10)
    rows = [[int(t.value // 10**6), *map(float, row)] for t, row in zip(bars.index, bars.to_numpy(), strict=True)]
    with gzip.open(tmp_path / "P_USDT_USDT-1h-futures.json.gz", "wt") as handle:
        json.dump(rows, handle)
    (tmp_path / "plain.json").write_text(json.dumps(rows))
    _same(read_ohlcv(tmp_path / "P_USDT_USDT-1h-futures.json.gz"), bars)
    _same(read_ohlcv(tmp_path / "plain.json"), bars)


def test_funding_and_mark_round_trip(tmp_path: Path) -> None:
    index = pd.date_range("2023-07-05", periods=4, freq="8h", tz="UTC", name="date").as_unit("ns")
    funding = pd.DataFrame({"funding_rate": [1e-4, -2e-5, 3.3e-5, 0.0]}, index=index)
    mark = _bars(4, start="2023-07-05", freq="8h").drop(columns="volume")
    for ext in (".csv", ".parquet", ".feather", ".json", ".json.gz"):
        _same(read_funding(write_frame(funding, tmp_path / f"f{ext}")), funding)
        _same(read_mark(write_frame(mark, tmp_path / f"m{ext}")), mark)


def test_json_layouts(tmp_path: Path) -> None:
    bars = _bars(3)
    records = bars.reset_index()
    records["date"] = records["date"].astype("int64") // 10**6
    (tmp_path / "records.json").write_text(records.to_json(orient="records"))
    (tmp_path / "split.json").write_text(records.to_json(orient="split", index=False))
    (tmp_path / "columns.json").write_text(json.dumps(records.to_dict(orient="list")))
    for name in ("records", "split", "columns"):
        _same(read_ohlcv(tmp_path / f"{name}.json"), bars)


# --- tolerance -------------------------------------------------------------------------------


@pytest.mark.parametrize("time_name", ["date", "Timestamp", "TIME", "datetime", "Open_Time"])
def test_time_column_names_and_case(time_name: str) -> None:
    raw = pd.DataFrame(
        {
            time_name: ["2024-01-01 00:00", "2024-01-01 01:00"],
            "Open": [1.0, 1.0], "HIGH": [2.0, 2.0], "low": [0.5, 0.5], "Close": [1.5, 1.5],
            "Volume": [3, 4], "trades": [7, 8], "close_time": [0, 0],
        }
    )
    bars = ohlcv_from_frame(raw)
    assert list(bars.columns) == COLUMNS
    assert bars.index.name == "date"
    assert str(bars.index.tz) == "UTC"
    assert (bars.dtypes == np.float64).all()
    assert bars.index[1] == pd.Timestamp("2024-01-01 01:00", tz="UTC")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1704067200, 1704070800], "2024-01-01 01:00"),  # epoch s
        ([1704067200000, 1704070800000], "2024-01-01 01:00"),  # epoch ms
        ([1704067200000.0, 1704070800000.0], "2024-01-01 01:00"),  # ms as float
        ([1704067200000000, 1704070800000000], "2024-01-01 01:00"),  # epoch us
        ([1704067200000000000, 1704070800000000000], "2024-01-01 01:00"),  # epoch ns
        (["1704067200000", "1704070800000"], "2024-01-01 01:00"),  # ms as strings
        (["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z"], "2024-01-01 01:00"),
        (["2024-01-01 02:00+02:00", "2024-01-01 03:00+02:00"], "2024-01-01 01:00"),  # converted
        (["2024-01-01 00:00", "2024-01-01 01:00"], "2024-01-01 01:00"),  # naive = UTC
        (["2024/01/01 00:00", "2024/01/01 01:00"], "2024-01-01 01:00"),
    ],
)
def test_time_values(values: list, expected: str) -> None:
    raw = pd.DataFrame({"date": values, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0.0})
    bars = ohlcv_from_frame(raw)
    assert bars.index[1] == pd.Timestamp(expected, tz="UTC")
    assert bars.index.dtype == "datetime64[ns, UTC]"


def test_datetime_index_naive_and_aware() -> None:
    bars = _bars(3)
    naive = bars.tz_localize(None)
    _same(ohlcv_from_frame(naive), bars)
    berlin = bars.tz_convert("Europe/Berlin")
    _same(ohlcv_from_frame(berlin), bars)


def test_headerless_csv_by_position(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-1h-2024-01.csv"
    path.write_text(
        "1704067200000,1,2,0.5,1.5,10,1704070799999,15.0,3\n1704070800000,1.5,2,1,1.2,11,1704074399999,13.2,4\n"
    )
    bars = read_ohlcv(path)
    assert list(bars.columns) == COLUMNS
    assert bars["close"].tolist() == [1.5, 1.2]
    assert bars.index[0] == pd.Timestamp("2024-01-01", tz="UTC")


def test_rows_stay_in_file_order() -> None:
    raw = pd.DataFrame(
        {"date": ["2024-01-01 02:00", "2024-01-01 01:00", "2024-01-01 01:00"], "open": 1.0,
         "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0.0}
    )
    assert ohlcv_from_frame(raw).index.hour.tolist() == [2, 1, 1]


def test_nan_values_are_left_for_validation(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("date,open,high,low,close,volume\n2024-01-01,1,2,0.5,,10\n")
    assert np.isnan(read_ohlcv(path)["close"].iloc[0])


def test_funding_from_freqtrade_open_column_and_jitter() -> None:
    raw = pd.DataFrame(
        {
            "date": pd.to_datetime(
                ["2023-07-05 00:00:00.017", "2023-07-05 07:59:59.999", "2023-07-05 16:00:00.004"], utc=True
            ),
            "open": [1e-4, -2e-4, 3e-4], "high": 0.0, "low": 0.0, "close": 0.0, "volume": 0.0,
        }
    )
    funding = funding_from_frame(raw)
    assert list(funding.columns) == ["funding_rate"]
    assert funding.index.hour.tolist() == [0, 8, 16]
    assert (funding.index == funding.index.floor("h")).all()
    assert funding["funding_rate"].tolist() == [1e-4, -2e-4, 3e-4]


def test_funding_rate_column_preferred() -> None:
    raw = pd.DataFrame({"time": [1688544000000], "open": [9.0], "FundingRate": [5e-5]})
    assert funding_from_frame(raw)["funding_rate"].tolist() == [5e-5]
    raw = pd.DataFrame({"time": [1688544000000], "open": [9.0], "funding_rate": [5e-5]})
    assert funding_from_frame(raw)["funding_rate"].tolist() == [5e-5]


def test_floor_funding_times_is_idempotent() -> None:
    index = pd.date_range("2023-07-05", periods=3, freq="8h", tz="UTC")
    assert floor_funding_times(index).equals(index.rename("date"))


def test_mark_drops_volume_and_accepts_single_mark_column() -> None:
    raw = _bars(3).reset_index()
    assert list(mark_from_frame(raw).columns) == ["open", "high", "low", "close"]
    single = pd.DataFrame({"date": ["2024-01-01"], "mark_price": [42.0]})
    assert mark_from_frame(single).iloc[0].tolist() == [42.0, 42.0, 42.0, 42.0]


# --- errors ----------------------------------------------------------------------------------


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        read_ohlcv(tmp_path / "nope.csv")


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    path.write_text("")
    with pytest.raises(DataError, match=r"x\.xlsx: unknown file format"):
        read_ohlcv(path)


def test_unparseable_timestamp_names_file_row_column(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(
        "date,open,high,low,close,volume\n2024-01-01 00:00,1,2,0.5,1.5,10\nyesterday,1,2,0.5,1.5,10\n"
    )
    with pytest.raises(DataError) as info:
        read_ohlcv(path)
    assert str(info.value) == f"{path}: unparseable timestamp in column date at row 1"
    assert info.value.rows == [1] and info.value.column == "date"


def test_missing_timestamp_names_row(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("[[1704067200000, 1, 2, 0.5, 1.5, 10], [null, 1, 2, 0.5, 1.5, 10]]")
    with pytest.raises(DataError, match=r"x\.json: missing or non-finite timestamp in column date at row 1"):
        read_ohlcv(path)


def test_junk_number_names_file_row_column(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(
        "date,open,high,low,close,volume\n"
        "2024-01-01 00:00,1,2,0.5,1.5,10\n2024-01-01 01:00,1,2,0.5,1.5,10\n2024-01-01 02:00,1,2,0.5,oops,10\n"
    )
    with pytest.raises(DataError) as info:
        read_ohlcv(path)
    assert str(info.value) == f"{path}: non-numeric value in column close at row 2"


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("date,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n")
    with pytest.raises(DataError) as info:
        read_ohlcv(path)
    assert str(info.value).startswith(f"{path}: missing column")
    assert str(info.value).endswith("in column volume")
    assert info.value.column == "volume"


def test_no_time_column(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("when,open,high,low,close,volume\n2024-01-01,1,2,0.5,1.5,1\n")
    with pytest.raises(DataError, match=r"x\.csv: no time column .* in column date"):
        read_ohlcv(path)


def test_duplicate_columns_by_case() -> None:
    raw = pd.DataFrame([[1, 1.0, 2.0]], columns=["date", "close", "Close"])
    with pytest.raises(DataError, match="column close"):
        ohlcv_from_frame(raw, source="s")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bad.json", "[[1, 2, 3], [4, 5]]"),  # ragged rows
        ("bad2.json", "{not json"),
        ("bad3.json", "42"),
        ("bad.json.gz", "not gzip at all"),
        ("bad.parquet", "not parquet"),
        ("bad.feather", "not feather"),
        ("bad.csv", ""),
    ],
)
def test_unparseable_files_raise_data_error(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError) as info:
        read_ohlcv(path)
    assert str(path) in str(info.value)


def test_ragged_json_names_row(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("[[1704067200000, 1, 2, 0.5, 1.5, 10], [1704070800000, 1, 2]]")
    with pytest.raises(DataError, match="at row 1"):
        read_table(path)


def test_bool_and_datetime_values_are_not_numbers() -> None:
    raw = pd.DataFrame({"date": ["2024-01-01"], "open": [True], "high": 1.0, "low": 1.0, "close": 1.0,
                        "volume": 1.0})
    with pytest.raises(DataError, match="column open"):
        ohlcv_from_frame(raw)


_cell = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=6),
    st.sampled_from(["2024-01-01", "1704067200000", "nan", "", "2024-13-45", "1e400"]),
    st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=st.lists(
        st.sampled_from(["date", "Timestamp", "open", "high", "low", "close", "volume", "x"]),
        min_size=0, max_size=7,
    ),
    rows=st.integers(0, 5),
    data=st.data(),
)
def test_any_frame_gives_canonical_frame_or_data_error(names: list[str], rows: int, data) -> None:
    raw = pd.DataFrame(
        {f"{n}": data.draw(st.lists(_cell, min_size=rows, max_size=rows)) for n in dict.fromkeys(names)}
    )
    for convert in (ohlcv_from_frame, funding_from_frame, mark_from_frame):
        try:
            out = convert(raw, source="fuzz")
        except DataError:
            continue
        assert out.index.dtype == "datetime64[ns, UTC]"
        assert (out.dtypes == np.float64).all()


def test_a_funding_time_at_the_end_of_the_range_is_a_data_error() -> None:
    """Found by the fuzz test above: a settlement 1 ns short of pandas' last time overflowed
    when the exchange jitter was added (OverflowError, not a DataError)."""
    raw = pd.DataFrame({"date": pd.to_datetime([1_704_067_200_000_000_000,
                                                9_223_372_036_854_775_000], utc=True),
                        "funding_rate": [0.0001, 0.0002]})
    with pytest.raises(DataError, match=r"edge: .*end of the representable range.* at row 1"):
        funding_from_frame(raw, source="edge")
    fuzzed = pd.DataFrame({"date": [9_223_372_035_854_775_808], "open": [None]})
    with pytest.raises(DataError):  # the fuzz test's own failing example
        funding_from_frame(fuzzed, source="fuzz")
