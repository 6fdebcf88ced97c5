"""``quantum exchange …``: the local exchange server (Binance USDⓈ-M endpoints from stored data).

``quantum exchange serve`` serves market data; with ``--trading`` it also trades: a paper
exchange replays the stored bars (one bar per ``POST /_local/advance``, or
``--bars-per-second``) and answers ccxt's signed order, position and balance calls, checking the
key and secret named by ``--api-key-env`` / ``--secret-env`` (read from the environment only).
``--fault kind=value`` (or ``group:kind=value``) injects latency, dropped answers, 429, 5xx, rejects and partial
fills (seeded by ``--fault-seed``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from quantum_trading.cli._console import console

__all__ = ["app", "serve"]

app = typer.Typer(help="The local exchange server.", no_args_is_help=True)


@app.command("serve")
def serve(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Data folder: freqtrade layout (e.g. …/binance/futures) or the store root. "
            "Default: user_data/data.",
        ),
    ] = None,
    exchange: Annotated[
        str, typer.Option("--exchange", help="Exchange folder name inside the data folder.")
    ] = "binance",
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")
    ] = 8765,
    fail_after: Annotated[
        int | None,
        typer.Option(
            "--fail-after",
            min=0,
            help="Fault injection: fail data requests after N successful ones.",
        ),
    ] = None,
    fail_count: Annotated[
        int | None,
        typer.Option(
            "--fail-count", min=1, help="With --fail-after: how many requests fail (default: all)."
        ),
    ] = None,
    fail_status: Annotated[
        int, typer.Option("--fail-status", min=400, max=599, help="HTTP status of failed requests.")
    ] = 503,
    trading: Annotated[
        bool,
        typer.Option("--trading", help="Also trade: a paper exchange replaying the stored bars."),
    ] = False,
    api_key_env: Annotated[
        str, typer.Option("--api-key-env", help="Environment variable holding the API key.")
    ] = "QUANTUM_LOCAL_API_KEY",
    secret_env: Annotated[
        str, typer.Option("--secret-env", help="Environment variable holding the API secret.")
    ] = "QUANTUM_LOCAL_API_SECRET",
    timeframe: Annotated[
        str, typer.Option("--timeframe", help="Replay bar (1m, 5m, 1h …).")
    ] = "1m",
    symbols: Annotated[
        list[str] | None,
        typer.Option("--symbol", help="Symbol to trade (repeat; default: all stored)."),
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="Replay from this UTC time (bar open).")
    ] = None,
    end: Annotated[str | None, typer.Option("--end", help="Replay until this UTC time.")] = None,
    bars_per_second: Annotated[
        float | None,
        typer.Option("--bars-per-second", min=0.0, help="Advance the replay by itself at this "
                     "rate (default: only POST /_local/advance moves it)."),
    ] = None,
    initial_cash: Annotated[
        float, typer.Option("--initial-cash", min=0.0, help="Paper account cash, USDT.")
    ] = 10_000.0,
    max_participation: Annotated[
        float | None,
        typer.Option("--max-participation", min=0.0, max=1.0,
                     help="Cap of one order's fill per bar, fraction of the bar's volume."),
    ] = None,
    faults: Annotated[
        list[str] | None,
        typer.Option("--fault", help="Random fault KIND=VALUE or GROUP:KIND=VALUE (repeat): kinds latency "
                     "(ms), drop, 429, 5xx, reject, partial (probabilities); groups meta, "
                     "market, order, account."),
    ] = None,
    fault_seed: Annotated[int, typer.Option("--fault-seed", help="Seed of the random faults.")] = 0,
) -> None:
    """Serve Binance USDⓈ-M market-data endpoints (exchangeInfo, klines, markPriceKlines,
    fundingRate, time, ping) from stored data, for ccxt's binanceusdm client; with --trading
    also the order, position, balance, leverage and quote endpoints of a paper exchange."""
    import os

    from quantum_trading.errors import ConfigError
    from quantum_trading.execution.local_exchange import (
        Credentials,
        FaultPlan,
        TradingOptions,
        create_app,
        parse_fault_specs,
    )
    from quantum_trading.execution.local_exchange import server as server_module
    from quantum_trading.paths import user_data_dir
    from quantum_trading.sim import AccountConfig

    folder = Path(data_dir) if data_dir is not None else user_data_dir() / "data"
    if fail_count is not None and fail_after is None:
        raise ValueError("--fail-count needs --fail-after")
    plan = FaultPlan(fail_after, fail_count, fail_status, random=parse_fault_specs(faults or []),
                     seed=fault_seed)
    options = None
    if trading:
        keys = {}
        for what, variable in (("API key", api_key_env), ("secret", secret_env)):
            value = os.environ.get(variable)
            if not value:
                raise ConfigError(f"--trading: environment variable {variable} (the {what}) is "
                                  "not set")
            keys[what] = value
        options = TradingOptions(
            Credentials(keys["API key"], keys["secret"]), timeframe=timeframe,
            symbols=tuple(symbols) if symbols else None, start=start, end=end,
            account=AccountConfig(initial_cash_usd=initial_cash),
            max_participation=max_participation or None,
            bars_per_second=bars_per_second or None,
        )
    application = create_app(folder, exchange=exchange, fault_plan=plan, trading=options)
    symbols = application.state.market_data.market_ids()
    shown = ", ".join(symbols[:8]) + (f" (+{len(symbols) - 8} more)" if len(symbols) > 8 else "")
    console.print(
        f"local exchange: {len(symbols)} symbols from {folder} ({shown})",
        highlight=False,
        soft_wrap=True,
    )
    if fail_after is not None:
        count = "all" if fail_count is None else str(fail_count)
        console.print(
            f"fault injection: after {fail_after} data requests, {count} answer HTTP {fail_status}",
            highlight=False,
            soft_wrap=True,
        )
    if plan.random:
        console.print(f"random faults (seed {fault_seed}): {', '.join(faults or [])}",
                      highlight=False, soft_wrap=True)
    session = application.state.trading
    if session is not None:
        speed = (f"{session.bars_per_second:g} bars/s" if session.bars_per_second
                 else "POST /_local/advance")
        console.print(
            f"trading: paper exchange on {len(session.paper.symbols)} symbols, {timeframe} bars "
            f"from {session.replay.time} (clock: {speed}); keys from ${api_key_env} / "
            f"${secret_env}",
            highlight=False,
            soft_wrap=True,
        )

    def _listening(url: str) -> None:
        console.print(
            f"listening on {url}  (ccxt: make_client('binanceusdm', base_url='{url}'); Ctrl-C stops)",
            highlight=False,
            soft_wrap=True,
        )

    server_module.serve(
        application, host=host, port=port, log_level="warning", on_listen=_listening
    )
