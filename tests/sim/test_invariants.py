"""Property tests of the accounting invariants (docs/simulator.md, "Invariants").

Signs: ``realized_pnl`` on fill prices (spread, slippage, impact inside), ``fees`` and
``liquidation_fee`` >= 0 paid, ``funding`` paid (negative = received), ``insurance`` = loss
beyond zero equity absorbed by the insurance fund.

* equity = cash + unrealised PnL (unrealised from an independent replay of the fills);
* cash = initial + realized - fees - funding - liquidation fees + insurance, every bar;
* final equity = initial + realized - fees - funding - liquidation fees + insurance + unrealised;
* fees, spread, slippage, impact, liquidation fees >= 0; equity >= 0 every bar;
* no fill after the bar where equity reached 0, and equity stays 0;
* per-asset and per-trade totals add up to the account's.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantum_trading.sim import simulate

from ._random import replay_positions, scenario

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def check_invariants(res, sc) -> None:
    syms = list(res.symbols)
    n_bars = len(res.index)
    close = np.column_stack([sc.bars[s].close.to_numpy() for s in syms])
    fills = res.fills
    # positions replayed from fills = reported positions; realised PnL per fill matches
    sizes, entries, realized = replay_positions(fills, syms, n_bars)
    np.testing.assert_allclose(sizes, res.positions.to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(realized, fills.realized_pnl_usd.to_numpy(), rtol=1e-9, atol=1e-7)
    upnl = (sizes * (close - entries)).sum(axis=1)
    eq = res.equity.to_numpy()
    cash = res.cash.to_numpy()
    scale = max(1.0, sc.account.initial_cash_usd)
    # equity = cash + unrealised PnL
    np.testing.assert_allclose(eq, cash + upnl, rtol=1e-9, atol=1e-9 * scale)
    # cash = initial + realized - fees - funding - liq fees + insurance (every bar)
    c = res.costs
    cash_id = (sc.account.initial_cash_usd + c.realized_pnl_usd - c.fees_usd - c.funding_usd
               - c.liquidation_fee_usd + c.insurance_usd).to_numpy()
    np.testing.assert_allclose(cash, cash_id, rtol=1e-9, atol=1e-9 * scale)
    tot = res.totals
    final = (tot["initial_cash_usd"] + tot["realized_pnl_usd"] - tot["fees_usd"]
             - tot["funding_usd"] - tot["liquidation_fee_usd"] + tot["insurance_usd"]
             + tot["unrealized_pnl_usd"])
    assert res.final_equity_usd == pytest.approx(final, rel=1e-9, abs=1e-9 * scale)
    # costs are never negative; equity never below zero
    for col in ("fee_usd", "spread_usd", "slippage_usd", "impact_usd", "liquidation_fee_usd"):
        assert (fills[col] >= 0).all(), col
    assert (eq >= 0).all()
    assert (c[["fees_usd", "spread_usd", "slippage_usd", "impact_usd", "insurance_usd"]]
            .diff().fillna(0) >= -1e-12).all().all()
    # bankruptcy: nothing trades afterwards
    if res.bankrupt:
        b = res.index.get_loc(res.bankrupt_time)
        assert (fills.bar <= b).all()
        assert (eq[b:] == 0).all()
        assert (res.positions.to_numpy()[b:] == 0).all()
    else:
        assert (eq > 0).all()
    # totals add up: fills, per asset, per trade
    assert fills.fee_usd.sum() == pytest.approx(tot["fees_usd"], rel=1e-9, abs=1e-9)
    assert fills.realized_pnl_usd.sum() == pytest.approx(tot["realized_pnl_usd"], rel=1e-9,
                                                         abs=1e-7)
    for col in ("realized_pnl_usd", "fees_usd", "funding_usd", "liquidation_fee_usd",
                "spread_usd", "slippage_usd", "impact_usd", "insurance_usd"):
        assert res.per_asset[col].sum() == pytest.approx(tot[col], rel=1e-9, abs=1e-7), col
    tr = res.trades
    assert tr.fees_usd.sum() == pytest.approx(tot["fees_usd"], rel=1e-9, abs=1e-7)
    assert tr.funding_usd.sum() == pytest.approx(tot["funding_usd"], rel=1e-9, abs=1e-7)
    assert tr.gross_pnl_usd.sum() == pytest.approx(
        tot["realized_pnl_usd"] + tot["unrealized_pnl_usd"], rel=1e-9, abs=1e-7)
    costs = tot["spread_usd"] + tot["slippage_usd"] + tot["impact_usd"]
    assert tr.costs_usd.sum() == pytest.approx(costs, rel=1e-9, abs=1e-7)
    net = tr.gross_pnl_usd - tr.fees_usd - tr.funding_usd - tr.liquidation_fee_usd
    np.testing.assert_allclose(tr.pnl_usd, net, rtol=1e-12, atol=1e-9)
    # positions stay on the lot grid
    for i, s in enumerate(syms):
        lot = sc.instruments[s].lot_size
        if lot > 0:
            units = sizes[:, i] / lot
            np.testing.assert_allclose(units, np.round(units), atol=1e-6)


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    n_assets=st.sampled_from([1, 1, 2, 3]),
    n_bars=st.integers(3, 60),
    isolated=st.booleans(),
    every_bar=st.booleans(),
    leverage=st.sampled_from([1.0, 3.0, 10.0, 25.0]),
    vol=st.sampled_from([0.005, 0.03, 0.1]),
    stops=st.booleans(),
    impact=st.booleans(),
    lot=st.booleans(),
    funding=st.booleans(),
)
def test_accounting_invariants(seed, n_assets, n_bars, isolated, every_bar, leverage, vol, stops,
                               impact, lot, funding):
    sc = scenario(seed, n_assets=n_assets, n_bars=n_bars, isolated=isolated, every_bar=every_bar,
                  leverage=leverage, vol=vol, stops=stops, impact=impact, lot=lot, funding=funding)
    res = simulate(sc.bars, sc.signals, instruments=sc.instruments, costs=sc.costs,
                   account=sc.account)
    check_invariants(res, sc)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n_assets=st.sampled_from([1, 3]),
       isolated=st.booleans())
def test_invariants_under_violent_prices(seed, n_assets, isolated):
    """High leverage, 20 % bars and gaps: liquidations and bankruptcies happen."""
    sc = scenario(seed, n_assets=n_assets, n_bars=40, isolated=isolated, every_bar=True,
                  leverage=50.0, vol=0.2, stops=False, impact=False, lot=False, funding=True)
    res = simulate(sc.bars, sc.signals, instruments=sc.instruments, costs=sc.costs,
                   account=sc.account)
    check_invariants(res, sc)
