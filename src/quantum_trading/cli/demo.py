"""``quantum demo``: every library strategy backtested on a BTC perp, on synthetic or real data."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from quantum_trading.cli._console import console
from quantum_trading.paths import user_data_dir

__all__ = ["demo"]


def demo(
    data: str | None = typer.Option(None, "--data", "-d", help="Real data instead of the "
                                    "synthetic market: a file, or a freqtrade folder (BTC)."),
    bars: int = typer.Option(2000, "--bars", min=200, help="Bars of the synthetic market."),
    seed: int = typer.Option(7, "--seed", help="Random seed of the synthetic market."),
    user_data: Path | None = typer.Option(None, "--user-data", help="The user_data folder."),
) -> None:
    """Synthetic perp market → store → load → validate → every library strategy backtested on
    BTC (Binance fees, spread, slippage, impact, funding) → summary table and HTML reports."""
    from quantum_trading.backtest.stats import format_stat
    from quantum_trading.demo import SUMMARY_COLUMNS, run_demo

    folder = user_data_dir(user_data)
    with console.status("generating data and backtesting every library strategy…"):
        result = run_demo(folder, data=data, n_bars=bars, seed=seed)
    for note in result.notes:
        console.print(note, highlight=False, soft_wrap=True)
    first = next(iter(result.results.values()))
    source = "real data" if data else f"synthetic market, seed {seed}"
    table = Table(title=f"Quantum Trading demo — {first.symbols[0]} perp, {len(first.sim.index):,} "
                  f"bars ({source}), 10,000 USDT at 1×, risk engine on (≤ 10 % of equity per position)")
    table.add_column("strategy", style="cyan")
    for column in SUMMARY_COLUMNS:
        table.add_column(escape(column), justify="right")
    summary = result.summary
    for name in summary.index:
        table.add_row(str(name), *(format_stat(c, summary.at[name, c]) for c in SUMMARY_COLUMNS))
    console.print(table)
    console.print("reports:")
    for name, path in result.reports.items():
        console.print(f"  {name}: [bold]{path}[/bold]", soft_wrap=True)
