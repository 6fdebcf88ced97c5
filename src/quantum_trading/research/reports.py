"""HTML reports of a walk-forward analysis and of a strategy validation.

Self-contained files built like the backtest report (:mod:`quantum_trading.backtest.report`,
whose page style, figure embedding and plot thinning they reuse): the first figure embeds
plotly.js, the others reuse it, nothing is loaded from the network.

* :func:`write_walk_forward_report` — summary (out-of-sample statistics, walk-forward
  efficiency, DSR and PBO next to the best in-sample Sharpe ratios), the stitched
  out-of-sample equity against buy and hold with the fold boundaries, in-sample vs
  out-of-sample Sharpe ratio per fold, the parameters chosen over time and the per-fold table.
* :func:`write_validation_report` — the checks and verdict, the equity curve, the CPCV path
  equity curves and Sharpe ratios, the permutation null distribution, the DSR / MinTRL
  table, metrics per regime and the regime timeline.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.backtest.report import REPORT_CSS, fig_html, thin_last
from quantum_trading.backtest.stats import format_stat
from quantum_trading.research.regime_analysis import regime_timeline_figure
from quantum_trading.research.validate import ValidationResult
from quantum_trading.research.walk_forward import WalkForwardResult

__all__ = [
    "VALIDATION_SECTIONS",
    "WALK_FORWARD_SECTIONS",
    "render_validation_report",
    "render_walk_forward_report",
    "write_validation_report",
    "write_walk_forward_report",
]

WALK_FORWARD_SECTIONS = (
    "Summary",
    "Stitched out-of-sample equity vs buy & hold",
    "In-sample vs out-of-sample Sharpe ratio",
    "Parameters over time",
    "Folds",
)
"""Section headings of the walk-forward report, in order."""

VALIDATION_SECTIONS = (
    "Verdict",
    "Equity vs buy & hold",
    "CPCV backtest paths",
    "CPCV Sharpe ratios",
    "Permutation test",
    "Deflated Sharpe ratio and minimum track record length",
    "Metrics per regime",
    "Regime timeline",
)
"""Section headings of the validation report, in order."""

_EXTRA_CSS = """
th{background:#f6f6f6} .verdict{padding:12px 16px;border-radius:6px;font-size:15px;
max-width:1100px} .good{background:#e8f6ec;border:1px solid #8fd19e}
.bad{background:#fdecea;border:1px solid #f5a49b}
"""
_MAX_PATHS = 30


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isnan(f):
            return "n/a"
        if math.isinf(f):
            return "−inf" if f < 0 else "inf"
        return f"{f:,.{digits}g}"
    return str(value)


def _table(frame: pd.DataFrame, *, index_name: str = "") -> str:
    head = "<tr><th>" + html.escape(index_name) + "</th>" + "".join(
        f"<th>{html.escape(str(c))}</th>" for c in frame.columns) + "</tr>"
    rows = [head]
    for idx, *values in frame.itertuples(name=None):
        cells = [f"<td>{html.escape(_fmt(idx))}</td>"]
        for v in values:
            cells.append(f"<td>{html.escape(_fmt(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _pairs(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                   for k, v in rows)
    return f"<table>{body}</table>"


def _page(title: str, meta: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{html.escape(name)}</h2>{content}" for name, content in sections)
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{REPORT_CSS}{_EXTRA_CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{meta}{body}</body></html>")


def _write(text: str, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


# --------------------------------------------------------------------------------------------
# Walk-forward
# --------------------------------------------------------------------------------------------

def _wf_equity_figure(res: WalkForwardResult):
    import plotly.graph_objects as go

    fig = go.Figure()
    eq = thin_last(res.oos_equity)
    fig.add_trace(go.Scatter(x=eq.index, y=eq.values, name=f"{res.strategy} (stitched OOS)",
                             line={"color": "#1f77b4", "width": 1.6}))
    if res.benchmark_equity is not None:
        b = thin_last(res.benchmark_equity)
        fig.add_trace(go.Scatter(x=b.index, y=b.values, name="buy & hold",
                                 line={"color": "#999", "width": 1.2}))
    for start in res.folds["OOS Start"].iloc[1:]:
        fig.add_vline(x=start, line={"color": "#bbb", "width": 1, "dash": "dot"})
    fig.update_layout(height=400, yaxis_title="equity [USDT]", hovermode="x unified",
                      margin={"t": 20, "b": 30}, legend={"orientation": "h"})
    return fig


def _wf_sharpe_figure(res: WalkForwardResult):
    import plotly.graph_objects as go

    folds = [str(k) for k in res.folds.index]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=folds, y=res.folds["IS Sharpe Ratio"], name="in-sample (best)",
                         marker={"color": "#9ecae1"}))
    fig.add_trace(go.Bar(x=folds, y=res.folds["OOS Sharpe Ratio"], name="out-of-sample",
                         marker={"color": "#1f77b4"}))
    fig.update_layout(height=300, barmode="group", xaxis_title="fold",
                      yaxis_title="Sharpe ratio (ann.)", margin={"t": 20, "b": 40},
                      legend={"orientation": "h"})
    return fig


def _wf_params_figure(res: WalkForwardResult):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(res.searched) or ["(none searched)"]
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=names)
    for i, name in enumerate(names, start=1):
        if name not in res.folds.columns:
            continue
        x = [*res.folds["OOS Start"], res.folds["OOS End"].iloc[-1]]
        values = [*res.folds[name], res.folds[name].iloc[-1]]
        fig.add_trace(go.Scatter(x=x, y=values, mode="lines+markers", line_shape="hv",
                                 name=name, showlegend=False), row=i, col=1)
    fig.update_layout(height=max(220, 170 * len(names)), margin={"t": 30, "b": 30})
    return fig


def _wf_summary(res: WalkForwardResult) -> str:
    s = res.stats
    best = res.folds["IS Sharpe Ratio"]
    rows = [
        ("Out-of-sample return [%]", _fmt(s["Return [%]"])),
        ("Out-of-sample Sharpe ratio", _fmt(s["Sharpe Ratio"])),
        ("Out-of-sample max. drawdown [%]", _fmt(s["Max. Drawdown [%]"])),
        ("Buy & hold return over the same bars [%]", _fmt(s["Buy & Hold Return [%]"])),
        ("Trades", _fmt(s["# Trades"])),
        ("Walk-forward efficiency (OOS ÷ IS annualised return)",
         _fmt(s["Walk-Forward Efficiency"])),
        ("Profitable folds [%]", _fmt(s["Profitable Folds [%]"])),
        ("Best in-sample Sharpe ratio (mean / max over folds)",
         f"{_fmt(best.mean())} / {_fmt(best.max())}"),
        ("In-sample deflated Sharpe ratio (mean over folds)", _fmt(s["Mean IS DSR"])),
        ("In-sample PBO, CSCV (mean over folds)", _fmt(s["Mean IS PBO"])),
        ("Walk-forward PBO (IS choice at or below the OOS median)",
         _fmt(s["Walk-Forward PBO"])),
        ("OOS probabilistic Sharpe ratio", _fmt(s["Probabilistic Sharpe Ratio"])),
        (f"OOS deflated Sharpe ratio ({res.n_trials} walk-forward configurations)",
         _fmt(s["Deflated Sharpe Ratio"])),
    ]
    good = s["Deflated Sharpe Ratio"] >= 0.95 and s["Return [%]"] > 0
    text = (f"Out of sample the strategy returned {_fmt(s['Return [%]'], 3)} % "
            f"(Sharpe {_fmt(s['Sharpe Ratio'], 3)}) against {_fmt(s['Buy & Hold Return [%]'], 3)}"
            f" % for buy and hold; its deflated Sharpe ratio is "
            f"{_fmt(s['Deflated Sharpe Ratio'], 3)}.")
    return (f"<p class='verdict {'good' if good else 'bad'}'>{html.escape(text)}</p>"
            + _pairs(rows))


def render_walk_forward_report(result: WalkForwardResult, *, title: str | None = None,
                               notes: tuple[str, ...] = ()) -> str:
    """The walk-forward report of ``result`` as one self-contained HTML document."""
    s = result.stats
    mode = "anchored (expanding)" if result.anchored else "rolling"
    title = title or f"Walk-forward: {result.strategy}"
    meta = (f"<p class='meta'>{html.escape(format_stat('Start', s['Start']))} → "
            f"{html.escape(format_stat('End', s['End']))} UTC out of sample · "
            f"{len(result.folds)} folds, {mode} · {result.train_bars:,} in-sample / "
            f"{result.test_bars:,} out-of-sample bars, step {result.step:,}, warm-up "
            f"{result.warmup_bars:,} · {html.escape(result.method)} search of "
            f"{html.escape(result.objective)} ({html.escape(result.direction)})</p>")
    if notes:
        meta += "<p class='meta'>" + "<br>".join(html.escape(n) for n in notes) + "</p>"
    folds = result.folds.copy()
    sections = [
        (WALK_FORWARD_SECTIONS[0], _wf_summary(result)),
        (WALK_FORWARD_SECTIONS[1], fig_html(_wf_equity_figure(result), True)),
        (WALK_FORWARD_SECTIONS[2], fig_html(_wf_sharpe_figure(result), False)),
        (WALK_FORWARD_SECTIONS[3], fig_html(_wf_params_figure(result), False)),
        (WALK_FORWARD_SECTIONS[4], _table(folds, index_name="fold")),
    ]
    return _page(title, meta, sections)


def write_walk_forward_report(result: WalkForwardResult, path: str | Path, **options: Any
                              ) -> Path:
    """Write :func:`render_walk_forward_report` to ``path`` (folders created); returns it.

    >>> import os, tempfile
    >>> from quantum_trading.data import generate_market
    >>> from quantum_trading.research.walk_forward import walk_forward
    >>> bars = generate_market(n_assets=1, n_bars=900, seed=2).ohlcv["BTC/USDT:USDT"]
    >>> wf = walk_forward(bars, "trend_following", grid={"fast": [10, 20], "slow": [50]},
    ...                   train_bars=400, test_bars=250, n_workers=1)
    >>> out = write_walk_forward_report(wf, os.path.join(tempfile.mkdtemp(), "wf.html"))
    >>> out.suffix, WALK_FORWARD_SECTIONS[1].replace("&", "&amp;") in out.read_text()
    ('.html', True)
    """
    return _write(render_walk_forward_report(result, **options), path)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

def _val_equity_figure(res: ValidationResult):
    import plotly.graph_objects as go

    fig = go.Figure()
    eq = thin_last(res.result.equity)
    fig.add_trace(go.Scatter(x=eq.index, y=eq.values, name=res.strategy,
                             line={"color": "#1f77b4", "width": 1.6}))
    bench = res.result.benchmark_equity
    if bench is not None:
        b = thin_last(bench)
        fig.add_trace(go.Scatter(x=b.index, y=b.values, name="buy & hold",
                                 line={"color": "#999", "width": 1.2}))
    fig.update_layout(height=360, yaxis_title="equity [USDT]", hovermode="x unified",
                      margin={"t": 20, "b": 30}, legend={"orientation": "h"})
    return fig


def _cpcv_paths_figure(res: ValidationResult):
    import plotly.graph_objects as go

    fig = go.Figure()
    paths = res.cpcv_paths
    growth = (1.0 + paths.iloc[:, :_MAX_PATHS]).cumprod()
    for col in growth.columns:
        g = thin_last(growth[col])
        fig.add_trace(go.Scatter(x=g.index, y=g.values, name=f"path {col}", opacity=0.7,
                                 line={"width": 1}))
    own = thin_last((1.0 + res.candidate_returns[0]).cumprod())
    fig.add_trace(go.Scatter(x=own.index, y=own.values, name="given parameters",
                             line={"color": "black", "width": 2, "dash": "dot"}))
    for group in res.cpcv.groups[1:]:
        fig.add_vline(x=paths.index[int(group[0])], line={"color": "#ccc", "width": 1})
    fig.update_layout(height=400, yaxis_title="growth of 1", hovermode="x unified",
                      margin={"t": 20, "b": 30}, legend={"orientation": "h"})
    return fig


def _cpcv_sharpe_figure(res: ValidationResult):
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Box(y=res.path_sharpes, name=f"{len(res.path_sharpes)} paths",
                         boxpoints="all", marker={"color": "#1f77b4"}))
    fig.add_trace(go.Box(y=res.split_sharpes, name=f"{len(res.split_sharpes)} test sets "
                         "(given parameters)", boxpoints="all", marker={"color": "#ff7f0e"}))
    fig.add_hline(y=res.sharpe, line={"color": "black", "dash": "dot"},
                  annotation_text="full backtest")
    fig.add_hline(y=0.0, line={"color": "#999", "width": 1})
    fig.update_layout(height=340, yaxis_title="Sharpe ratio (ann.)", showlegend=False,
                      margin={"t": 20, "b": 30})
    return fig


def _permutation_figure(res: ValidationResult):
    import plotly.graph_objects as go

    perm = res.permutation
    null = perm.null[np.isfinite(perm.null)]
    fig = go.Figure(go.Histogram(x=null, nbinsx=min(60, max(10, null.size // 3)),
                                 name="shuffled paths", marker={"color": "#9ecae1"}))
    if math.isfinite(perm.actual):
        fig.add_vline(x=perm.actual, line={"color": "#cf222e", "width": 2},
                      annotation_text=f"actual {perm.actual:.3g} (p = {perm.p_value:.4f})")
    fig.update_layout(height=300, xaxis_title=perm.statistic, yaxis_title="paths",
                      margin={"t": 30, "b": 40}, bargap=0.05)
    return fig


def _dsr_table(res: ValidationResult) -> str:
    ppy = res.periods_per_year
    root = math.sqrt(ppy) if ppy > 0 else math.nan
    days = 365.25 / ppy if ppy > 0 else math.nan
    rows = [
        ("Sharpe ratio (annualised / per bar)",
         f"{_fmt(res.sharpe)} / {_fmt(res.sharpe / root)}"),
        ("Trials (configurations tried)", _fmt(res.n_trials)),
        ("Variance of skill-less trials' per-bar Sharpe ratios", _fmt(res.sr_variance)),
        ("Expected best Sharpe ratio of the skill-less trials (annualised)",
         _fmt(res.sr_benchmark * root)),
        ("Probabilistic Sharpe ratio (vs 0)", _fmt(res.psr)),
        ("Deflated Sharpe ratio", _fmt(res.dsr)),
        ("Returns available [bars]", _fmt(res.n_bars)),
        ("Minimum track record length at 95 % [bars]", _fmt(res.min_trl_bars)),
        ("Minimum track record length [days]", _fmt(res.min_trl_bars * days)),
        ("CSCV PBO of the parameter neighbourhood",
         _fmt(res.pbo.pbo) if res.pbo is not None else "n/a"),
    ]
    return _pairs(rows)


def _checks_html(res: ValidationResult) -> str:
    css = "good" if res.causal and bool(res.checks["passed"].all()) else "bad"
    frame = res.checks.copy()
    frame["passed"] = frame["passed"].map(lambda v: "PASS" if v else "FAIL")
    return (f"<p class='verdict {css}'>{html.escape(res.verdict)}</p>"
            + _table(frame, index_name="check")
            + f"<p class='meta'>Causality: {html.escape(res.causality)}</p>")


def render_validation_report(result: ValidationResult, *, title: str | None = None,
                             notes: tuple[str, ...] = ()) -> str:
    """The validation report of ``result`` as one self-contained HTML document."""
    r = result.result
    stats = r.stats
    title = title or f"Validation: {result.strategy} on {', '.join(r.symbols)}"
    params = ", ".join(f"{k}={v}" for k, v in result.params.items())
    cv = result.cpcv
    meta = (f"<p class='meta'>{html.escape(format_stat('Start', stats['Start']))} → "
            f"{html.escape(format_stat('End', stats['End']))} UTC · {len(r.sim.index):,} bars · "
            f"CPCV N={cv.n_groups}, k={cv.n_test_groups}: {len(cv)} splits, {cv.n_paths} "
            f"paths, embargo {cv.embargo} bars · {len(result.candidates)} candidates "
            f"(the set and its neighbours) · {result.permutation.n_permutations} "
            f"{html.escape(result.permutation.method)} permutations<br>parameters: "
            f"{html.escape(params)}</p>")
    if notes:
        meta += "<p class='meta'>" + "<br>".join(html.escape(n) for n in notes) + "</p>"
    frame = r.bars[r.symbols[0]]
    timeline = regime_timeline_figure(thin_last(frame["close"]),
                                      result.regimes.reindex(thin_last(frame["close"]).index),
                                      title=f"{r.symbols[0]}: rule-based regimes")
    sections = [
        (VALIDATION_SECTIONS[0], _checks_html(result)),
        (VALIDATION_SECTIONS[1], fig_html(_val_equity_figure(result), True)),
        (VALIDATION_SECTIONS[2], fig_html(_cpcv_paths_figure(result), False)),
        (VALIDATION_SECTIONS[3], fig_html(_cpcv_sharpe_figure(result), False)),
        (VALIDATION_SECTIONS[4], "<p class='meta'>" + html.escape(result.permutation.summary())
         + "</p>" + fig_html(_permutation_figure(result), False)),
        (VALIDATION_SECTIONS[5], _dsr_table(result)),
        (VALIDATION_SECTIONS[6], _table(result.regime_table, index_name="regime")),
        (VALIDATION_SECTIONS[7], fig_html(timeline, False)),
    ]
    return _page(title, meta, sections)


def write_validation_report(result: ValidationResult, path: str | Path, **options: Any
                            ) -> Path:
    """Write :func:`render_validation_report` to ``path`` (folders created)."""
    return _write(render_validation_report(result, **options), path)
