"""The ``quantum`` command: one sub-app per command group, no logic beyond parsing and printing.

Errors the user can act on (bad data, bad config, bad arguments, exchange failures) print one
red line and exit with status 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys

import typer

from quantum_trading.cli._console import console, state

__all__ = ["app", "main"]

app = typer.Typer(
    name="quantum",
    help="Quantum Trading: data, indicators, backtests and trading for crypto perpetual futures.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    state.debug = debug


def _register() -> None:
    from quantum_trading.cli import backtest as backtest_cli
    from quantum_trading.cli import data as data_cli
    from quantum_trading.cli import demo as demo_cli
    from quantum_trading.cli import exchange as exchange_cli
    from quantum_trading.cli import research as research_cli
    from quantum_trading.cli import risk as risk_cli
    from quantum_trading.cli import rl as rl_cli
    from quantum_trading.cli import trade as trade_cli
    from quantum_trading.cli import train as train_cli
    from quantum_trading.cli import validation as validation_cli

    app.add_typer(data_cli.app, name="data")
    app.add_typer(exchange_cli.app, name="exchange")
    app.add_typer(risk_cli.app, name="risk")
    app.add_typer(rl_cli.app, name="rl")
    app.command(name="demo")(demo_cli.demo)
    app.command(name="backtest")(backtest_cli.backtest)
    app.command(name="optimize")(research_cli.optimize)
    app.command(name="walk-forward")(validation_cli.walk_forward)
    app.command(name="validate")(validation_cli.validate)
    app.command(name="train")(train_cli.train)
    for name in ("paper", "live", "orders", "positions", "kill"):
        app.command(name=name)(getattr(trade_cli, name))


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status."""
    from quantum_trading.errors import QuantumError

    try:
        app(args=argv, standalone_mode=False)
    except SystemExit as stop:  # typer/click exits for --help and usage errors
        return int(stop.code or 0)
    except typer.Abort:
        console.print("[red]aborted[/red]")
        return 1
    except Exception as error:  # one clear line for everything a user can cause
        import click

        if isinstance(error, click.exceptions.Exit):
            return int(error.exit_code)
        if isinstance(error, click.ClickException):
            error.show()
            return error.exit_code
        if state.debug:
            raise
        kind = "error" if isinstance(error, (QuantumError, ValueError, OSError)) else type(error).__name__
        console.print(f"[bold red]{kind}:[/bold red] {error}", highlight=False, soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
