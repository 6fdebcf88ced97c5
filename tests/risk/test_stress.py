"""Stress tests: hand cases, historical worst windows on real data (against a brute-force
search), and the margin rules checked against what the simulator itself did."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantum_trading.domain import BINANCE_BTCUSDT_PERP, BINANCE_ETHUSDT_PERP, Signals
from quantum_trading.errors import ConfigError, DataError
from quantum_trading.risk.stress import (
    STRESS_COLUMNS,
    PositionsSnapshot,
    Scenario,
    correlation_one_shock,
    default_scenarios,
    funding_spike,
    historical_scenarios,
    liquidity_drain,
    price_shock,
    run_stress,
    stress_positions,
    volatility_shock,
    worst_windows,
)
from quantum_trading.sim import (
    AccountConfig,
    CostsConfig,
    Simulator,
    liquidation_price_nb,
    simulate,
)

BTC, ETH = BINANCE_BTCUSDT_PERP.symbol, BINANCE_ETHUSDT_PERP.symbol
INSTRUMENTS = {BTC: BINANCE_BTCUSDT_PERP, ETH: BINANCE_ETHUSDT_PERP}
NO_COSTS = CostsConfig(half_spread_bps=0.0, slippage_bps=0.0, taker_fee_bps=0.0,
                       maker_fee_bps=0.0, default_funding_rate=0.0)


def snap(rows: dict[str, tuple[float, float, float]], cash: float) -> PositionsSnapshot:
    frame = pd.DataFrame(rows, index=["size", "entry_price", "mark_price"]).T
    return PositionsSnapshot(frame, cash_usd=cash)


@pytest.fixture(scope="module")
def hourly(binance_futures_dir: Path) -> dict[str, pd.DataFrame]:
    """BTC and ETH 1h bars on their common index."""
    out = {}
    for sym in (BTC, ETH):
        stem = sym.split("/")[0] + "_USDT_USDT"
        out[sym] = pd.read_feather(binance_futures_dir / f"{stem}-1h-futures.feather"
                                   ).set_index("date")
    common = out[BTC].index.intersection(out[ETH].index)
    return {s: f.loc[common] for s, f in out.items()}


# ------------------------------------------------------------------------------------ hand cases
def test_ten_x_long_isolated_minus_ten_pct_is_liquidated_at_the_simulators_price() -> None:
    s = snap({BTC: (1.0, 30_000.0, 30_000.0)}, cash=3_000.0)
    account = AccountConfig(leverage=10.0, margin_mode="isolated")
    table = run_stress(s, price_shock({BTC: -0.10}), instruments=INSTRUMENTS, account=account)
    assert list(table.columns) == list(STRESS_COLUMNS)
    row = table.iloc[0]
    assert row["liquidated"] == [BTC]
    assert row["pnl_usd"] == pytest.approx(-3_000.0) and row["pnl_pct"] == pytest.approx(-100.0)
    # Binance's formula with the isolated margin (30,000 / 10) and tier 1 (0.4 %, 0)
    expected = liquidation_price_nb(3_000.0, 1.0, 30_000.0, 0.004, 0.0)
    assert row["liquidation_prices"][BTC] == pytest.approx(expected, rel=1e-12)
    # the simulator itself: enter 1 BTC at 30,000, next bar's low is 10 % down
    idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    bars = pd.DataFrame({"open": [30_000.0] * 3, "high": [30_000.0] * 3,
                         "low": [30_000.0, 30_000.0, 27_000.0], "close": [30_000.0] * 3},
                        index=idx)
    res = simulate(bars, Signals(pd.Series([10.0, np.nan, np.nan], index=idx)),
                   instruments=BINANCE_BTCUSDT_PERP, costs=NO_COSTS,
                   account=account.model_copy(update={"initial_cash_usd": 3_000.0}))
    liq = res.fills[res.fills["order_type"] == "liquidation"]
    assert len(liq) == 1
    assert liq["price"].iloc[0] == pytest.approx(row["liquidation_prices"][BTC], rel=1e-12)
    assert res.equity.iloc[-1] == pytest.approx(row["equity_after_liquidation_usd"], abs=1e-9)
    # a smaller move is survived: margin ratio mm / equity at the moved price
    ok = run_stress(s, price_shock({BTC: -0.05}), instruments=INSTRUMENTS, account=account)
    assert ok.loc[0, "liquidated"] == []
    assert ok.loc[0, "margin_ratio_after"] == pytest.approx(0.004 * 28_500.0 / 1_500.0)


def test_cross_margin_uses_the_whole_wallet_and_liquidates_everything() -> None:
    s = snap({BTC: (1.0, 30_000.0, 30_000.0), ETH: (-5.0, 2_000.0, 2_000.0)}, cash=6_000.0)
    cross = AccountConfig(leverage=10.0)
    # BTC alone falls 10 %: −3,000 of 6,000 → the account survives under cross margin ...
    row = run_stress(s, price_shock({BTC: -0.10}), instruments=INSTRUMENTS, account=cross).iloc[0]
    assert row["liquidated"] == []
    assert row["equity_after_usd"] == pytest.approx(3_000.0)
    mm = 0.004 * 27_000.0 + 0.005 * 10_000.0
    assert row["maintenance_margin_usd"] == pytest.approx(mm)
    assert row["margin_ratio_after"] == pytest.approx(mm / 3_000.0)
    # ... but the isolated BTC position (margin 3,000) is liquidated alone
    iso = cross.model_copy(update={"margin_mode": "isolated"})
    row = run_stress(s, price_shock({BTC: -0.10}), instruments=INSTRUMENTS, account=iso).iloc[0]
    assert row["liquidated"] == [BTC]
    # BTC −20 % and ETH +20 % under cross: everything goes, equity floored at 0
    row = run_stress(s, price_shock({BTC: -0.2, ETH: 0.2}), instruments=INSTRUMENTS,
                     account=cross).iloc[0]
    assert row["liquidated"] == [BTC, ETH]
    assert row["equity_after_usd"] == pytest.approx(6_000.0 - 6_000.0 - 2_000.0)
    assert row["margin_ratio_after"] == math.inf
    assert 0.0 <= row["equity_after_liquidation_usd"] < 6_000.0
    # one position under cross: Binance's formula with the wallet balance
    one = snap({BTC: (1.0, 30_000.0, 30_000.0)}, cash=6_000.0)
    row = run_stress(one, price_shock({BTC: -0.3}), instruments=INSTRUMENTS, account=cross).iloc[0]
    assert row["liquidation_prices"][BTC] == pytest.approx(
        liquidation_price_nb(6_000.0, 1.0, 30_000.0, 0.004, 0.0), rel=1e-12)


def test_hedged_pair_under_correlations_to_one_loses_the_difference() -> None:
    rng = np.random.default_rng(3)
    idx = pd.date_range("2024-01-01", periods=500, freq="1h", tz="UTC")
    returns = pd.DataFrame({BTC: rng.normal(0, 0.004, 500), ETH: rng.normal(0, 0.006, 500)},
                           index=idx)
    s = snap({BTC: (1.0, 30_000.0, 30_000.0), ETH: (-15.0, 2_000.0, 2_000.0)}, cash=10_000.0)
    k, h = 3.0, 24
    sig = np.log1p(returns).tail(240).std(ddof=1)
    m = {sym: k * sig[sym] * math.sqrt(h) for sym in (BTC, ETH)}
    both = {way: 30_000.0 * math.expm1(sign * m[BTC]) - 30_000.0 * math.expm1(sign * m[ETH])
            for way, sign in (("up", 1.0), ("down", -1.0))}
    sc = correlation_one_shock(s, returns, k=k, horizon_bars=h, window_bars=240)
    row = run_stress(s, sc, instruments=INSTRUMENTS).iloc[0]
    assert row["pnl_usd"] == pytest.approx(min(both.values()), rel=1e-12)
    assert ("up" if both["up"] < both["down"] else "down") in sc.name
    # the legs move the same way; the loss is far smaller than either leg's move ...
    assert np.sign(sc.moves[BTC]) == np.sign(sc.moves[ETH])
    assert abs(row["pnl_usd"]) < 0.5 * 30_000.0 * abs(sc.moves[ETH])
    # ... and than volatility × k, where the hedge fails (long down, short up)
    vol = volatility_shock(s, returns, k=k, horizon_bars=h, window_bars=240)
    assert vol.moves[BTC] < 0 < vol.moves[ETH]
    loss = run_stress(s, vol, instruments=INSTRUMENTS).loc[0, "pnl_usd"]
    assert loss == pytest.approx(30_000.0 * math.expm1(-m[BTC]) - 30_000.0 * math.expm1(m[ETH]))


def test_funding_spike_pnl_is_minus_size_mark_rate_n() -> None:
    s = snap({BTC: (0.5, 29_000.0, 30_000.0), ETH: (-4.0, 2_100.0, 2_000.0)}, cash=5_000.0)
    rate, n = 0.003, 9
    row = run_stress(s, funding_spike(rate, n)).iloc[0]
    expected = -(0.5 * 30_000.0 - 4.0 * 2_000.0) * rate * n
    assert row["pnl_usd"] == pytest.approx(expected) and row["funding_pnl_usd"] == row["pnl_usd"]
    detail = stress_positions(s, funding_spike(rate, n))
    assert detail.loc[ETH, "funding_pnl_usd"] == pytest.approx(4.0 * 2_000.0 * rate * n)
    # adverse: each position pays
    adverse = run_stress(s, funding_spike(rate, n, snapshot=s)).iloc[0]
    assert adverse["pnl_usd"] == pytest.approx(-(0.5 * 30_000.0 + 4.0 * 2_000.0) * rate * n)
    # isolated positions pay from their own margin: a big enough spike liquidates one
    iso = AccountConfig(leverage=20.0, margin_mode="isolated")
    big = run_stress(s, funding_spike(0.05, 2, snapshot=s), instruments=INSTRUMENTS,
                     account=iso).iloc[0]
    # BTC: 725 margin + 500 profit − 1,500 funding; ETH: 420 + 400 − 800 < 40 maintenance
    assert big["liquidated"] == [BTC, ETH]


def test_liquidity_drain_uses_the_simulators_cost_formulas() -> None:
    frame = pd.DataFrame({"size": [2.0, -10.0], "entry_price": [30_000.0, 2_000.0],
                          "mark_price": [31_000.0, 1_900.0], "sigma": [0.01, np.nan],
                          "volume_usd": [5e6, np.nan]}, index=[BTC, ETH])
    s = PositionsSnapshot(frame, cash_usd=10_000.0)
    costs = CostsConfig(half_spread_bps=1.0, slippage_bps=2.0, impact_k=0.5, max_impact_bps=500)
    k = 4.0
    row = run_stress(s, liquidity_drain(k), instruments=INSTRUMENTS, costs=costs).iloc[0]
    expected = 0.0
    for notional, side, impact in ((62_000.0, -1, 0.5 * 0.01 * math.sqrt(62_000.0 / 5e6)),
                                   (19_000.0, 1, 0.0)):
        frac = k * (3e-4 + impact)
        fill = (notional) * (1 + side * frac)
        expected += notional * frac + fill * 4e-4
    assert row["closing_cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert row["pnl_usd"] == pytest.approx(-expected, rel=1e-12)
    assert row["liquidated"] == [] and row["price_pnl_usd"] == 0.0


def test_default_scenarios_and_table_shape(hourly) -> None:
    closes = pd.DataFrame({s: f["close"] for s, f in hourly.items()})
    returns = closes.pct_change().dropna()
    s = snap({BTC: (0.2, 29_000.0, 29_500.0), ETH: (-2.0, 1_850.0, 1_840.0)}, cash=4_000.0)
    scenarios = default_scenarios(s, returns)
    kinds = [sc.kind for sc in scenarios]
    assert kinds.count("price_shock") == 4 and kinds.count("historical") == 3
    for kind in ("correlation_one", "volatility", "funding", "liquidity"):
        assert kind in kinds
    table = run_stress(s, scenarios, instruments=INSTRUMENTS,
                       account=AccountConfig(leverage=5.0))
    assert len(table) == len(scenarios) and table["name"].is_unique
    assert table.attrs["equity_usd"] == pytest.approx(s.equity_usd)
    hist = table[table["kind"] == "historical"]
    assert hist["start"].notna().all() and (hist["end"] > hist["start"]).all()
    assert set(hist.iloc[0]["moves"]) == {BTC, ETH}


# ------------------------------------------------------------------------ historical windows
def brute_force_worst(returns: pd.DataFrame, window: int, n_worst: int,
                      weights: dict[str, float] | None) -> list[tuple]:
    cols = list(returns.columns)
    w = [1.0 / len(cols)] * len(cols) if weights is None else [weights.get(c, 0.0) for c in cols]
    r = returns.to_numpy()
    values = []
    for j in range(len(r) - window + 1):
        moves = [float(np.prod(1.0 + r[j:j + window, i]) - 1.0) for i in range(len(cols))]
        values.append((sum(a * b for a, b in zip(w, moves, strict=True)), j))
    picked: list[int] = []
    for _, j in sorted(values):  # worst first, ties: earliest
        if all(abs(j - p) >= window for p in picked):
            picked.append(j)
        if len(picked) == n_worst:
            break
    return [(returns.index[j], returns.index[j + window - 1]) for j in picked]


@pytest.mark.parametrize(("window", "weights"), [
    (24, None), (1, {"BTC": 1.0}), (6, {"BTC": 1.0, "ETH": -0.5}), (24, {"ETH": -1.0}),
])
def test_worst_windows_match_a_brute_force_search(real_hourly, window, weights) -> None:
    returns = real_hourly.dropna()
    got = worst_windows(returns, window_bars=window, n_worst=5, weights=weights)
    expected = brute_force_worst(returns, window, 5, weights)
    assert list(zip(got["start"], got["end"], strict=True)) == expected
    # the per-asset moves are the compounded returns over the window
    first = got.iloc[0]
    block = returns.loc[first["start"]:first["end"]]
    assert len(block) == window
    for col in returns.columns:
        assert first[col] == pytest.approx(np.prod(1.0 + block[col]) - 1.0, rel=1e-12)


def test_worst_btc_hour_and_day_have_the_right_dates(real_hourly) -> None:
    btc = real_hourly["BTC"].dropna()
    hours = worst_windows(btc, window_bars=1, n_worst=2)
    assert list(hours["start"]) == [pd.Timestamp("2023-07-24 09:00", tz="UTC"),
                                    pd.Timestamp("2023-07-14 18:00", tz="UTC")]
    assert list(hours["portfolio_return"]) == list(btc.nsmallest(2))
    days = historical_scenarios(btc, window_bars=24, n_worst=2)
    # the 24 closes to 2023-07-14 19:00 (the sell-off after the July 13 rally)
    assert days[0].end == pd.Timestamp("2023-07-14 19:00", tz="UTC")
    closes = (1.0 + btc).cumprod()
    assert days[0].moves["BTC"] == pytest.approx(
        closes[days[0].end] / closes.shift(24)[days[0].end] - 1.0, rel=1e-12)
    assert days[0].kind == "historical" and "2023-07-13 20:00 to 2023-07-14 19:00" in \
        days[0].description
    assert days[1].end < days[0].start or days[1].start > days[0].end  # no overlap


# --------------------------------------------------------------------- the simulator's margin
def _alternating_target(index: pd.Index, level: float, hold: int) -> pd.Series:
    """+level for ``hold`` bars, 0 for one bar, −level for ``hold`` bars, 0, … (each entry a
    fresh position; edge-triggered orders)."""
    values = []
    sign = 1.0
    while len(values) < len(index):
        values += [sign * level] * hold + [0.0]
        sign = -sign
    return pd.Series(values[: len(index)], index=index)


def _check_decisions(res, bars: dict[str, pd.DataFrame], account: AccountConfig) -> tuple:
    """For every bar held into the next without a market order there: shock each asset to the
    next bar's adverse extreme (the simulator's liquidation check) and compare decisions."""
    liq_bars = set(res.fills.loc[res.fills["order_type"] == "liquidation", "bar"])
    market_bars = set(res.fills.loc[res.fills["order_type"] == "market", "bar"])
    checked = n_liq = 0
    for t in range(len(res.index) - 1):
        sizes = res.positions.iloc[t]
        if not sizes.any() or (t + 1) in market_bars:
            continue
        s = PositionsSnapshot.from_sim(res, bars, at=t, account=account)
        moves = {}
        for sym in res.symbols:
            col = "low" if sizes[sym] > 0 else "high"
            moves[sym] = bars[sym][col].iloc[t + 1] / bars[sym]["close"].iloc[t] - 1.0
        row = run_stress(s, price_shock(moves), instruments=INSTRUMENTS, account=account).iloc[0]
        assert bool(row["liquidated"]) == ((t + 1) in liq_bars), t
        checked += 1
        if not row["liquidated"] or len(res.symbols) > 1:
            continue
        n_liq += 1
        size = sizes.iloc[0]
        price = row["liquidation_prices"][res.symbols[0]]
        fill = res.fills[(res.fills["bar"] == t + 1)
                         & (res.fills["order_type"] == "liquidation")].iloc[0]
        if (bars[res.symbols[0]]["open"].iloc[t + 1] - price) * size > 0:  # not gapped
            assert fill["price"] == pytest.approx(price, rel=1e-9)
            assert res.equity.iloc[t + 1] == pytest.approx(
                row["equity_after_liquidation_usd"], rel=1e-9, abs=1e-9)
    return checked, n_liq, len(liq_bars - market_bars)


def test_isolated_liquidation_decisions_equal_the_simulators(hourly) -> None:
    account = AccountConfig(leverage=100.0, margin_mode="isolated")
    bars = {BTC: hourly[BTC]}
    res = simulate(bars, Signals(pd.DataFrame({BTC: _alternating_target(hourly[BTC].index, 3.0,
                                                                        24)})),
                   instruments=INSTRUMENTS, costs=CostsConfig(default_funding_rate=0.0),
                   account=account)
    checked, n_liq, n_sim = _check_decisions(res, bars, account)
    assert checked > 400 and n_liq == n_sim >= 20


@pytest.mark.parametrize("symbols", [(BTC,), (BTC, ETH)])
def test_cross_liquidation_decisions_equal_the_simulators(hourly, symbols) -> None:
    """Cross liquidations take (almost) all the equity: one per run, so several runs."""
    account = AccountConfig(leverage=50.0)
    level = 45.0 / len(symbols)
    total = checked = 0
    for start in range(0, 1_000, 150):
        bars = {s: hourly[s].iloc[start:] for s in symbols}
        idx = bars[BTC].index
        target = pd.DataFrame({s: _alternating_target(idx, level, 24) for s in symbols})
        res = simulate(bars, Signals(target), instruments=INSTRUMENTS, account=account,
                       costs=CostsConfig(default_funding_rate=0.0))
        c, _, n_sim = _check_decisions(res, bars, account)
        checked, total = checked + c, total + n_sim
    assert total >= 5 and checked > 100


def test_margin_ratio_and_equity_equal_the_simulators(hourly) -> None:
    account = AccountConfig(leverage=20.0)
    target = pd.DataFrame({BTC: _alternating_target(hourly[BTC].index, 4.0, 24),
                           ETH: -_alternating_target(hourly[BTC].index, 6.0, 30)})
    res = simulate(hourly, Signals(target), instruments=INSTRUMENTS, account=account)
    assert res.totals["funding_usd"] != 0.0
    for t in range(5, len(res.index), 17):
        s = PositionsSnapshot.from_sim(res, hourly, at=t, account=account)
        base = run_stress(s, Scenario("now"), instruments=INSTRUMENTS, account=account)
        assert base.attrs["equity_usd"] == pytest.approx(res.equity.iloc[t], rel=1e-12)
        assert base.attrs["margin_ratio"] == pytest.approx(res.margin_ratio.iloc[t], rel=1e-12)
        assert base.attrs["time"] == res.index[t]


def test_snapshot_from_sim_rebuilds_entry_and_isolated_margin_with_funding(hourly) -> None:
    """Simulator.position_list() shows the kernel's own entry price and isolated margin."""
    bars = hourly[BTC]
    account = AccountConfig(leverage=5.0, margin_mode="isolated")
    sim = Simulator(BTC, instruments=BINANCE_BTCUSDT_PERP, account=account, timeframe="1h")
    target = _alternating_target(bars.index, 3.0, 30).to_numpy().copy()
    target[5:40] = np.linspace(1.0, 3.0, 35)  # scale-ins and reductions, no flat bar
    checked = 0
    for t, (stamp, bar) in enumerate(bars.iterrows()):
        sim.step(bar.to_dict(), float(target[t]), time=stamp)
        if t % 37 == 0 and t > 0:
            (pos,) = sim.position_list()
            s = PositionsSnapshot.from_sim(sim.result(), bars.iloc[: t + 1], at=t,
                                           account=account)
            row = s.positions.loc[BTC]
            assert row["size"] == pos.size
            if pos.size != 0:
                assert row["entry_price"] == pytest.approx(pos.entry_price, rel=1e-12)
                assert row["margin_usd"] == pytest.approx(pos.margin_usd, rel=1e-9)
                checked += 1
    assert checked > 10
    assert sim.result().totals["funding_usd"] != 0.0


# ------------------------------------------------------------------------ files and errors
def test_positions_from_csv_and_json(tmp_path: Path) -> None:
    csv = tmp_path / "pos.csv"
    csv.write_text("symbol,size,entry_price,mark_price\nBTC/USDT:USDT,0.5,29000,30000\n"
                   "ETH/USDT:USDT,-3,1900,1850\n")
    a = PositionsSnapshot.from_file(csv, cash_usd=5_000.0)
    assert a.held == (BTC, ETH) and a.equity_usd == pytest.approx(5_000 + 500 + 150)
    js = tmp_path / "pos.json"
    js.write_text(json.dumps({"cash_usd": 5_000, "positions": [
        {"symbol": BTC, "size": 0.5, "entry_price": 29_000, "mark_price": 30_000,
         "margin_usd": 1_000}]}))
    b = PositionsSnapshot.from_file(js)
    assert b.positions.loc[BTC, "margin_usd"] == 1_000.0 and b.cash_usd == 5_000.0


@pytest.mark.parametrize(("text", "message"), [
    ("symbol,size,entry_price\nBTC/USDT:USDT,1,30000\n", "missing column mark_price"),
    ("symbol,size,entry_price,mark_price\nBTC/USDT:USDT,1,30000,abc\n",
     "non-numeric value in column mark_price at row 0"),
    ("symbol,size,entry_price,mark_price\nX,1,30000,1\nX,1,1,1\n", "appears twice"),
    ("symbol,size,entry_price,mark_price\nX,1,-5,1\n", "entry_price must be > 0"),
])
def test_malformed_positions_file_names_file_row_and_column(tmp_path: Path, text: str,
                                                            message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as info:
        PositionsSnapshot.from_file(path, cash_usd=1.0)
    assert str(path) in str(info.value)


def test_missing_cash_and_bad_scenarios_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("symbol,size,entry_price,mark_price\nX,1,1,1\n")
    with pytest.raises(ConfigError, match="no cash given"):
        PositionsSnapshot.from_file(path)
    with pytest.raises(ConfigError, match="move of X must be"):
        Scenario("bad", moves={"X": -1.5})
    with pytest.raises(ConfigError, match="kind must be"):
        Scenario("bad", kind="meteor")
