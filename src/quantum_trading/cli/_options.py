"""Options and small helpers the research commands share (``quantum optimize``,
``quantum walk-forward``, ``quantum validate``): one definition of each flag, so the commands
parse ``--leverage``, ``--risk``, ``--min-trades`` … the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

DATA = typer.Option(..., "--data", "-d", help="A data file, a freqtrade data folder (with "
                     "--symbol), or an exchange name in the store.")
SYMBOL = typer.Option(None, "--symbol", help="ccxt symbol, e.g. BTC/USDT:USDT.")
EXCHANGE = typer.Option(None, "--exchange", "-e", help="Exchange folder inside a data folder.")
TIMEFRAME = typer.Option(None, "--timeframe", "-t", help="Bar length, e.g. 1h (default: from "
                          "the file name, else 1h).")
FUNDING = typer.Option(None, "--funding", help="Funding-rate file (default: the one next to "
                        "the data, if any).")
LEVERAGE = typer.Option(1.0, "--leverage", min=1.0, max=1000.0,
                         help="Account leverage (≤ the instrument's maximum).")
CASH = typer.Option(10_000.0, "--initial-cash", min=1.0, help="Starting balance, USDT.")
FEE = typer.Option(None, "--fee-bps", min=0.0, max=1000.0,
                    help="Taker fee in bps (default: the instrument's).")
SLIPPAGE = typer.Option(1.0, "--slippage-bps", min=0.0, max=1000.0,
                         help="Slippage per market fill, bps.")
RISK = typer.Option(None, "--risk", help="Risk limits YAML (default: the built-in limits).")
NO_RISK = typer.Option(False, "--no-risk", help="Backtest without the risk engine.")
USER_DATA = typer.Option(None, "--user-data", help="The user_data folder.")
MINIMIZE = typer.Option(False, "--minimize", help="Lower objective is better.")
MIN_TRADES = typer.Option(None, "--min-trades", min=0,
                          help="Sets with fewer trades are infeasible.")
MAX_DD = typer.Option(None, "--max-dd", min=0.0, max=100.0,
                      help="Sets with a deeper max drawdown (%) are infeasible.")
BACKEND = typer.Option("local", "--backend", "-b", help="local (all cores) or ray.")
ADDRESS = typer.Option(None, "--address", help="Ray cluster head host:port (with --backend "
                       "ray; default: a local Ray instance).")
WORKERS = typer.Option(None, "--workers", "-w", min=1, help="Local cores to use (default: all).")
SEED = typer.Option(0, "--seed", help="Seed of Optuna's TPE sampler.")


def run_configs(leverage: float, initial_cash: float, fee_bps: float | None, slippage_bps: float,
             risk: Path | None, no_risk: bool) -> tuple[Any, Any, Any]:
    from quantum_trading.risk.config import load_risk_config
    from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig

    costs = CostsConfig(taker_fee_bps=fee_bps, slippage_bps=slippage_bps)
    account = AccountConfig(initial_cash_usd=initial_cash, leverage=leverage)
    limits = None if no_risk else (load_risk_config(risk) if risk else RiskConfig())
    return costs, account, limits


def fixed_params(strat: Any, param: list[str]) -> dict[str, Any]:
    """Only the parameters named on the command line (validated), not the defaults."""
    parsed = strat.params.parse(param) if param else {}
    named = {p.split("=")[0].strip() for p in param}
    return {k: v for k, v in parsed.items() if k in named}


def report_path(report: Path | None, folder: Path, kind: str, strategy: str,
                 symbol: str) -> Path:
    if report is not None:
        return report
    from quantum_trading.data.symbols import symbol_to_filename

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return folder / "reports" / f"{kind}-{strategy}-{symbol_to_filename(symbol)}-{stamp}.html"
