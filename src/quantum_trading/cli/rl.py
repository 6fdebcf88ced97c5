"""``quantum rl``: tools for trained policies — ``analyze-bias``.

Parsing and printing only; the work is done by :mod:`quantum_trading.rl.bias`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from quantum_trading.cli._console import console
from quantum_trading.paths import user_data_dir

__all__ = ["analyze_bias", "app"]

app = typer.Typer(help="Reinforcement learning: analyse trained policies.", no_args_is_help=True)


@app.command("analyze-bias")
def analyze_bias(
    model: Path = typer.Option(..., "--model", "-m", help="Model bundle folder written by "
                               "quantum train (e.g. user_data/models/run1/final)."),
    data: str = typer.Option(..., "--data", "-d", help="A data file, a freqtrade data folder "
                             "or an exchange name in the store; a folder gives every symbol "
                             "of the model."),
    symbol: str | None = typer.Option(None, "--symbol", help="Only this ccxt symbol from a "
                                      "folder (must match the model's asset set)."),
    exchange: str | None = typer.Option(None, "--exchange", "-e",
                                        help="Exchange folder inside a data folder."),
    episodes: int = typer.Option(5, "--episodes", "-n", min=0, max=1000,
                                 help="Stochastic runs (actions sampled) besides the "
                                 "deterministic one."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first stochastic run."),
    flat_tol: float = typer.Option(0.05, "--flat-tol", min=0.0, max=0.99,
                                   help="|target| below this counts as flat (× max leverage)."),
    out: Path | None = typer.Option(None, "--out", help="HTML report path (default: "
                                    "user_data/reports/bias-<model>-<time>.html)."),
    user_data: Path | None = typer.Option(None, "--user-data", help="The user_data folder."),
) -> None:
    """Run a saved policy over the data through the env (deterministically, and --episodes
    times sampling its actions) and report what it does per asset: target distributions,
    long/short skew, actions at the bounds and at the largest size bucket, autocorrelation
    and turnover — as a table and a self-contained HTML report.
    """
    from quantum_trading.rl.bias import analyze_bias as run_analysis
    from quantum_trading.rl.bias import bias_table, write_bias_report
    from quantum_trading.rl.strategy import PolicyStrategy, load_model_bars

    folder = user_data_dir(user_data)
    strat = PolicyStrategy(model)
    bars, notes = load_model_bars(data, strat.spec, symbol=symbol, exchange=exchange,
                                  data_dir=folder / "data")
    for note in notes:
        console.print(note, highlight=False, soft_wrap=True)
    with console.status(f"running {strat.name} over {len(next(iter(bars.values()))):,} bars "
                        f"({1 + episodes} runs)…"):
        report = run_analysis(strat, bars, episodes=episodes, seed=seed, flat_tol=flat_tol)
    console.print(bias_table(report, title=f"action bias of {strat.name} (targets × max "
                             f"leverage {strat.spec.max_leverage:g})"))
    for flag in report.flags:
        console.print(f"[red]flag:[/red] {flag}", highlight=False, soft_wrap=True)
    if not report.flags:
        console.print("[green]no bias flagged[/green]")
    if out is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        out = folder / "reports" / f"bias-{strat.name.replace(':', '-')}-{stamp}.html"
    path = write_bias_report(report, out, title=f"Action bias: {strat.name}")
    console.print(f"report written to [bold]{path}[/bold]", soft_wrap=True)
