"""Domain types and the validation done before the kernels run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from quantum_trading.domain import (
    BINANCE_BTCUSDT_PERP,
    ExitReason,
    Instrument,
    OrderType,
    Signals,
    StopSpec,
)
from quantum_trading.errors import ConfigError, DataError
from quantum_trading.sim import AccountConfig, CostsConfig, default_funding_mask, simulate
from quantum_trading.sim.records import fill_dt, order_dt, trade_dt

from ._util import ZERO_COSTS, bars, target


def test_instrument_validation():
    with pytest.raises(ConfigError, match="margin_tiers"):
        Instrument("X", margin_tiers=((10.0, 10.0, 0.01, 0.0),))
    with pytest.raises(ConfigError, match="inconsistent"):
        Instrument("X", margin_tiers=((0.0, 10.0, 0.01, 0.0), (100.0, 5.0, 0.02, 0.0)))
    with pytest.raises(ConfigError, match="lot_size"):
        Instrument("X", lot_size=-1.0)
    inst = Instrument.generic("X", lot_size=1.0, max_leverage=3.0)
    assert inst.tiers_array.shape == (1, 4) and not inst.tiers_array.flags.writeable
    assert BINANCE_BTCUSDT_PERP.symbol == "BTC/USDT:USDT" and BINANCE_BTCUSDT_PERP.lot_size == 0.001


def test_stops_and_signals_validation():
    with pytest.raises(ConfigError):
        StopSpec.fraction(-0.1)
    with pytest.raises(ConfigError):
        Signals(pd.Series([1.0]), trailing_stop=StopSpec.price(100.0))
    with pytest.raises(ConfigError):
        Signals(pd.Series([1.0]), time_stop_bars=0)
    s = Signals(pd.Series([1.0, 0.0], name="BTC"))
    assert list(s.target.columns) == ["BTC"] and s.target.dtypes.iloc[0] == np.float64
    atr = pd.Series([2.0, 4.0])
    assert StopSpec.atr(1.5, atr).value.tolist() == [3.0, 6.0]


def test_enum_codes_are_the_record_codes():
    assert [int(m) for m in OrderType] == list(range(7))
    assert int(ExitReason.OPEN) == 7 and int(ExitReason.STOP_LOSS) == int(OrderType.STOP_LOSS)
    for dt in (fill_dt, order_dt, trade_dt):
        assert dt.isalignedstruct


def test_configs_are_strict():
    with pytest.raises(ValidationError):
        CostsConfig(taker_fee_bps=-1)
    with pytest.raises(ValidationError):
        CostsConfig(fee=1)
    with pytest.raises(ValidationError):
        AccountConfig(leverage=0.5)
    with pytest.raises(ValidationError):
        AccountConfig(rebalance="sometimes")
    with pytest.raises(ValidationError):
        AccountConfig().initial_cash_usd = 5  # frozen


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda df: df.assign(close=[1.0, np.nan, 1.0]), "NaN"),
        (lambda df: df.assign(high=[1.0, 0.5, 1.0]), "high below"),
        (lambda df: df.assign(open=[1.0, -1.0, 1.0]), "non-positive"),
        (lambda df: df.iloc[::-1], "increasing"),
        (lambda df: df.tz_convert(None), "UTC"),
        (lambda df: df.drop(columns="low"), "missing column"),
    ],
)
def test_bad_bars_raise_data_error(mutate, match):
    px = bars([1.0, 1.0, 1.0])
    bad = mutate(px)
    with pytest.raises(DataError, match=match):
        simulate(bad, Signals(target([1.0, None, None], bad.index)), costs=ZERO_COSTS)


def test_misaligned_inputs_raise():
    px = bars([1.0, 1.0, 1.0])
    other = bars([1.0, 1.0, 1.0], start="2024-02-01")
    with pytest.raises(ConfigError, match="index"):
        simulate(px, Signals(target([1.0, None, None], other.index)), costs=ZERO_COSTS)
    with pytest.raises(DataError, match="differs"):
        tgt = pd.DataFrame({"A": [1.0] * 3, "B": [1.0] * 3}, index=px.index)
        simulate({"A": px, "B": other}, Signals(tgt), costs=ZERO_COSTS)
    with pytest.raises(ConfigError, match="max_leverage"):
        simulate(px, Signals(target([1.0, None, None], px.index)), costs=ZERO_COSTS,
                 instruments=Instrument.generic("X", max_leverage=2.0),
                 account=AccountConfig(leverage=5.0))
    with pytest.raises(ConfigError, match="no column"):
        tgt = pd.DataFrame({"A": [1.0] * 3, "C": [1.0] * 3}, index=px.index)
        simulate({"A": px, "B": px}, Signals(tgt), costs=ZERO_COSTS)


def test_default_funding_mask_on_bars_that_straddle_settlements():
    idx = pd.date_range("2024-01-01 06:00", periods=4, freq="1h", tz="UTC")
    assert default_funding_mask(idx, pd.Timedelta("1h")).tolist() == [False, False, True, False]
    idx = pd.date_range("2024-01-01 06:30", periods=3, freq="1h", tz="UTC")
    assert default_funding_mask(idx, pd.Timedelta("1h")).tolist() == [False, True, False]


def test_result_frames_have_labels_and_units():
    px = bars([100.0, 100.0, 110.0])
    res = simulate(px, Signals(target([1.0, None, None], px.index)), costs=ZERO_COSTS)
    assert res.fills.time.iloc[0] == px.index[1]
    assert res.trades.exit_reason.tolist() == ["open"]
    assert res.trades.pnl_usd.iloc[0] == pytest.approx(1_000.0)
    assert res.equity.name == "equity_usd" and list(res.positions.columns) == ["X"]
    assert res.fill_list()[0].order_type == OrderType.MARKET
    assert res.trade_list()[0].exit_reason == ExitReason.OPEN
    assert res.order_list()[0].filled_size == pytest.approx(100.0)
