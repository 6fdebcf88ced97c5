"""Resampling and multi-timeframe alignment: parity with Binance's own bars, no look-ahead."""

from __future__ import annotations

import doctest
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trading.data import resample
from quantum_trading.data.resample import (
    align_to_lower,
    floor_to_timeframe,
    merge_timeframes,
    resample_ohlcv,
)
from quantum_trading.data.synthetic import generate_market
from quantum_trading.data.timeframes import timeframe_to_timedelta
from quantum_trading.errors import DataError

PAIRS = [
    ("1m", "5m"), ("1m", "1h"), ("5m", "15m"), ("5m", "1h"), ("15m", "4h"),
    ("1h", "4h"), ("1h", "8h"), ("1h", "1d"), ("4h", "1d"), ("4h", "1w"),
]


def _read(folder: Path, timeframe: str) -> pd.DataFrame:
    return pd.read_feather(folder / f"BTC_USDT_USDT-{timeframe}-futures.feather").set_index("date")


@cache
def _bars(timeframe: str) -> pd.DataFrame:
    """1,500 synthetic bars starting mid-bucket for every higher timeframe used here."""
    start = pd.Timestamp("2024-01-03 05:00", tz="UTC").floor(timeframe_to_timedelta(timeframe))
    market = generate_market(n_assets=1, n_bars=1500, timeframe=timeframe, start=start, seed=9)
    return market.ohlcv["BTC/USDT:USDT"]


def _hours(start: str, periods: int, freq: str = "1h") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=periods, freq=freq, tz="UTC", name="date", unit="ns")


def _ohlcv(index: pd.DatetimeIndex, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(index))))
    open_ = np.concatenate(([100.0], close[:-1]))
    spread = np.abs(rng.normal(0, 0.005, (2, len(index))))
    return pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close) * (1 + spread[0]),
         "low": np.minimum(open_, close) * (1 - spread[1]), "close": close,
         "volume": rng.uniform(1, 10, len(index))},
        index=index,
    )


def test_docstring_examples_run() -> None:
    assert doctest.testmod(resample, raise_on_error=True).failed == 0


# --- resampling ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeframe", "volume_mismatch"),
    # Binance's 1m klines of 2023-08-16 15:40-15:44 hold 0.137 BTC more than its 5m (and so
    # its 1h) kline of that time; every other bucket matches the 1m sum exactly in decimal.
    [("5m", ["2023-08-16 15:40"]), ("15m", []), ("1h", ["2023-08-16 15:00"])],
)
def test_resampled_real_1m_bars_equal_binance_bars(
    binance_futures_dir: Path, timeframe: str, volume_mismatch: list[str]
) -> None:
    minutes = _read(binance_futures_dir, "1m")
    exchange = _read(binance_futures_dir, timeframe)
    ours = resample_ohlcv(minutes, timeframe)
    step = timeframe_to_timedelta(timeframe)
    # only complete buckets survive: the 1m file starts at 11:13 and ends at 11:11
    assert ours.index[0] == minutes.index[0].ceil(step)
    assert ours.index[-1] + step - pd.Timedelta("1min") <= minutes.index[-1]
    assert (ours.index[-1] + step).floor(step) > minutes.index[-1] - step
    # the exchange's bars over the span of complete buckets are exactly ours
    span = exchange.loc[ours.index[0]:ours.index[-1]]
    assert len(span) > 500
    ours = ours.loc[span.index[0]:span.index[-1]]
    assert ours.index.equals(span.index)
    for column in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(ours[column].to_numpy(), span[column].to_numpy(), err_msg=column)
    relative = (ours["volume"] - span["volume"]).abs() / span["volume"]
    off = relative[relative > 1e-9]
    assert list(off.index) == [pd.Timestamp(t, tz="UTC") for t in volume_mismatch]
    assert (relative.drop(off.index) < 1e-9).all()  # float summation order only
    if len(off):
        assert ((ours["volume"] - span["volume"]).loc[off.index].round(6) == 0.137).all()


def test_matches_pandas_resample_on_complete_buckets() -> None:
    bars = _bars("5m")
    ours = resample_ohlcv(bars, "1h")
    theirs = bars.resample("1h", origin="epoch", label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    count = bars["close"].resample("1h", origin="epoch").count()
    theirs = theirs[count == 12]
    pd.testing.assert_frame_equal(ours, theirs, check_freq=False, rtol=1e-12)
    assert ours.attrs["timeframe"] == "1h"


def test_incomplete_buckets_are_dropped_at_both_ends_and_around_gaps() -> None:
    index = _hours("2024-01-01 00:03", 6 * 60 - 6, freq="1min")  # 00:03 .. 05:56
    gap = (index >= "2024-01-01 02:10") & (index < "2024-01-01 02:13")
    bars = _ohlcv(index[~gap])
    out = resample_ohlcv(bars, "1h")
    assert list(out.index.hour) == [1, 3, 4]
    full = resample_ohlcv(bars, "1h", drop_incomplete=False)
    assert list(full.index.hour) == [0, 1, 2, 3, 4, 5]
    assert full["complete"].tolist() == [False, True, False, True, True, False]
    pd.testing.assert_frame_equal(full.loc[full["complete"]].drop(columns="complete"), out)
    # an incomplete bar kept on request is aggregated from the bars present
    first = bars.loc[:"2024-01-01 00:59"]
    assert full["open"].iloc[0] == first["open"].iloc[0]
    assert full["volume"].iloc[0] == pytest.approx(first["volume"].sum())
    assert full["high"].iloc[0] == first["high"].max()


def test_weeks_start_on_monday_and_days_at_midnight() -> None:
    bars = _bars("1h")
    weekly = resample_ohlcv(bars, "1w")
    assert len(weekly) >= 7 and (weekly.index.day_of_week == 0).all()
    assert ((weekly.index - weekly.index.normalize()) == pd.Timedelta(0)).all()
    three_days = resample_ohlcv(bars, "3d")
    epoch_days = (three_days.index - pd.Timestamp(0, tz="UTC")).days
    assert (epoch_days % 3 == 0).all()
    assert floor_to_timeframe(pd.DatetimeIndex(["2024-01-07 23:59"], tz="UTC"), "1w")[0] == (
        pd.Timestamp("2024-01-01", tz="UTC")
    )


def test_source_timeframe_is_inferred_from_attrs_or_spacing() -> None:
    bars = _ohlcv(_hours("2024-01-01", 48)).drop(index=_hours("2024-01-01 07:00", 3))
    expected = resample_ohlcv(bars, "4h", source_timeframe="1h")
    pd.testing.assert_frame_equal(resample_ohlcv(bars, "4h"), expected)
    assert len(expected) == 12 - 2  # the 04:00 and 08:00 buckets miss bars
    sparse = bars.iloc[::2].copy()  # 2h spacing, but the source really is 1h
    sparse.attrs["timeframe"] = "1h"
    assert resample_ohlcv(sparse, "4h").empty


@pytest.mark.parametrize(("source", "target"), [("5m", "7m"), ("1h", "90m"), ("1h", "30m"), ("3d", "1w")])
def test_target_must_be_a_whole_multiple_of_the_source(source: str, target: str) -> None:
    bars = _ohlcv(_hours("2024-01-01", 10, freq=timeframe_to_timedelta(source)))
    with pytest.raises(ValueError, match=f"'{target}'.*'{source}'"):
        resample_ohlcv(bars, target, source_timeframe=source)


def test_bad_index_raises_data_error() -> None:
    bars = _ohlcv(_hours("2024-01-01", 10))
    with pytest.raises(DataError, match="not sorted"):
        resample_ohlcv(bars.iloc[::-1], "2h")
    with pytest.raises(DataError, match="duplicate"):
        resample_ohlcv(pd.concat([bars, bars.iloc[[3]]]).sort_index(), "2h")
    with pytest.raises(DataError, match="UTC"):
        resample_ohlcv(bars.tz_localize(None), "2h")
    with pytest.raises(DataError, match="grid"):
        resample_ohlcv(bars.set_axis(bars.index + pd.Timedelta("1min")), "2h", source_timeframe="1h")
    with pytest.raises(DataError, match="close"):
        resample_ohlcv(bars.drop(columns="close"), "2h")
    with pytest.raises(ValueError, match="source_timeframe"):
        resample_ohlcv(bars.iloc[:1], "2h")


def test_empty_and_mark_frames() -> None:
    bars = _ohlcv(_hours("2024-01-01", 10))
    empty = resample_ohlcv(bars.iloc[:0], "2h", source_timeframe="1h")
    assert empty.empty and list(empty.columns) == list(bars.columns)
    mark = resample_ohlcv(bars.drop(columns="volume"), "2h")
    assert list(mark.columns) == ["open", "high", "low", "close"] and len(mark) == 5


# --- alignment ----------------------------------------------------------------------------


def test_a_4h_bar_first_appears_on_the_1h_bar_that_closes_with_it() -> None:
    hours = _hours("2024-01-01", 12)
    four = resample_ohlcv(_ohlcv(hours), "4h")
    aligned = align_to_lower(four, hours, higher_timeframe="4h", lower_timeframe="1h")
    assert list(aligned.columns) == ["open_4h", "high_4h", "low_4h", "close_4h", "volume_4h"]
    close = aligned["close_4h"]
    assert close.loc[:"2024-01-01 02:00"].isna().all()
    assert (close.loc["2024-01-01 03:00":"2024-01-01 06:00"] == four["close"].iloc[0]).all()
    assert (close.loc["2024-01-01 07:00":"2024-01-01 10:00"] == four["close"].iloc[1]).all()
    assert close.loc["2024-01-01 11:00"] == four["close"].iloc[2]


def check_no_lookahead(
    aligned_open: pd.Series, higher_index: pd.DatetimeIndex, higher: str, lower: str
) -> None:
    """For each lower bar: the aligned higher bar closed by the lower close, and it is the
    latest such bar (no needless lag); NaN only while no higher bar has closed."""
    h, step = timeframe_to_timedelta(higher), timeframe_to_timedelta(lower)
    lower_close = (aligned_open.index + step).as_unit("ns")
    higher_close = (higher_index + h).as_unit("ns")
    shown = aligned_open.to_numpy()
    has = ~pd.isna(shown)
    shown_close = pd.DatetimeIndex(shown[has]) + h
    assert (shown_close <= lower_close[has]).all(), "look-ahead: a higher bar is used before it closed"
    latest = np.searchsorted(higher_close.asi8, lower_close.asi8, side="right") - 1
    assert (has == (latest >= 0)).all(), "a closed higher bar is missing"
    assert (pd.DatetimeIndex(shown[has]) == higher_index[latest[has]]).all(), "stale higher bar"


def test_the_lookahead_check_catches_leaky_alignments() -> None:
    hours = _hours("2024-01-01", 24)
    four = resample_ohlcv(_ohlcv(hours), "4h")
    opens = pd.Series(four.index, index=four.index)
    leaky = opens.reindex(hours, method="ffill")  # by open time: visible as soon as it opens
    with pytest.raises(AssertionError, match="look-ahead"):
        check_no_lookahead(leaky, four.index, "4h", "1h")
    laggy = opens.shift(1).reindex(hours, method="ffill")  # one higher bar too late
    with pytest.raises(AssertionError):
        check_no_lookahead(laggy, four.index, "4h", "1h")
    good = align_to_lower(opens, hours, higher_timeframe="4h", lower_timeframe="1h", suffix="")
    check_no_lookahead(good, four.index, "4h", "1h")


@pytest.mark.parametrize(("lower", "higher"), PAIRS)
def test_aligned_bars_are_closed_and_the_latest(lower: str, higher: str) -> None:
    bars = _bars(lower)
    bars = bars.drop(bars.index[700:760])  # a gap: the buckets around it are dropped
    frame = resample_ohlcv(bars, higher, source_timeframe=lower)
    frame["bar_open"] = frame.index
    aligned = align_to_lower(frame, bars.index, higher_timeframe=higher, lower_timeframe=lower)
    check_no_lookahead(aligned[f"bar_open_{higher}"], frame.index, higher, lower)
    shown = aligned[f"close_{higher}"].notna()
    np.testing.assert_array_equal(
        aligned.loc[shown, f"close_{higher}"].to_numpy(),
        frame["close"].reindex(pd.DatetimeIndex(aligned.loc[shown, f"bar_open_{higher}"])).to_numpy(),
    )


def _pipeline(base: pd.DataFrame, lower: str, higher: str) -> pd.DataFrame:
    """Resample, a feature on the higher bars, and both merged onto the base bars."""
    frame = resample_ohlcv(base, higher, source_timeframe=lower)
    feature = frame["close"].rolling(3).mean().rename("sma3")
    merged = merge_timeframes(base, {higher: None}, base_timeframe=lower)
    aligned = align_to_lower(feature, base.index, higher_timeframe=higher, lower_timeframe=lower)
    return merged.join(aligned)


@settings(max_examples=60, deadline=None)
@given(
    pair=st.sampled_from(PAIRS),
    skip=st.integers(0, 300),
    gap_at=st.integers(0, 1200),
    gap_len=st.integers(0, 40),
    cut=st.integers(1, 1200),
)
def test_alignment_is_causal(pair: tuple[str, str], skip: int, gap_at: int, gap_len: int, cut: int) -> None:
    lower, higher = pair
    bars = _bars(lower).iloc[skip:]
    bars = bars.drop(bars.index[gap_at : gap_at + gap_len])
    cut = min(cut, len(bars))
    full = _pipeline(bars, lower, higher)
    partial = _pipeline(bars.iloc[:cut], lower, higher)
    pd.testing.assert_frame_equal(partial, full.iloc[:cut], check_freq=False)


def test_merge_timeframes_takes_given_frames_and_rejects_collisions() -> None:
    bars = _bars("1h")
    four = resample_ohlcv(bars, "4h")
    rsi_like = (four["close"].pct_change() > 0).astype(float).rename("up").to_frame()
    merged = merge_timeframes(bars, {"4h": rsi_like, "1d": None}, base_timeframe="1h")
    assert list(merged.columns[:5]) == list(bars.columns)
    assert {"up_4h", "close_1d", "volume_1d"} <= set(merged.columns)
    assert merged.index.equals(bars.index)
    by_list = merge_timeframes(bars, ["4h"], base_timeframe="1h")
    pd.testing.assert_frame_equal(
        by_list, merge_timeframes(bars, {"4h": four}, base_timeframe="1h"), check_freq=False
    )
    clash = bars.assign(close_4h=1.0)
    with pytest.raises(ValueError, match="close_4h"):
        merge_timeframes(clash, ["4h"], base_timeframe="1h")


def test_align_rejects_a_higher_timeframe_shorter_than_the_lower() -> None:
    bars = _bars("1h")
    with pytest.raises(ValueError, match=r"'15m'.*'1h'"):
        align_to_lower(bars, bars.index, higher_timeframe="15m", lower_timeframe="1h")


def test_align_series_suffix_and_empty_higher() -> None:
    hours = _hours("2024-01-01", 10)
    four = resample_ohlcv(_ohlcv(hours), "4h")
    series = align_to_lower(four["close"], hours, higher_timeframe="4h", lower_timeframe="1h", suffix="_h4")
    assert isinstance(series, pd.Series) and series.name == "close_h4"
    none = align_to_lower(four.iloc[:0], hours, higher_timeframe="4h", lower_timeframe="1h")
    assert none.index.equals(hours) and none.isna().all().all() and len(none.columns) == 5
