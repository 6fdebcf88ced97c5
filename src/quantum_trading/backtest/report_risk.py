"""The risk sections of the backtest report: VaR / ES over time, risk limit hits, stress test.

* **VaR / ES over time** — rolling historical and filtered-historical (FHS) VaR and ES of the
  strategy's per-bar equity returns (:func:`quantum_trading.risk.rolling_var_es`; the value at
  bar t uses returns ≤ t and is the forecast for bar t + 1), over about 30 days of bars, with
  the bars whose loss exceeded the forecast and Kupiec's / Christoffersen's tests of them.
* **Risk limit hits** — every risk decision that resized or rejected an order, and every
  change of the trading state (active / reducing / halted), from the simulator's
  ``risk_decisions`` and ``risk_state`` (a table here, markers on the equity chart); without
  risk limits the section says the risk engine was off.
* **Stress test** — :func:`quantum_trading.risk.stress.run_stress` with
  :func:`~quantum_trading.risk.stress.default_scenarios` on the positions held at the last
  close, or, when the run ended flat, at the bar where the gross notional held was largest.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.backtest.result import BacktestResult
from quantum_trading.risk.backtests import backtest_var
from quantum_trading.risk.measures import min_observations
from quantum_trading.risk.measures_rolling import rolling_var_es
from quantum_trading.risk.stress import PositionsSnapshot, default_scenarios, run_stress
from quantum_trading.sim import AccountConfig, CostsConfig

__all__ = [
    "RISK_METHODS",
    "RISK_SECTION_TITLES",
    "risk_events",
    "risk_marker_traces",
    "risk_sections",
    "risk_window_bars",
    "stress_for_result",
    "stress_snapshot",
    "stress_table_html",
    "var_es_over_time",
]

RISK_SECTION_TITLES = ("VaR / ES over time", "Risk limit hits", "Stress test")
"""Headings of the risk sections, in report order."""

RISK_METHODS = ("historical", "fhs")
"""VaR / ES methods shown over time."""

_MAX_EVENTS = 50
_MAX_MARKERS = 3_000
_EVENT_STYLE = {"resize": ("diamond", "#d97706"), "reject": ("x", "#cf222e"),
                "state": ("star", "#6f42c1")}


def risk_window_bars(periods_per_year: float, n_returns: int, alpha: float = 0.99,
                     days: float = 30.0) -> int | None:
    """Bars in the VaR window: about ``days`` days of bars (capped at half the returns, as
    the rolling Sharpe ratio), at least what a historical VaR at ``alpha`` needs
    (``ceil(1 / (1 − alpha))``: 100 at 99 %); None when the run is shorter than that.

    >>> risk_window_bars(8766.0, 5_000), risk_window_bars(8766.0, 300), risk_window_bars(8766.0, 50)
    (720, 150, None)
    """
    from quantum_trading.backtest.report import rolling_window_bars

    need = min_observations("historical", alpha)
    window = max(rolling_window_bars(periods_per_year, n_returns, days), need)
    return window if window <= n_returns else None


def var_es_over_time(returns: pd.Series, *, window_bars: int, alpha: float = 0.99
                     ) -> pd.DataFrame:
    """Rolling VaR and ES (positive loss fractions) of ``returns`` by each of
    :data:`RISK_METHODS`: columns ``var_<method>`` and ``es_<method>``, exactly
    :func:`~quantum_trading.risk.rolling_var_es`'s numbers.

    >>> r = pd.Series(np.random.default_rng(0).normal(0, 0.01, 300))
    >>> list(var_es_over_time(r, window_bars=100).columns)
    ['var_historical', 'es_historical', 'var_fhs', 'es_fhs']
    """
    cols = {}
    for method in RISK_METHODS:
        frame = rolling_var_es(returns, window_bars, method, alpha)
        cols[f"var_{method}"] = frame["var"]
        cols[f"es_{method}"] = frame["es"]
    return pd.DataFrame(cols, index=returns.index)


def _risk_on(sim: Any) -> bool:
    return hasattr(sim, "risk_decisions") and getattr(sim, "risk_state", None) is not None


def risk_events(result: BacktestResult) -> pd.DataFrame | None:
    """Risk decisions that resized or rejected an order, and trading-state changes, in time
    order; None when the run had no risk limits.

    Columns: ``time`` (bar open time), ``event`` (``resize`` / ``reject`` / ``state``),
    ``symbol``, ``reason``, ``detail`` (text, sizes or the state change), ``equity_usd``.
    """
    sim = result.sim
    if not _risk_on(sim):
        return None
    dec = sim.risk_decisions
    hits = dec[dec["action"].isin(("resize", "reject"))]
    rows = pd.DataFrame({
        "time": hits["time"], "event": hits["action"], "symbol": hits["symbol"],
        "reason": hits["reason"],
        "detail": [f"{t} (asked {q:+.6g}, allowed {a:+.6g})" for t, q, a in zip(
            hits["reason_text"], hits["requested_size"], hits["approved_size"], strict=True)],
        "equity_usd": hits["equity_usd"],
    })
    state = sim.risk_state["trading_state"].astype(str)
    prev = state.shift(1, fill_value="active")
    changed = state != prev
    change = pd.DataFrame({
        "time": state.index[changed], "event": "state", "symbol": "",
        "reason": sim.risk_state["lock_reason"].astype(str)[changed].to_numpy(),
        "detail": [f"trading state {a} → {b} (at the close)" for a, b in zip(
            prev[changed], state[changed], strict=True)],
        "equity_usd": sim.equity[changed].to_numpy(),
    })
    frames = [f for f in (rows, change) if len(f)]
    if not frames:
        return rows.reset_index(drop=True)
    return pd.concat(frames).sort_values("time", kind="stable").reset_index(drop=True)


def risk_marker_traces(result: BacktestResult) -> list:
    """Plotly marker traces of :func:`risk_events` at the equity of each event's bar (for the
    equity chart); empty without risk limits or events."""
    import plotly.graph_objects as go

    events = risk_events(result)
    if events is None or events.empty:
        return []
    equity = result.equity
    traces = []
    for event, (symbol, color) in _EVENT_STYLE.items():
        sub = events[events["event"] == event].tail(_MAX_MARKERS)
        if sub.empty:
            continue
        y = equity.reindex(sub["time"]).to_numpy()
        text = [f"{t:%Y-%m-%d %H:%M} {html.escape(str(s))} {e}: {html.escape(r)}<br>"
                f"{html.escape(d)}" for t, s, e, r, d in zip(
                    sub["time"], sub["symbol"], sub["event"], sub["reason"], sub["detail"],
                    strict=True)]
        label = {"state": "risk: trading state", "resize": "risk: resized",
                 "reject": "risk: rejected"}[event]
        traces.append(go.Scatter(x=sub["time"], y=y, mode="markers", name=label, text=text,
                                 hoverinfo="text",
                                 marker={"symbol": symbol, "color": color, "size": 9}))
    return traces


def stress_snapshot(result: BacktestResult, *, account: AccountConfig | None = None
                    ) -> tuple[PositionsSnapshot | None, str]:
    """The positions to stress and a sentence saying which.

    The positions at the last close; if the run ended flat, those at the bar with the largest
    gross notional ``Σ |size| · close``; ``(None, reason)`` when nothing was ever held.
    ``account`` (for isolated margins) defaults to the result's ``account`` attribute if it
    has one, else cross margin at 1×.
    """
    sim = result.sim
    given = account or result.account
    account = given or AccountConfig()
    closes = pd.DataFrame({s: result.bars[s]["close"] for s in sim.symbols})
    gross = (sim.positions.abs() * closes.to_numpy()).sum(axis=1)
    if not (gross > 0).any():
        return None, "No position was held during the run: nothing to stress."
    last = len(sim.index) - 1
    at = last if gross.iloc[last] > 0 else int(np.argmax(gross.to_numpy()))
    snap = PositionsSnapshot.from_sim(sim, result.bars, at=at, account=account)
    held = ", ".join(f"{s} {snap.positions.at[s, 'size']:+.6g}" for s in snap.held)
    stamp = sim.index[at]
    when = f"{stamp:%Y-%m-%d %H:%M} UTC" if isinstance(stamp, pd.Timestamp) else str(stamp)
    if at == last:
        label = f"Final positions at the last close ({when}): {held}."
    else:
        label = (f"The run ended flat; stressed instead: the largest position held "
                 f"({gross.iloc[at]:,.2f} USDT gross notional) at the close of {when}: {held}.")
    mode = getattr(account.margin_mode, "value", account.margin_mode)
    label += f" Equity {snap.equity_usd:,.2f} USDT; {mode} margin"
    label += "." if given is not None else " assumed (the result does not record its account)."
    return snap, label


def stress_for_result(
    result: BacktestResult,
    *,
    account: AccountConfig | None = None,
    instruments: Any = None,
    costs: CostsConfig | None = None,
) -> tuple[pd.DataFrame | None, str]:
    """The stress table of :func:`stress_snapshot`'s positions and its sentence.

    Scenarios: :func:`~quantum_trading.risk.stress.default_scenarios` with the run's
    close-to-close returns. ``account``, ``instruments`` and ``costs`` default to the
    result's attributes of those names if it has them, else cross margin at 1× leverage, the
    Binance presets and the default costs. ``(None, reason)`` when nothing was ever held.
    """
    snap, label = stress_snapshot(result, account=account)
    if snap is None:
        return None, label
    account = account or result.account or AccountConfig()
    if instruments is None:
        instruments = result.instruments
    costs = costs or result.costs or CostsConfig()
    closes = pd.DataFrame({s: result.bars[s]["close"] for s in result.sim.symbols})
    returns = closes.pct_change().iloc[1:]
    table = run_stress(snap, default_scenarios(snap, returns), instruments=instruments,
                       account=account, costs=costs)
    return table, label


def _fmt(v: float, digits: int = 2, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    return f"{100.0 * v:.{digits}f}" if pct else f"{v:,.{digits}f}"


def _var_figure(frame: pd.DataFrame, returns: pd.Series, exceptions: pd.Series, alpha: float):
    import plotly.graph_objects as go

    from quantum_trading.backtest.report import thin_last

    level = f"{100 * alpha:g}"
    colors = {"var_historical": "#1f77b4", "es_historical": "#6baed6", "var_fhs": "#cf222e",
              "es_fhs": "#f4a3a8"}
    fig = go.Figure()
    for col, color in colors.items():
        kind, method = col.split("_")
        s = thin_last(100.0 * frame[col].dropna())
        name = f"{'VaR' if kind == 'var' else 'ES'}{level} {method}"
        fig.add_trace(go.Scatter(x=s.index, y=s.values, name=name,
                                 line={"color": color, "width": 1.3,
                                       "dash": "dot" if kind == "es" else "solid"}))
    hit = exceptions[exceptions].index[-_MAX_MARKERS:]
    if len(hit):
        fig.add_trace(go.Scatter(x=hit, y=-100.0 * returns.reindex(hit).to_numpy(),
                                 mode="markers", name="loss beyond VaR (historical)",
                                 marker={"color": "#111", "size": 6, "symbol": "circle-open"}))
    fig.update_layout(height=300, yaxis_title="loss per bar [%]", hovermode="x unified",
                      margin={"t": 20, "b": 30}, legend={"orientation": "h"})
    return fig


def _var_section(result: BacktestResult, alpha: float, window: int | None) -> tuple[str, str]:
    from quantum_trading.backtest.report import fig_html

    title = RISK_SECTION_TITLES[0]
    returns = result.returns
    if window is None:
        need = min_observations("historical", alpha)
        return title, (f"<p>Not enough bars: {len(returns)} returns, a {100 * alpha:g} % "
                       f"historical VaR needs a window of at least {need}.</p>")
    frame = var_es_over_time(returns, window_bars=window, alpha=alpha)
    days = window * 365.25 / result.periods_per_year if result.periods_per_year > 0 else 0.0
    title = f"{title} ({window} bars ≈ {days:.0f} days, {100 * alpha:g} %)"
    level = f"{100 * alpha:g}"
    rows = [f"<tr><th>method</th><th>VaR{level} last [%]</th><th>ES{level} last [%]</th>"
            f"<th>VaR{level} mean [%]</th><th>exceptions / bars tested</th>"
            "<th>expected</th><th>Kupiec p</th><th>Christoffersen ind. p</th>"
            "<th>cond. coverage p</th></tr>"]
    exceptions = None
    for method in RISK_METHODS:
        var = frame[f"var_{method}"]
        bt = backtest_var(returns, var, alpha)
        if method == "historical":
            exceptions = bt.exceptions
        k, c = bt.kupiec, bt.christoffersen
        rows.append(
            f"<tr><td>{method}</td><td>{_fmt(var.iloc[-1], 3, True)}</td>"
            f"<td>{_fmt(frame[f'es_{method}'].iloc[-1], 3, True)}</td>"
            f"<td>{_fmt(var.mean(), 3, True)}</td><td>{k.n_exceptions} / {k.n_obs}</td>"
            f"<td>{k.expected_rate * k.n_obs:.1f}</td><td>{k.p_value:.3f}</td>"
            f"<td>{c.p_value_ind:.3f}</td><td>{c.p_value_cc:.3f}</td></tr>")
    note = ("<p class='meta'>Per-bar returns of the strategy's equity. The value at bar t uses "
            f"the {window} returns up to t (known at its close) and is the forecast for bar "
            "t + 1; an exception is a bar whose loss exceeded the previous bar's VaR. "
            "FHS = filtered historical simulation (EWMA λ = 0.94).</p>")
    fig = _var_figure(frame, returns, exceptions, alpha)
    return title, note + fig_html(fig, False) + "<table>" + "".join(rows) + "</table>"


def _events_section(result: BacktestResult) -> str:
    events = risk_events(result)
    if events is None:
        return ("<p>The risk engine was off for this run (no risk limits were given), so "
                "no order was checked, resized or rejected.</p>")
    if events.empty:
        n = len(result.sim.risk_decisions)
        return (f"<p>Risk limits were on: {n} order decisions, none resized or rejected, "
                "and the trading state stayed active.</p>")
    counts = events.groupby(["event", "reason"]).size().rename("count").reset_index()
    summary = "".join(f"<tr><td>{html.escape(e)}</td><td>{html.escape(r)}</td><td>{c}</td></tr>"
                      for e, r, c in counts.itertuples(index=False))
    shown = events.tail(_MAX_EVENTS)
    rows = "".join(
        f"<tr><td>{t:%Y-%m-%d %H:%M}</td><td>{html.escape(e)}</td><td>{html.escape(str(s))}"
        f"</td><td>{html.escape(r)}</td><td>{html.escape(d)}</td><td>{q:,.2f}</td></tr>"
        for t, e, s, r, d, q in shown.itertuples(index=False))
    note = (f"<p class='meta'>{len(events)} events (orders resized or rejected by a risk limit, "
            "trading-state changes); markers on the equity chart. "
            + (f"The last {len(shown)}:" if len(events) > len(shown) else "") + "</p>")
    return ("<table><tr><th>event</th><th>reason</th><th>count</th></tr>" + summary
            + "</table>" + note + "<table><tr><th>time (UTC)</th><th>event</th><th>symbol</th>"
            "<th>reason</th><th>detail</th><th>equity [USDT]</th></tr>" + rows + "</table>")


def stress_table_html(table: pd.DataFrame) -> str:
    """The stress table as HTML (one row per scenario).

    >>> from quantum_trading.risk.stress import PositionsSnapshot, price_shock, run_stress
    >>> snap = PositionsSnapshot(pd.DataFrame({"size": [1.0], "entry_price": [100.0],
    ...     "mark_price": [100.0]}, index=["X"]), cash_usd=1_000.0)
    >>> page = stress_table_html(run_stress(snap, price_shock({"X": -0.10})))
    >>> page.count("<tr>"), "X -10.00 %" in page
    (2, True)
    """
    head = ("<tr><th>scenario</th><th>P&amp;L [USDT]</th><th>P&amp;L [%]</th>"
            "<th>equity after [USDT]</th><th>margin ratio after</th><th>liquidated</th>"
            "<th>equity after liquidation [USDT]</th><th>what</th></tr>")
    rows = []
    for r in table.itertuples(index=False):
        cls = " class='neg'" if r.pnl_usd < 0 else " class='pos'" if r.pnl_usd > 0 else ""
        liq = ", ".join(f"{s} @ {r.liquidation_prices[s]:,.2f}" for s in r.liquidated) or "none"
        rows.append(
            f"<tr><td>{html.escape(r.name)}</td><td{cls}>{_fmt(r.pnl_usd)}</td>"
            f"<td{cls}>{_fmt(r.pnl_pct)}</td><td>{_fmt(r.equity_after_usd)}</td>"
            f"<td>{_fmt(r.margin_ratio_after, 4)}</td><td>{html.escape(liq)}</td>"
            f"<td>{_fmt(r.equity_after_liquidation_usd)}</td>"
            f"<td style='text-align:left'>{html.escape(r.description)}</td></tr>")
    return "<table>" + head + "".join(rows) + "</table>"


def risk_sections(
    result: BacktestResult,
    *,
    alpha: float = 0.99,
    window_bars: int | None = None,
    account: AccountConfig | None = None,
    instruments: Any = None,
    costs: CostsConfig | None = None,
) -> list[tuple[str, str]]:
    """The three risk sections as ``(heading, html)`` pairs (see the module docstring).

    ``window_bars`` (default :func:`risk_window_bars`) is the VaR window; ``account``,
    ``instruments`` and ``costs`` are those of the run, for the stress test.
    """
    window = window_bars if window_bars is not None else risk_window_bars(
        result.periods_per_year, len(result.returns), alpha)
    if window is not None and window > len(result.returns):
        window = None
    sections = [_var_section(result, alpha, window),
                (RISK_SECTION_TITLES[1], _events_section(result))]
    table, label = stress_for_result(result, account=account, instruments=instruments,
                                     costs=costs)
    body = f"<p class='meta'>{html.escape(label)}</p>"
    if table is not None:
        ratio = table.attrs["margin_ratio"]
        body += (f"<p class='meta'>Margin ratio now (maintenance ÷ equity): {_fmt(ratio, 4)}. "
                 "Each scenario is applied instantly; P&amp;L is mark-to-market at the moved "
                 "prices, liquidation by the simulator's margin rules.</p>")
        body += stress_table_html(table)
    sections.append((RISK_SECTION_TITLES[2], body))
    return sections
