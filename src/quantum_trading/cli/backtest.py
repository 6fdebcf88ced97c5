"""``quantum backtest``: one strategy on one symbol's bars, a summary and an HTML report.

Parsing and printing only; the work is done by :mod:`quantum_trading.backtest`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from quantum_trading.cli._console import console
from quantum_trading.paths import user_data_dir

__all__ = ["backtest", "metrics_table", "trades_table"]


def metrics_table(stats: pd.Series, *, title: str, benchmark: pd.Series | None = None,
                  strategy: str = "value", benchmark_name: str = "buy & hold") -> Table:
    """The stats Series (and the benchmark's, side by side) as a rich table."""
    from quantum_trading.backtest.stats import format_stat

    table = Table(title=title)
    table.add_column("metric", style="cyan")
    table.add_column(strategy, justify="right")
    if benchmark is not None:
        table.add_column(benchmark_name, justify="right", style="dim")
    for key, value in stats.items():
        cells = [format_stat(str(key), value)]
        if benchmark is not None:
            cells.append(format_stat(str(key), benchmark[key]))
        table.add_row(escape(str(key)), *cells)
    return table


def trades_table(trades: pd.DataFrame, *, last: int) -> Table:
    """The last ``last`` trades of a trade log as a rich table (costs = spread + slippage +
    impact; the report and ``BacktestResult.trades`` have each apart)."""
    shown = trades.tail(last)
    table = Table(title=f"last {len(shown)} of {len(trades)} trades (times UTC, money USDT)")
    headers = ("#", "side", "entry", "exit", "entry px", "exit px", "size", "PnL", "fees",
               "funding", "costs", "exit reason")
    for h in headers:
        table.add_column(h, justify="left" if h in ("side", "exit reason") else "right",
                         style="cyan" if h == "#" else None, no_wrap=True)
    for i, row in shown.iterrows():
        costs = row["spread_usd"] + row["slippage_usd"] + row["impact_usd"]
        pnl = f"{row['pnl_usd']:,.2f}"
        pnl = f"[green]{pnl}[/green]" if row["pnl_usd"] > 0 else f"[red]{pnl}[/red]"
        table.add_row(
            str(i), str(row["direction"]), row["entry_time"].strftime("%y-%m-%d %H:%M"),
            row["exit_time"].strftime("%y-%m-%d %H:%M"), f"{row['entry_price']:,.2f}",
            f"{row['exit_price']:,.2f}", f"{row['size']:,.6g}", pnl, f"{row['fees_usd']:,.2f}",
            f"{row['funding_usd']:,.2f}", f"{costs:,.2f}", str(row["exit_reason"]),
        )
    return table


def backtest(
    strategy: str | None = typer.Option(None, "--strategy", "-s", help="Registered strategy "
                                        "name, e.g. momentum_breakout (an unknown name lists "
                                        "them all)."),
    model: Path | None = typer.Option(None, "--model", help="A trained RL policy (model bundle "
                                      "folder) instead of --strategy; a data folder gives all "
                                      "its symbols; costs, account and risk come from the "
                                      "model's env_config.json."),
    data: str = typer.Option(..., "--data", "-d", help="A data file, a freqtrade data folder "
                             "(with --symbol), or an exchange name in the store."),
    symbol: str | None = typer.Option(None, "--symbol", help="ccxt symbol, e.g. BTC/USDT:USDT."),
    exchange: str | None = typer.Option(None, "--exchange", "-e",
                                        help="Exchange folder inside a data folder."),
    timeframe: str | None = typer.Option(None, "--timeframe", "-t",
                                         help="Bar length, e.g. 1h (default: from the file "
                                         "name, else 1h)."),
    funding: Path | None = typer.Option(None, "--funding", help="Funding-rate file (default: "
                                        "the one next to the data, if any)."),
    param: list[str] = typer.Option([], "--param", "-p", help="Strategy parameter name=value "
                                    "(repeat for several)."),
    leverage: float = typer.Option(1.0, "--leverage", min=1.0, max=1000.0,
                                   help="Account leverage (≤ the instrument's maximum)."),
    initial_cash: float = typer.Option(10_000.0, "--initial-cash", min=1.0,
                                       help="Starting balance, USDT."),
    fee_bps: float | None = typer.Option(None, "--fee-bps", min=0.0, max=1000.0,
                                         help="Taker fee in bps (default: the instrument's, "
                                         "4 bps for Binance)."),
    slippage_bps: float = typer.Option(1.0, "--slippage-bps", min=0.0, max=1000.0,
                                       help="Slippage per market fill, bps."),
    report: Path | None = typer.Option(None, "--report", help="Where to write the HTML report "
                                       "(default: user_data/reports/<strategy>-<symbol>-<time>"
                                       ".html)."),
    show_trades: int = typer.Option(10, "--trades", min=0, help="Last trades to print."),
    risk: Path | None = typer.Option(None, "--risk", help="Risk limits YAML (keys of RiskConfig; "
                                     "default: the built-in limits)."),
    no_risk: bool = typer.Option(False, "--no-risk", help="Run without the risk engine."),
    user_data: Path | None = typer.Option(None, "--user-data", help="The user_data folder."),
) -> None:
    """Backtest a strategy on perpetual-futures bars: metrics, last trades and an HTML report.

    Every order passes the risk engine (10 % of equity per position, daily −5 %, weekly −15 %,
    drawdown −20 % by default; --risk FILE to change them, --no-risk to switch it off).

    Fills, costs, funding, margin and liquidation come from the one simulator; a buy-and-hold
    run through the same simulator and costs is the benchmark.
    """
    from quantum_trading.backtest import Backtest, write_report
    from quantum_trading.backtest.inputs import load_bars
    from quantum_trading.data.symbols import symbol_to_filename
    from quantum_trading.errors import ConfigError
    from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig
    from quantum_trading.strategies import get_strategy, parse_params

    if (strategy is None) == (model is None):
        raise ConfigError("give one of --strategy NAME or --model DIR")
    folder = user_data_dir(user_data)
    if model is not None:  # a trained policy: its own conditions (see rl.strategy)
        from quantum_trading.rl.strategy import model_backtest

        result, where = model_backtest(model, data, symbol=symbol, exchange=exchange,
                                       data_dir=folder / "data", say=console.print)
    else:
        strat = get_strategy(strategy)
        params = parse_params(strat, param)
        loaded = load_bars(data, symbol=symbol, exchange=exchange, timeframe=timeframe,
                           funding=funding, data_dir=folder / "data")
        for note in loaded.notes:
            console.print(note, highlight=False, soft_wrap=True)
        costs = CostsConfig(taker_fee_bps=fee_bps, slippage_bps=slippage_bps)
        account = AccountConfig(initial_cash_usd=initial_cash, leverage=leverage)
        with console.status(f"backtesting {strat.name} on {loaded.symbol}…"):
            result = Backtest(loaded.bars, strat, costs=costs, account=account, params=params,
                              risk=None if no_risk else (risk or RiskConfig())).run()
        where = f"{loaded.symbol} {loaded.timeframe}"
    name = result.strategy
    shown = ", ".join(f"{k}={v}" for k, v in result.params.items())
    console.print(f"parameters: {shown}", highlight=False, soft_wrap=True)
    console.print(metrics_table(result.stats, title=f"{name} on {where}",
                                benchmark=result.benchmark_stats, strategy=name))
    if show_trades and len(result.trades):
        console.print(trades_table(result.trades, last=show_trades))
    if report is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        report = folder / "reports" / (f"{name.replace(':', '-')}-"
                                       f"{symbol_to_filename(result.symbols[0])}-{stamp}.html")
    path = write_report(result, report)
    console.print(f"report written to [bold]{path}[/bold]", soft_wrap=True)
