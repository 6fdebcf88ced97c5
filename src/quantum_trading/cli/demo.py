"""``quantum demo``: the main job on embedded synthetic data."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from quantum_trading.cli._console import console
from quantum_trading.paths import user_data_dir

__all__ = ["demo"]


def demo(
    bars: int = typer.Option(2000, "--bars", min=200, help="Bars per synthetic asset."),
    seed: int = typer.Option(7, "--seed", help="Random seed of the synthetic market."),
    user_data: Path | None = typer.Option(None, "--user-data", help="The user_data folder."),
) -> None:
    """Synthetic 3-asset perp market → store → load → validate → indicators → table and report."""
    from quantum_trading.demo import run_data_demo

    folder = user_data_dir(user_data)
    with console.status("generating, storing, validating and computing indicators…"):
        result = run_data_demo(folder, n_bars=bars, seed=seed)
    table = Table(title="Quantum Trading demo — synthetic perpetual market (seed %d)" % seed)
    table.add_column("symbol", style="cyan")
    for column in result.summary.columns:
        table.add_column(str(column), justify="right")
    for symbol, row in result.summary.iterrows():
        cells = []
        for value in row:
            if isinstance(value, float):
                cells.append(f"{value:,.2f}")
            elif hasattr(value, "strftime"):
                cells.append(value.strftime("%Y-%m-%d %H:%M"))
            else:
                cells.append(str(value))
        table.add_row(str(symbol), *cells)
    console.print(table)
    console.print(f"data stored in [bold]{result.store_root}[/bold]")
    console.print(f"report written to [bold]{result.report_path}[/bold]")
