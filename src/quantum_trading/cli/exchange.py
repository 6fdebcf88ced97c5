"""``quantum exchange …``: the local exchange server (Binance USDⓈ-M endpoints from stored data)."""

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
) -> None:
    """Serve Binance USDⓈ-M market-data endpoints (exchangeInfo, klines, markPriceKlines,
    fundingRate, time, ping) from stored data, for ccxt's binanceusdm client."""
    from quantum_trading.execution.local_exchange import create_app
    from quantum_trading.execution.local_exchange import server as server_module
    from quantum_trading.paths import user_data_dir

    folder = Path(data_dir) if data_dir is not None else user_data_dir() / "data"
    if fail_count is not None and fail_after is None:
        raise ValueError("--fail-count needs --fail-after")
    application = create_app(
        folder,
        exchange=exchange,
        fail_after=fail_after,
        fail_count=fail_count,
        fail_status=fail_status,
    )
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

    def _listening(url: str) -> None:
        console.print(
            f"listening on {url}  (ccxt: make_client('binanceusdm', base_url='{url}'); Ctrl-C stops)",
            highlight=False,
            soft_wrap=True,
        )

    server_module.serve(
        application, host=host, port=port, log_level="warning", on_listen=_listening
    )
