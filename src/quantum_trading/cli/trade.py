"""``quantum paper | live | orders | positions | kill``: run the trader and read its database.

Parsing and printing only; the work is done by :mod:`quantum_trading.live`.

* ``quantum paper`` — paper trading: a replay of stored bars through the paper exchange
  (``--data``), or the real ccxt client against a running local exchange
  (``--exchange-url``; with ``--speed`` the trader moves the server's replay clock itself);
* ``quantum live`` — a real exchange through ccxt; refused unless the API key and secret are
  in the environment **and** ``--confirm-live`` is given;
* ``quantum orders`` / ``quantum positions`` — what the database holds;
* ``quantum kill`` — the kill switch: a flag the running trader reads (it flattens and stops),
  or, when no trader runs, the same done directly on the exchange (``--exchange-url`` /
  ``--exchange``). ``--reset`` lifts the halt it leaves.

The database is ``user_data/db/quantum.sqlite`` unless ``--db URL`` says otherwise. Logs go to
stderr through a filter that masks every credential-like environment value.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from quantum_trading.cli._console import console
from quantum_trading.errors import ConfigError

__all__ = ["kill", "live", "orders", "paper", "positions"]

_LOCAL_KEY_ENV, _LOCAL_SECRET_ENV = "QUANTUM_LOCAL_API_KEY", "QUANTUM_LOCAL_API_SECRET"
_LIVE_KEY_ENV, _LIVE_SECRET_ENV = "QUANTUM_API_KEY", "QUANTUM_API_SECRET"
_FRESH_HEARTBEAT_S = 20.0


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """Ignore assignments: logging's setStream/constructor would pin one stream, but this
        handler must follow ``sys.stderr`` as it is swapped (tests, redirected output)."""


def _logging(verbose: bool) -> None:
    """Log to stderr with secrets masked (every handler of the root logger gets the filter)."""
    from quantum_trading.live.redact import RedactingFilter

    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    for handler in root.handlers:
        filters = [f for f in handler.filters if isinstance(f, RedactingFilter)]
        for f in filters:
            f.redactor.refresh()  # the environment may hold other keys than at the last call
        if not filters:
            handler.addFilter(RedactingFilter())
    root.setLevel(logging.INFO if verbose else logging.WARNING)


def _db_url(db: str | None, user_data: Path | None) -> str:
    from quantum_trading.live.db import default_url

    return db or default_url(user_data)


def _config(strategy: str, symbol: str, timeframe: str, param: list[str], *, leverage: float,
            initial_cash: float, fee_bps: float | None, slippage_bps: float, risk: Path | None,
            no_risk: bool, max_hold_s: float | None, max_loss_pct: float | None,
            stop_mode: str, warmup: int, window: int | None, poll_s: float,
            on_stall: str, keep_orders: bool) -> Any:
    from quantum_trading.execution.config import PositionMonitorConfig
    from quantum_trading.live.config import TraderConfig
    from quantum_trading.risk.config import load_risk_config
    from quantum_trading.sim import AccountConfig, CostsConfig
    from quantum_trading.strategies import parse_params

    params = parse_params(strategy, param)
    monitor = None
    if max_hold_s is not None or max_loss_pct is not None:
        monitor = PositionMonitorConfig(max_position_age_s=max_hold_s, max_loss_pct=max_loss_pct)
    return TraderConfig(
        symbols=(symbol,), timeframe=timeframe, strategy=strategy, params=params,
        costs=CostsConfig(taker_fee_bps=fee_bps, slippage_bps=slippage_bps),
        account=AccountConfig(initial_cash_usd=initial_cash, leverage=leverage),
        risk=None if no_risk else load_risk_config(risk), position_monitor=monitor,
        stop_mode=stop_mode, warmup_bars=warmup, window_bars=window, poll_s=poll_s,
        on_stall=on_stall, cancel_on_shutdown=not keep_orders)


def _summary(summary: Any, store: Any, label: str) -> None:
    import numpy as np

    lat = summary.latencies_us
    p = (f", decision latency p50 {np.percentile(lat, 50) / 1e3:.2f} ms / p99 "
         f"{np.percentile(lat, 99) / 1e3:.2f} ms") if lat else ""
    eq = store.latest_equity()
    money = f", equity {eq.equity_usd:,.2f} USDT" if eq is not None else ""
    console.print(f"{label}: {summary.status}; {summary.bars} bar(s), {summary.orders_sent} "
                  f"order(s) sent ({summary.rejected} rejected), {len(store.fills())} fill(s)"
                  f"{money}{p}", highlight=False, soft_wrap=True)
    for alert in summary.alerts[-5:]:
        console.print(f"  alert: {escape(alert)}", highlight=False, soft_wrap=True)


def _run(trader: Any, bars: int | None) -> Any:
    return asyncio.run(trader.run(max_bars=bars, install_signal_handlers=True))


# ------------------------------------------------------------------------------ paper, live
_STRATEGY = typer.Option(..., "--strategy", "-s", help="Registered strategy name.")
_PARAM = typer.Option([], "--param", "-p", help="Strategy parameter name=value (repeat).")
_DB = typer.Option(None, "--db", help="SQLAlchemy URL of the trading database (default: "
                   "sqlite:///user_data/db/quantum.sqlite).")
_USER_DATA = typer.Option(None, "--user-data", help="The user_data folder.")


def paper(
    strategy: str = _STRATEGY,
    data: str | None = typer.Option(None, "--data", "-d", help="Bars to replay: a file, a "
                                    "freqtrade data folder (with --symbol) or an exchange name "
                                    "in the store. Not needed with --exchange-url."),
    symbol: str | None = typer.Option(None, "--symbol", help="ccxt symbol, e.g. BTC/USDT:USDT "
                                      "(default: from the file name)."),
    timeframe: str | None = typer.Option(None, "--timeframe", "-t", help="Bar length (default: "
                                         "the data's; 1m with --exchange-url)."),
    param: list[str] = _PARAM,
    bars: int | None = typer.Option(None, "--bars", min=0, help="Stop after N bars (0: start, "
                                    "reconcile and stop)."),
    speed: float | None = typer.Option(None, "--speed", min=0.0, help="Bars per second of wall "
                                       "clock (default: as fast as possible; with "
                                       "--exchange-url the trader drives the server's clock at "
                                       "this rate)."),
    exchange_url: str | None = typer.Option(None, "--exchange-url", help="Trade through ccxt "
                                            "against this local exchange (quantum exchange "
                                            "serve --trading) instead of an in-process replay."),
    api_key_env: str = typer.Option(_LOCAL_KEY_ENV, "--api-key-env", help="Environment "
                                    "variable holding the local exchange's API key."),
    secret_env: str = typer.Option(_LOCAL_SECRET_ENV, "--secret-env", help="Environment "
                                   "variable holding its secret."),
    start: str | None = typer.Option(None, "--start", help="Replay from this UTC time."),
    warmup: int = typer.Option(0, "--warmup", min=0, help="Bars loaded before trading."),
    window: int | None = typer.Option(None, "--window", min=2, help="Bars the strategy sees "
                                      "(default: all since the start, as the backtest)."),
    leverage: float = typer.Option(1.0, "--leverage", min=1.0, max=1000.0),
    initial_cash: float = typer.Option(10_000.0, "--initial-cash", min=1.0,
                                       help="Paper account, USDT (in-process replay)."),
    fee_bps: float | None = typer.Option(None, "--fee-bps", min=0.0, max=1000.0),
    slippage_bps: float = typer.Option(1.0, "--slippage-bps", min=0.0, max=1000.0),
    risk: Path | None = typer.Option(None, "--risk", help="Risk limits YAML (RiskConfig keys)."),
    no_risk: bool = typer.Option(False, "--no-risk", help="Run without the risk engine."),
    max_hold_s: float | None = typer.Option(None, "--max-hold-s", min=0.0, help="Position "
                                            "monitor: close positions held longer (s of the "
                                            "trader's clock; default off)."),
    max_loss_pct: float | None = typer.Option(None, "--max-loss-pct", min=0.0, max=100.0,
                                              help="Position monitor: close at this loss (%)."),
    stop_mode: str = typer.Option("exchange", "--stop-mode", help="exchange | monitor."),
    poll_s: float = typer.Option(1.0, "--poll-s", min=0.001, help="Order / monitor poll period."),
    on_stall: str = typer.Option("alert", "--on-stall", help="alert | halt | flatten."),
    keep_orders: bool = typer.Option(False, "--keep-orders", help="Leave open orders on exit."),
    db: str | None = _DB,
    user_data: Path | None = _USER_DATA,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
) -> None:
    """Paper trading: the trader on a replay of stored bars, or through ccxt on a local
    exchange. Orders are sized and risk-checked as the backtest does; fills come from the
    simulator's kernels (the paper exchange)."""
    from quantum_trading.live.store import TradingStore
    from quantum_trading.live.trader import Trader

    _logging(verbose)
    if exchange_url is None:
        from quantum_trading.backtest.inputs import load_bars
        from quantum_trading.domain import default_instrument
        from quantum_trading.execution.paper import PaperExchange
        from quantum_trading.live.feed import ReplayFeed

        if data is None:
            raise ConfigError("quantum paper: give --data (bars to replay) or --exchange-url")
        loaded = load_bars(data, symbol=symbol, timeframe=timeframe,
                           data_dir=(user_data or Path("user_data")) / "data")
        sym, tf = loaded.symbol, loaded.timeframe or timeframe or "1h"
        cfg = _config(strategy, sym, tf, param, leverage=leverage, initial_cash=initial_cash,
                      fee_bps=fee_bps, slippage_bps=slippage_bps, risk=risk, no_risk=no_risk,
                      max_hold_s=max_hold_s, max_loss_pct=max_loss_pct, stop_mode=stop_mode,
                      warmup=warmup, window=window, poll_s=poll_s, on_stall=on_stall,
                      keep_orders=keep_orders)
        exchange = PaperExchange([default_instrument(sym)], costs=cfg.costs,
                                 account=cfg.account, timeframe=tf)
        feed: Any = ReplayFeed(exchange, {sym: loaded.bars},
                               start=pd.Timestamp(start, tz="UTC") if start else None,
                               speed=speed or None)
        store = TradingStore.open(_db_url(db, user_data), exchange="paper", clock=feed.now)
        label = f"paper replay of {sym} {tf} ({len(loaded.bars):,} bars)"
    else:
        from quantum_trading.execution.ccxt_exchange import CcxtExchange
        from quantum_trading.live.feed import ExchangeFeed, LocalClockDriver

        if symbol is None:
            raise ConfigError("quantum paper --exchange-url: give --symbol")
        tf = timeframe or "1m"
        cfg = _config(strategy, symbol, tf, param, leverage=leverage, initial_cash=initial_cash,
                      fee_bps=fee_bps, slippage_bps=slippage_bps, risk=risk, no_risk=no_risk,
                      max_hold_s=max_hold_s, max_loss_pct=max_loss_pct, stop_mode=stop_mode,
                      warmup=warmup, window=window, poll_s=poll_s, on_stall=on_stall,
                      keep_orders=keep_orders)
        exchange = CcxtExchange.create("binanceusdm", base_url=exchange_url,
                                       api_key_env=api_key_env, secret_env=secret_env,
                                       rate_limit_ms=1)
        driver = LocalClockDriver(exchange_url).advance if speed else None
        feed = ExchangeFeed(exchange, [symbol], tf, poll_s=poll_s, clock_driver=driver,
                            bar_period_s=1.0 / speed if speed else None)
        store = TradingStore.open(_db_url(db, user_data), exchange="local")
        label = f"paper trading {symbol} {tf} on {exchange_url}"
    trader = Trader(cfg, exchange=exchange, feed=feed, store=store, mode="paper")
    _summary(_run(trader, bars), store, label)


def live(
    strategy: str = _STRATEGY,
    exchange: str = typer.Option("binanceusdm", "--exchange", "-e", help="ccxt exchange id."),
    symbol: str = typer.Option(..., "--symbol", help="ccxt symbol, e.g. BTC/USDT:USDT."),
    timeframe: str = typer.Option("1h", "--timeframe", "-t", help="Bar length."),
    param: list[str] = _PARAM,
    confirm_live: bool = typer.Option(False, "--confirm-live", help="Required: trade real "
                                      "money."),
    api_key_env: str = typer.Option(_LIVE_KEY_ENV, "--api-key-env", help="Environment "
                                    "variable holding the API key."),
    secret_env: str = typer.Option(_LIVE_SECRET_ENV, "--secret-env", help="Environment "
                                   "variable holding the API secret."),
    base_url: str | None = typer.Option(None, "--base-url", help="Another server speaking the "
                                        "exchange's API (e.g. the local exchange)."),
    bars: int | None = typer.Option(None, "--bars", min=0, help="Stop after N bars."),
    warmup: int = typer.Option(500, "--warmup", min=0, help="Bars fetched before trading."),
    window: int | None = typer.Option(1000, "--window", min=2, help="Bars the strategy sees."),
    leverage: float = typer.Option(1.0, "--leverage", min=1.0, max=1000.0),
    risk: Path | None = typer.Option(None, "--risk", help="Risk limits YAML."),
    max_hold_s: float | None = typer.Option(3600.0, "--max-hold-s", min=0.0,
                                            help="Position monitor: close positions held "
                                            "longer (s)."),
    max_loss_pct: float | None = typer.Option(5.0, "--max-loss-pct", min=0.0, max=100.0,
                                              help="Position monitor: close at this loss (%)."),
    stop_mode: str = typer.Option("exchange", "--stop-mode", help="exchange | monitor."),
    poll_s: float = typer.Option(1.0, "--poll-s", min=0.05),
    on_stall: str = typer.Option("flatten", "--on-stall", help="alert | halt | flatten."),
    db: str | None = _DB,
    user_data: Path | None = _USER_DATA,
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Live trading on a real exchange through ccxt. Refused unless the API key and secret are
    set in the environment AND --confirm-live is given."""
    missing = [v for v in (api_key_env, secret_env) if not os.environ.get(v)]
    problems = []
    if missing:
        problems.append(f"environment variable{'s' if len(missing) > 1 else ''} "
                        f"{' and '.join(missing)} {'are' if len(missing) > 1 else 'is'} not set")
    if not confirm_live:
        problems.append(f"--confirm-live was not given (it trades real money on {exchange})")
    if problems:
        raise ConfigError(f"live trading refused: {'; '.join(problems)}")
    from quantum_trading.execution.ccxt_exchange import CcxtExchange
    from quantum_trading.live.feed import ExchangeFeed
    from quantum_trading.live.store import TradingStore
    from quantum_trading.live.trader import Trader

    _logging(verbose)
    cfg = _config(strategy, symbol, timeframe, param, leverage=leverage, initial_cash=1.0,
                  fee_bps=None, slippage_bps=1.0, risk=risk, no_risk=False,
                  max_hold_s=max_hold_s, max_loss_pct=max_loss_pct, stop_mode=stop_mode,
                  warmup=warmup, window=window, poll_s=poll_s, on_stall=on_stall,
                  keep_orders=False)
    ex = CcxtExchange.create(exchange, base_url=base_url, api_key_env=api_key_env,
                             secret_env=secret_env)
    feed = ExchangeFeed(ex, [symbol], timeframe, poll_s=poll_s)
    store = TradingStore.open(_db_url(db, user_data), exchange=exchange[:32])
    trader = Trader(cfg, exchange=ex, feed=feed, store=store, mode="live")
    _summary(_run(trader, bars), store, f"live trading {symbol} {timeframe} on {exchange}")


# ------------------------------------------------------------------------------ reading
def _store(db: str | None, user_data: Path | None, account: str | None) -> Any:
    import sqlalchemy as sa

    from quantum_trading.live.models import Run
    from quantum_trading.live.store import TradingStore

    store = TradingStore.open(_db_url(db, user_data), exchange=account or "paper")
    if account is None:
        with store.transaction() as s:
            last = s.scalars(sa.select(Run.exchange).order_by(Run.id.desc()).limit(1)).first()
        if last:
            store.exchange = last
    return store


def _run_status(store: Any, run_id: Any) -> str | None:
    from quantum_trading.live.models import Run

    if run_id is None:
        return None
    with store.transaction() as s:
        run = s.get(Run, int(run_id))
        return None if run is None else run.status


_ACCOUNT = typer.Option(None, "--account", help="Which account's rows (paper, local, "
                        "binanceusdm …); default: the last run's.")


def _num(v: float | None, fmt: str = ",.6g") -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def orders(
    open_only: bool = typer.Option(False, "--open", help="Only orders not finished."),
    last: int = typer.Option(50, "--last", min=1, help="Newest N orders."),
    account: str | None = _ACCOUNT,
    db: str | None = _DB,
    user_data: Path | None = _USER_DATA,
) -> None:
    """Orders in the trading database (newest last)."""
    store = _store(db, user_data, account)
    rows = store.open_orders() if open_only else store.all_orders()
    shown = rows[-last:]
    table = Table(title=f"{len(shown)} of {len(rows)} {'open ' if open_only else ''}orders "
                  f"({store.exchange}; times UTC, prices USDT)")
    for h in ("created", "client order id", "symbol", "side", "type", "amount", "filled",
              "price", "avg price", "state", "tag"):
        table.add_column(h, no_wrap=h != "tag")
    for r in shown:
        table.add_row(pd.Timestamp(r.created_at).strftime("%y-%m-%d %H:%M:%S"),
                      r.client_order_id, r.symbol, r.side, r.order_type, _num(r.amount),
                      _num(r.filled), _num(r.price if r.price is not None else r.stop_price),
                      _num(r.average_price, ",.2f"), r.state, escape(r.tag or ""))
    console.print(table)


def positions(
    account: str | None = _ACCOUNT,
    db: str | None = _DB,
    user_data: Path | None = _USER_DATA,
) -> None:
    """Positions and the latest equity in the trading database."""
    store = _store(db, user_data, account)
    rows = store.positions()
    table = Table(title=f"{len(rows)} open position(s) ({store.exchange})")
    for h in ("symbol", "size", "entry", "mark", "uPnL USDT", "leverage", "updated", "source"):
        table.add_column(h)
    for r in rows.values():
        table.add_row(r.symbol, _num(r.size), _num(r.entry_price, ",.2f"),
                      _num(r.mark_price, ",.2f"), _num(r.unrealized_pnl_usd, ",.2f"),
                      _num(r.leverage, "g"), pd.Timestamp(r.updated_at).strftime("%y-%m-%d %H:%M"),
                      r.source)
    console.print(table)
    eq = store.latest_equity()
    if eq is not None:
        console.print(f"equity {eq.equity_usd:,.2f} USDT, wallet {eq.wallet_usd:,.2f}, free "
                      f"{eq.free_usd:,.2f} at {pd.Timestamp(eq.time)}", highlight=False)
    state = store.get_state("trading_state")
    if state == "halted":
        console.print("[bold red]trading is halted[/bold red] (kill switch); lift it with "
                      "`quantum kill --reset`", highlight=False)


def kill(
    reason: str = typer.Option("kill switch (CLI)", "--reason", help="Why (stored)."),
    wait: float = typer.Option(60.0, "--wait", min=0.0, help="Seconds to wait for a running "
                               "trader to report back."),
    reset: bool = typer.Option(False, "--reset", help="Lift the halt left by a kill."),
    exchange_url: str | None = typer.Option(None, "--exchange-url", help="No trader running: "
                                            "flatten on this local exchange directly."),
    exchange: str | None = typer.Option(None, "--exchange", "-e", help="No trader running: "
                                        "flatten on this ccxt exchange directly (keys from "
                                        "--api-key-env / --secret-env)."),
    api_key_env: str | None = typer.Option(None, "--api-key-env"),
    secret_env: str | None = typer.Option(None, "--secret-env"),
    account: str | None = _ACCOUNT,
    db: str | None = _DB,
    user_data: Path | None = _USER_DATA,
) -> None:
    """The kill switch: the running trader flattens everything (reduce-only market orders)
    and stops; without one, the same is done directly on the exchange given."""
    import time

    _logging(False)
    if account is None and (exchange_url is not None or exchange is not None):
        account = "local" if exchange_url is not None else exchange
    store = _store(db, user_data, account)
    if reset:
        store.set_state("trading_state", "active")
        store.delete_state("kill")
        console.print("halt lifted: the next trader start may add risk again", highlight=False)
        return
    now = pd.Timestamp.now(tz="UTC")
    store.set_state("kill", {"requested_at": now, "reason": reason, "by": "cli"})
    store.set_state("trading_state", "halted")
    beat = store.get_state("heartbeat") or {}
    wall = beat.get("wall_time")
    alive = (wall is not None and (now - wall).total_seconds() < _FRESH_HEARTBEAT_S
             and _run_status(store, beat.get("run_id")) == "running")
    if alive:
        console.print(f"kill flag written; the trader (pid {beat.get('pid')}) is flattening…",
                      highlight=False)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            flag = store.get_state("kill") or {}
            if flag.get("done_at"):
                left = flag.get("open_positions") or {}
                console.print(f"kill switch done: {'flat' if flag.get('flat') else left}",
                              highlight=False)
                return
            time.sleep(0.2)
        raise ConfigError(f"the trader did not confirm the kill within {wait:g} s (the flag "
                          "stays set: it acts on it as soon as it reads it)")
    if exchange_url is None and exchange is None:
        console.print("no trader is running: kill flag and halt stored — the next trader "
                      "start flattens and stops at once; give --exchange-url or --exchange to "
                      "flatten now, `quantum kill --reset` to clear", highlight=False,
                      soft_wrap=True)
        return
    from quantum_trading.execution.ccxt_exchange import CcxtExchange
    from quantum_trading.live.trader import flatten_exchange

    ex = CcxtExchange.create(exchange or "binanceusdm", base_url=exchange_url,
                             api_key_env=api_key_env or (_LOCAL_KEY_ENV if exchange_url
                                                         else _LIVE_KEY_ENV),
                             secret_env=secret_env or (_LOCAL_SECRET_ENV if exchange_url
                                                       else _LIVE_SECRET_ENV))

    async def _go() -> dict[str, Any]:
        try:
            return await flatten_exchange(ex, store, reason=reason, timeout_s=wait)
        finally:
            await ex.close()

    result = asyncio.run(_go())
    console.print(f"kill switch (no trader running): cancelled {len(result['cancelled'])} "
                  f"order(s), closing {len(result['closing'])} position(s); "
                  f"{'flat' if result['flat'] else result['open_positions']}", highlight=False)
