"""``quantum walk-forward`` and ``quantum validate``: out-of-sample checks of a strategy.

Parsing and printing only; the work is done by
:func:`quantum_trading.research.walk_forward.walk_forward` and
:func:`quantum_trading.research.validate.validate_strategy`, the HTML by
:mod:`quantum_trading.research.reports`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from quantum_trading.cli import _options as opt
from quantum_trading.cli._console import console
from quantum_trading.errors import ConfigError
from quantum_trading.paths import user_data_dir
from quantum_trading.progress import progress_bar

__all__ = ["folds_table", "validate", "walk_forward"]

_STRATEGY = typer.Option(..., "--strategy", "-s", help="Registered strategy name, e.g. "
                         "trend_following (an unknown name lists them all).")
def _cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%y-%m-%d %H:%M")
    if isinstance(value, float | np.floating):
        return "n/a" if math.isnan(value) else f"{float(value):,.{digits}f}"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    return str(value)


def folds_table(folds: pd.DataFrame, searched: tuple[str, ...], *, title: str,
                objective: str = "Sharpe Ratio") -> Table:
    """The per-fold results of a walk-forward analysis as a rich table (SR = annualised
    Sharpe ratio; rank = percentile of the chosen set among all sets on the OOS bars; the
    in-sample objective is shown when it is not the Sharpe ratio)."""
    table = Table(title=title)
    heads = {"IS Objective": "IS obj", "IS Sharpe Ratio": "IS SR", "IS DSR": "IS DSR",
             "IS PBO": "IS PBO", "OOS Return [%]": "OOS ret %", "OOS Sharpe Ratio": "OOS SR",
             "OOS # Trades": "trades", "OOS Rank [%]": "rank %", "WFE": "WFE"}
    if objective == "Sharpe Ratio":
        del heads["IS Objective"]
    table.add_column("fold", justify="right", style="cyan")
    table.add_column("out-of-sample (UTC)", no_wrap=True)
    table.add_column("parameters", min_width=12, max_width=40, overflow="fold")
    for head in heads.values():
        table.add_column(head, justify="right", no_wrap=True)
    for k, row in folds.iterrows():
        window = (f"{row['OOS Start']:%y-%m-%d %H:%M} → {row['OOS End']:%m-%d %H:%M}")
        chosen = " ".join(f"{p}={row[p]}" for p in searched) or "–"
        if row.get("Note"):
            chosen = str(row["Note"])
        digits = {"OOS # Trades": 0, "OOS Rank [%]": 0}
        table.add_row(str(k), window, escape(chosen),
                      *(_cell(row[c], digits.get(c, 3)) for c in heads))
    return table


def _stats_table(stats: pd.Series, *, title: str) -> Table:
    from quantum_trading.backtest.stats import format_stat

    table = Table(title=title)
    table.add_column("metric", style="cyan")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        text = format_stat(str(key), value) if not isinstance(value, float) else _cell(value, 4)
        table.add_row(escape(str(key)), text)
    return table


def walk_forward(
    strategy: str = _STRATEGY,
    data: str = opt.DATA,
    symbol: str | None = opt.SYMBOL,
    exchange: str | None = opt.EXCHANGE,
    timeframe: str | None = opt.TIMEFRAME,
    funding: Path | None = opt.FUNDING,
    grid: list[str] = typer.Option([], "--grid", "-g", help="Values of one parameter: "
                                   "name=a:b:n (n values from a to b), name=v1,v2,… or name=v. "
                                   "Repeat per parameter. Without any: 5 values of every "
                                   "optimisable parameter (grid) or the declared space "
                                   "(Optuna)."),
    param: list[str] = typer.Option([], "--param", "-p", help="Hold a parameter fixed: "
                                    "name=value (repeat for several)."),
    train_bars: int | None = typer.Option(None, "--train-bars", min=2, help="In-sample bars "
                                          "per fold (default: 3 × the test bars)."),
    test_bars: int | None = typer.Option(None, "--test-bars", min=2, help="Out-of-sample bars "
                                         "per fold (default: a seventh of the data)."),
    step: int | None = typer.Option(None, "--step", min=1, help="Bars between fold starts "
                                    "(default and minimum: the test bars)."),
    anchored: bool = typer.Option(False, "--anchored", help="Keep the in-sample start at the "
                                  "first bar (expanding window) instead of rolling it."),
    warmup_bars: int | None = typer.Option(None, "--warmup-bars", min=1, help="History before "
                                           "each out-of-sample window (default: the train "
                                           "bars)."),
    embargo: int = typer.Option(0, "--embargo", min=0, help="Bars dropped between the "
                                "in-sample and the out-of-sample window."),
    method: str | None = typer.Option(None, "--method", "-m", help="grid or optuna (default: "
                                      "optuna when --trials is given, else grid)."),
    trials: int | None = typer.Option(None, "--trials", "-n", min=1,
                                      help="Optuna trials per fold."),
    objective: str = typer.Option("Sharpe Ratio", "--objective", "-o", help="Backtest "
                                  "statistic to optimise, e.g. 'Sharpe Ratio', 'Return [%]'."),
    minimize: bool = opt.MINIMIZE,
    min_trades: int | None = opt.MIN_TRADES,
    max_dd: float | None = opt.MAX_DD,
    backend: str = opt.BACKEND,
    address: str | None = opt.ADDRESS,
    workers: int | None = opt.WORKERS,
    seed: int = opt.SEED,
    no_rank: bool = typer.Option(False, "--no-rank", help="Skip ranking every parameter set "
                                 "on each fold's out-of-sample bars (no walk-forward PBO)."),
    dsr_trials: int = typer.Option(1, "--dsr-trials", min=1, help="Walk-forward "
                                   "configurations tried, for the OOS deflated Sharpe ratio."),
    leverage: float = opt.LEVERAGE,
    initial_cash: float = opt.CASH,
    fee_bps: float | None = opt.FEE,
    slippage_bps: float = opt.SLIPPAGE,
    risk: Path | None = opt.RISK,
    no_risk: bool = opt.NO_RISK,
    report: Path | None = typer.Option(None, "--report", help="Where to write the HTML report "
                                       "(default: user_data/reports/walk-forward-<strategy>-"
                                       "<symbol>-<time>.html)."),
    user_data: Path | None = opt.USER_DATA,
) -> None:
    """Walk-forward analysis: optimise on each in-sample window, trade the bars after it.

    No out-of-sample bar is ever given to the in-sample search; the out-of-sample windows are
    stitched into one equity curve. Prints the folds and the stitched result (walk-forward
    efficiency, deflated Sharpe ratio, PBO) and writes an HTML report.
    """
    from quantum_trading.backtest.inputs import load_bars
    from quantum_trading.cli.research import parse_grid
    from quantum_trading.research.reports import write_walk_forward_report
    from quantum_trading.research.walk_forward import walk_forward as run_walk_forward
    from quantum_trading.strategies import get_strategy

    strat = get_strategy(strategy)
    chosen = method or ("optuna" if trials is not None else "grid")
    if chosen not in ("grid", "optuna"):
        raise ConfigError(f"--method must be grid or optuna, got {chosen!r}")
    if chosen == "grid" and trials is not None:
        raise ConfigError("--trials is for --method optuna")
    values = parse_grid(strat, grid) if grid else None
    fixed = opt.fixed_params(strat, param)
    folder = user_data_dir(user_data)
    loaded = load_bars(data, symbol=symbol, exchange=exchange, timeframe=timeframe,
                       funding=funding, data_dir=folder / "data")
    for note in loaded.notes:
        console.print(note, highlight=False, soft_wrap=True)
    n = len(loaded.bars)
    test = test_bars or (max(2, (train_bars or 0) // 3) if train_bars else max(2, n // 7))
    train = train_bars or 3 * test
    costs, account, limits = opt.run_configs(leverage, initial_cash, fee_bps, slippage_bps, risk,
                                      no_risk)
    with progress_bar(console=console, remaining=False) as bar:
        folds_task = bar.add_task(f"walk-forward of {strat.name} on {loaded.symbol}", total=None)
        search_task = bar.add_task(f"{chosen} search", total=None)

        def progress(fold: int, n_folds: int, done: int, total: int) -> None:
            bar.update(folds_task, total=n_folds, completed=fold + (done >= total > 0))
            bar.update(search_task, description=f"fold {fold + 1}/{n_folds}: {chosen} search",
                       total=total, completed=done)

        result = run_walk_forward(
            loaded.bars, strat, train_bars=train, test_bars=test, step=step, anchored=anchored,
            warmup_bars=warmup_bars, embargo=embargo, method=chosen, grid=values,
            params=fixed or None, n_trials=trials or 50, objective=objective,
            direction="minimize" if minimize else "maximize", min_trades=min_trades,
            max_drawdown_pct=max_dd or None, costs=costs, account=account, risk=limits,
            backend=backend, address=address, n_workers=workers, seed=seed,
            rank_oos=not no_rank, dsr_trials=dsr_trials, progress=progress)
    mode = "anchored" if anchored else "rolling"
    console.print(folds_table(result.folds, result.searched, objective=objective,
                              title=f"{len(result.folds)} {mode} folds: {train} in-sample / "
                                    f"{test} out-of-sample bars of {loaded.symbol} "
                                    f"{loaded.timeframe}"))
    console.print(_stats_table(result.stats, title="stitched out-of-sample result"))
    s = result.stats
    console.print(f"walk-forward efficiency {_cell(s['Walk-Forward Efficiency'])} · OOS "
                  f"deflated Sharpe ratio {_cell(s['Deflated Sharpe Ratio'])} · walk-forward "
                  f"PBO {_cell(s['Walk-Forward PBO'])}", highlight=False, soft_wrap=True)
    path = write_walk_forward_report(
        result, opt.report_path(report, folder, "walk-forward", strat.name, loaded.symbol),
        notes=tuple(loaded.notes))
    console.print(f"report written to [bold]{path}[/bold]", soft_wrap=True)


def validate(
    strategy: str = _STRATEGY,
    data: str = opt.DATA,
    symbol: str | None = opt.SYMBOL,
    exchange: str | None = opt.EXCHANGE,
    timeframe: str | None = opt.TIMEFRAME,
    funding: Path | None = opt.FUNDING,
    param: list[str] = typer.Option([], "--param", "-p", help="Strategy parameter name=value "
                                    "(repeat for several; the rest keep their defaults)."),
    trials: int = typer.Option(1, "--trials", "-n", min=1, help="Configurations tried before "
                               "choosing this one (deflates the Sharpe ratio)."),
    permutations: int = typer.Option(100, "--permutations", min=1, max=100_000,
                                     help="Shuffled price paths of the permutation test."),
    permutation_method: str = typer.Option("returns_shuffle", "--permutation-method",
                                           help="returns_shuffle, block_shuffle or "
                                           "block_bootstrap."),
    groups: int = typer.Option(6, "--groups", min=2, help="CPCV groups N."),
    test_groups: int = typer.Option(2, "--test-groups", min=1, help="CPCV test groups k."),
    neighbour_pct: float = typer.Option(20.0, "--neighbour-pct", min=0.0, max=99.0,
                                        help="Size of the parameter moves forming the CPCV "
                                        "candidates, % (0 = the given set only)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the permutations."),
    leverage: float = opt.LEVERAGE,
    initial_cash: float = opt.CASH,
    fee_bps: float | None = opt.FEE,
    slippage_bps: float = opt.SLIPPAGE,
    risk: Path | None = opt.RISK,
    no_risk: bool = opt.NO_RISK,
    report: Path | None = typer.Option(None, "--report", help="Where to write the HTML report "
                                       "(default: user_data/reports/validate-<strategy>-"
                                       "<symbol>-<time>.html)."),
    user_data: Path | None = opt.USER_DATA,
) -> None:
    """Validate one parameter set: causality, CPCV, permutation test, DSR, MinTRL, regimes.

    Prints every check with its threshold and a verdict, the performance per market regime,
    and writes an HTML report.
    """
    from quantum_trading.backtest.inputs import load_bars
    from quantum_trading.research.bias import PERMUTATION_METHODS
    from quantum_trading.research.reports import write_validation_report
    from quantum_trading.research.validate import validate_strategy
    from quantum_trading.strategies import get_strategy

    strat = get_strategy(strategy)
    if permutation_method not in PERMUTATION_METHODS:
        raise ConfigError(f"--permutation-method must be one of "
                          f"{', '.join(PERMUTATION_METHODS)}, got {permutation_method!r}")
    if test_groups >= groups:
        raise ConfigError(f"--test-groups ({test_groups}) must be below --groups ({groups})")
    fixed = opt.fixed_params(strat, param)
    folder = user_data_dir(user_data)
    loaded = load_bars(data, symbol=symbol, exchange=exchange, timeframe=timeframe,
                       funding=funding, data_dir=folder / "data")
    for note in loaded.notes:
        console.print(note, highlight=False, soft_wrap=True)
    costs, account, limits = opt.run_configs(leverage, initial_cash, fee_bps, slippage_bps, risk,
                                      no_risk)
    with progress_bar(console=console, remaining=False) as bar:
        tasks = {"backtests": bar.add_task("backtests of the set and its neighbours",
                                           total=None),
                 "permutations": bar.add_task(f"permutation test ({permutations} paths)",
                                              total=None)}

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(tasks[stage], total=total, completed=done)

        result = validate_strategy(
            strat, loaded.bars, params=fixed, n_trials=trials, n_permutations=permutations,
            permutation_method=permutation_method, n_groups=groups, n_test_groups=test_groups,
            neighbour_pct=neighbour_pct, seed=seed, costs=costs, account=account, risk=limits,
            progress=progress)
    shown = ", ".join(f"{k}={v}" for k, v in result.params.items())
    console.print(f"parameters: {shown}", highlight=False, soft_wrap=True)
    checks = Table(title=f"validation of {strat.name} on {loaded.symbol} {loaded.timeframe}")
    for col in ("check", "value", "needs", "result"):
        checks.add_column(col, justify="left" if col in ("check", "value") else "right")
    for name, row in result.checks.iterrows():
        mark = "[green]PASS[/green]" if row["passed"] else "[red]FAIL[/red]"
        checks.add_row(escape(str(name)), escape(str(row["value"])),
                       escape(str(row["threshold"])), mark)
    console.print(checks)
    regimes = Table(title="performance per regime (rule-based)")
    regimes.add_column("regime", style="cyan")
    for c in result.regime_table.columns:
        regimes.add_column(escape(str(c)), justify="right")
    digits = [0 if str(c).startswith(("#", "Bars")) else 2 for c in result.regime_table]
    for name, *values in result.regime_table.itertuples(name=None):
        regimes.add_row(str(name), *(_cell(v, d) for v, d in zip(values, digits, strict=True)))
    console.print(regimes)
    style = "green" if result.causal and bool(result.checks["passed"].all()) else "yellow"
    console.print(f"[{style}]{escape(result.verdict)}[/{style}]", soft_wrap=True)
    path = write_validation_report(
        result, opt.report_path(report, folder, "validate", strat.name, loaded.symbol),
        notes=tuple(loaded.notes))
    console.print(f"report written to [bold]{path}[/bold]", soft_wrap=True)
