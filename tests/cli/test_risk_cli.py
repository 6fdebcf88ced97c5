"""``quantum risk report`` and ``quantum risk stress`` end to end through ``main()`` on the real
BTC (and ETH) 1h data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from quantum_trading.cli.main import main
from quantum_trading.risk.stress import PositionsSnapshot, price_shock, run_stress
from quantum_trading.sim import AccountConfig

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_help_lists_both_commands(capsys) -> None:
    code, out = run(capsys, "risk", "--help")
    assert code == 0 and "report" in out and "stress" in out
    code, out = run(capsys, "risk", "stress", "--help")
    for option in ("--positions", "--cash", "--margin-mode", "--leverage", "--shock", "--data",
                   "--strategy"):
        assert option in out, option


def test_report_prints_var_tests_and_writes_the_risk_report(capsys, binance_futures_dir: Path,
                                                            tmp_path: Path) -> None:
    report = tmp_path / "risk.html"
    code, out = run(capsys, "risk", "report", "--strategy", "momentum_breakout",
                    "--data", str(binance_futures_dir), "--symbol", BTC,
                    "--param", "direction=both", "--alpha", "0.99", "--window-bars", "300",
                    "--report", str(report), "--user-data", str(tmp_path))
    assert code == 0, out
    assert "1,054 bars of BTC/USDT:USDT 1h" in out
    for method in ("historical", "gaussian", "student_t", "cornish_fisher", "fhs"):
        assert re.search(rf"│ {method}\s+│\s+\d+\.\d{{3}} │", out), method
    assert "rolling VaR99 backtest (300-bar window" in out
    assert "Kupiec p" in out and "Christoffersen ind. p" in out
    assert "753 │" in out  # 1,053 returns − 300 in the first window = 753 tested bars
    assert report.is_file() and str(report) in out.replace("\n", "")
    text = report.read_text(encoding="utf-8")
    for title in ("VaR / ES over time (300 bars", "Risk limit hits", "Stress test"):
        assert f"<h2>{title}" in text, title
    assert "cross margin." in text  # the CLI gives the report its account


def test_report_on_two_symbols_shows_component_var(capsys, binance_futures_dir: Path,
                                                   tmp_path: Path) -> None:
    code, out = run(capsys, "risk", "report", "-s", "trend_following",
                    "-d", str(binance_futures_dir), "--symbol", BTC, "--symbol", ETH,
                    "-p", "direction=both", "--no-risk", "--report", str(tmp_path / "r.html"))
    assert code == 0, out
    assert "aligned 2 symbols on their" in out
    assert "component VaR99" in out
    rows = [line for line in out.splitlines() if line.startswith(("│ BTC/", "│ ETH/"))]
    assert len(rows) == 2
    shares = [float(r.split("│")[5]) for r in rows]
    assert sum(shares) == pytest.approx(100.0, abs=0.15)


def test_stress_positions_file_with_shock_and_historical_data(capsys, binance_futures_dir: Path,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "positions.csv"
    path.write_text("symbol,size,entry_price,mark_price\n"
                    f"{BTC},0.5,29000,29400\n{ETH},-4,1850,1830\n")
    code, out = run(capsys, "risk", "stress", "--positions", str(path), "--cash", "3000",
                    "--leverage", "10", "--margin-mode", "isolated", "--shock", "BTC=-8%",
                    "--shock", f"{ETH}=+5", "--data", str(binance_futures_dir))
    assert code == 0, out
    assert "equity 3,280.00 USDT; isolated margin" in out
    # the custom shock: −0.5 · 29,400 · 8 % − 4 · 1,830 · 5 % = −1,542
    snap = PositionsSnapshot.from_file(path, cash_usd=3_000.0)
    expected = run_stress(snap, price_shock({BTC: -0.08, ETH: 0.05}),
                          account=AccountConfig(leverage=10.0, margin_mode="isolated"))
    assert expected.loc[0, "pnl_usd"] == pytest.approx(-1_542.0)
    line = next(x for x in out.splitlines() if "custom (--shock)" in x)
    assert "-1,542.00" in line and "-47.01" in line
    for name in ("all -20 %", "worst 24-bar window #1", "correlations → 1", "volatility ×3",
                 "adverse funding", "liquidity drain ×5"):
        assert name in out, name
    assert "BTC @ 26,204.82" in out  # isolated BTC liquidated in "all −20 %"


def test_stress_the_end_of_a_backtest(capsys, binance_futures_dir: Path) -> None:
    code, out = run(capsys, "risk", "stress", "--strategy", "buy_and_hold",
                    "--data", str(binance_futures_dir), "--symbol", BTC, "--leverage", "3",
                    "--shock", "all=-30%", "--n-worst", "2")
    assert code == 0, out
    assert "Final positions at the last close (2023-08-17 10:00 UTC)" in out
    assert "worst 24-bar window #2" in out and "worst 24-bar window #3" not in out
    assert "custom (--shock)" in out


@pytest.mark.parametrize(("content", "args", "message"), [
    (f"symbol,size,entry_price,mark_price\n{BTC},1,30000,30000\n", ["--shock", "SOL=-10%"],
     "--shock 'SOL=-10%': SOL is not among the positions in {path} (symbols: BTC/USDT:USDT)"),
    (f"symbol,size,entry_price,mark_price\n{BTC},1,30000,30000\n", ["--shock", "BTC=minus"],
     "--shock 'BTC=minus': expected SYMBOL=PERCENT"),
    (f"symbol,size,entry_price,mark_price\n{BTC},1,abc,30000\n", [],
     "{path}: non-numeric value in column entry_price at row 0"),
    (f"symbol,size,mark_price\n{BTC},1,30000\n", [], "{path}: missing column entry_price"),
    (f"symbol,size,entry_price,mark_price\n{BTC},1,30000,-1\n", [],
     "{path}: mark_price must be > 0 in column mark_price at row 0"),
])
def test_bad_input_exits_1_with_one_line(capsys, tmp_path: Path, content: str, args: list[str],
                                         message: str) -> None:
    path = tmp_path / "positions.csv"
    path.write_text(content)
    code, out = run(capsys, "risk", "stress", "--positions", str(path), "--cash", "5000", *args)
    assert code == 1
    assert out.strip().count("\n") == 0, out
    assert message.format(path=path) in out


def test_report_window_too_short_for_the_alpha(capsys, binance_futures_dir: Path) -> None:
    code, out = run(capsys, "risk", "report", "-s", "buy_and_hold", "-d",
                    str(binance_futures_dir), "--symbol", BTC, "--window-bars", "50")
    assert code == 1 and out.strip().count("\n") == 0
    assert "--window-bars 50: a 99 % historical VaR needs a window of at least 100 bars" in out


def test_malformed_json_and_missing_cash(capsys, tmp_path: Path) -> None:
    path = tmp_path / "positions.json"
    path.write_text("{not json")
    code, out = run(capsys, "risk", "stress", "--positions", str(path), "--cash", "1")
    assert code == 1 and out.strip().count("\n") == 0
    assert f"{path}: cannot read positions" in out
    path.write_text(json.dumps([{"symbol": BTC, "size": 1, "entry_price": 1, "mark_price": 1}]))
    code, out = run(capsys, "risk", "stress", "--positions", str(path))
    assert code == 1 and "no cash given" in out and "--cash" in out
    code, out = run(capsys, "risk", "stress", "--cash", "1")
    assert code == 1 and "give --positions FILE or --strategy NAME" in out
