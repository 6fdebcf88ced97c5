"""``quantum walk-forward`` and ``quantum validate`` end to end through ``main()`` on the real
BTC 1h data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quantum_trading.cli.main import main

SYM = "BTC/USDT:USDT"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_help(capsys) -> None:
    code, out = run(capsys, "walk-forward", "--help")
    assert code == 0
    for option in ("--strategy", "--data", "--symbol", "--grid", "--train-bars", "--test-bars",
                   "--step", "--anchored", "--objective", "--backend", "--report"):
        assert option in out, option
    code, out = run(capsys, "validate", "--help")
    assert code == 0
    for option in ("--strategy", "--data", "--param", "--trials", "--permutations",
                   "--report"):
        assert option in out, option


def test_walk_forward_on_real_btc_writes_a_report(capsys, binance_futures_dir: Path,
                                                  tmp_path: Path) -> None:
    report = tmp_path / "out" / "wf.html"
    code, out = run(capsys, "walk-forward", "--strategy", "trend_following",
                    "--data", str(binance_futures_dir), "--symbol", SYM,
                    "--grid", "fast=5:20:3", "--grid", "slow=30,60",
                    "--train-bars", "400", "--test-bars", "150", "--anchored",
                    "--workers", "1", "--report", str(report),
                    "--user-data", str(tmp_path / "ud"))
    assert code == 0, out
    assert "1,054 bars of BTC/USDT:USDT 1h" in out
    assert "4 anchored folds: 400 in-sample / 150 out-of-sample bars" in out
    assert "23-07-21 05:00 → 07-27 10:00" in out  # the first out-of-sample window
    for key in ("stitched out-of-sample result", "Walk-Forward Efficiency",
                "Deflated Sharpe Ratio", "Walk-Forward PBO", "walk-forward efficiency"):
        assert key in out, key
    assert re.search(r"fast=(5|12|20) slow=(30|60)", out)
    assert report.is_file() and report.stat().st_size > 1_000_000
    assert "Stitched out-of-sample equity" in report.read_text(encoding="utf-8")
    assert str(report) in out.replace("\n", "")


def test_validate_on_real_btc_writes_a_report(capsys, binance_futures_dir: Path,
                                              tmp_path: Path) -> None:
    user_data = tmp_path / "user_data"
    code, out = run(capsys, "validate", "--strategy", "trend_following",
                    "--data", str(binance_futures_dir), "--symbol", SYM,
                    "--param", "fast=10", "--param", "slow=50", "--trials", "9",
                    "--permutations", "19", "--user-data", str(user_data))
    assert code == 0, out
    assert "parameters: fast=10, slow=50" in out
    for key in ("causal", "permutation p-value", "deflated Sharpe ratio", "track record",
                "CPCV paths with Sharpe > 0", "performance per regime", "trend_up", "PASS"):
        assert key in out, key
    assert "Passes" in out or "Refused" in out
    reports = list((user_data / "reports").glob("*.html"))
    assert len(reports) == 1
    assert re.fullmatch(r"validate-trend_following-BTC_USDT_USDT-\d{8}-\d{6}\.html",
                        reports[0].name)
    assert "Permutation test" in reports[0].read_text(encoding="utf-8")


@pytest.mark.parametrize(("args", "message"), [
    (("walk-forward", "--train-bars", "400", "--test-bars", "150", "--step", "100"),
     "step (100) must be >= test_bars (150)"),
    (("walk-forward", "--train-bars", "1000", "--test-bars", "150"), "no fold fits"),
    (("walk-forward", "--grid", "fastest=1:2:2"), "unknown parameter 'fastest'"),
    (("walk-forward", "--method", "anneal"), "--method must be grid or optuna"),
    (("validate", "--param", "fast=100"), "parameter fast: 100 is out of range"),
    (("validate", "--permutation-method", "coin"), "--permutation-method must be one of"),
    (("validate", "--groups", "3", "--test-groups", "3"), "--test-groups (3) must be below"),
])
def test_bad_input_is_one_line(capsys, binance_futures_dir: Path, tmp_path: Path,
                               args: tuple[str, ...], message: str) -> None:
    code, out = run(capsys, *args, "--strategy", "trend_following", "--data",
                    str(binance_futures_dir), "--symbol", SYM, "--user-data",
                    str(tmp_path / "ud"), "--report", str(tmp_path / "r.html"))
    assert code == 1
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in out, out
    assert "Traceback" not in out
    assert not (tmp_path / "r.html").exists()
