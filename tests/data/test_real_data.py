"""Real exchange data: every shared file loads and validates; funding joins on the right hours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trading.data.layout import parse_data_file_name
from quantum_trading.data.loaders import (
    join_funding,
    join_mark,
    load_funding,
    load_mark,
    load_ohlcv,
)
from quantum_trading.data.readers import read_table
from quantum_trading.paths import real_data_dir

_LOADERS = {"ohlcv": load_ohlcv, "funding": load_funding, "mark": load_mark}
_FOLDERS = ("binance/futures", "fixtures/freqtrade")
_FILES = sorted(
    f"{folder}/{path.name}"
    for folder in _FOLDERS
    for path in (real_data_dir() / folder).glob("*")
    if path.is_file()
)
BTC = "BTC/USDT:USDT"


def test_the_listing_is_not_empty(binance_futures_dir: Path, freqtrade_fixtures_dir: Path) -> None:
    """Guards the parametrised test below against silently running over nothing."""
    assert len(list(binance_futures_dir.glob("*.feather"))) >= 40
    assert len(list(freqtrade_fixtures_dir.glob("*.feather"))) >= 5
    assert list(freqtrade_fixtures_dir.glob("*.json.gz"))
    assert len(_FILES) == len(list(binance_futures_dir.iterdir())) + len(list(freqtrade_fixtures_dir.iterdir()))


@pytest.mark.parametrize("name", _FILES)
def test_every_shared_file_loads_and_validates(real_data: Path, name: str) -> None:
    path = real_data / name
    meta = parse_data_file_name(path)
    assert meta is not None, f"{name}: not a freqtrade file name"
    frame = _LOADERS[meta.kind](path)
    assert frame.attrs["symbol"] == meta.symbol
    assert frame.attrs["timeframe"] == meta.timeframe
    assert frame.attrs["market_type"] == "futures"
    assert "no gaps" in frame.attrs["validation"]
    assert frame.index.name == "date" and frame.index.dtype == "datetime64[ns, UTC]"
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert (frame.dtypes == np.float64).all()
    expected = {"ohlcv": ["open", "high", "low", "close", "volume"], "funding": ["funding_rate"],
                "mark": ["open", "high", "low", "close"]}[meta.kind]
    assert list(frame.columns) == expected
    assert len(frame) == len(read_table(path))
    if name.startswith("binance/"):
        assert frame.attrs["exchange"] == "binance"


def test_json_gz_equals_feather(freqtrade_fixtures_dir: Path) -> None:
    feather = load_ohlcv(freqtrade_fixtures_dir / "XRP_USDT_USDT-1h-futures.feather")
    gz = load_ohlcv(freqtrade_fixtures_dir / "XRP_USDT_USDT-1h-futures.json.gz")
    pd.testing.assert_frame_equal(gz, feather)


def test_load_by_identity_from_real_folder(real_data: Path) -> None:
    bars = load_ohlcv(exchange="binance", symbol=BTC, timeframe="1h", data_dir=real_data)
    assert len(bars) == 1054
    assert bars.index[0] == pd.Timestamp("2023-07-04 13:00", tz="UTC")
    assert bars.attrs["exchange"] == "binance"
    assert len(load_ohlcv(exchange="binance", symbol="ETH/USDT:USDT", timeframe="15m", data_dir=real_data)) == 1682
    assert len(load_funding(exchange="binance", symbol=BTC, data_dir=real_data)) == 131
    assert len(load_mark(exchange="binance", symbol=BTC, data_dir=real_data)) == 131


def test_real_btc_funding_joins_on_settlement_hours(binance_futures_dir: Path) -> None:
    bars = load_ohlcv(binance_futures_dir / "BTC_USDT_USDT-1h-futures.feather")
    funding = load_funding(binance_futures_dir / "BTC_USDT_USDT-8h-funding_rate.feather")
    raw = pd.read_feather(binance_futures_dir / "BTC_USDT_USDT-8h-funding_rate.feather")
    assert (raw["date"] != raw["date"].dt.floor("h")).any(), "the file has millisecond jitter"

    joined = join_funding(bars, funding)
    paid = joined.loc[joined["funding_rate"] != 0]
    assert set(paid.index.hour) <= {0, 8, 16}
    assert len(paid) == (funding["funding_rate"] != 0).sum()

    end = bars.index[-1] + pd.Timedelta("1h")
    inside = funding.loc[(funding.index >= bars.index[0]) & (funding.index < end), "funding_rate"]
    np.testing.assert_allclose(joined["funding_rate"].sum(), inside.sum(), rtol=0, atol=1e-15)
    assert joined.attrs["funding_joined"] == len(inside) == 131
    assert joined.attrs["funding_outside_range"] == 0

    # by hand: raw row 45 is stamped 2023-07-19 16:00:00.001 with rate 7.69e-05 (0.00769 %)
    assert raw["date"].iloc[45] == pd.Timestamp("2023-07-19 16:00:00.001", tz="UTC")
    assert raw["open"].iloc[45] == 7.69e-05
    at = pd.Timestamp("2023-07-19 16:00", tz="UTC")
    assert joined.loc[at, "funding_rate"] == 7.69e-05
    assert joined.loc[at - pd.Timedelta("1h"), "funding_rate"] == 0.0
    assert joined.loc[at + pd.Timedelta("1h"), "funding_rate"] == 0.0
    assert joined.loc[at, "close"] == 29892.0  # the bar itself is untouched
    # the negative settlement of 2023-07-07 16:00
    assert joined.loc[pd.Timestamp("2023-07-07 16:00", tz="UTC"), "funding_rate"] == -6.58e-06


def test_real_btc_funding_on_5m_and_daily_sums(binance_futures_dir: Path) -> None:
    funding = load_funding(binance_futures_dir / "BTC_USDT_USDT-8h-funding_rate.feather")
    five = join_funding(load_ohlcv(binance_futures_dir / "BTC_USDT_USDT-5m-futures.feather"), funding)
    paid = five.loc[five["funding_rate"] != 0].index
    assert set(paid.hour) <= {0, 8, 16} and set(paid.minute) == {0}
    daily = load_ohlcv(binance_futures_dir / "BTC_USDT_USDT-1h-futures.feather")
    daily = daily.resample("1D").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    joined = join_funding(daily, funding, timeframe="1d")
    by_day = funding["funding_rate"].groupby(funding.index.floor("D")).sum()
    np.testing.assert_allclose(joined["funding_rate"].to_numpy(), by_day.reindex(daily.index, fill_value=0.0))


def test_real_btc_mark_join(binance_futures_dir: Path) -> None:
    bars = load_ohlcv(binance_futures_dir / "BTC_USDT_USDT-1h-futures.feather")
    mark = load_mark(binance_futures_dir / "BTC_USDT_USDT-8h-mark.feather")
    joined = join_mark(bars, mark)
    assert joined["mark_price"].iloc[:3].isna().all()  # bars before the first mark candle (16:00)
    assert joined.loc[pd.Timestamp("2023-07-04 16:00", tz="UTC"), "mark_price"] == 30959.4
    assert joined.loc[pd.Timestamp("2023-07-04 23:00", tz="UTC"), "mark_price"] == 30959.4
    assert joined.loc[pd.Timestamp("2023-07-05 00:00", tz="UTC"), "mark_price"] == 30756.3505
    assert joined["mark_price"].iloc[3:].notna().all()
