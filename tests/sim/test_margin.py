"""Margin: tiers, the path liquidation solver, several assets under cross margin, bankruptcy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantum_trading.domain import (
    BINANCE_BTCUSDT_PERP,
    BINANCE_ETHUSDT_PERP,
    Instrument,
    Signals,
    StopSpec,
)
from quantum_trading.sim import AccountConfig, liquidation_price_nb, maintenance_margin_nb, simulate

from ._util import ZERO_COSTS, bars, target

BTC = BINANCE_BTCUSDT_PERP


def test_binance_tiers_are_continuous_and_match_published_rows():
    for inst in (BINANCE_BTCUSDT_PERP, BINANCE_ETHUSDT_PERP):
        arr = inst.tiers_array
        for k in range(1, len(arr)):
            floor = arr[k, 0]
            assert floor * arr[k - 1, 2] - arr[k - 1, 3] == pytest.approx(floor * arr[k, 2] - arr[k, 3])
    assert tuple(BTC.tiers_array[0]) == (0.0, 125.0, 0.004, 0.0)
    assert BTC.maintenance_margin_usd(49_999.0) == pytest.approx(49_999.0 * 0.004)
    assert BTC.maintenance_margin_usd(60_000.0) == pytest.approx(60_000.0 * 0.005 - 50.0)
    assert maintenance_margin_nb(BTC.tiers_array, len(BTC.tiers_array), 60_000.0) == \
        pytest.approx(250.0)
    assert BTC.max_notional_usd(125.0) == 50_000.0
    assert BTC.max_notional_usd(20.0) == 50_000_000.0
    assert BTC.max_notional_usd(1.0) == np.inf


def test_liquidation_crossing_a_tier_floor_uses_the_lower_tier():
    # 5.5x at 30,000: 1.833 BTC, notional 54,990 (tier 2) -> at the liquidation price the
    # notional is ~45k (tier 1), so the tier-1 formula applies.
    px = bars([30_000, 30_000, 30_000], lows=[30_000, 30_000, 20_000])
    res = simulate(px, Signals(target([5.5, None, None], px.index)), instruments=BTC,
                   costs=ZERO_COSTS, account=AccountConfig(leverage=10.0, liquidation_fee_rate=0))
    s, e = 1.833, 30_000.0
    lp1 = liquidation_price_nb(10_000.0, s, e, 0.004, 0.0)
    lp2 = liquidation_price_nb(10_000.0, s, e, 0.005, 50.0)
    assert s * lp1 < 50_000 and s * lp2 < 50_000  # tier-2 solution is not self-consistent
    liq = res.fills[res.fills.order_type == "liquidation"].price.iloc[0]
    assert liq == pytest.approx(lp1, rel=1e-12)
    # margin balance = maintenance at that price
    assert 10_000 + s * (liq - e) == pytest.approx(BTC.maintenance_margin_usd(s * liq), rel=1e-9)


def _two_assets(lows_a, highs_b, **kw):
    inst = {k: Instrument.generic(k, maintenance_margin_rate=0.01) for k in ("A", "B")}
    a = bars([100, 100, 100], lows=[100, 100, lows_a])
    b = bars([50, 50, 50], highs=[50, 50, highs_b])
    tgt = pd.DataFrame({"A": [5.0, np.nan, np.nan], "B": [-5.0, np.nan, np.nan]}, index=a.index)
    return simulate({"A": a, "B": b}, Signals(tgt, **kw), instruments=inst, costs=ZERO_COSTS,
                    account=AccountConfig(leverage=20.0, liquidation_fee_rate=0.0))


def _f(lam, sa, sb, lows_a, highs_b, wallet=10_000.0):
    pa = 100 + lam * (lows_a - 100)
    pb = 50 + lam * (highs_b - 50)
    return wallet + sa * (pa - 100) + sb * (pb - 50) - 0.01 * (abs(sa) * pa + abs(sb) * pb)


def test_cross_margin_two_assets_liquidate_at_one_path_point():
    res = _two_assets(90.0, 56.0)
    sa, sb = 500.0, -1000.0  # 5 x 10,000 / 100 and -5 x 10,000 / 50
    f0, f1 = _f(0, sa, sb, 90, 56), _f(1, sa, sb, 90, 56)
    assert f0 > 0 > f1
    lam = f0 / (f0 - f1)
    liq = res.fills[res.fills.order_type == "liquidation"].set_index("symbol").price
    assert liq["A"] == pytest.approx(100 + lam * (90 - 100), rel=1e-12)
    assert liq["B"] == pytest.approx(50 + lam * (56 - 50), rel=1e-12)
    assert _f(lam, sa, sb, 90, 56) == pytest.approx(0.0, abs=1e-6)
    # margin left = maintenance at those prices (no fee configured)
    assert res.final_equity_usd == pytest.approx(0.01 * (sa * liq["A"] + -sb * liq["B"]), rel=1e-9)


def test_stop_before_liquidation_point_fills_first_then_recomputes():
    # A's stop at 99 is hit at lambda 0.1; without A, B alone is liquidated further down the path
    res = _two_assets(90.0, 60.0, stop_loss=StopSpec.price(pd.DataFrame(
        {"A": [99.0, np.nan, np.nan], "B": [1e9, np.nan, np.nan]}, index=bars([1, 1, 1]).index)))
    f = res.fills
    assert f.order_type.tolist() == ["market", "market", "stop_loss", "liquidation"]
    assert f.set_index("order_type").loc["stop_loss", "price"] == 99.0
    sb = -1000.0
    wallet = 10_000.0 + 500.0 * (99.0 - 100.0)
    # B alone: wallet + sb*(pb - 50) - 0.01*|sb|*pb = 0
    pb = (wallet - sb * 50) / (0.01 * abs(sb) - sb)
    lam_b = (pb - 50) / (60 - 50)
    assert lam_b > 0.1
    assert f.set_index("order_type").loc["liquidation", "price"] == pytest.approx(pb, rel=1e-12)


def test_bankruptcy_when_funding_eats_the_equity():
    # 25x long; a 5 % settlement costs 125 % of equity at bar 2's open -> bankrupt there:
    # positions closed at the open, the 2,500 shortfall to the insurance fund, no more trading.
    px = bars([100.0] * 6)
    px["funding_rate"] = [0.0, 0.0, 0.05, 0.0, 0.0, 0.0]
    res = simulate(px, Signals(target([25.0, None, None, -1.0, 1.0, None], px.index)),
                   costs=ZERO_COSTS, account=AccountConfig(leverage=25.0))
    assert res.bankrupt and res.bankrupt_time == px.index[2]
    assert res.totals["funding_usd"] == pytest.approx(12_500.0)
    assert res.totals["insurance_usd"] == pytest.approx(2_500.0)
    assert res.fills.order_type.tolist() == ["market", "bankruptcy"]
    assert (res.equity.iloc[2:] == 0.0).all() and (res.positions.iloc[2:] == 0.0).all().all()
    assert res.trades.exit_reason.tolist() == ["bankruptcy"]
