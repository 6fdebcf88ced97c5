"""Hand-computed cases: liquidation, stops, take-profit, gaps, trailing and time stops, caps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantum_trading.domain import (
    BINANCE_BTCUSDT_PERP,
    CapFlag,
    Instrument,
    MarginMode,
    Signals,
    StopSpec,
)
from quantum_trading.sim import AccountConfig, CostsConfig, simulate

from ._util import ZERO_COSTS, bars, target

BTC = BINANCE_BTCUSDT_PERP


def _binance_liq_price(wallet: float, size: float, entry: float, mmr: float, cum: float) -> float:
    """Binance's one-position liquidation price, written out independently of the kernel."""
    side = 1.0 if size > 0 else -1.0
    return (wallet + cum - side * abs(size) * entry) / (abs(size) * mmr - side * abs(size))


def test_cross_10x_long_liquidated_at_binance_price_with_fee():
    # 10,000 USDT, target 10x at 30,000: 3.333 BTC (lot 0.001), notional 99,990 -> tier 2
    # (0.5 %, cum 50). Taker fee 4 bps on entry; bar 2 falls to 25,000.
    px = bars([30_000, 30_000, 29_000, 28_000], lows=[30_000, 30_000, 25_000, 27_000])
    costs = CostsConfig(taker_fee_bps=4.0, half_spread_bps=0, slippage_bps=0,
                        default_funding_rate=0)
    acct = AccountConfig(leverage=10.0, liquidation_fee_rate=0.002)
    res = simulate(px, Signals(target([10.0, None, None, None], px.index, "BTC")),
                   instruments=BTC, costs=costs, account=acct)
    entry, size = 30_000.0, 3.333
    fee_in = size * entry * 4e-4
    wallet = 10_000.0 - fee_in
    assert BTC.tier_index(size * entry) == 1
    lp = _binance_liq_price(wallet, size, entry, 0.005, 50.0)
    assert BTC.tier_index(size * lp) == 1  # still tier 2 at the liquidation price
    liq = res.fills[res.fills.order_type == "liquidation"]
    assert len(liq) == 1 and liq.time.iloc[0] == px.index[2]
    assert liq.price.iloc[0] == pytest.approx(lp, rel=1e-12)
    # margin left at the liquidation price = maintenance margin; the fee takes 0.2 % of notional
    notional = size * lp
    assert liq.liquidation_fee_usd.iloc[0] == pytest.approx(0.002 * notional, rel=1e-12)
    left = notional * 0.005 - 50.0 - 0.002 * notional
    assert res.final_equity_usd == pytest.approx(left, rel=1e-9)
    assert res.totals["liquidation_fee_usd"] == pytest.approx(0.002 * notional, rel=1e-12)
    assert not res.bankrupt
    assert res.trades.exit_reason.tolist() == ["liquidation"]


def test_cross_liquidation_fee_capped_at_remaining_margin_bankrupts():
    px = bars([30_000, 30_000, 29_000, 28_000], lows=[30_000, 30_000, 25_000, 27_000])
    acct = AccountConfig(leverage=10.0)  # default liquidation fee 1.25 % > 0.5 % maintenance
    res = simulate(px, Signals(target([10.0, None, 0.0, 1.0], px.index, "BTC")),
                   instruments=BTC, costs=ZERO_COSTS, account=acct)
    assert res.bankrupt and res.bankrupt_time == px.index[2]
    assert res.final_equity_usd == 0.0
    assert (res.equity.iloc[2:] == 0.0).all()
    # nothing trades after bankruptcy even though the target changes
    assert (res.fills.time <= px.index[2]).all()


def test_isolated_10x_long_liquidated_at_binance_price():
    # isolated margin = notional / 10; Binance: LP = (M + cum - s*EP) / (s*mmr - s)
    px = bars([30_000, 30_000, 27_500, 27_000], lows=[30_000, 30_000, 26_000, 27_000])
    acct = AccountConfig(leverage=10.0, margin_mode=MarginMode.ISOLATED, liquidation_fee_rate=0.0005)
    res = simulate(px, Signals(target([1.0, None, None, None], px.index, "BTC")),
                   instruments=BTC, costs=ZERO_COSTS, account=acct)
    size, entry = 0.333, 30_000.0
    margin = size * entry / 10.0
    lp = _binance_liq_price(margin, size, entry, 0.004, 0.0)
    assert lp == pytest.approx(entry * 0.9 / 0.996, rel=1e-12)
    liq = res.fills[res.fills.order_type == "liquidation"]
    assert liq.price.iloc[0] == pytest.approx(lp, rel=1e-12)
    fee = 0.0005 * size * lp
    assert liq.liquidation_fee_usd.iloc[0] == pytest.approx(fee, rel=1e-12)
    # only the isolated margin is lost (minus what is left after the fee)
    kept = 0.004 * size * lp - fee
    assert res.final_equity_usd == pytest.approx(10_000.0 - margin + kept, rel=1e-12)


def test_isolated_gap_past_bankruptcy_price_loses_only_the_margin():
    px = bars([30_000, 30_000, 20_000, 20_000])
    acct = AccountConfig(leverage=10.0, margin_mode="isolated")
    res = simulate(px, Signals(target([1.0, None, None, None], px.index, "BTC")),
                   instruments=BTC, costs=ZERO_COSTS, account=acct)
    liq = res.fills[res.fills.order_type == "liquidation"]
    assert liq.price.iloc[0] == 20_000.0  # the bar opened beyond the liquidation price
    assert res.final_equity_usd == pytest.approx(10_000.0 - 0.333 * 30_000 / 10, rel=1e-12)
    assert res.totals["insurance_usd"] == pytest.approx(0.333 * 10_000 - 999.0, rel=1e-12)


def test_stop_gapped_through_fills_at_the_open():
    px = bars([100, 100, 90, 91], highs=[100, 101, 92, 92], lows=[100, 99, 88, 90])
    sig = Signals(target([1.0, None, None, None], px.index), stop_loss=StopSpec.fraction(0.05))
    res = simulate(px, sig, costs=ZERO_COSTS)
    stop = res.fills[res.fills.order_type == "stop_loss"]
    assert stop.price.tolist() == [90.0]
    assert stop.time.tolist() == [px.index[2]]
    assert res.trades.exit_reason.tolist() == ["stop_loss"]


def test_short_stop_gapped_and_costs_on_stop():
    px = bars([100, 100, 110, 111], highs=[100, 101, 112, 112], lows=[100, 99, 108, 110])
    costs = CostsConfig(taker_fee_bps=5, half_spread_bps=1, slippage_bps=2, default_funding_rate=0)
    sig = Signals(target([-1.0, None, None, None], px.index), stop_loss=StopSpec.fraction(0.05))
    res = simulate(px, sig, costs=costs)
    stop = res.fills[res.fills.order_type == "stop_loss"].iloc[0]
    assert stop.ref_price == 110.0  # gapped: the open
    assert stop.price == pytest.approx(110.0 * (1 + 3e-4))  # a buy pays spread + slippage
    assert stop.fee_usd == pytest.approx(stop["size"] * stop.price * 5e-4)
    assert stop.spread_usd == pytest.approx(stop["size"] * 110.0 * 1e-4)
    assert stop.slippage_usd == pytest.approx(stop["size"] * 110.0 * 2e-4)


def test_stop_and_take_profit_in_one_bar_stop_first():
    # entry 100; SL 95, TP 110; bar 2 spans 90..115
    px = bars([100, 100, 100, 100], highs=[100, 100, 115, 100], lows=[100, 100, 90, 100])
    sig = Signals(target([1.0, None, None, None], px.index), stop_loss=StopSpec.fraction(0.05),
                  take_profit=StopSpec.fraction(0.10))
    res = simulate(px, sig, costs=ZERO_COSTS)
    exits = res.fills[res.fills.order_type != "market"]
    assert exits.order_type.tolist() == ["stop_loss"]
    assert exits.price.tolist() == [95.0]


def test_take_profit_is_a_maker_limit_and_fills_at_open_when_gapped():
    costs = CostsConfig(taker_fee_bps=4, maker_fee_bps=2, half_spread_bps=1, slippage_bps=1,
                        default_funding_rate=0)
    px = bars([100, 100, 105, 100], highs=[100, 100, 112, 100], lows=[100, 100, 104, 100])
    sig = Signals(target([1.0, None, None, None], px.index), take_profit=StopSpec.fraction(0.10))
    res = simulate(px, sig, costs=costs)
    entry = res.fills.iloc[0]
    assert entry.price == pytest.approx(100 * (1 + 2e-4))
    tp = res.fills.iloc[1]
    assert tp.order_type == "take_profit"
    assert tp.price == pytest.approx(entry.price * 1.10)  # the level, no spread/slippage
    assert tp.fee_usd == pytest.approx(tp["size"] * tp.price * 2e-4)  # maker
    assert tp.spread_usd == 0.0 and tp.slippage_usd == 0.0
    # gapped in favour: filled at the (better) open
    px2 = bars([100, 100, 120, 100], highs=[100, 100, 121, 100], lows=[100, 100, 119, 100])
    res2 = simulate(px2, sig.__class__(target([1.0, None, None, None], px2.index),
                                       take_profit=StopSpec.fraction(0.10)), costs=costs)
    assert res2.fills.iloc[1].price == 120.0


def test_trailing_stop_uses_level_from_before_the_bar():
    # entry 100 at bar 1; highs 100 -> 120 (bar 2) -> trailing 10 % level 108 for bar 3
    px = bars([100, 100, 110, 115, 112], highs=[100, 100, 120, 116, 113],
              lows=[100, 100, 109, 107, 111], closes=[100, 100, 118, 112, 112])
    sig = Signals(target([1.0, None, None, None, None], px.index),
                  trailing_stop=StopSpec.fraction(0.10))
    res = simulate(px, sig, costs=ZERO_COSTS)
    tr = res.fills[res.fills.order_type == "trailing_stop"]
    # bar 2: level from entry bar's high (100) = 90, low 109 -> no hit; bar 3: level 108, low 107
    assert tr.time.tolist() == [px.index[3]]
    assert tr.price.tolist() == [pytest.approx(108.0)]


def test_trailing_distance_and_stop_loss_nearer_wins():
    # long entry 100: stop-loss 2 % -> 98; trailing 3.0 -> 97 (98 is hit first), 1.0 -> 99
    px = bars([100, 100, 100, 100], highs=[100, 100, 100, 100], lows=[100, 100, 96, 100])
    for dist, kind, level in ((3.0, "stop_loss", 98.0), (1.0, "trailing_stop", 99.0)):
        sig = Signals(target([1.0, None, None, None], px.index),
                      stop_loss=StopSpec.fraction(0.02), trailing_stop=StopSpec.distance(dist))
        res = simulate(px, sig, costs=ZERO_COSTS)
        assert res.fills.order_type.iloc[1] == kind
        assert res.fills.price.iloc[1] == pytest.approx(level)


def test_time_stop_exits_at_next_open_and_no_reentry_until_target_changes():
    px = bars([100, 101, 102, 103, 104, 105, 106])
    sig = Signals(target([1.0, None, 1.0, None, 0.5, None, None], px.index), time_stop_bars=2)
    res = simulate(px, sig, costs=ZERO_COSTS)
    f = res.fills
    # entry at bar 1 open; held bars 1, 2 -> exit at bar 3 open; bar 4 target 0.5 -> entry bar 5
    assert f.time.tolist() == [px.index[1], px.index[3], px.index[5]]
    assert f.order_type.tolist() == ["market", "time_stop", "market"]
    assert res.trades.exit_reason.tolist() == ["time_stop", "open"]


def test_position_stopped_is_not_reentered_on_unchanged_target():
    px = bars([100, 100, 90, 95, 96], lows=[100, 100, 89, 94, 95])
    sig = Signals(target([1.0, 1.0, 1.0, 1.0, None], px.index), stop_loss=StopSpec.fraction(0.05))
    res = simulate(px, sig, costs=ZERO_COSTS)
    assert res.fills.order_type.tolist() == ["market", "stop_loss"]
    # every_bar re-targets after the stop
    res2 = simulate(px, sig, costs=ZERO_COSTS, account=AccountConfig(rebalance="every_bar"))
    assert res2.fills.order_type.tolist()[:3] == ["market", "stop_loss", "market"]


def test_sizing_lot_min_notional_and_caps():
    inst = Instrument.generic("X", lot_size=1.0, min_notional_usd=500.0, max_leverage=2.0)
    px = bars([100, 100, 100, 100, 100, 100])
    sig = Signals(target([0.999, 0.02, 3.0, -1.0, None, None], px.index))
    acct = AccountConfig(leverage=2.0, allow_short=False)
    res = simulate(px, sig, instruments=inst, costs=ZERO_COSTS, account=acct)
    o = res.orders
    assert o.filled_size.tolist()[0] == 99.0  # 99.9 units rounded toward zero
    # 0.02 x equity = 2 units: a reduction (reduce-only orders are exempt from min notional)
    assert o.filled_size.tolist()[1] == -97.0
    assert o.cap_flags.tolist()[2] == int(CapFlag.LEVERAGE) and o.target_frac.tolist()[2] == 2.0
    assert o.filled_size.tolist()[2] == 198.0
    assert o.cap_flags.tolist()[3] == int(CapFlag.SHORT) and o.filled_size.tolist()[3] == -200.0
    # adding exposure under min notional is skipped and recorded
    res2 = simulate(px, Signals(target([0.01, None, None, None, None, None], px.index)),
                    instruments=inst, costs=ZERO_COSTS)
    assert res2.orders.status.tolist() == ["skipped_min_notional"]
    assert len(res2.fills) == 0


def test_margin_cap_scales_new_exposure_together():
    px = {"A": bars([100, 100, 100]), "B": bars([50, 50, 50])}
    tgt = target([1.0, None, None], px["A"].index, "A").to_frame()
    tgt["B"] = [1.0, np.nan, np.nan]
    res = simulate(px, Signals(tgt), costs=ZERO_COSTS, account=AccountConfig(leverage=1.0))
    o = res.orders
    assert (o.cap_flags == int(CapFlag.MARGIN)).all()
    notional = (o.filled_size * o.price).tolist()
    assert notional == [pytest.approx(5_000.0), pytest.approx(5_000.0)]


def test_tier_cap_limits_notional_for_high_leverage():
    # at 100x BTC allows tiers 1-2 only: notional < 500,000
    px = bars([30_000, 30_000, 30_000])
    acct = AccountConfig(leverage=100.0, initial_cash_usd=10_000.0)
    res = simulate(px, Signals(target([100.0, None, None], px.index, "BTC")), instruments=BTC,
                   costs=ZERO_COSTS, account=acct)
    o = res.orders.iloc[0]
    assert o.cap_flags & int(CapFlag.TIER)
    assert o.filled_size * 30_000 <= 500_000.0
    assert BTC.max_notional_usd(100.0) == 500_000.0


def test_size_with_costs_fits_entry_and_fee_in_equity():
    inst = Instrument.generic("X", lot_size=1.0, max_leverage=1.0, taker_fee_bps=10.0)
    px = bars([100, 100, 100])
    costs = CostsConfig(half_spread_bps=0, slippage_bps=0, default_funding_rate=0)
    res = simulate(px, Signals(target([1.0, None, None], px.index)), instruments=inst, costs=costs,
                   account=AccountConfig(size_with_costs=True))
    assert res.fills["size"].iloc[0] == math.floor(10_000 / (100 * 1.001))
    assert res.cash.iloc[-1] >= 0 and res.fills["size"].iloc[0] * 100 * 1.001 <= 10_000


def test_impact_cost_square_root():
    px = bars([100.0] * 30, volume=1_000.0)
    rng = np.random.default_rng(1)
    px["close"] = 100.0 * np.exp(rng.normal(0, 0.01, 30))
    px["open"] = np.r_[100.0, px["close"].to_numpy()[:-1]]
    px["high"] = px[["open", "close"]].max(axis=1)
    px["low"] = px[["open", "close"]].min(axis=1)
    costs = CostsConfig(taker_fee_bps=0, half_spread_bps=0, slippage_bps=0, impact_k=0.5,
                        impact_window_bars=20, default_funding_rate=0)
    tgt = [None] * 30
    tgt[24] = 1.0
    res = simulate(px, Signals(target(tgt, px.index)), costs=costs)
    fill = res.fills.iloc[0]
    t = 25
    lr = np.log(px.close.to_numpy()[1:t] / px.close.to_numpy()[: t - 1])[-20:]
    sigma = lr.std(ddof=1)
    vol_usd = px.volume.iloc[t - 1] * px.close.iloc[t - 1]
    p = px.open.iloc[t]
    size = 10_000.0 / p
    frac = 0.5 * sigma * math.sqrt(size * p / vol_usd)
    assert fill.price == pytest.approx(p * (1 + frac), rel=1e-12)
    assert fill.impact_usd == pytest.approx(size * p * frac, rel=1e-12)


def test_atr_stop_distance_read_at_the_decision_bar():
    px = bars([100, 100, 100, 100], lows=[100, 100, 95, 100])
    atr = target([2.0, 9.0, 9.0, 9.0], px.index)  # ATR known at the decision bar 0: 2.0
    sig = Signals(target([1.0, None, None, None], px.index), stop_loss=StopSpec.atr(2.0, atr))
    res = simulate(px, sig, costs=ZERO_COSTS)
    stop = res.fills[res.fills.order_type == "stop_loss"]
    assert stop.price.tolist() == [96.0]  # entry 100 - 2 x 2.0


def test_every_bar_deadband_skips_small_resizes():
    # 2x long: rising prices raise equity less than notional, so keeping 2x needs buying
    px = bars([100, 101, 102, 103, 104, 105])
    tgt = target([2.0, 2.0, 2.0, 2.0, 2.0, None], px.index)
    acct = AccountConfig(leverage=2.0, rebalance="every_bar", min_rebalance_frac=0.05)
    res = simulate(px, Signals(tgt), costs=ZERO_COSTS, account=acct)
    # each bar's resize is ~2 % of equity (inside the 5 % deadband) until the drift adds up
    assert len(res.fills) == 2
    second = res.fills.iloc[1]
    assert second["size"] * 104.0 >= 0.05 * res.orders.equity_usd.iloc[1]
    res2 = simulate(px, Signals(tgt), costs=ZERO_COSTS,
                    account=AccountConfig(leverage=2.0, rebalance="every_bar"))
    assert len(res2.fills) == 5 and (res2.fills.side == 1).all()
    e, p = res2.equity.to_numpy(), px.open.to_numpy()
    assert res2.positions.iloc[2, 0] == pytest.approx(2 * (10_000 + 200 / 101 * 100) / 102)
    assert e[-1] > 0 and p[-1] == 105
    # a 1x long needs no re-targeting at all (no dust orders)
    res3 = simulate(px, Signals(target([1.0] * 5 + [None], px.index)), costs=ZERO_COSTS,
                    account=AccountConfig(rebalance="every_bar"))
    assert len(res3.fills) == 1


def test_short_take_profit_and_flip_books_two_trades():
    px = bars([100, 100, 95, 90, 90], lows=[100, 100, 89, 89, 90])
    sig = Signals(target([-1.0, None, 1.0, None, None], px.index),
                  take_profit=StopSpec.fraction(0.05))
    res = simulate(px, sig, costs=ZERO_COSTS)
    f = res.fills
    assert f.order_type.tolist() == ["market", "take_profit", "market", "take_profit"][: len(f)]
    assert f.price.iloc[1] == pytest.approx(95.0)  # short TP 5 % below the 100 entry
    assert res.trades.exit_reason.iloc[0] == "take_profit"
    assert res.trades.pnl_usd.iloc[0] == pytest.approx(100.0 * 5.0)


@pytest.mark.parametrize("reversal_sizing", ["net", "after_close"])
def test_reversal_sizing(reversal_sizing):
    # long 9 units at 100 with a 1 % fee, then a reversal at 105 (whole units, sized with costs)
    c = 0.01
    inst = Instrument.generic("X", lot_size=1.0, taker_fee_bps=c * 1e4, maker_fee_bps=c * 1e4)
    costs = CostsConfig(half_spread_bps=0, slippage_bps=0, default_funding_rate=0)
    acct = AccountConfig(initial_cash_usd=1_000.0, size_with_costs=True,
                         reversal_sizing=reversal_sizing)
    px = bars([100.0, 100.0, 105.0, 105.0])
    res = simulate(px, Signals(target([1.0, -1.0, None, None], px.index)), instruments=inst,
                   costs=costs, account=acct)
    assert res.fills["size"].iloc[0] == 9.0  # 1,000 / (100 · 1.01) = 9.9 -> 9 in both modes
    equity_open = 1_000.0 - 9 * 100 * c + 9 * 5.0  # 1,036: after the entry fee, at 105
    at_flip = res.fills[res.fills.bar == 2]
    if reversal_sizing == "net":
        units = math.floor(equity_open / (105.0 * (1 + c)))  # 9.77 -> 9
        assert at_flip["size"].tolist() == [9.0 + units]
    else:  # close (fee paid), then size from what is left (9.68 -> 9), as backtesting.py
        left = equity_open - 9 * 105.0 * c
        units = math.floor(left * (1 - 2.0**-52) / (105.0 + 105.0 * c))
        assert at_flip["size"].tolist() == [9.0, float(units)]
        assert at_flip.position_after.tolist() == [0.0, -float(units)]
        assert res.fills.cash_after_usd.iloc[1] == pytest.approx(left, rel=1e-12)
        (order,) = res.orders[res.orders.bar == 2].itertuples()
        assert order.filled_size == -9.0 - units and order.price == 105.0
    assert res.positions.iloc[-1, 0] == -units
    assert res.trades.exit_reason.tolist() == ["signal", "open"]


def test_after_close_sizing_differs_from_net_at_the_unit_boundary():
    # equity at the open 1,000 at price 99 with 1 % fee: net sizes 1,000 / 99.99 = 10.001 -> 10
    # from the equity before the exit fee; after the close 1,000 - 9.9 = 990.1 -> 9
    c = 0.01
    inst = Instrument.generic("X", lot_size=1.0, taker_fee_bps=c * 1e4, maker_fee_bps=c * 1e4)
    costs = CostsConfig(half_spread_bps=0, slippage_bps=0, default_funding_rate=0)
    px = bars([99.0, 99.0, 99.0, 99.0])
    sig = Signals(target([-0.1, 1.0, None, None], px.index))
    sizes = {}
    for mode in ("net", "after_close"):
        acct = AccountConfig(initial_cash_usd=1_000.0 + 99 * c, size_with_costs=True,
                             reversal_sizing=mode)
        res = simulate(px, sig, instruments=inst, costs=costs, account=acct)
        assert res.fills["size"].iloc[0] == 1.0  # short 1 unit, paying 0.99 fee: equity 1,000
        sizes[mode] = res.positions.iloc[-1, 0]
    assert sizes == {"net": 10.0, "after_close": 9.0}
