"""``quantum optimize``: search a strategy's parameters, print the best sets and the verdict,
write an HTML report.

Parsing and printing only; the work is done by :mod:`quantum_trading.research`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from quantum_trading.cli import _options as opt
from quantum_trading.cli._console import console
from quantum_trading.errors import ConfigError
from quantum_trading.paths import user_data_dir

__all__ = ["optimize", "parse_grid", "parse_regimes"]


def _values_between(param: Any, name: str, low: str, high: str, count: str) -> list[Any]:
    try:
        n = int(count)
    except ValueError:
        raise ConfigError(f"--grid {name}: the count in a:b:n must be an integer, got "
                          f"{count!r}") from None
    if n < 1:
        raise ConfigError(f"--grid {name}: the count in a:b:n must be >= 1, got {n}")
    a, b = param.parse(name, low), param.parse(name, high)
    if isinstance(a, bool) or not isinstance(a, int | float):
        raise ConfigError(f"--grid {name}: a:b:n needs a numeric parameter")
    raw = np.linspace(float(a), float(b), n) if n > 1 else np.array([float(a)])
    if isinstance(a, int):
        values: list[Any] = list(dict.fromkeys(round(float(v)) for v in raw))
    else:
        values = [float(round(v, 12)) for v in raw]
    return [param.validate(name, v) for v in values]


def parse_grid(strategy: Any, specs: Sequence[str]) -> dict[str, list[Any]]:
    """``--grid`` options as ``{name: values}``.

    Each spec is ``name=a:b:n`` (n values from a to b, ends included; integers rounded),
    ``name=v1,v2,…`` (a list) or ``name=v`` (one value); values are checked against the
    strategy's declared ranges.

    >>> from quantum_trading.strategies import get_strategy
    >>> parse_grid(get_strategy("trend_following"), ["fast=5:20:4", "slow=50,100"])
    {'fast': [5, 10, 15, 20], 'slow': [50, 100]}
    """
    space = strategy.params
    out: dict[str, list[Any]] = {}
    for spec in specs:
        if "=" not in spec:
            raise ConfigError(f"--grid {spec!r} must look like name=a:b:n, name=v1,v2 or name=v")
        name, _, text = (part.strip() for part in spec.partition("="))
        if name not in space:
            raise ConfigError(f"--grid: unknown parameter {name!r} (known parameters: "
                              f"{', '.join(space)})")
        param = space[name]
        if text.count(":") == 2:
            out[name] = _values_between(param, name, *text.split(":"))
        else:
            out[name] = list(dict.fromkeys(param.parse(name, v.strip())
                                           for v in text.split(",") if v.strip()))
        if not out[name]:
            raise ConfigError(f"--grid {name}: no values")
    return out


def parse_regimes(text: str) -> tuple[str, ...]:
    """``--regimes`` as detector names: comma-separated ``rules`` / ``hmm``, or ``none``.

    >>> parse_regimes("rules,hmm"), parse_regimes("none")
    (('rules', 'hmm'), ())
    """
    from quantum_trading.research.regime_analysis import REGIME_DETECTORS

    names = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    if names == ("none",):
        return ()
    bad = [n for n in names if n not in REGIME_DETECTORS]
    if bad or not names:
        raise ConfigError(f"--regimes must be rules, hmm, rules,hmm or none, got {text!r}")
    return names


def _best_table(res: Any, rows: int) -> Table:
    table = Table(title=f"best {min(rows, len(res.table))} of {len(res.table):,} parameter sets "
                        f"(objective: {res.objective})")
    cols = [*res.searched, "objective", "Return [%]", "Sharpe Ratio", "Max. Drawdown [%]",
            "# Trades", "feasible"]
    cols = list(dict.fromkeys(c for c in cols if c in res.table.columns))
    table.add_column("trial", justify="right", style="cyan")
    for c in cols:
        table.add_column(escape(c), justify="right")
    for idx, row in res.table.head(rows).iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, float | np.floating):
                cells.append(f"{float(v):,.3f}")
            else:
                cells.append(str(v))
        table.add_row(str(idx), *cells)
    return table


def optimize(
    strategy: str = typer.Option(..., "--strategy", "-s", help="Registered strategy name, e.g. "
                                 "trend_following."),
    data: str = opt.DATA,
    symbol: str | None = opt.SYMBOL,
    exchange: str | None = opt.EXCHANGE,
    timeframe: str | None = opt.TIMEFRAME,
    funding: Path | None = opt.FUNDING,
    grid: list[str] = typer.Option([], "--grid", "-g", help="Values of one parameter: "
                                   "name=a:b:n (n values from a to b), name=v1,v2,… or name=v. "
                                   "Repeat per parameter; unnamed parameters stay at their "
                                   "defaults. Without any: 5 values of every optimisable "
                                   "parameter (grid) or the declared space (Optuna)."),
    param: list[str] = typer.Option([], "--param", "-p", help="Hold a parameter fixed: "
                                    "name=value (repeat for several)."),
    method: str | None = typer.Option(None, "--method", "-m", help="grid or optuna (default: "
                                      "optuna when --trials is given, else grid)."),
    trials: int | None = typer.Option(None, "--trials", "-n", min=1,
                                      help="Optuna trials (TPE, seeded, median pruning)."),
    objective: str = typer.Option("Sharpe Ratio", "--objective", "-o",
                                  help="Backtest statistic to optimise, e.g. 'Sharpe Ratio', "
                                  "'Return [%]', 'Calmar Ratio'."),
    minimize: bool = opt.MINIMIZE,
    min_trades: int | None = opt.MIN_TRADES,
    max_dd: float | None = opt.MAX_DD,
    backend: str = opt.BACKEND,
    address: str | None = opt.ADDRESS,
    workers: int | None = opt.WORKERS,
    seed: int = opt.SEED,
    no_pruning: bool = typer.Option(False, "--no-pruning", help="Run every Optuna trial to "
                                    "the end."),
    leverage: float = opt.LEVERAGE,
    initial_cash: float = opt.CASH,
    fee_bps: float | None = opt.FEE,
    slippage_bps: float = opt.SLIPPAGE,
    risk: Path | None = opt.RISK,
    no_risk: bool = opt.NO_RISK,
    report: Path | None = typer.Option(None, "--report", help="Where to write the HTML report "
                                       "(default: user_data/reports/optimize-<strategy>-"
                                       "<symbol>-<time>.html)."),
    regimes: str = typer.Option("rules", "--regimes", help="Regime detectors for the "
                                "report's regime timeline: rules, hmm, rules,hmm or none."),
    top: int = typer.Option(10, "--top", min=1, help="Best parameter sets to print."),
    user_data: Path | None = opt.USER_DATA,
) -> None:
    """Optimise a strategy's parameters (grid or Optuna) and say whether the best is real.

    The strategy is refused if it looks ahead (checked before the search). Every parameter set
    is backtested with the one simulator; the report gives the deflated Sharpe ratio of the
    best set given the number of trials, the probability of backtest overfitting (CSCV) and
    a verdict in words, with parameter-surface heatmaps and the regime timeline of the bars.
    """
    from quantum_trading.backtest.inputs import load_bars
    from quantum_trading.progress import progress_bar
    from quantum_trading.research.optimize import optimize as run_optimize
    from quantum_trading.research.report import write_optimization_report
    from quantum_trading.strategies import get_strategy

    strat = get_strategy(strategy)
    chosen = method or ("optuna" if trials is not None else "grid")
    if chosen not in ("grid", "optuna"):
        raise ConfigError(f"--method must be grid or optuna, got {chosen!r}")
    if chosen == "grid" and trials is not None:
        raise ConfigError("--trials is for --method optuna")
    values = parse_grid(strat, grid) if grid else None
    detectors = parse_regimes(regimes)
    fixed = opt.fixed_params(strat, param)
    folder = user_data_dir(user_data)
    loaded = load_bars(data, symbol=symbol, exchange=exchange, timeframe=timeframe,
                       funding=funding, data_dir=folder / "data")
    for note in loaded.notes:
        console.print(note, highlight=False, soft_wrap=True)
    costs, account, limits = opt.run_configs(leverage, initial_cash, fee_bps, slippage_bps, risk,
                                             no_risk)
    total = trials if chosen == "optuna" else None
    with progress_bar(console=console) as bar:
        task = bar.add_task(f"{chosen} search of {strat.name} on {loaded.symbol}", total=total)

        def progress(done: int, n: int) -> None:
            bar.update(task, completed=done, total=n)

        result = run_optimize(
            loaded.bars, strat, method=chosen, grid=values, params=fixed or None,
            n_trials=trials or 100, objective=objective,
            direction="minimize" if minimize else "maximize", min_trades=min_trades,
            max_drawdown_pct=max_dd or None, costs=costs, account=account, risk=limits,
            backend=backend, address=address, n_workers=workers, seed=seed,
            pruning=not no_pruning, regimes=detectors, progress=progress)
    console.print(_best_table(result, top))
    if result.best_params is not None:
        shown = ", ".join(f"{k}={result.best_params[k]}" for k in result.searched)
        console.print(f"best parameters: {shown}", highlight=False, soft_wrap=True)
    pbo = result.pbo.pbo if result.pbo is not None else float("nan")
    console.print(f"deflated Sharpe ratio {result.dsr:.3f} · expected best Sharpe of "
                  f"skill-less trials {result.sr_benchmark:.3f} · PBO {pbo:.3f}",
                  highlight=False, soft_wrap=True)
    style = "green" if result.best_params is not None and result.dsr >= 0.95 else "yellow"
    console.print(f"[{style}]{escape(result.verdict)}[/{style}]", soft_wrap=True)
    report = opt.report_path(report, folder, "optimize", strat.name, loaded.symbol)
    path = write_optimization_report(result, report, notes=tuple(loaded.notes))
    console.print(f"report written to [bold]{path}[/bold]", soft_wrap=True)
