"""The HTML report: one self-contained file with every section and the final equity."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quantum_trading.backtest import Backtest, write_report
from quantum_trading.backtest.report import SECTION_TITLES, rolling_window_bars
from quantum_trading.backtest.stats import format_stat
from quantum_trading.data import generate_market, load_ohlcv


def _check_self_contained(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>")
    assert "plotly.js v" in text or "Plotly=" in text or "window.Plotly" in text
    assert text.count("plotly.js v") <= 1  # embedded once, by the first figure only
    assert not re.search(r"<script[^>]+src=[\"']?https?:", text)


def test_report_is_self_contained_with_every_section(momentum_result, tmp_path: Path) -> None:
    path = write_report(momentum_result, tmp_path / "reports" / "momentum.html")
    assert path.is_file() and path.stat().st_size > 3_000_000  # plotly.js (~4.6 MB) inside
    text = path.read_text(encoding="utf-8")
    _check_self_contained(text)
    for title in SECTION_TITLES:
        assert f"<h2>{title.replace('&', '&amp;')}" in text, title
    final = format_stat("Equity Final [$]", momentum_result.stats["Equity Final [$]"])
    assert final in text and "Equity Final [$]" in text
    # trade markers carry the exit reason; each cost is on the cost chart
    assert "exit reason: stop_loss" in text and "exit reason: signal" in text
    for cost in ("fees", "spread", "slippage", "impact", "funding", "liquidation fees"):
        assert f'"{cost}"' in text, cost
    # rolling Sharpe: 30 days of 1 h bars = 720, capped at half of the 1,053 returns
    assert "Rolling Sharpe ratio (526 bars ≈ 22 days)" in text


def test_long_runs_are_thinned_for_plotting(binance_futures_dir: Path, tmp_path: Path) -> None:
    bars = load_ohlcv(binance_futures_dir / "BTC_USDT_USDT-5m-futures.feather")
    result = Backtest(bars, "trend_following", params={"direction": "both"}).run()
    assert len(bars) > 10_000
    path = write_report(result, tmp_path / "five_minutes.html")
    text = path.read_text(encoding="utf-8")
    _check_self_contained(text)
    assert "merged candles" in text
    assert path.stat().st_size < 8_000_000
    assert format_stat("Equity Final [$]", result.stats["Equity Final [$]"]) in text


def test_several_symbols_get_one_price_chart_each(tmp_path: Path) -> None:
    market = generate_market(n_assets=2, n_bars=300, seed=4)
    result = Backtest(market.ohlcv, "buy_and_hold").run()
    text = write_report(result, tmp_path / "two.html").read_text(encoding="utf-8")
    assert text.count('"type":"candlestick"') == 2


@pytest.mark.parametrize(("ppy", "n", "expected"), [
    (8766.0, 5_000, 720), (8766.0, 300, 150), (365.25, 1_000, 30), (105_192.0, 50_000, 8_640),
    (8766.0, 12, 10),
])
def test_rolling_window_is_30_days_of_bars(ppy: float, n: int, expected: int) -> None:
    assert rolling_window_bars(ppy, n) == expected
