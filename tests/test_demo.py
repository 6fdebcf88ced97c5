"""``quantum demo``: synthetic (or real) data → every library strategy → table and reports."""

from __future__ import annotations

from pathlib import Path

from quantum_trading.backtest.stats import format_stat
from quantum_trading.cli.main import main
from quantum_trading.demo import SUMMARY_COLUMNS, run_demo
from quantum_trading.strategies import LIBRARY

NAMES = [s.name for s in LIBRARY]


def test_demo_command_on_a_small_synthetic_market(capsys, tmp_path: Path) -> None:
    user_data = tmp_path / "user_data"
    code = main(["demo", "--bars", "400", "--seed", "3", "--user-data", str(user_data)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3 assets × 400 1h bars (seed 3)" in out and "no gaps" in out
    assert "funding:" in out and "settlements and mark prices joined" in out
    for column in SUMMARY_COLUMNS:
        assert column in out, column
    rows = [line for line in out.splitlines() if any(f" {n} " in line for n in NAMES)]
    assert len(rows) == len(NAMES)
    for name in NAMES:
        report = user_data / "reports" / f"demo-{name}-BTC_USDT_USDT.html"
        assert report.is_file(), name
        assert str(report) in out.replace("\n", "")
    # the store holds the market, loaded back through the loaders
    assert (user_data / "data" / "demo" / "futures" / "BTC_USDT_USDT-1h-futures.parquet").is_file()


def test_demo_table_reports_and_results_agree(tmp_path: Path) -> None:
    result = run_demo(tmp_path, n_bars=400, seed=3)
    assert list(result.summary.index) == NAMES
    assert list(result.summary.columns) == list(SUMMARY_COLUMNS)
    for name, res in result.results.items():
        stats = res.stats
        for column in SUMMARY_COLUMNS:
            assert result.summary.at[name, column] == stats[column] or (
                stats[column] != stats[column])  # NaN
        text = result.reports[name].read_text(encoding="utf-8")
        assert format_stat("Equity Final [$]", stats["Equity Final [$]"]) in text
        assert res.sim.totals["funding_usd"] != 0.0  # the market's own funding rates
        lots = res.sim.fills["size"].to_numpy() / 0.001  # BINANCE_BTCUSDT_PERP's lot size
        assert abs(lots - lots.round()).max() < 1e-6
        if name != "buy_and_hold":  # (its one fill comes before the impact model's σ exists)
            assert res.sim.totals["impact_usd"] > 0
    bh = result.results["buy_and_hold"]
    assert bh.stats["# Trades"] == 1 and bh.stats["Fees [$]"] > 0
    # the same seed gives the same table
    again = run_demo(tmp_path / "again", n_bars=400, seed=3)
    assert again.summary.equals(result.summary)


def test_demo_on_real_data(capsys, binance_futures_dir: Path, tmp_path: Path) -> None:
    code = main(["demo", "--data", str(binance_futures_dir), "--user-data", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "1,054 bars (real data)" in out and "funding: 131 settlements joined" in out
    assert len(list((tmp_path / "reports").glob("demo-*.html"))) == len(NAMES)
