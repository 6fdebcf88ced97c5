"""The optimisation report: one self-contained HTML file (plotly's JavaScript embedded once).

Sections, in order: the verdict (deflated Sharpe ratio, the Sharpe ratio the best of the
skill-less trials would show, probability of backtest overfitting), the best parameters and
their full backtest statistics, parameter surfaces (heatmaps of the objective over pairs of
searched parameters, the others at their best values), the regime timeline of the bars
optimised over (the close with one regime band per detector under it) with the best set's
metrics per regime, the trials' Sharpe ratios, the CSCV logit distribution behind the PBO,
and the table of the best parameter sets. The file opens offline: the first figure embeds
plotly.js, the others reuse it; page style and figure embedding are the backtest report's
(:mod:`quantum_trading.backtest.report`). Rendering takes about a second.
"""

from __future__ import annotations

import html
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.backtest.report import REPORT_CSS, fig_html
from quantum_trading.backtest.stats import format_stat
from quantum_trading.research.optimization_result import OptimizationResult
from quantum_trading.research.scoring import SIGNIFICANCE_LEVEL

__all__ = ["SECTION_TITLES", "render_optimization_report", "write_optimization_report"]

SECTION_TITLES = (
    "Verdict",
    "Best parameters",
    "Parameter surface",
    "Regime timeline",
    "Sharpe ratios of the trials",
    "Probability of backtest overfitting",
    "Best parameter sets",
)
"""Section headings of the report, in order."""

_MAX_SURFACES = 3
_EXTRA_CSS = """
th{background:#f6f6f6}
.verdict{padding:12px 16px;border-radius:6px;font-size:15px;max-width:1100px}
.good{background:#e8f6ec;border:1px solid #8fd19e} .bad{background:#fdecea;border:1px solid #f5a49b}
.unknown{background:#f4f4f4;border:1px solid #ccc}
"""


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
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


def _verdict_html(res: OptimizationResult) -> str:
    if res.best_params is None or not math.isfinite(res.dsr):
        css = "unknown"
    else:
        css = "good" if res.dsr >= SIGNIFICANCE_LEVEL else "bad"
    pbo = res.pbo.pbo if res.pbo is not None else math.nan
    rows = [
        ("Parameter sets tried", f"{len(res.table):,} ({res.n_trials:,} complete, "
                                 f"{res.n_pruned:,} pruned)"),
        ("Objective", f"{res.objective} ({res.direction})"),
        ("Constraints", res.constraints.describe()),
        ("Best Sharpe ratio (annualised)", _fmt(res.best_sharpe)),
        ("Expected best Sharpe of skill-less trials (annualised)", _fmt(res.sr_benchmark)),
        ("Deflated Sharpe ratio", _fmt(res.dsr) + f" (significant at ≥ {SIGNIFICANCE_LEVEL:g})"),
        ("Probability of backtest overfitting (CSCV)", _fmt(pbo)),
    ]
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                   for k, v in rows)
    return (f'<p class="verdict {css}">{html.escape(res.verdict)}</p>'
            f"<table>{body}</table>")


def _best_html(res: OptimizationResult) -> str:
    if res.best_params is None or res.best_stats is None:
        return "<p>No parameter set met the constraints.</p>"
    params = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>"
                     for k, v in res.best_params.items())
    stats = "".join(f"<tr><td>{html.escape(str(k))}</td>"
                    f"<td>{html.escape(format_stat(str(k), v))}</td></tr>"
                    for k, v in res.best_stats.items())
    return ('<div style="display:flex;gap:48px;align-items:flex-start">'
            f"<table><tr><th>parameter</th><th>value</th></tr>{params}</table>"
            f"<table><tr><th>statistic</th><th>value</th></tr>{stats}</table></div>")


def _numeric_searched(res: OptimizationResult) -> list[str]:
    out = []
    for name in res.searched:
        col = res.table[name]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col) \
                and col.nunique() > 1:
            out.append(name)
    return out


def _surfaces_html(res: OptimizationResult, first: bool) -> tuple[str, bool]:
    names = _numeric_searched(res) or [n for n in res.searched if res.table[n].nunique() > 1]
    if len(names) < 2:
        return "<p>Fewer than two parameters were searched: no surface to show.</p>", first
    parts = []
    for x, y in list(itertools.combinations(names, 2))[:_MAX_SURFACES]:
        parts.append(fig_html(res.heatmap(x, y), first))
        first = False
    return "".join(parts), first


def _regimes_html(res: OptimizationResult, first: bool) -> tuple[str, bool]:
    if res.close is None or res.regimes.empty:
        return "<p>No regimes were detected (<code>regimes=()</code>).</p>", first
    detectors = ", ".join(html.escape(str(c)) for c in res.regimes.columns)
    parts = [f"<p class='meta'>Regimes of the {len(res.close):,} bars optimised over "
             f"({detectors}; causal: each label known at its bar's close).</p>",
             fig_html(res.regime_figure(), first)]
    for name, table in res.regime_tables.items():
        cols = list(table.columns)
        head = ("<tr><th>regime</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols)
                + "</tr>")
        rows = "".join(
            f"<tr><td>{html.escape(str(idx))}</td>"
            + "".join(f"<td>{html.escape(_fmt(row[c]))}</td>" for c in cols) + "</tr>"
            for idx, row in table.iterrows())
        parts.append(f"<h3>Best set per regime ({html.escape(str(name))})</h3>"
                     f"<table>{head}{rows}</table>")
    return "".join(parts), False


def _sharpe_figure(res: OptimizationResult):
    import plotly.graph_objects as go

    srs = res.trial_sharpes * math.sqrt(res.periods_per_year)
    fig = go.Figure(go.Histogram(x=srs, nbinsx=min(60, max(10, len(srs) // 3)),
                                 name="trials", marker_color="#4C78A8"))
    if math.isfinite(res.best_sharpe):
        fig.add_vline(x=res.best_sharpe, line_color="red",
                      annotation_text=f"best {res.best_sharpe:.2f}")
    if math.isfinite(res.sr_benchmark):
        fig.add_vline(x=res.sr_benchmark, line_color="gray", line_dash="dash",
                      annotation_text=f"expected best of skill-less trials "
                                      f"{res.sr_benchmark:.2f}",
                      annotation_position="bottom right")
    fig.update_layout(title="Annualised Sharpe ratio of every complete trial",
                      xaxis_title="Sharpe ratio", yaxis_title="trials", height=380,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50}, showlegend=False)
    return fig


def _pbo_figure(res: OptimizationResult):
    import plotly.graph_objects as go

    assert res.pbo is not None
    logits = res.pbo.logits[np.isfinite(res.pbo.logits)]
    fig = go.Figure(go.Histogram(x=logits, nbinsx=50, marker_color="#72B7B2"))
    fig.add_vline(x=0.0, line_color="red",
                  annotation_text=f"PBO = share left of 0 = {res.pbo.pbo:.1%}")
    fig.update_layout(title=f"CSCV logits of the in-sample best's out-of-sample rank "
                            f"({res.pbo.n_combinations:,} splits of {res.pbo.n_blocks} blocks)",
                      xaxis_title="logit λ", yaxis_title="splits", height=380,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig


def _table_html(res: OptimizationResult, top: int) -> str:
    cols = [*res.searched, "objective", "feasible", "reason", "state", "Return [%]",
            "Sharpe Ratio", "Max. Drawdown [%]", "# Trades", "Win Rate [%]", "Profit Factor"]
    cols = list(dict.fromkeys(c for c in cols if c in res.table.columns))
    shown = res.table.head(top)
    head = "<tr><th>trial</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"
    rows = []
    for idx, row in shown.iterrows():
        cells = "".join(f"<td>{html.escape(_fmt(row[c]))}</td>" for c in cols)
        rows.append(f"<tr><td>{idx}</td>{cells}</tr>")
    return (f"<p class='meta'>The {len(shown)} best of {len(res.table):,} parameter sets "
            f"(objective −inf: infeasible or pruned).</p><table>{head}{''.join(rows)}</table>")


def render_optimization_report(result: OptimizationResult, *, title: str | None = None,
                               top: int = 50, notes: tuple[str, ...] = ()) -> str:
    """The report as an HTML string (see the module docstring for its sections)."""
    if not isinstance(result, OptimizationResult):
        raise TypeError(f"expected an OptimizationResult, got {type(result).__name__}")
    title = title or f"Optimisation of {result.strategy}"
    meta = (f"{result.method} search on the {result.backend} backend"
            f"{' (batched kernels)' if result.batched else ''}, {result.elapsed_s:.1f} s; "
            f"parameters searched: {', '.join(result.searched) or 'none'}; causality checked "
            f"at {len(result.causality_checked)} parameter sets before the search")
    sections = [f"<h1>{html.escape(title)}</h1><p class='meta'>{html.escape(meta)}</p>"]
    sections += [f"<p class='meta'>{html.escape(n)}</p>" for n in notes]
    first = True
    verdict, best, surface, regimes, sharpes, pbo, top_sets = SECTION_TITLES
    sections.append(f"<h2>{verdict}</h2>{_verdict_html(result)}")
    sections.append(f"<h2>{best}</h2>{_best_html(result)}")
    surf, first = _surfaces_html(result, first)
    sections.append(f"<h2>{surface}</h2>{surf}")
    timeline, first = _regimes_html(result, first)
    sections.append(f"<h2>{regimes}</h2>{timeline}")
    if len(result.trial_sharpes):
        sections.append(f"<h2>{sharpes}</h2>{fig_html(_sharpe_figure(result), first)}")
        first = False
    else:
        sections.append(f"<h2>{sharpes}</h2><p>No complete trial.</p>")
    if result.pbo is not None:
        sections.append(f"<h2>{pbo}</h2>{fig_html(_pbo_figure(result), first)}")
        first = False
    else:
        sections.append(f"<h2>{pbo}</h2><p>Needs at least two complete trials.</p>")
    sections.append(f"<h2>{top_sets}</h2>{_table_html(result, top)}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{REPORT_CSS}{_EXTRA_CSS}</style></head><body>"
            + "\n".join(sections) + "</body></html>")


def write_optimization_report(result: OptimizationResult, path: str | Path,
                              **options: Any) -> Path:
    """Write :func:`render_optimization_report` to ``path`` (folders created); returns it.

    >>> from quantum_trading.data import generate_market
    >>> from quantum_trading.research.optimize import optimize
    >>> bars = generate_market(n_assets=1, n_bars=600, seed=2).ohlcv["BTC/USDT:USDT"]
    >>> res = optimize(bars, "trend_following", grid={"fast": [10, 20], "slow": [40, 80]},
    ...                n_workers=1)
    >>> import tempfile, os
    >>> out = write_optimization_report(res, os.path.join(tempfile.mkdtemp(), "opt.html"))
    >>> out.suffix, "Deflated Sharpe ratio" in out.read_text()
    ('.html', True)
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_optimization_report(result, **options), encoding="utf-8")
    return out
