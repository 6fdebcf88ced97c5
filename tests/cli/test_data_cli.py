"""``quantum data …`` end to end: every command, good and bad input, through ``main()``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from quantum_trading.cli.main import main
from quantum_trading.data.loaders import load_ohlcv
from quantum_trading.data.store import ParquetStore
from quantum_trading.execution.local_exchange import create_app, serve_in_thread

COMMANDS = ["download", "import", "list", "validate", "repair", "synth", "resample"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def user_data(tmp_path: Path) -> Path:
    return tmp_path / "user_data"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_data_command_has_help(capsys, command: str) -> None:
    code, out = run(capsys, "data", command, "--help")
    assert code == 0
    assert "Usage" in out and len(out.splitlines()) > 5


def test_synth_list_validate_resample_round_trip(capsys, user_data: Path) -> None:
    code, out = run(capsys, "data", "synth", "--assets", "2", "--bars", "500", "--seed", "3",
                    "--user-data", str(user_data))
    assert code == 0, out
    assert "BTC/USDT:USDT" in out and "ETH/USDT:USDT" in out

    code, out = run(capsys, "data", "list", "--user-data", str(user_data))
    assert code == 0
    assert out.count("synthetic") >= 6  # 2 assets × (ohlcv, funding, mark)

    code, out = run(capsys, "data", "validate", "--exchange", "synthetic", "--symbol", "BTC/USDT:USDT",
                    "--timeframe", "1h", "--user-data", str(user_data))
    assert code == 0, out
    assert "valid" in out and "500" in out and "no gaps" in out

    code, out = run(capsys, "data", "resample", "--exchange", "synthetic", "--symbol", "BTC/USDT:USDT",
                    "--timeframe", "1h", "--to", "4h", "--user-data", str(user_data))
    assert code == 0, out
    four_hour = ParquetStore(user_data / "data").read(
        exchange="synthetic", symbol="BTC/USDT:USDT", timeframe="4h")
    assert len(four_hour) == 125  # 500 hourly bars from midnight = 125 complete 4h bars


def test_import_a_freqtrade_folder_then_load_it_by_name(capsys, user_data: Path,
                                                        freqtrade_fixtures_dir: Path) -> None:
    code, out = run(capsys, "data", "import", str(freqtrade_fixtures_dir), "--user-data", str(user_data))
    assert code == 0, out
    stored = load_ohlcv(exchange="binance", symbol="XRP/USDT:USDT", timeframe="5m",
                        data_dir=user_data / "data")
    source = pd.read_feather(freqtrade_fixtures_dir / "XRP_USDT_USDT-5m-futures.feather")
    assert len(stored) == len(source)
    assert stored["close"].to_numpy().tolist() == source["close"].to_numpy().tolist()
    # importing again adds nothing: merges never duplicate
    code, out = run(capsys, "data", "import", str(freqtrade_fixtures_dir), "--user-data", str(user_data))
    assert code == 0
    again = load_ohlcv(exchange="binance", symbol="XRP/USDT:USDT", timeframe="5m",
                       data_dir=user_data / "data")
    assert len(again) == len(source)


def test_bad_file_gives_one_line_naming_file_row_and_column(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("date,open,high,low,close,volume\n"
                   "2024-01-01 00:00,1,2,0.5,1.5,10\n"
                   "2024-01-01 01:00,1.5,1.4,1,1.2,5\n")
    code, out = run(capsys, "data", "validate", str(bad))
    assert code == 1
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert "bad.csv" in lines[0] and "row 1" in lines[0] and "column high" in lines[0]
    assert "Traceback" not in out


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("date,open,high,low,close,volume\n2024-01-01 00:00,1,2,0.5,-1.5,10\n")
    with pytest.raises(Exception, match=r"bad\.csv"):
        main(["--debug", "data", "validate", str(bad)])


def test_missing_file_and_bad_timeframe_exit_nonzero(capsys, user_data: Path) -> None:
    code, out = run(capsys, "data", "validate", "does-not-exist.csv")
    assert code != 0 and "does-not-exist.csv" in out
    run(capsys, "data", "synth", "--assets", "1", "--bars", "200", "--user-data", str(user_data))
    code, out = run(capsys, "data", "resample", "--exchange", "synthetic", "--symbol", "BTC/USDT:USDT",
                    "--timeframe", "1h", "--to", "90m", "--user-data", str(user_data))
    assert code == 1 and "90m" in out and "Traceback" not in out


def test_repair_reports_every_change_and_writes_a_valid_file(capsys, tmp_path: Path) -> None:
    messy = tmp_path / "messy.csv"
    messy.write_text("date,open,high,low,close,volume\n"
                     "2024-01-01 00:00,1,2,0.5,1.5,10\n"
                     "2024-01-01 02:00,1.5,1.6,1,1.2,5\n"
                     "2024-01-01 01:00,1.2,1.3,1.1,1.25,7\n"
                     "2024-01-01 01:00,1.2,1.3,1.1,1.26,7\n"
                     "2024-01-01 05:00,1.2,1.3,1.1,1.25,7\n")
    fixed = tmp_path / "fixed.parquet"
    code, out = run(capsys, "data", "repair", str(messy), "--timeframe", "1h", "--output", str(fixed))
    assert code == 0, out
    assert "duplicate" in out and "inserted" in out
    repaired = load_ohlcv(fixed, timeframe="1h")
    assert list(repaired.index.hour) == [0, 1, 2, 3, 4, 5]
    assert repaired.loc["2024-01-01 01:00", "close"] == 1.26  # the last duplicate is kept
    assert repaired.loc["2024-01-01 03:00", "volume"] == 0.0
    # without --output a file is never overwritten
    code, out = run(capsys, "data", "repair", str(messy), "--timeframe", "1h")
    assert code != 0 and "--output" in out


@pytest.mark.network_local
def test_download_through_the_local_exchange(capsys, user_data: Path, binance_futures_dir: Path) -> None:
    with serve_in_thread(create_app(binance_futures_dir)) as base_url:
        code, out = run(capsys, "data", "download", "BTC/USDT:USDT", "--since", "2023-07-05",
                        "--until", "2023-07-10", "--base-url", base_url, "--page-limit", "50",
                        "--user-data", str(user_data))
    assert code == 0, out
    bars = load_ohlcv(exchange="binance", symbol="BTC/USDT:USDT", timeframe="1h",
                      data_dir=user_data / "data")
    assert len(bars) == 5 * 24
    assert bars.index[0] == pd.Timestamp("2023-07-05", tz="UTC")
