"""The Parquet store: merge semantics, validation before writing, atomic writes, listing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_trading.data.store import KIND_COLUMNS, LIST_COLUMNS, MergeReport, ParquetStore
from quantum_trading.errors import DataError

KEY = {
    "exchange": "binance",
    "symbol": "BTC/USDT:USDT",
    "timeframe": "1h",
    "market_type": "futures",
    "kind": "ohlcv",
}
T0 = pd.Timestamp("2023-07-04 00:00", tz="UTC")


def bars(hours: list[int], base: float = 100.0, kind: str = "ohlcv") -> pd.DataFrame:
    """A canonical frame with one row per hour offset from T0; values depend on hour and base."""
    index = pd.DatetimeIndex(T0 + pd.to_timedelta(hours, unit="h"), name="date").as_unit("ns")
    values = np.asarray(hours, dtype="float64")[:, None] + base + np.arange(len(KIND_COLUMNS[kind]))
    return pd.DataFrame(values, index=index, columns=list(KIND_COLUMNS[kind]))


def source_frame(path: Path) -> pd.DataFrame:
    raw = pd.read_feather(path)
    index = pd.DatetimeIndex(raw["date"], name="date").as_unit("ns")
    return pd.DataFrame({c: raw[c].to_numpy("float64") for c in KIND_COLUMNS["ohlcv"]}, index=index)


@pytest.fixture
def store(tmp_path: Path) -> ParquetStore:
    return ParquetStore(tmp_path / "data")


def test_merge_into_empty_store_round_trips(store: ParquetStore) -> None:
    frame = bars([0, 1, 2])
    report = store.merge(frame, **KEY)
    assert report == MergeReport(store.path(**KEY), 3, 0, 0, frame.index[0], frame.index[-1], 3)
    assert report.path == store.root / "binance" / "futures" / "BTC_USDT_USDT-1h-futures.parquet"
    out = store.read(**KEY)
    pd.testing.assert_frame_equal(out, frame)
    assert str(out.index.dtype) == "datetime64[ns, UTC]" and out.index.name == "date"
    assert store.last_timestamp(**KEY) == frame.index[-1]
    assert store.first_timestamp(**KEY) == frame.index[0]


def test_overlap_new_rows_win_and_nothing_is_dropped(store: ParquetStore) -> None:
    store.merge(bars([0, 1, 2, 3, 4]), **KEY)
    new = bars([3, 4, 5, 6], base=100.0)
    new.iloc[1] = new.iloc[1] + 0.5  # hour 4 changes, hour 3 is identical
    report = store.merge(new, **KEY)
    assert (report.added, report.updated, report.unchanged, report.bars) == (2, 1, 1, 7)
    assert (report.first, report.last) == (new.index[0], new.index[-1])
    out = store.read(**KEY)
    expected = pd.concat([bars([0, 1, 2]), new])
    pd.testing.assert_frame_equal(out, expected)


def test_merge_in_the_middle_keeps_both_ends(store: ParquetStore) -> None:
    store.merge(bars([0, 1, 2, 10, 11]), **KEY)
    store.merge(bars([5, 6], base=7.0), **KEY)
    out = store.read(**KEY)
    assert list((out.index - T0) // pd.Timedelta(hours=1)) == [0, 1, 2, 5, 6, 10, 11]
    pd.testing.assert_frame_equal(out.iloc[3:5], bars([5, 6], base=7.0))


def test_identical_merge_does_not_rewrite(store: ParquetStore) -> None:
    store.merge(bars([0, 1]), **KEY)
    mtime = store.path(**KEY).stat().st_mtime_ns
    report = store.merge(bars([1]), **KEY)
    assert (report.added, report.updated, report.unchanged) == (0, 0, 1)
    assert store.path(**KEY).stat().st_mtime_ns == mtime


def test_empty_merge_is_a_no_op(store: ParquetStore) -> None:
    report = store.merge(bars([]), **KEY)
    assert (report.added, report.bars, report.first) == (0, 0, None)
    assert not store.exists(**KEY)


def test_date_column_and_other_time_zones_are_accepted(store: ParquetStore) -> None:
    frame = bars([0, 1])
    tokyo = frame.tz_convert("Asia/Tokyo").reset_index()
    store.merge(tokyo, **KEY)
    pd.testing.assert_frame_equal(store.read(**KEY), frame)


def _unsorted() -> pd.DataFrame:
    return bars([0, 2, 1])


def _duplicated() -> pd.DataFrame:
    return bars([0, 1, 1])


def _with_nan() -> pd.DataFrame:
    frame = bars([0, 1, 2])
    frame.iloc[2, 3] = np.nan
    return frame


def _naive() -> pd.DataFrame:
    return bars([0, 1]).tz_localize(None)


def _missing_column() -> pd.DataFrame:
    return bars([0, 1]).drop(columns="volume")


def _extra_column() -> pd.DataFrame:
    return bars([0, 1]).assign(trades=1.0)


@pytest.mark.parametrize(
    ("make", "problem", "rows", "column"),
    [
        (_unsorted, "not in ascending order", [2], "date"),
        (_duplicated, "duplicate timestamps", [2], "date"),
        (_with_nan, "NaN", [2], "close"),
        (_naive, "no time zone", [], "date"),
        (_missing_column, "missing columns volume", [], None),
        (_extra_column, "unexpected columns trades", [], None),
    ],
)
def test_bad_input_is_rejected_before_writing(
    store: ParquetStore, make, problem, rows, column
) -> None:
    store.merge(bars([10, 11]), **KEY)
    before = store.path(**KEY).read_bytes()
    with pytest.raises(DataError, match=problem) as caught:
        store.merge(make(), **KEY)
    assert caught.value.rows == rows
    assert caught.value.column == column
    assert str(store.path(**KEY)) in str(caught.value)
    assert store.path(**KEY).read_bytes() == before
    # and on an empty store, nothing is created
    other = {**KEY, "symbol": "ETH/USDT:USDT"}
    with pytest.raises(DataError):
        store.merge(make(), **other)
    assert not store.exists(**other)


def test_crash_mid_write_leaves_old_file_and_no_temp_files(
    store: ParquetStore, monkeypatch
) -> None:
    store.merge(bars([0, 1, 2]), **KEY)
    path = store.path(**KEY)
    before = path.read_bytes()

    def crash(table, where, *args, **kwargs):
        where.write(b"PAR1 half a file")  # some bytes reach the temporary file, then the crash
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError, match="simulated"):
        store.merge(bars([2, 3, 4], base=50.0), **KEY)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    pd.testing.assert_frame_equal(store.read(**KEY), bars([0, 1, 2]))


def test_interrupt_mid_write_is_also_safe(store: ParquetStore, monkeypatch) -> None:
    store.merge(bars([0]), **KEY)
    before = store.path(**KEY).read_bytes()

    def interrupt(table, where, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", interrupt)
    with pytest.raises(KeyboardInterrupt):
        store.merge(bars([1]), **KEY)
    assert store.path(**KEY).read_bytes() == before
    assert len(list(store.path(**KEY).parent.iterdir())) == 1


def test_read_and_timestamps_of_missing_series(store: ParquetStore) -> None:
    assert store.last_timestamp(**KEY) is None
    assert store.first_timestamp(**KEY) is None
    with pytest.raises(DataError, match="no stored ohlcv data for BTC/USDT:USDT 1h"):
        store.read(**KEY)


def test_read_with_bounds(store: ParquetStore) -> None:
    store.merge(bars(list(range(10))), **KEY)
    out = store.read(**KEY, start=T0 + pd.Timedelta(hours=2), end="2023-07-04 05:00")
    pd.testing.assert_frame_equal(out, bars([2, 3, 4, 5]))


def test_corrupt_file_is_a_data_error(store: ParquetStore) -> None:
    path = store.path(**KEY)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot read stored file"):
        store.read(**KEY)
    with pytest.raises(DataError, match="cannot read stored file"):
        store.merge(bars([0]), **KEY)
    assert path.read_bytes() == b"not parquet"


def test_funding_and_mark_kinds(store: ParquetStore) -> None:
    funding = bars([0, 8, 16], base=0.0001, kind="funding")
    mark = bars([0, 8, 16], kind="mark")
    store.merge(funding, **{**KEY, "timeframe": "8h", "kind": "funding"})
    store.merge(mark, **{**KEY, "timeframe": "8h", "kind": "mark"})
    pd.testing.assert_frame_equal(
        store.read(**{**KEY, "timeframe": "8h", "kind": "funding"}), funding
    )
    pd.testing.assert_frame_equal(store.read(**{**KEY, "timeframe": "8h", "kind": "mark"}), mark)
    with pytest.raises(DataError, match="unexpected columns volume"):
        store.merge(bars([0]), **{**KEY, "timeframe": "8h", "kind": "mark"})
    with pytest.raises(ValueError, match="kind 'trades'"):
        store.merge(bars([0]), **{**KEY, "kind": "trades"})


def test_list(store: ParquetStore) -> None:
    assert list(store.list().columns) == list(LIST_COLUMNS)
    assert store.list().empty
    store.merge(bars([0, 1, 2]), **KEY)
    store.merge(bars([0, 8], kind="funding"), **{**KEY, "timeframe": "8h", "kind": "funding"})
    store.merge(bars([5]), **{**KEY, "symbol": "ETH/USDT:USDT"})
    store.merge(
        bars([3, 4]), **{**KEY, "symbol": "ETH/USDT", "market_type": "spot", "exchange": "okx"}
    )
    listing = store.list()
    assert listing[
        ["exchange", "market_type", "symbol", "timeframe", "kind", "bars"]
    ].values.tolist() == [
        ["binance", "futures", "BTC/USDT:USDT", "8h", "funding", 2],
        ["binance", "futures", "BTC/USDT:USDT", "1h", "ohlcv", 3],
        ["binance", "futures", "ETH/USDT:USDT", "1h", "ohlcv", 1],
        ["okx", "spot", "ETH/USDT", "1h", "ohlcv", 2],
    ]
    row = listing.iloc[1]
    assert (row["first"], row["last"]) == (T0, T0 + pd.Timedelta(hours=2))
    assert row["path"] == store.path(**KEY)
    assert str(listing["first"].dtype) == "datetime64[ns, UTC]"


def test_real_file_round_trip_and_resume_merge(
    store: ParquetStore, binance_futures_dir: Path
) -> None:
    source = source_frame(binance_futures_dir / "BTC_USDT_USDT-1h-futures.feather")
    first = store.merge(source.iloc[:600], **KEY)
    second = store.merge(source.iloc[599:], **KEY)  # re-sends the last stored bar, as a resume does
    assert (first.added, second.added, second.unchanged, second.bars) == (600, 454, 1, 1054)
    pd.testing.assert_frame_equal(store.read(**KEY), source)


# --------------------------------------------------------------------------- property
_chunk = st.tuples(
    st.integers(min_value=0, max_value=60),  # first hour
    st.integers(min_value=0, max_value=15),  # length
    st.floats(min_value=1.0, max_value=1e6, allow_nan=False),  # value base: tells writes apart
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(_chunk, min_size=1, max_size=8))
def test_any_sequence_of_merges_gives_union_with_last_written_values(chunks) -> None:
    expected: dict[pd.Timestamp, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = ParquetStore(Path(folder))
        for start, length, base in chunks:
            frame = bars(list(range(start, start + length)), base=base)
            before = set(expected)
            report = store.merge(frame, **KEY)
            assert report.added == len(set(frame.index) - before)
            for ts, row in zip(frame.index, frame.to_numpy(), strict=True):
                expected[ts] = row
        if not expected:
            assert not store.exists(**KEY)
            return
        out = store.read(**KEY)
        assert out.index.is_monotonic_increasing and out.index.is_unique
        assert list(out.index) == sorted(expected)
        np.testing.assert_array_equal(
            out.to_numpy(), np.array([expected[ts] for ts in sorted(expected)])
        )
        assert len(list(Path(folder).rglob("*.tmp"))) == 0
