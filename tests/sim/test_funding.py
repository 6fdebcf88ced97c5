"""Funding on real Binance BTCUSDT data (July–August 2023) equals the hand sum."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trading.domain import BINANCE_BTCUSDT_PERP, Signals
from quantum_trading.sim import AccountConfig, CostsConfig, Simulator, simulate

from ._util import ZERO_COSTS, bars, target


@pytest.fixture(scope="module")
def btc(binance_futures_dir: Path):
    px = pd.read_feather(binance_futures_dir / "BTC_USDT_USDT-1h-futures.feather").set_index("date")
    raw = pd.read_feather(binance_futures_dir / "BTC_USDT_USDT-8h-funding_rate.feather")
    rates = pd.Series(raw["open"].to_numpy(), index=pd.DatetimeIndex(raw["date"].dt.floor("h")),
                      name="funding_rate")
    mark = pd.read_feather(binance_futures_dir / "BTC_USDT_USDT-8h-mark.feather").set_index("date")
    return px, rates, raw, mark


def _hand_funding(px: pd.DataFrame, rates: pd.Series, size: pd.Series, mark: pd.Series | None):
    """Funding paid per bar: size held into the bar x mark (or open) x rate."""
    paid = pd.Series(0.0, index=px.index)
    held_in = size.shift(1).fillna(0.0)
    for ts, rate in rates.items():
        if ts not in px.index:
            continue
        price = mark.loc[ts] if mark is not None else px.open.loc[ts]
        paid.loc[ts] += held_in.loc[ts] * price * rate
    return paid


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_funding_over_real_series_equals_hand_sum(btc, direction):
    px, rates, _, _ = btc
    assert len(rates) > 100 and rates.index.isin(px.index).sum() > 100
    tgt = target([direction] + [None] * (len(px) - 1), px.index, "BTC")
    res = simulate(px, Signals(tgt), instruments=BINANCE_BTCUSDT_PERP, costs=ZERO_COSTS,
                   funding=rates)
    size = res.positions.iloc[:, 0]
    assert size.iloc[1] == pytest.approx(direction * np.floor(10_000 / px.open.iloc[1] * 1e3) / 1e3)
    paid = _hand_funding(px, rates, size, None)
    assert res.totals["funding_usd"] == pytest.approx(paid.sum(), rel=1e-12)
    np.testing.assert_allclose(res.costs["funding_usd"].to_numpy(), paid.cumsum().to_numpy(),
                               rtol=1e-12, atol=1e-12)
    # a long pays when rates are positive (mostly here), a short receives
    assert np.sign(res.totals["funding_usd"]) == np.sign(direction)
    # equity identity: only price PnL and funding moved cash
    final = 10_000 + res.totals["unrealized_pnl_usd"] - res.totals["funding_usd"]
    assert res.final_equity_usd == pytest.approx(final, rel=1e-12)


def test_funding_on_mark_price_and_jittered_timestamps(btc):
    px, rates, raw, mark = btc
    tgt = target([1.0] + [None] * (len(px) - 1), px.index, "BTC")
    # raw timestamps (ms jitter after the hour) fall inside the same hourly bar
    jittered = pd.Series(raw["open"].to_numpy(), index=pd.DatetimeIndex(raw["date"]))
    assert (jittered.index != jittered.index.floor("h")).any()
    res = simulate(px, Signals(tgt), instruments=BINANCE_BTCUSDT_PERP, costs=ZERO_COSTS,
                   funding=jittered, mark=mark)
    mark_open = pd.Series(mark["open"].to_numpy(), index=mark.index)
    hand = _hand_funding(px, rates, res.positions.iloc[:, 0], mark_open)
    assert res.totals["funding_usd"] == pytest.approx(hand.sum(), rel=1e-12)
    # the mark differs from the open, so the sum does too
    plain = _hand_funding(px, rates, res.positions.iloc[:, 0], None)
    assert hand.sum() != pytest.approx(plain.sum(), rel=1e-9)


def test_funding_rate_column_in_bars_is_used(btc):
    px, rates, _, _ = btc
    joined = px.copy()
    joined["funding_rate"] = rates.reindex(px.index).fillna(0.0)
    tgt = target([1.0] + [None] * (len(px) - 1), px.index, "BTC")
    a = simulate(joined, Signals(tgt), instruments=BINANCE_BTCUSDT_PERP, costs=ZERO_COSTS)
    b = simulate(px, Signals(tgt), instruments=BINANCE_BTCUSDT_PERP, costs=ZERO_COSTS,
                 funding=rates)
    assert a.totals["funding_usd"] == b.totals["funding_usd"]


def test_default_funding_every_8h():
    px = bars([100.0] * 48)
    costs = ZERO_COSTS.model_copy(update={"default_funding_rate": 0.0001})
    tgt = target([1.0] + [None] * 47, px.index)
    res = simulate(px, Signals(tgt), costs=costs)
    # held into bars 2..47; settlements at 08:00, 16:00, 00:00 (day 2), 08:00, 16:00
    settled = [ts for ts in px.index[2:] if ts.hour % 8 == 0]
    assert len(settled) == 5
    assert res.totals["funding_usd"] == pytest.approx(5 * 100.0 * 100.0 * 0.0001)
    # 4h bars: the 00/08/16 settlements fall inside bars opening at 00, 08 (and 04 contains none)
    px4 = bars([100.0] * 12, freq="4h")
    res4 = simulate(px4, Signals(target([1.0] + [None] * 11, px4.index)), costs=costs)
    n4 = sum(1 for ts in px4.index[2:] if ts.hour % 8 == 0)
    assert res4.totals["funding_usd"] == pytest.approx(n4 * 100.0 * 100.0 * 0.0001)


def test_simulator_default_funding_schedule_matches_simulate():
    px = bars(np.linspace(100, 110, 30))
    costs = CostsConfig(default_funding_rate=0.0003)
    tgt = target([1.0] + [None] * 29, px.index)
    whole = simulate(px, Signals(tgt), costs=costs, account=AccountConfig(leverage=2.0))
    sim = Simulator("X", costs=costs, account=AccountConfig(leverage=2.0), timeframe="1h")
    for ts, row, tv in zip(px.index, px.itertuples(), tgt, strict=True):
        sim.step({"open": row.open, "high": row.high, "low": row.low, "close": row.close}, tv,
                 time=ts)
    assert sim.result().totals == whole.totals
