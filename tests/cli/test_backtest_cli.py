"""``quantum backtest`` end to end through ``main()`` on the real BTC 1h data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quantum_trading.cli.main import main
from quantum_trading.data import generate_market
from quantum_trading.data.store import ParquetStore

SYM = "BTC/USDT:USDT"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_help(capsys) -> None:
    code, out = run(capsys, "backtest", "--help")
    assert code == 0
    for option in ("--strategy", "--data", "--symbol", "--funding", "--param", "--leverage",
                   "--initial-cash", "--fee-bps", "--report"):
        assert option in out, option


def test_folder_and_symbol_with_funding_found_next_to_the_data(
        capsys, binance_futures_dir: Path, tmp_path: Path) -> None:
    user_data = tmp_path / "user_data"
    code, out = run(capsys, "backtest", "--strategy", "momentum_breakout",
                    "--data", str(binance_futures_dir), "--symbol", SYM,
                    "--param", "direction=both", "--param", "stop_loss_pct=2",
                    "--user-data", str(user_data), "--trades", "5")
    assert code == 0, out
    assert "1,054 bars of BTC/USDT:USDT 1h" in out
    assert "funding: 131 settlements joined from" in out and "8h-funding_rate" in out
    assert "mark: mark prices" in out
    for key in ("Return [%]", "Sharpe Ratio", "Max. Drawdown [%]", "Turnover [x]",
                "Probabilistic Sharpe Ratio", "buy & hold"):
        assert key in out, key
    assert "last 5 of" in out and "stop_loss" in out
    reports = list((user_data / "reports").glob("*.html"))
    assert len(reports) == 1
    assert re.fullmatch(r"momentum_breakout-BTC_USDT_USDT-\d{8}-\d{6}\.html", reports[0].name)
    assert str(reports[0]) in out.replace("\n", "")


def test_file_path_costs_leverage_and_report_path(capsys, binance_futures_dir: Path,
                                                  tmp_path: Path) -> None:
    report = tmp_path / "out" / "trend.html"
    code, out = run(capsys, "backtest", "-s", "trend_following",
                    "-d", str(binance_futures_dir / "BTC_USDT_USDT-1h-futures.feather"),
                    "-p", "fast=10", "-p", "slow=40", "--leverage", "3", "--initial-cash",
                    "50000", "--fee-bps", "5", "--report", str(report),
                    "--user-data", str(tmp_path / "ud"))
    assert code == 0, out
    assert report.is_file() and "funding: 131 settlements" in out
    assert "fast=10, slow=40" in out


def test_a_plain_csv_with_symbol_and_funding_file(capsys, binance_futures_dir: Path,
                                                   tmp_path: Path) -> None:
    from quantum_trading.data import load_ohlcv

    csv = tmp_path / "btc.csv"
    load_ohlcv(binance_futures_dir / "BTC_USDT_USDT-1h-futures.feather").reset_index().to_csv(
        csv, index=False)
    code, out = run(capsys, "backtest", "-s", "buy_and_hold", "-d", str(csv),
                    "--user-data", str(tmp_path))
    assert code == 1 and "give it with --symbol" in out
    funding = binance_futures_dir / "BTC_USDT_USDT-8h-funding_rate.feather"
    code, out = run(capsys, "backtest", "-s", "buy_and_hold", "-d", str(csv), "--symbol", SYM,
                    "--funding", str(funding), "--user-data", str(tmp_path))
    assert code == 0, out
    assert "1,054 bars of BTC/USDT:USDT 1h" in out
    assert f"funding: 131 settlements joined from {funding}" in out.replace("\n", "")


def test_an_exchange_name_in_the_store(capsys, tmp_path: Path) -> None:
    user_data = tmp_path / "user_data"
    bars = generate_market(n_assets=1, n_bars=300, seed=2).ohlcv[SYM]
    ParquetStore(user_data / "data").merge(bars, exchange="synthetic", symbol=SYM,
                                           timeframe="1h", market_type="futures", kind="ohlcv")
    code, out = run(capsys, "backtest", "--strategy", "buy_and_hold", "--data", "synthetic",
                    "--symbol", SYM, "--user-data", str(user_data))
    assert code == 0, out
    assert "300 bars" in out and "no funding file found" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--strategy", "no_such"], "unknown strategy 'no_such' (available: buy_and_hold"),
    (["--strategy", "trend_following", "--param", "fast=1000"],
     "parameter fast: 1000 is out of range"),
    (["--strategy", "trend_following", "--param", "speed=3"], "unknown parameter 'speed'"),
    (["--strategy", "trend_following", "--param", "fast"], "must look like name=value"),
    (["--strategy", "trend_following", "--leverage", "200"], "above the instrument's max_leverage"),
])
def test_bad_input_is_one_line(capsys, binance_futures_dir: Path, tmp_path: Path,
                               args: list[str], message: str) -> None:
    code, out = run(capsys, "backtest", *args, "--data", str(binance_futures_dir),
                    "--symbol", SYM, "--user-data", str(tmp_path))
    assert code == 1
    lines = [line for line in out.splitlines() if line.strip()]
    assert message in lines[-1]
    assert lines[-1].startswith("error:")
    assert not (tmp_path / "reports").exists()


def test_missing_data_is_one_line(capsys, binance_futures_dir: Path, tmp_path: Path) -> None:
    code, out = run(capsys, "backtest", "--strategy", "buy_and_hold", "--data",
                    str(binance_futures_dir), "--user-data", str(tmp_path))
    assert code == 1 and "--symbol" in out and len(out.strip().splitlines()) == 1
    code, out = run(capsys, "backtest", "--strategy", "buy_and_hold", "--data",
                    str(binance_futures_dir), "--symbol", "NOPE/USDT:USDT",
                    "--user-data", str(tmp_path))
    assert code == 1 and "no 1h OHLCV file for NOPE/USDT:USDT" in out
