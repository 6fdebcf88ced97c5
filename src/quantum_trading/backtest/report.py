"""The backtest report: one self-contained HTML file (plotly's JavaScript embedded once).

Sections, in order: equity vs buy & hold (with markers where a risk limit resized or
rejected an order or changed the trading state), drawdown, price with trade markers, monthly
returns, returns distribution, rolling Sharpe ratio, VaR / ES over time, risk limit hits,
stress test (the last three from :mod:`quantum_trading.backtest.report_risk`), cost
breakdown, metrics and the last trades. The file opens offline: the first figure embeds plotly.js, the others reuse it, and
nothing is loaded from the network.

Long runs are thinned for plotting only (never for the metrics): lines keep the last value
of each bucket of bars (drawdown keeps the deepest), candles are merged into coarser candles.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.backtest import metrics as m
from quantum_trading.backtest.report_risk import (
    RISK_SECTION_TITLES,
    risk_marker_traces,
    risk_sections,
)
from quantum_trading.backtest.result import BacktestResult
from quantum_trading.backtest.stats import format_stat
from quantum_trading.sim import AccountConfig, CostsConfig

__all__ = [
    "REPORT_CSS",
    "SECTION_TITLES",
    "fig_html",
    "render_report",
    "rolling_window_bars",
    "thin_last",
    "write_report",
]

SECTION_TITLES = (
    "Equity vs buy & hold",
    "Drawdown",
    "Price and trades",
    "Monthly returns",
    "Returns distribution",
    "Rolling Sharpe ratio",
    *RISK_SECTION_TITLES,
    "Cost breakdown",
    "Metrics",
    "Last trades",
)
"""Section headings of the report, in order."""

_MAX_POINTS = 5_000  # per line trace
_MAX_CANDLES = 1_500
_MAX_MARKERS = 3_000
_MAX_SYMBOL_CHARTS = 8
_LAST_TRADES = 50
_ROLLING_DAYS = 30
REPORT_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222}
h1{margin-bottom:4px} h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555} table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left} .pos{color:#1a7f37} .neg{color:#cf222e}
"""
"""The page style of every HTML report (backtest, optimisation, walk-forward, validation)."""


def rolling_window_bars(periods_per_year: float, n_returns: int, days: float = _ROLLING_DAYS) -> int:
    """Bars in a ``days``-day window at the given bar frequency, at least 10 and at most half
    the returns (so short runs still get a curve).

    >>> rolling_window_bars(8766.0, 2000), rolling_window_bars(365.25, 100)
    (720, 30)
    """
    if not math.isfinite(periods_per_year) or periods_per_year <= 0:
        return 10
    window = round(days * periods_per_year / 365.25)
    return int(max(10, min(window, n_returns // 2)))


def _bucket(n: int, max_points: int) -> int:
    return max(1, math.ceil(n / max_points))


def thin_last(series: pd.Series, max_points: int = _MAX_POINTS) -> pd.Series:
    """Every k-th bar's value (the last of each bucket of k bars), the final bar included,
    with ``k = ceil(len / max_points)``: a line for plotting with at most about
    ``max_points`` points (never used for metrics).

    >>> import pandas as pd
    >>> thin_last(pd.Series(range(10)), max_points=4).tolist()
    [2, 5, 8, 9]
    """
    k = _bucket(len(series), max_points)
    if k == 1:
        return series
    pos = np.r_[np.arange(k - 1, len(series), k), len(series) - 1]
    return series.iloc[np.unique(pos)]


def _thin_min(series: pd.Series, max_points: int = _MAX_POINTS) -> pd.Series:
    """The lowest value of each bucket of bars, stamped at the bucket's first bar."""
    k = _bucket(len(series), max_points)
    if k == 1:
        return series
    groups = np.arange(len(series)) // k
    values = series.groupby(groups).min().to_numpy()
    return pd.Series(values, index=series.index[::k][: len(values)], name=series.name)


def _thin_ohlc(frame: pd.DataFrame, max_bars: int = _MAX_CANDLES) -> pd.DataFrame:
    """Candles merged ``k`` at a time (first open, highest high, lowest low, last close)."""
    k = _bucket(len(frame), max_bars)
    if k == 1:
        return frame
    g = frame.groupby(np.arange(len(frame)) // k)
    out = pd.DataFrame({"open": g["open"].first(), "high": g["high"].max(),
                        "low": g["low"].min(), "close": g["close"].last()})
    out.index = frame.index[::k][: len(out)]
    return out


def fig_html(fig: Any, first: bool) -> str:
    """A plotly figure as an HTML fragment of a self-contained report: the first figure of a
    page embeds plotly.js (``first=True``, about 3.5 MB), the others reuse it."""
    return fig.to_html(full_html=False, include_plotlyjs=bool(first),
                       config={"displaylogo": False, "responsive": True})


def _equity_figure(result: BacktestResult):
    import plotly.graph_objects as go

    fig = go.Figure()
    eq = thin_last(result.equity)
    fig.add_trace(go.Scatter(x=eq.index, y=eq.values, name=result.strategy,
                             line={"color": "#1f77b4", "width": 1.6}))
    bench = result.benchmark_equity
    if bench is not None:
        b = thin_last(bench)
        fig.add_trace(go.Scatter(x=b.index, y=b.values, name=result.benchmark_name or "benchmark",
                                 line={"color": "#999", "width": 1.2}))
    for trace in risk_marker_traces(result):
        fig.add_trace(trace)
    fig.update_layout(height=380, yaxis_title="equity [USDT]", hovermode="x unified",
                      margin={"t": 20, "b": 30}, legend={"orientation": "h"})
    return fig


def _drawdown_figure(result: BacktestResult):
    import plotly.graph_objects as go

    dd = _thin_min(100.0 * result.drawdown)
    fig = go.Figure(go.Scatter(x=dd.index, y=dd.values, fill="tozeroy", name="drawdown",
                               line={"color": "#cf222e", "width": 1}))
    fig.update_layout(height=240, yaxis_title="drawdown [%]", margin={"t": 20, "b": 30})
    return fig


def _trade_markers(trades: pd.DataFrame):
    import plotly.graph_objects as go

    traces = []
    trades = trades.tail(_MAX_MARKERS)
    styles = {
        ("long", "entry"): ("triangle-up", "#1a7f37", "long entry"),
        ("short", "entry"): ("triangle-down", "#cf222e", "short entry"),
        ("long", "exit"): ("x", "#0b4f1f", "long exit"),
        ("short", "exit"): ("x", "#8a1520", "short exit"),
    }
    for (direction, event), (symbol, color, label) in styles.items():
        sub = trades[trades["direction"] == direction]
        if event == "exit":
            sub = sub[~sub["is_open"]]
        if sub.empty:
            continue
        when = sub[f"{event}_time"]
        price = sub[f"{event}_price"]
        text = [
            f"trade {i} {d} {s:g}<br>entry {et:%Y-%m-%d %H:%M} @ {ep:,.2f}<br>"
            f"exit {xt:%Y-%m-%d %H:%M} @ {xp:,.2f}<br>PnL {p:,.2f} USDT<br>exit reason: {r}"
            for i, d, s, et, ep, xt, xp, p, r in zip(
                sub.index, sub["direction"], sub["size"], sub["entry_time"], sub["entry_price"],
                sub["exit_time"], sub["exit_price"], sub["pnl_usd"], sub["exit_reason"],
                strict=True)
        ]
        traces.append(go.Scatter(x=when, y=price, mode="markers", name=label, text=text,
                                 hoverinfo="text",
                                 marker={"symbol": symbol, "color": color, "size": 9}))
    return traces


def _price_figure(result: BacktestResult, symbol: str):
    import plotly.graph_objects as go

    bars = result.bars[symbol]
    fig = go.Figure()
    if len(bars) <= _MAX_CANDLES:
        fig.add_trace(go.Candlestick(x=bars.index, open=bars["open"], high=bars["high"],
                                     low=bars["low"], close=bars["close"], name=symbol))
    else:
        c = _thin_ohlc(bars[["open", "high", "low", "close"]])
        fig.add_trace(go.Candlestick(x=c.index, open=c["open"], high=c["high"], low=c["low"],
                                     close=c["close"], name=f"{symbol} (merged candles)"))
    for trace in _trade_markers(result.trades[result.trades["symbol"] == symbol]):
        fig.add_trace(trace)
    fig.update_layout(height=460, title=symbol, yaxis_title="price [USDT]",
                      xaxis_rangeslider_visible=False, margin={"t": 40, "b": 30},
                      legend={"orientation": "h"})
    return fig


def _monthly_figure(result: BacktestResult):
    import plotly.graph_objects as go

    monthly = m.monthly_returns_pct(result.equity, result.initial_cash_usd)
    years = sorted({t.year for t in monthly.index})
    z = np.full((len(years), 12), np.nan)
    for t, v in monthly.items():
        z[years.index(t.year), t.month - 1] = v
    text = [["" if np.isnan(v) else f"{v:+.1f}%" for v in row] for row in z]
    limit = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    fig = go.Figure(go.Heatmap(z=z, x=months, y=[str(y) for y in years], text=text,
                               texttemplate="%{text}", colorscale="RdYlGn", zmid=0.0,
                               zmin=-limit, zmax=limit, colorbar={"title": "%"},
                               hovertemplate="%{y} %{x}: %{z:.2f}%<extra></extra>"))
    fig.update_layout(height=120 + 40 * len(years), margin={"t": 20, "b": 30},
                      yaxis={"type": "category", "autorange": "reversed"})
    return fig


def _histogram_figure(result: BacktestResult):
    import plotly.graph_objects as go

    r = 100.0 * result.returns
    fig = go.Figure(go.Histogram(x=r.values, nbinsx=100, name="bar returns",
                                 marker={"color": "#1f77b4"}))
    fig.update_layout(height=280, xaxis_title="return per bar [%]", yaxis_title="bars",
                      margin={"t": 20, "b": 40}, bargap=0.02)
    return fig


def _rolling_figure(result: BacktestResult, window: int):
    import plotly.graph_objects as go

    rs = m.rolling_sharpe(result.returns, window, result.periods_per_year)
    rs = thin_last(rs)
    fig = go.Figure(go.Scatter(x=rs.index, y=rs.values, name="rolling Sharpe",
                               line={"color": "#6f42c1", "width": 1.2}))
    fig.add_hline(y=0.0, line={"color": "#999", "width": 1})
    fig.update_layout(height=260, yaxis_title="Sharpe (ann.)", margin={"t": 20, "b": 30})
    return fig


def _costs_figure(result: BacktestResult):
    import plotly.graph_objects as go

    costs = result.cost_totals
    colors = ["#cf222e" if v > 0 else "#1a7f37" for v in costs.values]
    fig = go.Figure(go.Bar(x=list(costs.index), y=costs.values, marker={"color": colors},
                           text=[f"{v:,.2f}" for v in costs.values], textposition="outside"))
    fig.update_layout(height=300, yaxis_title="USDT paid (negative = received)",
                      margin={"t": 20, "b": 30})
    return fig


def _metrics_table(result: BacktestResult) -> str:
    bench = result.benchmark_stats
    head = "<tr><th>metric</th><th>" + html.escape(result.strategy) + "</th>"
    if bench is not None:
        head += "<th>" + html.escape(result.benchmark_name or "benchmark") + "</th>"
    rows = [head + "</tr>"]
    for key, value in result.stats.items():
        cells = f"<td>{html.escape(str(key))}</td><td>{html.escape(format_stat(key, value))}</td>"
        if bench is not None:
            cells += f"<td>{html.escape(format_stat(key, bench[key]))}</td>"
        rows.append(f"<tr>{cells}</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _trades_table(trades: pd.DataFrame) -> str:
    if trades.empty:
        return "<p>No trades.</p>"
    cols = ["symbol", "direction", "entry_time", "exit_time", "entry_price", "exit_price",
            "size", "pnl_usd", "return_pct", "fees_usd", "funding_usd", "spread_usd",
            "slippage_usd", "impact_usd", "liquidation_fee_usd", "exit_reason"]
    shown = trades.tail(_LAST_TRADES)
    rows = ["<tr><th>#</th>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"]
    for i, row in shown.iterrows():
        cells = [f"<td>{i}</td>"]
        for c in cols:
            v = row[c]
            if isinstance(v, pd.Timestamp):
                text = v.strftime("%Y-%m-%d %H:%M")
            elif isinstance(v, float):
                text = f"{v:,.6g}" if c == "size" else f"{v:,.2f}"
            else:
                text = str(v)
            cls = ""
            if c == "pnl_usd":
                cls = " class='pos'" if v > 0 else " class='neg'" if v < 0 else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = (f"<p class='meta'>The last {len(shown)} of {len(trades)} trades.</p>"
            if len(trades) > len(shown) else "")
    return note + "<table>" + "".join(rows) + "</table>"


def render_report(
    result: BacktestResult,
    *,
    title: str | None = None,
    alpha: float = 0.99,
    var_window_bars: int | None = None,
    account: AccountConfig | None = None,
    instruments: Any = None,
    costs: CostsConfig | None = None,
) -> str:
    """The report of ``result`` as one self-contained HTML document (a string).

    The first figure embeds plotly.js, so the page opens offline. ``alpha`` and
    ``var_window_bars`` set the VaR / ES section (default window: about 30 days of bars);
    ``account``, ``instruments`` and ``costs`` are the run's, for the stress test
    (:func:`~quantum_trading.backtest.report_risk.risk_sections`).
    """
    stats = result.stats
    window = rolling_window_bars(result.periods_per_year, len(result.returns))
    params = ", ".join(f"{k}={v}" for k, v in result.params.items()) or "none"
    title = title or f"Backtest: {result.strategy} on {', '.join(result.symbols)}"
    final = format_stat("Equity Final [$]", stats["Equity Final [$]"])
    meta = (
        f"<p class='meta'>{html.escape(format_stat('Start', stats['Start']))} → "
        f"{html.escape(format_stat('End', stats['End']))} UTC · "
        f"{len(result.sim.index):,} bars · {result.periods_per_year:,.2f} bars/year · "
        f"initial {result.initial_cash_usd:,.2f} USDT → final <b>{final}</b> USDT "
        f"({format_stat('Return [%]', stats['Return [%]'])} %)<br>"
        f"parameters: {html.escape(params)}</p>"
    )
    if result.sim.notes:
        meta += "<p class='meta'>" + "<br>".join(html.escape(n) for n in result.sim.notes) + "</p>"
    sections: list[tuple[str, str]] = []
    figures = [
        (SECTION_TITLES[0], _equity_figure(result)),
        (SECTION_TITLES[1], _drawdown_figure(result)),
    ]
    symbols = result.symbols[:_MAX_SYMBOL_CHARTS]
    price_figs = [_price_figure(result, s) for s in symbols]
    first = True
    for name, fig in figures:
        sections.append((name, fig_html(fig, first)))
        first = False
    sections.append((SECTION_TITLES[2], "".join(fig_html(f, False) for f in price_figs)))
    sections.append((SECTION_TITLES[3], fig_html(_monthly_figure(result), False)))
    sections.append((SECTION_TITLES[4], fig_html(_histogram_figure(result), False)))
    days = window * 365.25 / result.periods_per_year if result.periods_per_year > 0 else 0.0
    sections.append((f"{SECTION_TITLES[5]} ({window} bars ≈ {days:.0f} days)",
                     fig_html(_rolling_figure(result, window), False)))
    sections += risk_sections(result, alpha=alpha, window_bars=var_window_bars,
                              account=account, instruments=instruments, costs=costs)
    sections.append(("Cost breakdown", fig_html(_costs_figure(result), False)))
    sections.append(("Metrics", _metrics_table(result)))
    sections.append(("Last trades", _trades_table(result.trades)))
    body = "".join(f"<h2>{html.escape(name)}</h2>{content}" for name, content in sections)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{REPORT_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{meta}{body}</body></html>"
    )


def write_report(result: BacktestResult, path: str | Path, **options: Any) -> Path:
    """Write the HTML report of ``result`` to ``path`` (folders created); returns the path.

    ``options`` go to :func:`render_report` (``title``, ``alpha``, ``var_window_bars``,
    ``account``, ``instruments``, ``costs``).

    >>> from quantum_trading.backtest import Backtest
    >>> from quantum_trading.data import generate_market
    >>> import tempfile
    >>> bars = generate_market(n_assets=1, n_bars=300, seed=2).ohlcv["BTC/USDT:USDT"]
    >>> out = write_report(Backtest(bars, "buy_and_hold").run(),
    ...                    Path(tempfile.mkdtemp()) / "bh.html")
    >>> out.suffix, out.stat().st_size > 1_000_000  # plotly.js is inside
    ('.html', True)
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(result, **options), encoding="utf-8")
    return out
