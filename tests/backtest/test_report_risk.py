"""The report's risk sections: VaR / ES over time (the numbers of ``rolling_var_es``), risk
limit hits (or a note that the risk engine was off) and the stress table."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from quantum_trading.backtest import Backtest, BacktestResult, write_report
from quantum_trading.backtest.report import SECTION_TITLES
from quantum_trading.backtest.report_risk import (
    RISK_METHODS,
    RISK_SECTION_TITLES,
    risk_events,
    risk_window_bars,
    stress_snapshot,
    var_es_over_time,
)
from quantum_trading.data import generate_market
from quantum_trading.risk import backtest_var, rolling_var_es
from quantum_trading.risk.stress import PositionsSnapshot, price_shock, run_stress
from quantum_trading.sim import AccountConfig, RiskConfig

SYM = "BTC/USDT:USDT"


def _section(text: str, title: str) -> str:
    start = text.index(f"<h2>{title}")
    end = text.find("<h2>", start + 4)
    return text[start:end]


def test_sections_in_order_and_var_numbers_equal_rolling_var_es(momentum_result: BacktestResult,
                                                                tmp_path: Path) -> None:
    text = write_report(momentum_result, tmp_path / "m.html").read_text(encoding="utf-8")
    positions = [text.index(f"<h2>{t.replace('&', '&amp;')}") for t in SECTION_TITLES]
    assert positions == sorted(positions)
    assert SECTION_TITLES.index(RISK_SECTION_TITLES[0]) == SECTION_TITLES.index(
        "Rolling Sharpe ratio") + 1
    returns = momentum_result.returns
    window = risk_window_bars(momentum_result.periods_per_year, len(returns))
    assert window == 526  # 30 days of 1h bars, capped at half the 1,053 returns
    assert "<h2>VaR / ES over time (526 bars ≈ 22 days, 99 %)" in text
    frame = var_es_over_time(returns, window_bars=window)
    var_section = _section(text, "VaR / ES over time")
    for method in RISK_METHODS:
        ref = rolling_var_es(returns, window, method, 0.99)
        pd.testing.assert_series_equal(frame[f"var_{method}"], ref["var"], check_names=False)
        pd.testing.assert_series_equal(frame[f"es_{method}"], ref["es"], check_names=False)
        bt = backtest_var(returns, ref["var"], 0.99)
        row = (f"<tr><td>{method}</td><td>{100 * ref['var'].iloc[-1]:.3f}</td>"
               f"<td>{100 * ref['es'].iloc[-1]:.3f}</td><td>{100 * ref['var'].mean():.3f}</td>"
               f"<td>{bt.kupiec.n_exceptions} / {bt.kupiec.n_obs}</td>")
        assert row in var_section, method
        assert f"<td>{bt.kupiec.p_value:.3f}</td>" in var_section
    assert "VaR99 historical" in var_section and "ES99 fhs" in var_section


def test_risk_limit_hits_table_and_equity_markers(btc_bars: pd.DataFrame,
                                                  tmp_path: Path) -> None:
    def losing(df: pd.DataFrame) -> pd.Series:  # bets on the last bar's direction
        return np.sign(df["close"] - df["open"]).replace(0.0, np.nan).ffill().fillna(0.0)

    result = Backtest(btc_bars, losing, account=AccountConfig(leverage=5.0),
                      risk=RiskConfig(max_position_frac=0.5, daily_loss_limit_pct=1.0,
                                      max_drawdown_pct=4.0)).run()
    events = risk_events(result)
    dec = result.sim.risk_decisions
    hits = dec["action"].isin(("resize", "reject"))
    state = result.sim.trading_state.astype(str)
    changes = int((state != state.shift(1, fill_value="active")).sum())
    assert hits.sum() > 0 and changes >= 2
    assert len(events) == hits.sum() + changes
    assert (events["time"].diff().dropna() >= pd.Timedelta(0)).all()
    text = write_report(result, tmp_path / "limits.html").read_text(encoding="utf-8")
    section = _section(text, "Risk limit hits")
    details = set(events.loc[events["event"] == "state", "detail"])
    assert "trading state active → reducing (at the close)" in details
    assert any(d.endswith("→ halted (at the close)") for d in details)
    counts = events.groupby(["event", "reason"]).size()
    for (event, reason), n in counts.items():  # the summary counts every event
        assert f"<tr><td>{event}</td><td>{reason}</td><td>{n}</td></tr>" in section
    assert "<td>reject</td><td>max_drawdown</td>" in section
    last = events.iloc[-1]
    assert f"<td>{last['time']:%Y-%m-%d %H:%M}</td><td>{last['event']}</td>" in section
    assert f"{len(events)} events" in section
    for marker in ("risk: resized", "risk: rejected", "risk: trading state"):
        assert f'"name":"{marker}"' in text, marker


def test_risk_engine_off_is_said(btc_bars: pd.DataFrame, tmp_path: Path) -> None:
    result = Backtest(btc_bars, "momentum_breakout", params={"direction": "both"},
                      risk=None).run()
    assert risk_events(result) is None
    text = write_report(result, tmp_path / "off.html").read_text(encoding="utf-8")
    assert "The risk engine was off for this run" in _section(text, "Risk limit hits")
    assert '"name":"risk: ' not in text


def test_stress_table_of_the_final_positions(momentum_result: BacktestResult,
                                             tmp_path: Path) -> None:
    account = AccountConfig(leverage=1.0)
    text = write_report(momentum_result, tmp_path / "s.html",
                        account=account).read_text(encoding="utf-8")
    section = _section(text, "Stress test")
    size = momentum_result.sim.positions.iloc[-1, 0]
    assert size != 0
    assert f"Final positions at the last close (2023-08-17 10:00 UTC): {SYM} {size:+.6g}" \
        in section
    snap = PositionsSnapshot.from_sim(momentum_result.sim, momentum_result.bars, account=account)
    expected = run_stress(snap, price_shock({SYM: -0.10}), account=account).iloc[0]
    assert (f"<tr><td>all -10 %</td><td class='{'neg' if expected['pnl_usd'] < 0 else 'pos'}'>"
            f"{expected['pnl_usd']:,.2f}</td>") in section
    for name in ("all +20 %", "worst 24-bar window #1", "correlations → 1", "volatility ×3",
                 "adverse funding 0.3 % × 9", "liquidity drain ×5"):
        assert name in section, name


def test_a_run_that_ends_flat_stresses_its_largest_position(btc_bars: pd.DataFrame,
                                                            tmp_path: Path) -> None:
    def first_half(df: pd.DataFrame) -> pd.Series:
        target = pd.Series(0.0, index=df.index)
        target.iloc[100:400] = 1.0
        return target

    result = Backtest(btc_bars, first_half, account=AccountConfig(leverage=2.0),
                      risk=None).run()
    assert result.sim.positions.iloc[-1, 0] == 0
    snap, label = stress_snapshot(result, account=AccountConfig(leverage=2.0))
    gross = result.sim.positions.iloc[:, 0].abs() * btc_bars["close"]
    when = gross.idxmax()
    assert snap is not None and snap.time == when
    assert label.startswith("The run ended flat; stressed instead: the largest position held")
    assert f"{when:%Y-%m-%d %H:%M} UTC" in label
    text = write_report(result, tmp_path / "flat.html").read_text(encoding="utf-8")
    assert "The run ended flat" in _section(text, "Stress test")
    # the result records the account it ran with, so the report needs no assumption
    assert result.account == AccountConfig(leverage=2.0)
    assert "the result does not record its account" not in text


def test_short_runs_say_there_are_too_few_bars(tmp_path: Path) -> None:
    bars = generate_market(n_assets=1, n_bars=80, seed=3).ohlcv[SYM]
    result = Backtest(bars, "buy_and_hold").run()
    assert risk_window_bars(result.periods_per_year, len(result.returns)) is None
    text = write_report(result, tmp_path / "short.html").read_text(encoding="utf-8")
    section = _section(text, "VaR / ES over time")
    assert re.search(r"Not enough bars: 79 returns, a 99 % historical VaR needs a window of "
                     r"at least 100", section)
    assert "<h2>Stress test" in text
