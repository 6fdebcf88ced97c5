"""The Backtest runner: one simulator, the trade log's cost split, stats, argument checks."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from quantum_trading.backtest import (
    STATS_KEYS,
    TRADE_COLUMNS,
    Backtest,
    default_instrument,
    trade_log,
)
from quantum_trading.backtest import metrics as m
from quantum_trading.data import generate_market
from quantum_trading.domain import BINANCE_BTCUSDT_PERP, Instrument, Signals
from quantum_trading.errors import ConfigError, DataError
from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig, simulate
from quantum_trading.strategies import (
    IntParam,
    StrategyError,
    get_strategy,
    strategy_from_function,
)
from quantum_trading.strategies.library import buy_and_hold

SYM = "BTC/USDT:USDT"


def test_the_run_is_the_simulator_run(btc_bars, momentum_result) -> None:
    """Backtest adds nothing to fills: its equity is simulate()'s, bar for bar."""
    strat = get_strategy("momentum_breakout")
    signals = strat.signals(btc_bars, **momentum_result.params)
    direct = simulate(btc_bars, signals, instruments=BINANCE_BTCUSDT_PERP, risk=RiskConfig())
    pd.testing.assert_series_equal(momentum_result.equity, direct.equity)
    pd.testing.assert_frame_equal(momentum_result.sim.risk_decisions, direct.risk_decisions)
    bench = simulate(btc_bars, buy_and_hold.signals(btc_bars), instruments=BINANCE_BTCUSDT_PERP)
    pd.testing.assert_series_equal(momentum_result.benchmark_equity, bench.equity)
    assert momentum_result.stats["Buy & Hold Return [%]"] == pytest.approx(
        100 * (bench.final_equity_usd / 10_000 - 1))
    # the joined funding column was used, not the default schedule
    assert momentum_result.sim.totals["funding_usd"] != 0.0
    assert momentum_result.symbols == (SYM,)
    assert momentum_result.periods_per_year == 8766.0


def test_trade_log_splits_costs_and_adds_up(momentum_result) -> None:
    log = momentum_result.trades
    sim = momentum_result.sim
    assert tuple(log.columns) == TRADE_COLUMNS
    assert set(log["direction"]) == {"long", "short"}
    assert {"signal", "stop_loss"} <= set(log["exit_reason"])
    assert log["entry_time"].is_monotonic_increasing
    # per trade, spread + slippage + impact is the simulator's costs_usd
    raw = sim.trades.sort_values("entry_bar", kind="stable").reset_index(drop=True)
    np.testing.assert_allclose(log[["spread_usd", "slippage_usd", "impact_usd"]].sum(axis=1),
                               raw["costs_usd"], rtol=1e-12, atol=1e-9)
    for col in ("spread_usd", "slippage_usd", "fees_usd", "funding_usd", "liquidation_fee_usd"):
        key = col if col != "liquidation_fee_usd" else "liquidation_fee_usd"
        assert log[col].sum() == pytest.approx(sim.totals[key], rel=1e-9, abs=1e-9), col
    # net PnL of all trades (the open one at the last close) = final − initial equity
    assert log["pnl_usd"].sum() == pytest.approx(sim.final_equity_usd - 10_000.0, rel=1e-9)
    np.testing.assert_allclose(log["holding_time"], log["exit_time"] - log["entry_time"])
    assert log["is_open"].sum() <= 1 and (log["exit_reason"] == "open").sum() == log["is_open"].sum()


def test_flips_and_impact_are_split_per_trade(btc_bars) -> None:
    """A reversal fill is shared by two trades in proportion to the units closed and opened."""
    costs = CostsConfig(impact_k=0.8)
    result = Backtest(btc_bars, "trend_following", costs=costs, benchmark=None,
                      params={"direction": "both", "fast": 10, "slow": 30}).run()
    log, sim = result.trades, result.sim
    assert result.benchmark is None and math.isnan(result.stats["Buy & Hold Return [%]"])
    flips = (log["exit_time"].iloc[:-1].to_numpy() == log["entry_time"].iloc[1:].to_numpy())
    assert flips.sum() > 5  # reversals happened at one fill
    assert sim.totals["impact_usd"] > 0
    assert log["impact_usd"].sum() == pytest.approx(sim.totals["impact_usd"], rel=1e-9)
    raw = sim.trades.sort_values("entry_bar", kind="stable").reset_index(drop=True)
    np.testing.assert_allclose(log[["spread_usd", "slippage_usd", "impact_usd"]].sum(axis=1),
                               raw["costs_usd"], rtol=1e-12, atol=1e-9)


def test_stats_are_the_metrics_of_the_equity_curve(momentum_result) -> None:
    s = momentum_result.stats
    eq = momentum_result.equity
    r = eq.pct_change().dropna().to_numpy()
    assert list(s.index) == list(STATS_KEYS)
    assert s["Sharpe Ratio"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(8766), rel=1e-9)
    assert s["Volatility (Ann.) [%]"] == pytest.approx(100 * r.std(ddof=1) * math.sqrt(8766),
                                                       rel=1e-9)
    assert s["Probabilistic Sharpe Ratio"] == pytest.approx(m.probabilistic_sharpe_ratio(r))
    fills = momentum_result.sim.fills
    assert s["Turnover [x]"] == pytest.approx(fills["notional_usd"].sum() / eq.mean())
    totals = momentum_result.sim.totals
    assert (s["Fees [$]"], s["Spread [$]"], s["Slippage [$]"], s["Funding [$]"]) == (
        totals["fees_usd"], totals["spread_usd"], totals["slippage_usd"], totals["funding_usd"])
    assert s["# Liquidations"] == 0 and s["Liquidation Fees [$]"] == 0.0
    assert s["Equity Final [$]"] == pytest.approx(momentum_result.sim.final_equity_usd)
    bench = momentum_result.benchmark_stats
    assert bench["# Trades"] == 1 and bench["Return [%]"] == s["Buy & Hold Return [%]"]


def test_liquidations_are_counted() -> None:
    idx = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")
    bars = pd.DataFrame({"open": [100.0, 100, 100, 100, 85, 80],
                         "high": [100.0, 100, 100, 100, 85, 80],
                         "low": [100.0, 100, 100, 80, 80, 80],
                         "close": [100.0, 100, 100, 85, 80, 80], "volume": 1e6}, index=idx)
    bars.attrs["symbol"] = "X"

    def all_in(df):
        return pd.Series(10.0, index=df.index)  # 10 × equity

    strat = strategy_from_function(all_in, max_abs_target=10.0)
    result = Backtest(bars, strat, instrument=Instrument.generic("X", max_leverage=20.0),
                      account=AccountConfig(leverage=10.0),
                      costs=CostsConfig(default_funding_rate=0.0), risk=None).run()
    # 10× long from 100, the bar's low of 80 is far past the ~10 % liquidation distance
    s = result.stats
    assert s["# Liquidations"] == 1 and s["Liquidation Fees [$]"] > 0
    assert result.trades["exit_reason"].tolist() == ["liquidation"]
    assert result.trades["liquidation_fee_usd"].iloc[0] == pytest.approx(s["Liquidation Fees [$]"])


def test_strategy_forms_name_object_and_function() -> None:
    bars = generate_market(n_assets=1, n_bars=400, seed=5).ohlcv[SYM]
    by_name = Backtest(bars, "trend_following").run()
    by_object = Backtest(bars, get_strategy("trend_following")).run()
    pd.testing.assert_series_equal(by_name.equity, by_object.equity)

    def above_sma(df):
        return (df["close"] > df["close"].rolling(24).mean()).astype(float)

    result = Backtest(bars, above_sma).run()
    assert result.strategy == "above_sma" and result.stats["# Trades"] > 0

    def sized(df, period=10):
        return (df["close"] > df["close"].rolling(period).mean()).astype(float)

    strat = strategy_from_function(sized, {"period": IntParam(2, 50, default=10)})
    assert Backtest(bars, strat, params={"period": 20}).run().params == {"period": 20}


def test_default_instrument_and_symbol() -> None:
    bars = generate_market(n_assets=1, n_bars=300, seed=5).ohlcv[SYM]
    assert default_instrument(SYM) is BINANCE_BTCUSDT_PERP
    assert Backtest(bars, "buy_and_hold").instruments == {SYM: BINANCE_BTCUSDT_PERP}
    plain = bars.copy()
    plain.attrs = {}
    bt = Backtest(plain, "buy_and_hold")
    assert bt.symbols == ("ASSET",) and bt.instruments["ASSET"].lot_size == 0.0
    # buy and hold: one fill at bar 1's open, held to the end, lots of 0.001 BTC
    result = Backtest(bars, "buy_and_hold").run()
    assert len(result.sim.fills) == 1 and result.sim.fills["time"].iloc[0] == bars.index[1]
    assert result.sim.fills["size"].iloc[0] * 1000 == pytest.approx(
        round(result.sim.fills["size"].iloc[0] * 1000))


def test_several_symbols_share_cash_and_the_benchmark_is_equal_weight() -> None:
    market = generate_market(n_assets=2, n_bars=500, seed=9)
    result = Backtest(market.ohlcv, "trend_following", params={"fast": 10, "slow": 40},
                      funding=market.funding).run()
    assert result.symbols == tuple(market.symbols)
    assert set(result.trades["symbol"]) <= set(market.symbols)
    bench = result.benchmark.positions.iloc[-1]
    notional = bench * np.array([market.ohlcv[s]["close"].iloc[-1] for s in market.symbols])
    assert (notional > 0).all()
    assert notional.iloc[0] == pytest.approx(notional.iloc[1], rel=0.2)  # about half each


ARG_CASES = [
    ({"data": [1, 2]}, "data"),
    ({"data": pd.DataFrame({"close": [1.0, 2.0]},
                           index=pd.date_range("2024", periods=2, freq="h", tz="UTC"))}, "data"),
    ({"data": "naive"}, "data"),
    ({"data": {}}, "data"),
    ({"strategy": "no_such_strategy"}, "strategy"),
    ({"strategy": 42}, "strategy"),
    ({"instrument": "BTC"}, "instrument"),
    ({"instrument": {"ETH/USDT:USDT": BINANCE_BTCUSDT_PERP}}, "instrument"),
    ({"costs": {"slippage_bps": 1.0}}, "costs"),
    ({"account": AccountConfig(leverage=200.0)}, "account"),
    ({"account": None}, "account"),
    ({"params": {"lookback_days": 3}}, "params"),
    ({"params": {"fast": 1000}}, "params"),
    ({"params": [("fast", 10)]}, "params"),
    ({"funding": 0.0001}, "funding"),
    ({"mark": [1.0]}, "mark"),
    ({"benchmark": "no_such_benchmark"}, "benchmark"),
]


@pytest.mark.parametrize(("override", "name"), ARG_CASES,
                         ids=[f"{n}-{i}" for i, (_, n) in enumerate(ARG_CASES)])
def test_bad_arguments_raise_config_error_naming_them(override, name) -> None:
    bars = generate_market(n_assets=1, n_bars=100, seed=1).ohlcv[SYM]
    args = {"data": bars, "strategy": "trend_following"}
    if isinstance(override.get("data"), str):
        override = {"data": bars.tz_localize(None)}
    args.update(override)
    data, strategy = args.pop("data"), args.pop("strategy")
    with pytest.raises(ConfigError, match=rf"^Backtest: {re.escape(name)}\b"):
        Backtest(data, strategy, **args)


def test_positional_arguments_after_the_strategy_are_refused() -> None:
    bars = generate_market(n_assets=1, n_bars=100, seed=1).ohlcv[SYM]
    with pytest.raises(TypeError):
        Backtest(bars, "buy_and_hold", BINANCE_BTCUSDT_PERP)  # type: ignore[misc]


def test_strategy_and_data_errors_come_through_at_run() -> None:
    bars = generate_market(n_assets=1, n_bars=100, seed=1).ohlcv[SYM]

    def broken(df):
        raise RuntimeError("boom")

    with pytest.raises(StrategyError, match="boom"):
        Backtest(bars, broken).run()
    bad = bars.copy()
    bad.iloc[10, bad.columns.get_loc("high")] = 0.5 * bad["low"].iloc[10]
    with pytest.raises(DataError, match="row"):
        Backtest(bad, "buy_and_hold").run()


def test_trade_log_of_a_run_without_trades() -> None:
    bars = generate_market(n_assets=1, n_bars=100, seed=1).ohlcv[SYM]
    flat = strategy_from_function(lambda df: df["close"] * 0.0, name="flat")
    result = Backtest(bars, flat).run()
    assert result.trades.empty and tuple(result.trades.columns) == TRADE_COLUMNS
    s = result.stats
    assert s["# Trades"] == 0 and s["Return [%]"] == 0.0 and s["Exposure Time [%]"] == 0.0
    assert math.isnan(s["Win Rate [%]"]) and math.isnan(s["Sharpe Ratio"])
    assert s["Avg. Holding Time"] is pd.NaT
    assert trade_log(result.sim).equals(result.trades)
    assert isinstance(result.signals, Signals)


def test_the_default_risk_engine_caps_positions_and_can_be_turned_off(btc_bars) -> None:
    """Every order passes the risk engine by default (10 % of equity per position)."""
    capped = Backtest(btc_bars, "buy_and_hold", benchmark=None).run()
    assert capped.stats["# Risk Resized"] >= 1
    entry = capped.sim.fills.iloc[0]
    decision = capped.sim.risk_decisions.iloc[0]
    assert decision["action"] == "resize" and decision["reason"] == "max_position"
    assert entry["size"] == decision["approved_size"] < decision["requested_size"]
    assert entry["size"] * decision["price"] <= 0.10 * decision["equity_usd"]
    free = Backtest(btc_bars, "buy_and_hold", benchmark=None, risk=None).run()
    assert free.stats["# Risk Resized"] == 0 and free.stats["# Risk Rejected"] == 0
    assert (free.sim.positions.abs().iloc[:, 0] * btc_bars["close"]).max() > 0.9 * 10_000
    with pytest.raises(ConfigError, match="max_drawdown_pct"):
        Backtest(btc_bars, "buy_and_hold", risk={"max_drawdown_pct": -1})
