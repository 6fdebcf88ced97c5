"""``quantum risk``: VaR / ES of a backtest with its tests and HTML report, and stress tests of
positions (from a file or from a backtest's end).

Parsing and printing only; the work is done by :mod:`quantum_trading.risk` and
:mod:`quantum_trading.backtest`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from quantum_trading.cli._console import console
from quantum_trading.errors import ConfigError
from quantum_trading.paths import user_data_dir

__all__ = ["app", "parse_shocks", "stress_table", "var_table"]

app = typer.Typer(help="Risk: VaR / ES and their backtests, stress tests of positions.",
                  no_args_is_help=True)

_METHODS = ("historical", "gaussian", "student_t", "cornish_fisher", "fhs")
_SHOCK = re.compile(r"^\s*(?P<sym>[^=]+?)\s*=\s*(?P<val>[-+]?\d+(?:\.\d*)?|[-+]?\.\d+)\s*%?\s*$")


# ----------------------------------------------------------------------------------- helpers
def parse_shocks(items: list[str], symbols: tuple[str, ...], *, where: str) -> dict[str, float]:
    """``["BTC/USDT:USDT=-10%", "ETH=+5"]`` → ``{symbol: fraction}``.

    The value is in percent (the ``%`` sign is optional); the symbol is a held symbol, its
    base asset (``BTC``) or ``all``; a later shock of the same symbol wins. Raises
    :class:`ConfigError` naming the shock and where the symbols came from.

    >>> parse_shocks(["all=+1", "BTC=-10%"], ("BTC/USDT:USDT", "ETH/USDT:USDT"), where="x")
    {'BTC/USDT:USDT': -0.1, 'ETH/USDT:USDT': 0.01}
    """
    out: dict[str, float] = {}
    for item in items:
        m = _SHOCK.match(item)
        if m is None:
            raise ConfigError(f"--shock {item!r}: expected SYMBOL=PERCENT, e.g. "
                              "BTC/USDT:USDT=-10%")
        name, value = m.group("sym"), float(m.group("val")) / 100.0
        if not value > -1.0:
            raise ConfigError(f"--shock {item!r}: a price cannot fall by 100 % or more")
        if name.lower() == "all":
            targets = list(symbols)
        elif name in symbols:
            targets = [name]
        else:
            targets = [s for s in symbols if s.split("/")[0].upper() == name.upper()]
        if not targets:
            raise ConfigError(f"--shock {item!r}: {name} is not among the positions in {where} "
                              f"(symbols: {', '.join(symbols) or 'none'})")
        for sym in targets:
            out[sym] = value
    return out


def _money(v: float) -> str:
    if not math.isfinite(v):
        return "∞" if v > 0 else "–"
    text = f"{v:,.2f}"
    return f"[green]{text}[/green]" if v > 0 else f"[red]{text}[/red]" if v < 0 else text


def _base(symbol: str) -> str:
    return symbol.split("/")[0]


def _what(row: Any) -> str:
    """A short form of a scenario: the moves (base assets), funding or closing costs."""
    if row.moves:
        return ", ".join(f"{_base(s)} {100 * v:+.2f} %" for s, v in row.moves.items())
    if row.kind == "funding":
        return f"funding {row.funding_pnl_usd:,.2f} USDT"
    if row.kind == "liquidity":
        return f"closing costs {row.closing_cost_usd:,.2f} USDT"
    return escape(row.description)


def stress_table(table: pd.DataFrame, *, title: str) -> Table:
    """:func:`~quantum_trading.risk.stress.run_stress`'s table as a rich table (the moves of
    each scenario in short; the report and the DataFrame have the full descriptions)."""
    out = Table(title=title)
    for h in ("scenario", "P&L [USDT]", "P&L [%]", "equity after", "margin ratio",
              "liquidated", "equity after liq.", "what"):
        out.add_column(h, justify="left" if h in ("scenario", "liquidated", "what") else "right",
                       style="cyan" if h == "scenario" else None,
                       no_wrap=h not in ("what", "liquidated", "scenario"))
    for r in table.itertuples(index=False):
        ratio = r.margin_ratio_after
        liq = ", ".join(f"{_base(s)} @ {r.liquidation_prices[s]:,.2f}" for s in r.liquidated)
        pct = "–" if math.isnan(r.pnl_pct) else f"{r.pnl_pct:+.2f}"
        out.add_row(escape(r.name), _money(r.pnl_usd), pct, f"{r.equity_after_usd:,.2f}",
                    "∞" if math.isinf(ratio) else f"{ratio:.4f}",
                    f"[bold red]{escape(liq)}[/bold red]" if liq else "none",
                    f"{r.equity_after_liquidation_usd:,.2f}", _what(r))
    return out


def var_table(returns: pd.Series, *, alpha: float, equity_usd: float, title: str) -> Table:
    """VaR and ES of ``returns`` (whole sample) by every method, in % and in USDT of
    ``equity_usd``."""
    from quantum_trading.risk.measures import var_es

    table = Table(title=title)
    for h in ("method", f"VaR{100 * alpha:g} [%]", f"ES{100 * alpha:g} [%]", "VaR [USDT]",
              "ES [USDT]"):
        table.add_column(h, justify="left" if h == "method" else "right",
                         style="cyan" if h == "method" else None)
    for method in _METHODS:
        try:
            v, e = var_es(returns, method, alpha)
        except ValueError as exc:
            table.add_row(method, "–", "–", "–", escape(str(exc)))
            continue
        table.add_row(method, f"{100 * v:.3f}", f"{100 * e:.3f}", f"{v * equity_usd:,.2f}",
                      f"{e * equity_usd:,.2f}")
    return table


@dataclass(frozen=True)
class _Run:
    result: Any
    account: Any
    costs: Any
    label: str


def _backtest(strategy: str, data: str, symbols: list[str], exchange: str | None,
              timeframe: str | None, funding: Path | None, param: list[str], leverage: float,
              margin_mode: str, initial_cash: float, risk: Path | None, no_risk: bool,
              user_data: Path | None) -> _Run:
    """Load the bars as ``quantum backtest`` does (one symbol or several on their common
    bars) and run the backtest."""
    from quantum_trading.backtest import Backtest
    from quantum_trading.backtest.inputs import load_bars
    from quantum_trading.sim import AccountConfig, CostsConfig, RiskConfig
    from quantum_trading.strategies import get_strategy, parse_params

    strat = get_strategy(strategy)
    params = parse_params(strat, param)
    folder = user_data_dir(user_data)
    if len(symbols) > 1 and funding is not None:
        raise ConfigError("--funding: give it with one --symbol only (the funding files next "
                          "to the data are found for each symbol)")
    frames: dict[str, pd.DataFrame] = {}
    tf = ""
    for sym in symbols or [None]:
        loaded = load_bars(data, symbol=sym, exchange=exchange, timeframe=timeframe,
                           funding=funding, data_dir=folder / "data")
        for note in loaded.notes:
            console.print(note, highlight=False, soft_wrap=True)
        frames[loaded.symbol] = loaded.bars
        tf = loaded.timeframe
    if len(frames) > 1:
        common = None
        for f in frames.values():
            common = f.index if common is None else common.intersection(f.index)
        frames = {s: f.loc[common] for s, f in frames.items()}
        console.print(f"aligned {len(frames)} symbols on their {len(common):,} common bars",
                      highlight=False)
    account = AccountConfig(initial_cash_usd=initial_cash, leverage=leverage,
                            margin_mode=margin_mode)
    costs = CostsConfig()
    data_arg = next(iter(frames.values())) if len(frames) == 1 else frames
    names = ", ".join(frames)
    with console.status(f"backtesting {strat.name} on {names}…"):
        result = Backtest(data_arg, strat, costs=costs, account=account, params=params,
                          risk=None if no_risk else (risk or RiskConfig())).run()
    shown = ", ".join(f"{k}={v}" for k, v in result.params.items())
    console.print(f"parameters: {shown}", highlight=False, soft_wrap=True)
    return _Run(result, account, costs, f"{strat.name} on {names} {tf}".strip())


def _check_margin_mode(value: str) -> str:
    if value not in ("cross", "isolated"):
        raise typer.BadParameter(f"must be 'cross' or 'isolated', got {value!r}")
    return value


_STRATEGY = typer.Option(None, "--strategy", "-s", help="Registered strategy name.")
_DATA = typer.Option(None, "--data", "-d", help="A data file, a freqtrade data folder (with "
                     "--symbol), or an exchange name in the store.")
_SYMBOL = typer.Option([], "--symbol", help="ccxt symbol, e.g. BTC/USDT:USDT (repeat for "
                       "several: they are aligned on their common bars).")
_EXCHANGE = typer.Option(None, "--exchange", "-e", help="Exchange folder inside a data folder.")
_TIMEFRAME = typer.Option(None, "--timeframe", "-t", help="Bar length, e.g. 1h.")
_FUNDING = typer.Option(None, "--funding", help="Funding-rate file (one symbol only).")
_PARAM = typer.Option([], "--param", "-p", help="Strategy parameter name=value (repeat).")
_LEVERAGE = typer.Option(1.0, "--leverage", min=1.0, max=1000.0, help="Account leverage.")
_MARGIN = typer.Option("cross", "--margin-mode", callback=_check_margin_mode,
                       help="cross or isolated.")
_CASH = typer.Option(10_000.0, "--initial-cash", min=1.0, help="Starting balance, USDT.")
_RISK = typer.Option(None, "--risk", help="Risk limits YAML (default: the built-in limits).")
_NO_RISK = typer.Option(False, "--no-risk", help="Run without the risk engine.")
_USER_DATA = typer.Option(None, "--user-data", help="The user_data folder.")


# ---------------------------------------------------------------------------------- commands
@app.command("report")
def report(
    strategy: str = typer.Option(..., "--strategy", "-s", help="Registered strategy name."),
    data: str = typer.Option(..., "--data", "-d", help="A data file, a freqtrade data folder "
                             "(with --symbol), or an exchange name in the store."),
    symbol: list[str] = _SYMBOL,
    exchange: str | None = _EXCHANGE,
    timeframe: str | None = _TIMEFRAME,
    funding: Path | None = _FUNDING,
    param: list[str] = _PARAM,
    leverage: float = _LEVERAGE,
    margin_mode: str = _MARGIN,
    initial_cash: float = _CASH,
    risk: Path | None = _RISK,
    no_risk: bool = _NO_RISK,
    alpha: float = typer.Option(0.99, "--alpha", min=0.5, max=0.9999,
                                help="VaR / ES confidence level."),
    window_bars: int | None = typer.Option(None, "--window-bars", min=10,
                                           help="Rolling VaR window in bars (default: about "
                                           "30 days of bars, at least 1 / (1 − alpha))."),
    report_path: Path | None = typer.Option(None, "--report", help="Where to write the HTML "
                                            "report (default: user_data/reports/risk-…html)."),
    user_data: Path | None = _USER_DATA,
) -> None:
    """Backtest a strategy, then print its VaR / ES by every method, component VaR (several
    symbols), Kupiec / Christoffersen tests of the rolling VaR, and write the HTML report with
    the risk sections (VaR / ES over time, risk limit hits, stress test)."""
    from quantum_trading.backtest import write_report
    from quantum_trading.backtest.report_risk import risk_window_bars, stress_snapshot
    from quantum_trading.data.symbols import symbol_to_filename
    from quantum_trading.risk.backtests import backtest_var
    from quantum_trading.risk.measures import min_observations
    from quantum_trading.risk.measures_portfolio import component_var
    from quantum_trading.risk.measures_rolling import rolling_var

    need = min_observations("historical", alpha)
    if window_bars is not None and window_bars < need:
        raise ConfigError(f"--window-bars {window_bars}: a {100 * alpha:g} % historical VaR "
                          f"needs a window of at least {need} bars")
    run = _backtest(strategy, data, symbol, exchange, timeframe, funding, param, leverage,
                    margin_mode, initial_cash, risk, no_risk, user_data)
    result = run.result
    returns = result.returns
    equity = float(result.equity.iloc[-1])
    console.print(var_table(returns, alpha=alpha, equity_usd=equity,
                            title=f"VaR / ES of {escape(run.label)}: per-bar equity returns "
                            f"({len(returns):,} bars; USDT of the final equity {equity:,.2f})"))
    window = window_bars or risk_window_bars(result.periods_per_year, len(returns), alpha)
    if window is None or window > len(returns) - 2:
        console.print(f"rolling VaR: not enough bars for a window ({len(returns)} returns)",
                      highlight=False)
    else:
        table = Table(title=f"rolling VaR{100 * alpha:g} backtest ({window}-bar window; "
                      "exception = next bar's loss beyond it)")
        for h in ("method", "exceptions", "tested", "expected", "Kupiec LR", "Kupiec p",
                  "Christoffersen ind. p", "cond. coverage p"):
            table.add_column(h, justify="left" if h == "method" else "right",
                             style="cyan" if h == "method" else None)
        for method in _METHODS:
            bt = backtest_var(returns, rolling_var(returns, window, method, alpha), alpha)
            k, c = bt.kupiec, bt.christoffersen
            table.add_row(method, str(k.n_exceptions), str(k.n_obs),
                          f"{k.expected_rate * k.n_obs:.1f}", f"{k.lr_pof:.3f}",
                          f"{k.p_value:.3f}", f"{c.p_value_ind:.3f}", f"{c.p_value_cc:.3f}")
        console.print(table)
    if len(result.symbols) > 1:
        snap, label = stress_snapshot(result, account=run.account)
        closes = pd.DataFrame({s: result.bars[s]["close"] for s in result.symbols})
        if snap is None:
            console.print("component VaR: no position was held", highlight=False)
        else:
            weights = snap.exposures.reindex(list(result.symbols)).fillna(0.0)
            comp = component_var(closes.pct_change().iloc[1:], weights, alpha)
            table = Table(title=f"component VaR{100 * alpha:g} (Gaussian, Euler) of the "
                          "positions stressed below")
            for h in ("symbol", "exposure [x equity]", "marginal VaR [%]", "component VaR [%]",
                      "share [%]", "component ES [%]"):
                table.add_column(h, justify="left" if h == "symbol" else "right")
            for sym, r in comp.iterrows():
                table.add_row(escape(str(sym)), f"{r['weight']:+.3f}",
                              f"{100 * r['marginal_var']:.3f}", f"{100 * r['component_var']:.3f}",
                              f"{100 * r['component_var_pct']:.1f}",
                              f"{100 * r['component_es']:.3f}")
            console.print(escape(label), highlight=False, soft_wrap=True)
            console.print(table)
    if report_path is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        names = "_".join(symbol_to_filename(s) for s in result.symbols)
        report_path = (user_data_dir(user_data) / "reports"
                       / f"risk-{result.strategy}-{names}-{stamp}.html")
    path = write_report(result, report_path, alpha=alpha, var_window_bars=window,
                        account=run.account, costs=run.costs)
    console.print(f"report written to [bold]{path}[/bold]", soft_wrap=True)


@app.command("stress")
def stress(
    positions: Path | None = typer.Option(None, "--positions", help="Positions file (CSV or "
                                          "JSON: symbol, size, entry_price, mark_price)."),
    cash: float | None = typer.Option(None, "--cash", help="Wallet balance, USDT (wins over "
                                      "the file's cash_usd)."),
    margin_mode: str = _MARGIN,
    leverage: float = _LEVERAGE,
    shock: list[str] = typer.Option([], "--shock", help="Price shock SYMBOL=PERCENT, e.g. "
                                    "BTC/USDT:USDT=-10% (repeat: one combined scenario; "
                                    "'all=-10%' moves every position)."),
    data: str | None = _DATA,
    strategy: str | None = _STRATEGY,
    symbol: list[str] = _SYMBOL,
    exchange: str | None = _EXCHANGE,
    timeframe: str | None = _TIMEFRAME,
    param: list[str] = _PARAM,
    initial_cash: float = _CASH,
    risk: Path | None = _RISK,
    no_risk: bool = _NO_RISK,
    window_bars: int = typer.Option(24, "--window-bars", min=1, help="Bars per historical "
                                    "window (24 = days of 1h bars)."),
    n_worst: int = typer.Option(3, "--n-worst", min=1, help="Historical windows to replay."),
    user_data: Path | None = _USER_DATA,
) -> None:
    """Stress positions: price shocks, the worst historical windows (with --data),
    correlations → 1, volatility × 3, an adverse funding spike and a liquidity drain; P&L,
    margin ratio and liquidations by the simulator's margin rules.

    Positions come from --positions FILE (with --cash, --margin-mode, --leverage; --data DIR
    adds historical scenarios from the bars of the held symbols), or from the end of a
    backtest (--strategy with --data).
    """
    from quantum_trading.backtest.inputs import load_bars
    from quantum_trading.backtest.report_risk import stress_snapshot
    from quantum_trading.risk.stress import (
        PositionsSnapshot,
        default_scenarios,
        price_shock,
        run_stress,
    )
    from quantum_trading.sim import AccountConfig

    if (positions is None) == (strategy is None):
        raise ConfigError("quantum risk stress: give --positions FILE or --strategy NAME "
                          "(with --data), not both")
    if positions is not None:
        snap = PositionsSnapshot.from_file(positions, cash_usd=cash)
        account = AccountConfig(leverage=leverage, margin_mode=margin_mode)
        where, label = str(positions), f"positions from {positions}"
        returns = None
        if data is not None:
            folder = user_data_dir(user_data)
            closes = {}
            for sym in snap.held:
                loaded = load_bars(data, symbol=sym, exchange=exchange, timeframe=timeframe,
                                   data_dir=folder / "data")
                closes[sym] = loaded.bars["close"]
            returns = pd.DataFrame(closes).pct_change().iloc[1:]
    else:
        if data is None:
            raise ConfigError("--strategy needs --data (the bars to backtest on)")
        run = _backtest(strategy, data, symbol, exchange, timeframe, None, param, leverage,
                        margin_mode, initial_cash, risk, no_risk, user_data)
        snap, label = stress_snapshot(run.result, account=run.account)
        if snap is None:
            console.print(label, highlight=False)
            return
        account, where = run.account, f"the backtest of {run.label}"
        result = run.result
        returns = pd.DataFrame({s: result.bars[s]["close"] for s in result.symbols}
                               ).pct_change().iloc[1:]
    scenarios = []
    if shock:
        scenarios.append(price_shock(parse_shocks(shock, snap.symbols, where=where),
                                     name="custom (--shock)"))
    scenarios += default_scenarios(snap, returns, historical_window_bars=window_bars,
                                   n_historical=n_worst)
    table = run_stress(snap, scenarios, account=account)
    held = ", ".join(f"{s} {snap.positions.at[s, 'size']:+.6g} @ "
                     f"{snap.positions.at[s, 'mark_price']:,.2f}" for s in snap.held) or "none"
    mode = getattr(account.margin_mode, "value", account.margin_mode)
    console.print(escape(label), highlight=False, soft_wrap=True)
    console.print(f"positions: {escape(held)}; equity {snap.equity_usd:,.2f} USDT; {mode} "
                  f"margin; margin ratio now {table.attrs['margin_ratio']:.4f}",
                  highlight=False, soft_wrap=True)
    console.print(stress_table(table, title="stress test (instant moves; P&L mark-to-market; "
                               "liquidation by the simulator's margin rules)"))
