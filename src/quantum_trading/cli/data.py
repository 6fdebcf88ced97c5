"""``quantum data …``: download, import, list, validate, repair, synth, resample.

Parsing and printing only; the work is done by :mod:`quantum_trading.data`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from quantum_trading.cli._console import console
from quantum_trading.data.store import ParquetStore
from quantum_trading.paths import user_data_dir

__all__ = ["app"]

app = typer.Typer(
    help="Market data: download, import, list, validate, repair, synth, resample.",
    no_args_is_help=True,
)

_USER_DATA_HELP = "The user_data folder (default: $QUANTUM_USER_DATA or ./user_data)."


def _store(user_data: Path | None) -> ParquetStore:
    return ParquetStore(user_data_dir(user_data) / "data")


def _load_series(
    path: Path | None,
    *,
    kind: str,
    exchange: str | None,
    symbol: str | None,
    timeframe: str | None,
    market_type: str,
    user_data: Path | None,
    validate: bool,
) -> pd.DataFrame:
    """Load one series by path or by (exchange, symbol, timeframe, market type)."""
    from quantum_trading.data.loaders import load_funding, load_mark, load_ohlcv

    loader = {"ohlcv": load_ohlcv, "funding": load_funding, "mark": load_mark}[kind]
    if path is None and (exchange is None or symbol is None or timeframe is None):
        raise typer.BadParameter("give a PATH, or --exchange, --symbol and --timeframe")
    if path is not None:
        return loader(path, timeframe=timeframe, validate=validate)
    return loader(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        market_type=market_type,
        data_dir=user_data_dir(user_data) / "data",
        validate=validate,
    )


def _when(stamp: object) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM`` (UTC), short enough for narrow terminals."""
    return stamp.strftime("%Y-%m-%d %H:%M") if isinstance(stamp, pd.Timestamp) else str(stamp)


def _frame_table(title: str, df: pd.DataFrame, rows: int = 5) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column(df.index.name or "index", style="cyan")
    for column in df.columns:
        table.add_column(str(column), justify="right")
    shown = df if len(df) <= 2 * rows else pd.concat([df.head(rows), df.tail(rows)])
    for stamp, values in shown.iterrows():
        table.add_row(_when(stamp), *(f"{v:,.6g}" if isinstance(v, float) else str(v) for v in values))
    return table


@app.command()
def download(
    symbols: list[str] = typer.Argument(..., help="ccxt symbols, e.g. BTC/USDT:USDT ETH/USDT:USDT."),
    timeframe: str = typer.Option("1h", "--timeframe", "-t", help="Bar length, e.g. 1m, 5m, 1h."),
    since: str = typer.Option(..., "--since", help="First bar to fetch (UTC date/time), e.g. 2024-01-01."),
    until: str | None = typer.Option(None, "--until", help="Stop before this time (default: now)."),
    kinds: str = typer.Option("ohlcv,funding,mark", "--kinds", help="Comma list of ohlcv, funding, mark."),
    exchange_id: str = typer.Option("binanceusdm", "--exchange", "-e", help="ccxt exchange id."),
    base_url: str | None = typer.Option(
        None, "--base-url", help="Send requests to this server instead (e.g. the local exchange)."
    ),
    page_limit: int = typer.Option(1500, "--page-limit", min=1, help="Bars per request."),
    user_data: Path | None = typer.Option(None, "--user-data", help=_USER_DATA_HELP),
) -> None:
    """Download perpetual OHLCV, funding rates and mark prices into the Parquet store.

    Resumes from the last stored bar; each page is stored as it arrives.
    """
    from quantum_trading.data.download import download as run_download
    from quantum_trading.data.download import make_client

    kind_list = tuple(k.strip() for k in kinds.split(",") if k.strip())
    client = make_client(exchange_id, base_url=base_url)
    report = run_download(
        symbols,
        timeframe=timeframe,
        since=since,
        until=until,
        kinds=kind_list,
        exchange_id=exchange_id,
        store=_store(user_data),
        client=client,
        page_limit=page_limit,
        progress=True,
    )
    table = Table(title=f"downloaded from {exchange_id}" + (f" at {base_url}" if base_url else ""))
    for column in ("symbol", "kind", "timeframe", "pages", "added", "updated", "retries", "first", "last"):
        table.add_column(column, justify="left" if column in ("symbol", "kind", "timeframe") else "right")
    for series in report.series:
        table.add_row(
            series.symbol, series.kind, series.timeframe, str(series.pages), f"{series.added:,}",
            f"{series.updated:,}", str(series.retries), _when(series.first), _when(series.last),
        )
    console.print(table)


@app.command("import")
def import_(
    paths: list[Path] = typer.Argument(
        ..., exists=True, help="Files (CSV, Parquet, Feather, JSON[.gz]) or freqtrade data folders."
    ),
    exchange: str = typer.Option("binance", "--exchange", "-e", help="Exchange name to file it under."),
    symbol: str | None = typer.Option(None, "--symbol", "-s", help="ccxt symbol (default: from file name)."),
    timeframe: str | None = typer.Option(None, "--timeframe", "-t", help="Bar length (default: from file name)."),
    kind: str | None = typer.Option(None, "--kind", help="ohlcv, funding or mark (default: from file name)."),
    market_type: str = typer.Option("futures", "--market-type", help="futures or spot."),
    user_data: Path | None = typer.Option(None, "--user-data", help=_USER_DATA_HELP),
) -> None:
    """Import files you already have into the Parquet store (validated; merged, never duplicated)."""
    from quantum_trading.data.layout import FORMAT_EXTENSIONS

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(FORMAT_EXTENSIONS))
            )
        else:
            files.append(path)
    if not files:
        raise ValueError(f"no data files found in {', '.join(map(str, paths))}")

    store = _store(user_data)
    table = Table(title=f"imported into {store.root}")
    for name in ("file", "kind", "symbol", "timeframe", "bars", "added", "updated"):
        table.add_column(name, justify="right" if name in ("bars", "added", "updated") else "left")
    progress = Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.description}"), console=console, transient=True)
    with progress:
        task = progress.add_task("", total=len(files))
        for file in files:
            progress.update(task, description=file.name)
            table.add_row(*_import_one(file, store, exchange=exchange, symbol=symbol,
                                       timeframe=timeframe, kind=kind, market_type=market_type,
                                       user_data=user_data))
            progress.advance(task)
    console.print(table)


def _import_one(file: Path, store: ParquetStore, *, exchange: str, symbol: str | None,
                timeframe: str | None, kind: str | None, market_type: str,
                user_data: Path | None) -> tuple[str, ...]:
    """Load, validate and merge one file into the store; the row for the summary table."""
    from quantum_trading.data.layout import parse_data_file_name

    parsed = parse_data_file_name(file)
    file_kind = kind or (parsed.kind if parsed else "ohlcv")
    file_symbol = symbol or (parsed.symbol if parsed else None)
    file_timeframe = timeframe or (parsed.timeframe if parsed else None)
    file_market = parsed.market_type if (parsed and symbol is None) else market_type
    if file_symbol is None or file_timeframe is None:
        raise ValueError(
            f"{file}: cannot tell symbol/timeframe from the file name; pass --symbol and --timeframe"
        )
    frame = _load_series(file, kind=file_kind, exchange=None, symbol=None,
                         timeframe=file_timeframe, market_type=file_market,
                         user_data=user_data, validate=True)
    report = store.merge(frame, exchange=exchange, symbol=file_symbol, timeframe=file_timeframe,
                         market_type=file_market, kind=file_kind)
    return (file.name, file_kind, file_symbol, file_timeframe, str(len(frame)),
            str(report.added), str(report.updated))


@app.command("list")
def list_(
    user_data: Path | None = typer.Option(None, "--user-data", help=_USER_DATA_HELP),
) -> None:
    """List every series in the Parquet store with its span and bar count."""
    store = _store(user_data)
    listing = store.list()
    if listing.empty:
        console.print(f"no data in {store.root}; try 'quantum data synth' or 'quantum data download'")
        return
    table = Table(title=f"data in {store.root}")
    for column in ("exchange", "symbol", "timeframe", "kind", "bars", "first", "last"):
        table.add_column(column, justify="right" if column == "bars" else "left", no_wrap=True)
    for row in listing.itertuples(index=False):
        exchange = row.exchange if row.market_type == "futures" else f"{row.exchange} ({row.market_type})"
        table.add_row(
            exchange, row.symbol, row.timeframe, row.kind,
            f"{row.bars:,}", _when(row.first), _when(row.last),
        )
    console.print(table)


_PATH_ARG = typer.Argument(None, help="A data file; or give --exchange, --symbol and --timeframe.")


@app.command()
def validate(
    path: Path | None = _PATH_ARG,
    kind: str = typer.Option("ohlcv", "--kind", help="ohlcv, funding or mark."),
    exchange: str | None = typer.Option(None, "--exchange", "-e", help="Exchange folder in the store."),
    symbol: str | None = typer.Option(None, "--symbol", "-s", help="ccxt symbol, e.g. BTC/USDT:USDT."),
    timeframe: str | None = typer.Option(None, "--timeframe", "-t", help="Bar length, e.g. 1h."),
    market_type: str = typer.Option("futures", "--market-type", help="futures or spot."),
    strict_gaps: bool = typer.Option(False, "--no-gaps", help="Treat any gap as an error."),
    user_data: Path | None = typer.Option(None, "--user-data", help=_USER_DATA_HELP),
) -> None:
    """Check a series: order, duplicates, NaN/inf, prices, high/low, volume, gaps.

    Exits non-zero with one line naming file, row and column at the first problem.
    """
    from quantum_trading.data.validate import validate_funding, validate_mark, validate_ohlcv

    frame = _load_series(
        path, kind=kind, exchange=exchange, symbol=symbol, timeframe=timeframe,
        market_type=market_type, user_data=user_data, validate=False,
    )
    source = str(frame.attrs.get("source", path))
    if kind == "ohlcv":
        report = validate_ohlcv(
            frame, timeframe=timeframe or frame.attrs.get("timeframe"), source=source,
            allow_gaps=not strict_gaps,
        )
    elif kind == "funding":
        report = validate_funding(frame, source=source)
    else:
        report = validate_mark(frame, source=source)
    console.print(f"[green]valid[/green] {source}", soft_wrap=True, highlight=False)
    console.print(report.summary(), soft_wrap=True, highlight=False)


@app.command()
def repair(
    path: Path | None = _PATH_ARG,
    timeframe: str | None = typer.Option(None, "--timeframe", "-t", help="Bar length (default: from file name)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the repaired data here (.parquet/.csv/.feather)."),
    exchange: str | None = typer.Option(None, "--exchange", "-e", help="Repair a stored series: exchange."),
    symbol: str | None = typer.Option(None, "--symbol", "-s", help="Repair a stored series: symbol."),
    market_type: str = typer.Option("futures", "--market-type", help="futures or spot."),
    drop_invalid: bool = typer.Option(False, "--drop-invalid", help="Drop rows with NaN or non-positive prices."),
    user_data: Path | None = typer.Option(None, "--user-data", help=_USER_DATA_HELP),
) -> None:
    """Sort, dedupe (keeping the last) and fill gaps with zero-volume bars, reporting every change.

    A file is never changed in place: the result goes to --output. A stored series
    (--exchange/--symbol/--timeframe) is rewritten in the store atomically.
    """
    from quantum_trading.data.readers import write_frame
    from quantum_trading.data.repair import repair_ohlcv

    frame = _load_series(
        path, kind="ohlcv", exchange=exchange, symbol=symbol, timeframe=timeframe,
        market_type=market_type, user_data=user_data, validate=False,
    )
    frame_timeframe = timeframe or frame.attrs.get("timeframe")
    if frame_timeframe is None:
        raise ValueError("cannot tell the timeframe from the file name; pass --timeframe")
    repaired, report = repair_ohlcv(
        frame, timeframe=frame_timeframe, source=str(frame.attrs.get("source", path)), drop_invalid=drop_invalid
    )
    console.print(report.summary(), soft_wrap=True, highlight=False)
    if path is not None:
        if output is None:
            raise typer.BadParameter("give --output for the repaired file (inputs are never overwritten)")
        write_frame(repaired, output)
        console.print(f"wrote {len(repaired):,} bars to {output}")
    else:
        # A stored series is already sorted and unique, so repair only inserts gap bars:
        # merging them adds those bars and leaves every existing bar as it is.
        merged = _store(user_data).merge(
            repaired, exchange=str(exchange), symbol=str(symbol), timeframe=frame_timeframe,
            market_type=market_type, kind="ohlcv",
        )
        console.print(f"stored {symbol} {frame_timeframe}: {merged.added:,} gap bars added")


@app.command()
def synth(
    assets: int = typer.Option(3, "--assets", "-n", min=1, max=20, help="Number of correlated assets."),
    bars: int = typer.Option(5000, "--bars", min=100, help="Bars per asset."),
    timeframe: str = typer.Option("1h", "--timeframe", "-t", help="Bar length."),
    start: str = typer.Option("2024-01-01", "--start", help="First bar open time (UTC)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same data)."),
    exchange: str = typer.Option("synthetic", "--exchange", "-e", help="Exchange folder to store it under."),
    user_data: Path | None = typer.Option(None, "--user-data", help=_USER_DATA_HELP),
) -> None:
    """Generate a synthetic regime-switching market (OHLCV, funding, mark) and store it."""
    from quantum_trading.data.synthetic import generate_market

    market = generate_market(n_assets=assets, n_bars=bars, timeframe=timeframe, start=start, seed=seed)
    store = _store(user_data)
    table = Table(title=f"synthetic market (seed {seed}) stored under {store.root / exchange}")
    for column in ("symbol", "bars", "first close", "last close", "return [%]", "funding events"):
        table.add_column(column, justify="left" if column == "symbol" else "right")
    for symbol, ohlcv in market.ohlcv.items():
        store.merge(ohlcv, exchange=exchange, symbol=symbol, timeframe=timeframe, market_type="futures", kind="ohlcv")
        funding = market.funding[symbol]
        store.merge(funding, exchange=exchange, symbol=symbol, timeframe="8h", market_type="futures", kind="funding")
        store.merge(
            market.mark[symbol], exchange=exchange, symbol=symbol, timeframe=timeframe,
            market_type="futures", kind="mark",
        )
        first, last = ohlcv["close"].iloc[0], ohlcv["close"].iloc[-1]
        table.add_row(
            symbol, f"{len(ohlcv):,}", f"{first:,.2f}", f"{last:,.2f}",
            f"{100 * (last / first - 1):+.1f}", f"{len(funding):,}",
        )
    console.print(table)


@app.command()
def resample(
    path: Path | None = _PATH_ARG,
    to: str = typer.Option(..., "--to", help="Target timeframe, a whole multiple of the source, e.g. 4h."),
    timeframe: str | None = typer.Option(None, "--timeframe", "-t", help="Source bar length (default: from name)."),
    exchange: str | None = typer.Option(None, "--exchange", "-e", help="Resample a stored series: exchange."),
    symbol: str | None = typer.Option(None, "--symbol", "-s", help="Resample a stored series: symbol."),
    market_type: str = typer.Option("futures", "--market-type", help="futures or spot."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of the store."),
    user_data: Path | None = typer.Option(None, "--user-data", help=_USER_DATA_HELP),
) -> None:
    """Resample OHLCV to a higher timeframe; incomplete bars (at the ends or around gaps) are dropped."""
    from quantum_trading.data.readers import write_frame
    from quantum_trading.data.resample import resample_ohlcv

    frame = _load_series(
        path, kind="ohlcv", exchange=exchange, symbol=symbol, timeframe=timeframe,
        market_type=market_type, user_data=user_data, validate=True,
    )
    source_timeframe = timeframe or frame.attrs.get("timeframe")
    result = resample_ohlcv(frame, to, source_timeframe=source_timeframe)
    console.print(_frame_table(f"{frame.attrs.get('symbol', path)} {source_timeframe} → {to}", result))
    if output is not None:
        write_frame(result, output)
        console.print(f"wrote {len(result):,} bars to {output}")
        return
    target_symbol = symbol or frame.attrs.get("symbol")
    target_exchange = exchange or frame.attrs.get("exchange")
    if target_symbol is None or target_exchange is None:
        raise typer.BadParameter("give --output, or --exchange/--symbol to store the result")
    report = _store(user_data).merge(
        result, exchange=target_exchange, symbol=target_symbol, timeframe=to,
        market_type=frame.attrs.get("market_type", market_type), kind="ohlcv",
    )
    console.print(f"stored {target_symbol} {to}: {report.added:,} added, {report.updated:,} updated")
