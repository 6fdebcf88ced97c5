"""Loaders by path and by (exchange, symbol, timeframe); funding and mark joins and their timing."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trading.data.loaders import (
    find_data_file,
    join_funding,
    join_mark,
    load_funding,
    load_mark,
    load_ohlcv,
)
from quantum_trading.data.readers import write_frame
from quantum_trading.errors import DataError

XRP = "XRP/USDT:USDT"


@pytest.fixture
def freqtrade_copy(tmp_path: Path, freqtrade_fixtures_dir: Path) -> Path:
    """A data dir laid out as freqtrade's: <tmp>/binance/futures/XRP_USDT_USDT-…"""
    target = tmp_path / "data" / "binance" / "futures"
    target.mkdir(parents=True)
    for file in freqtrade_fixtures_dir.iterdir():
        shutil.copy(file, target / file.name)
    return tmp_path / "data"


def _bars(start: str, periods: int, freq: str) -> pd.DataFrame:
    index = pd.date_range(start, periods=periods, freq=freq, tz="UTC", name="date")
    return pd.DataFrame({"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 1.0}, index=index)


def _funding(times: list[str], rates: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"funding_rate": rates}, index=pd.DatetimeIndex(times, tz="UTC", name="date"))


# --- loading ---------------------------------------------------------------------------------


def test_load_by_identity_from_freqtrade_layout(freqtrade_copy: Path) -> None:
    bars = load_ohlcv(exchange="binance", symbol=XRP, timeframe="1h", data_dir=freqtrade_copy)
    assert bars.attrs["source"].endswith("XRP_USDT_USDT-1h-futures.feather")
    assert {k: bars.attrs[k] for k in ("exchange", "symbol", "timeframe", "market_type", "kind")} == {
        "exchange": "binance", "symbol": XRP, "timeframe": "1h", "market_type": "futures", "kind": "ohlcv",
    }
    assert "100 ohlcv bars of 1h" in bars.attrs["validation"]
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    # without the feather file the json.gz is found next, with the same content
    (freqtrade_copy / "binance" / "futures" / "XRP_USDT_USDT-1h-futures.feather").unlink()
    again = load_ohlcv(exchange="binance", symbol=XRP, timeframe="1h", data_dir=freqtrade_copy)
    assert again.attrs["source"].endswith(".json.gz")
    pd.testing.assert_frame_equal(again, bars, check_like=False)

    funding = load_funding(exchange="binance", symbol=XRP, data_dir=freqtrade_copy)
    assert funding.attrs["timeframe"] == "8h" and len(funding) == 91
    assert (funding.index == funding.index.floor("h")).all()
    mark8 = load_mark(exchange="binance", symbol=XRP, data_dir=freqtrade_copy)
    mark1 = load_mark(exchange="binance", symbol=XRP, timeframe="1h", data_dir=freqtrade_copy)
    assert (len(mark8), len(mark1)) == (91, 100)
    assert list(mark1.columns) == ["open", "high", "low", "close"]


def test_store_parquet_preferred(freqtrade_copy: Path) -> None:
    folder = freqtrade_copy / "binance" / "futures"
    bars = load_ohlcv(folder / "XRP_USDT_USDT-1h-futures.feather")
    write_frame(bars.iloc[:10], folder / "XRP_USDT_USDT-1h-futures.parquet")
    found = find_data_file(exchange="binance", symbol=XRP, timeframe="1h", data_dir=freqtrade_copy)
    assert found.suffix == ".parquet"
    assert len(load_ohlcv(exchange="binance", symbol=XRP, timeframe="1h", data_dir=freqtrade_copy)) == 10


def test_not_found_lists_paths_tried(freqtrade_copy: Path) -> None:
    with pytest.raises(DataError) as info:
        load_ohlcv(exchange="binance", symbol="BTC/USDT:USDT", timeframe="1h", data_dir=freqtrade_copy)
    message = str(info.value)
    assert "no ohlcv file for BTC/USDT:USDT 1h (futures) on binance" in message
    for ext in (".parquet", ".feather", ".json.gz", ".json", ".csv"):
        assert str(freqtrade_copy / "binance" / "futures" / f"BTC_USDT_USDT-1h-futures{ext}") in message


def test_default_data_dir_is_user_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTUM_USER_DATA", str(tmp_path / "ud"))
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "ud" / "data" / "binance" / "futures"))):
        load_ohlcv(exchange="binance", symbol=XRP, timeframe="1h")


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match="give a path"):
        load_ohlcv(symbol=XRP, timeframe="1h")
    with pytest.raises(ValueError, match="timeframe"):
        load_ohlcv(exchange="binance", symbol=XRP)


def test_load_by_path_reads_metadata(freqtrade_copy: Path, tmp_path: Path) -> None:
    path = freqtrade_copy / "binance" / "futures" / "XRP_USDT_USDT-5m-futures.feather"
    bars = load_ohlcv(path)
    assert (bars.attrs["symbol"], bars.attrs["timeframe"], bars.attrs["exchange"]) == (XRP, "5m", "binance")
    # any name: no metadata, still loads; explicit arguments fill in
    plain = tmp_path / "mine.csv"
    write_frame(bars.iloc[:20], plain)
    loaded = load_ohlcv(plain, symbol=XRP, timeframe="5m")
    assert (loaded.attrs["symbol"], loaded.attrs["timeframe"]) == (XRP, "5m")
    assert "exchange" not in loaded.attrs
    pd.testing.assert_frame_equal(loaded, bars.iloc[:20], check_freq=False)


def test_wrong_kind_by_name(freqtrade_copy: Path) -> None:
    path = freqtrade_copy / "binance" / "futures" / "XRP_USDT_USDT-8h-funding_rate.feather"
    with pytest.raises(DataError, match="says funding data, not ohlcv; use load_funding"):
        load_ohlcv(path)


def test_validate_flag(tmp_path: Path) -> None:
    bars = _bars("2024-01-01", 5, "1h")
    path = tmp_path / "BTC_USDT_USDT-1h-futures.csv"
    write_frame(bars.iloc[[0, 2, 1, 3, 4]], path)
    with pytest.raises(DataError) as info:
        load_ohlcv(path)
    assert str(info.value) == f"{path}: timestamps not sorted (earlier than the row before) at row 2"
    raw = load_ohlcv(path, validate=False)
    assert raw.index.hour.tolist() == [0, 2, 1, 3, 4]
    assert "validation" not in raw.attrs


def test_bad_row_in_file_named(tmp_path: Path) -> None:
    bars = _bars("2024-01-01", 5, "1h")
    bars.iloc[3, bars.columns.get_loc("high")] = 0.1
    path = tmp_path / "ETH_USDT_USDT-1h-futures.parquet"
    write_frame(bars, path)
    with pytest.raises(DataError) as info:
        load_ohlcv(path)
    assert str(info.value) == f"{path}: high below max(open, close) in column high at row 3"


def test_gaps_allowed_and_described(tmp_path: Path) -> None:
    bars = _bars("2024-01-01", 6, "1h").drop(pd.Timestamp("2024-01-01 02:00", tz="UTC"))
    path = write_frame(bars, tmp_path / "BTC_USDT_USDT-1h-futures.feather")
    assert "1 gap, 1 missing" in load_ohlcv(path).attrs["validation"]


# --- joins -------------------------------------------------------------------------------------


def test_join_funding_hourly() -> None:
    bars = _bars("2023-07-05 06:00", 12, "1h")
    funding = _funding(
        ["2023-07-05 00:00", "2023-07-05 08:00:00.008", "2023-07-05 16:00", "2023-07-06 00:00"],
        [1e-4, 2e-4, -3e-4, 4e-4],
    )
    out = join_funding(bars, funding)
    assert out.loc[pd.Timestamp("2023-07-05 08:00", tz="UTC"), "funding_rate"] == 2e-4
    assert out.loc[pd.Timestamp("2023-07-05 16:00", tz="UTC"), "funding_rate"] == -3e-4
    assert (out["funding_rate"] != 0).sum() == 2
    assert out.attrs["funding_outside_range"] == 2 and out.attrs["funding_joined"] == 2
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]  # input untouched


def test_join_funding_daily_sums_and_gaps() -> None:
    bars = _bars("2023-07-05", 4, "1D").drop(pd.Timestamp("2023-07-07", tz="UTC"))
    times = [f"2023-07-0{d} {h:02d}:00" for d in (5, 6, 7, 8) for h in (0, 8, 16)]
    funding = _funding(times, [1e-4] * 12)
    out = join_funding(bars, funding, timeframe="1d")
    np.testing.assert_allclose(out["funding_rate"].to_numpy(), [3e-4, 3e-4, 3e-4])
    assert out.attrs["funding_in_gaps"] == 3
    assert out.attrs["funding_outside_range"] == 0


def test_join_funding_single_bar_needs_timeframe() -> None:
    bars = _bars("2023-07-05 08:00", 1, "1h")
    funding = _funding(["2023-07-05 08:00"], [1e-4])
    with pytest.raises(ValueError, match="timeframe"):
        join_funding(bars, funding)
    assert join_funding(bars, funding, timeframe="1h")["funding_rate"].tolist() == [1e-4]


def test_join_rejects_bad_input() -> None:
    bars = _bars("2023-07-05", 3, "1h")
    with pytest.raises(DataError, match="duplicate timestamps"):
        join_funding(bars, _funding(["2023-07-05 01:00", "2023-07-05 01:00"], [0.0, 0.0]))
    with pytest.raises(DataError, match="not sorted"):
        join_mark(bars.iloc[[1, 0, 2]], bars.drop(columns="volume"))


def test_join_mark_never_uses_the_future() -> None:
    bars = _bars("2023-07-05 06:00", 12, "1h")
    index = pd.DatetimeIndex(["2023-07-05 08:00", "2023-07-05 16:00"], tz="UTC", name="date")
    mark = pd.DataFrame(
        {"open": [10.0, 20.0], "high": [30.0, 30.0], "low": [5.0, 5.0], "close": [20.0, 25.0]}, index=index
    )
    out = join_mark(bars, mark)
    expected = [np.nan] * 2 + [10.0] * 8 + [20.0] * 2
    np.testing.assert_array_equal(out["mark_price"].to_numpy(), expected)
    # causality: joining on a prefix of the bars gives the prefix of the result
    prefix = join_mark(bars.iloc[:7], mark)
    np.testing.assert_array_equal(prefix["mark_price"].to_numpy(), expected[:7])
