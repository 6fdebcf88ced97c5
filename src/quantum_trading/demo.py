"""The demo job behind ``make demo`` / ``quantum demo``.

Generates a synthetic three-asset perpetual market (or takes real data), stores it in the
Parquet store, loads it back through the same loaders a user's own data goes through,
validates it, computes indicators and returns a summary table and an HTML report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from quantum_trading.data.loaders import load_funding, load_ohlcv
from quantum_trading.data.store import ParquetStore
from quantum_trading.data.synthetic import generate_market
from quantum_trading.data.timeframes import timeframe_to_timedelta
from quantum_trading.data.validate import validate_ohlcv
from quantum_trading.features import adx, atr, bollinger_bands, macd, rsi

__all__ = ["DemoResult", "run_data_demo"]

DEMO_EXCHANGE = "synthetic"


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced: one summary row per asset and the report's path."""

    summary: pd.DataFrame
    report_path: Path
    store_root: Path


def _indicator_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """Indicators of one asset, each known at its bar's close."""
    bands = bollinger_bands(bars["close"], 20, 2.0)
    return pd.DataFrame(
        {
            "rsi_14": rsi(bars["close"], 14),
            "atr_14": atr(bars["high"], bars["low"], bars["close"], 14),
            "adx_14": adx(bars["high"], bars["low"], bars["close"], 14)["adx"],
            "macd_hist": macd(bars["close"])["macd_hist"],
            "bb_upper": bands["bb_upper"],
            "bb_lower": bands["bb_lower"],
            "bb_percent_b": bands["bb_percent_b"],
        },
        index=bars.index,
    )


def _summary_row(symbol: str, bars: pd.DataFrame, funding: pd.DataFrame, ind: pd.DataFrame,
                 validation_gaps: int, hours_per_bar: float) -> dict[str, object]:
    log_returns = np.log(bars["close"]).diff().dropna()
    periods_per_year = 365.25 * 24 / hours_per_bar
    return {
        "symbol": symbol,
        "bars": len(bars),
        "first": bars.index[0],
        "last": bars.index[-1],
        "gaps": validation_gaps,
        "return [%]": 100 * (bars["close"].iloc[-1] / bars["close"].iloc[0] - 1),
        "volatility (ann.) [%]": 100 * log_returns.std() * np.sqrt(periods_per_year),
        "mean funding [bps/8h]": 1e4 * funding["funding_rate"].mean(),
        "last RSI(14)": ind["rsi_14"].iloc[-1],
        "last ATR(14) [% of close]": 100 * ind["atr_14"].iloc[-1] / bars["close"].iloc[-1],
        "last ADX(14)": ind["adx_14"].iloc[-1],
    }


def _write_report(path: Path, frames: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
                  regimes: pd.Series | None) -> None:
    """One self-contained HTML page: candles, bands and oscillators per asset."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figures: list[str] = []
    for index, (symbol, (bars, ind)) in enumerate(frames.items()):
        fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.6, 0.2, 0.2],
                            vertical_spacing=0.03,
                            subplot_titles=(f"{symbol} price with Bollinger bands", "RSI(14)", "ADX(14)"))
        fig.add_trace(go.Candlestick(x=bars.index, open=bars["open"], high=bars["high"],
                                     low=bars["low"], close=bars["close"], name="price"), row=1, col=1)
        for band in ("bb_upper", "bb_lower"):
            fig.add_trace(go.Scatter(x=ind.index, y=ind[band], name=band, line={"width": 1}), row=1, col=1)
        fig.add_trace(go.Scatter(x=ind.index, y=ind["rsi_14"], name="RSI(14)"), row=2, col=1)
        fig.add_trace(go.Scatter(x=ind.index, y=ind["adx_14"], name="ADX(14)"), row=3, col=1)
        fig.update_layout(height=800, xaxis_rangeslider_visible=False, showlegend=False)
        figures.append(fig.to_html(full_html=False, include_plotlyjs=(index == 0)))
    if regimes is not None:
        fig = go.Figure(go.Scatter(x=regimes.index, y=regimes.values, mode="lines",
                                   line={"shape": "hv"}, name="true regime"))
        fig.update_layout(title="Generator's true regime (0 up, 1 down, 2 mean-reverting, 3 crash)",
                          height=300)
        figures.append(fig.to_html(full_html=False, include_plotlyjs=False))
    html = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Quantum Trading demo</title></head>"
        "<body style='font-family:sans-serif'><h1>Quantum Trading — data and indicators demo</h1>"
        + "".join(figures)
        + "</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")


def run_data_demo(user_data: Path, *, n_bars: int = 2000, seed: int = 7,
                  timeframe: str = "1h") -> DemoResult:
    """Synthetic market → store → load back → validate → indicators → summary and report.

    Parameters
    ----------
    user_data:
        The ``user_data`` folder; data goes to ``user_data/data``, the report to
        ``user_data/reports/demo.html``.
    n_bars:
        Bars per asset.
    seed:
        Generator seed; the same seed gives the same data and the same table.
    """
    market = generate_market(n_assets=3, n_bars=n_bars, timeframe=timeframe, seed=seed)
    store = ParquetStore(user_data / "data")
    for symbol, bars in market.ohlcv.items():
        store.merge(bars, exchange=DEMO_EXCHANGE, symbol=symbol, timeframe=timeframe,
                    market_type="futures", kind="ohlcv")
        store.merge(market.funding[symbol], exchange=DEMO_EXCHANGE, symbol=symbol, timeframe="8h",
                    market_type="futures", kind="funding")

    rows: list[dict[str, object]] = []
    frames: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    hours_per_bar = timeframe_to_timedelta(timeframe) / pd.Timedelta("1h")
    for symbol in market.ohlcv:
        bars = load_ohlcv(exchange=DEMO_EXCHANGE, symbol=symbol, timeframe=timeframe,
                          data_dir=store.root)
        funding = load_funding(exchange=DEMO_EXCHANGE, symbol=symbol, timeframe="8h",
                               data_dir=store.root)
        report = validate_ohlcv(bars, timeframe=timeframe, source=str(bars.attrs.get("source")))
        ind = _indicator_frame(bars)
        rows.append(_summary_row(symbol, bars, funding, ind, report.gap_count, hours_per_bar))
        frames[symbol] = (bars, ind)

    report_path = user_data / "reports" / "demo.html"
    _write_report(report_path, frames, market.regimes)
    return DemoResult(summary=pd.DataFrame(rows).set_index("symbol"), report_path=report_path,
                      store_root=store.root)
