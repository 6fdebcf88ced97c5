"""The demo job behind ``make demo`` / ``quantum demo``.

Data: a synthetic three-asset perpetual market is generated, stored in the Parquet store (under
the exchange name ``demo``, replaced on every run) and loaded back through the same loaders a user's own data goes through, then validated (or real
data is loaded with ``data=``). Backtests: every library strategy runs on the BTC perp
(:data:`~quantum_trading.domain.BINANCE_BTCUSDT_PERP`: Binance fees, lot size and margin
tiers) with realistic costs (taker fee 4 bps, half-spread 0.5 bp, slippage 1 bp, square-root
impact) and the market's own funding rates and mark prices. Output: one summary row per
strategy and one HTML report per strategy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from quantum_trading.backtest import Backtest, BacktestResult, write_report
from quantum_trading.data.loaders import (
    join_funding,
    join_mark,
    load_funding,
    load_mark,
    load_ohlcv,
)
from quantum_trading.data.store import ParquetStore
from quantum_trading.data.symbols import symbol_to_filename
from quantum_trading.data.synthetic import generate_market
from quantum_trading.data.validate import validate_ohlcv
from quantum_trading.domain import BINANCE_BTCUSDT_PERP
from quantum_trading.sim import AccountConfig, CostsConfig
from quantum_trading.strategies import LIBRARY

__all__ = ["DEMO_COSTS", "DEMO_PARAMS", "SUMMARY_COLUMNS", "DemoResult", "run_demo"]

DEMO_EXCHANGE = "demo"
"""Exchange folder of the demo's synthetic series in the store (replaced on every run)."""
DEMO_SYMBOL = BINANCE_BTCUSDT_PERP.symbol

DEMO_COSTS = CostsConfig(half_spread_bps=0.5, slippage_bps=1.0, impact_k=0.5)
"""Costs of the demo: the instrument's fees (taker 4 bps, maker 2 bps), half-spread 0.5 bp,
slippage 1 bp, square-root impact with k = 0.5; funding from the data."""

DEMO_PARAMS: dict[str, dict[str, Any]] = {
    "mean_reversion": {"direction": "both", "stop_loss_atr": 3.0},
    "momentum_breakout": {"direction": "both", "stop_loss_atr": 2.0},
    "trend_following": {"direction": "both"},
}
"""Parameters the demo gives the library strategies (perps can go short); others: defaults."""

SUMMARY_COLUMNS = (
    "Return [%]", "Sharpe Ratio", "Max. Drawdown [%]", "# Trades", "Win Rate [%]",
    "Fees [$]", "Funding [$]", "# Liquidations",
)
"""Stats shown per strategy in the summary table."""


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced.

    ``summary``: one row per strategy (:data:`SUMMARY_COLUMNS`); ``reports``: strategy name →
    HTML report; ``results``: strategy name → :class:`~quantum_trading.backtest.BacktestResult`;
    ``notes``: lines about the data (what was stored, loaded, validated and joined).
    """

    summary: pd.DataFrame
    reports: dict[str, Path]
    results: dict[str, BacktestResult]
    store_root: Path | None
    notes: tuple[str, ...]


def _synthetic_bars(user_data: Path, n_bars: int, seed: int, timeframe: str
                    ) -> tuple[pd.DataFrame, Path, list[str]]:
    """Generate → store → load back → validate; the BTC bars with funding and mark joined."""
    market = generate_market(n_assets=3, n_bars=n_bars, timeframe=timeframe, seed=seed)
    store = ParquetStore(user_data / "data")
    for symbol, bars in market.ohlcv.items():
        series = ((bars, timeframe, "ohlcv"), (market.funding[symbol], "8h", "funding"),
                  (market.mark[symbol], timeframe, "mark"))
        for frame, tf, kind in series:
            # a fresh series each run: merging into an older market of another size or seed
            # would splice two different price paths together
            store.path(exchange=DEMO_EXCHANGE, symbol=symbol, timeframe=tf,
                       market_type="futures", kind=kind).unlink(missing_ok=True)
            store.merge(frame, exchange=DEMO_EXCHANGE, symbol=symbol, timeframe=tf,
                        market_type="futures", kind=kind)
    notes = [f"data: synthetic market, {len(market.symbols)} assets × {n_bars:,} {timeframe} "
             f"bars (seed {seed}), stored in {store.root}"]
    for symbol in market.symbols:
        bars = load_ohlcv(exchange=DEMO_EXCHANGE, symbol=symbol, timeframe=timeframe,
                          data_dir=store.root)
        report = validate_ohlcv(bars, timeframe=timeframe, source=str(bars.attrs["source"]))
        notes.append(f"loaded back and validated: {report.summary()}")
    btc = load_ohlcv(exchange=DEMO_EXCHANGE, symbol=DEMO_SYMBOL, timeframe=timeframe,
                     data_dir=store.root)
    funding = load_funding(exchange=DEMO_EXCHANGE, symbol=DEMO_SYMBOL, data_dir=store.root)
    mark = load_mark(exchange=DEMO_EXCHANGE, symbol=DEMO_SYMBOL, timeframe=timeframe,
                     data_dir=store.root)
    btc = join_mark(join_funding(btc, funding, timeframe=timeframe), mark)
    notes.append(f"funding: {btc.attrs['funding_joined']} settlements and mark prices joined "
                 f"onto {DEMO_SYMBOL}")
    return btc, store.root, notes


def run_demo(
    user_data: Path,
    *,
    data: str | Path | None = None,
    symbol: str | None = None,
    n_bars: int = 2000,
    seed: int = 7,
    timeframe: str = "1h",
) -> DemoResult:
    """Data → every library strategy backtested on a BTC perp → summary table and reports.

    Parameters
    ----------
    user_data:
        The ``user_data`` folder: synthetic data goes to ``user_data/data``, reports to
        ``user_data/reports/demo-<strategy>.html``.
    data:
        Real data instead of the synthetic market: a file or a freqtrade folder (see
        :func:`~quantum_trading.backtest.inputs.load_bars`); funding and mark files next to it
        are joined.
    symbol:
        With a folder in ``data``: which symbol (default ``BTC/USDT:USDT``).
    n_bars, seed, timeframe:
        The synthetic market's size, seed (same seed → same table) and bar length.

    Every strategy trades the bars as :data:`~quantum_trading.domain.BINANCE_BTCUSDT_PERP`
    with :data:`DEMO_COSTS`, 10,000 USDT at 1× leverage and the default risk limits; targets decided at each bar's close
    fill at the next open.

    >>> import tempfile
    >>> out = run_demo(Path(tempfile.mkdtemp()), n_bars=400, seed=1)
    >>> list(out.summary.index)
    ['buy_and_hold', 'mean_reversion', 'momentum_breakout', 'trend_following']
    """
    user_data = Path(user_data)
    if data is None:
        bars, store_root, notes = _synthetic_bars(user_data, n_bars, seed, timeframe)
    else:
        from quantum_trading.backtest.inputs import load_bars

        loaded = load_bars(data, symbol=symbol or DEMO_SYMBOL, timeframe=None,
                           data_dir=user_data / "data")
        bars, store_root, notes = loaded.bars, None, list(loaded.notes)
    account = AccountConfig(initial_cash_usd=10_000.0, leverage=1.0)
    results: dict[str, BacktestResult] = {}
    reports: dict[str, Path] = {}
    rows = []
    for strategy in LIBRARY:
        result = Backtest(bars, strategy, instrument=BINANCE_BTCUSDT_PERP, costs=DEMO_COSTS,
                          account=account, params=DEMO_PARAMS.get(strategy.name)).run()
        results[strategy.name] = result
        name = f"demo-{strategy.name}-{symbol_to_filename(result.symbols[0])}.html"
        reports[strategy.name] = write_report(result, user_data / "reports" / name)
        rows.append({"strategy": strategy.name,
                     **{k: result.stats[k] for k in SUMMARY_COLUMNS}})
    summary = pd.DataFrame(rows).set_index("strategy")
    return DemoResult(summary=summary, reports=reports, results=results, store_root=store_root,
                      notes=tuple(notes))
