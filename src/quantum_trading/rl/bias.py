"""Action-bias analysis of a trained policy: what it does, per asset, over a data set.

A policy that is always long, sits at the action bounds, or flips every bar usually learned
the training period's drift or a reward loophole rather than a skill. :func:`analyze_bias`
runs a saved policy through :class:`~quantum_trading.rl.env.PerpetualFuturesEnv` over the
data (once deterministically, and ``episodes`` times sampling its actions), and
:func:`analyze_actions` measures, per asset and mode:

* the action distribution: a histogram of the targets in units of ``max_leverage``
  (``[-1, 1]``; the target exposure is this × ``max_leverage`` × equity, decided at each bar's
  close, filled at the next open);
* long/short skew: the fractions of bars long / short / flat (``|target| < flat_tol``), their
  difference (``Skew``, in [-1, 1]) and the mean signed and absolute target;
* extreme actions: the fraction at +1 / −1 (within ``1e-3``; SB3 clips Box actions to the
  bounds) and at the largest size bucket (``multi_head``: the last ``size_buckets`` entry, not
  flat; ``target``: ``|target|`` nearer the largest bucket than the next one);
* persistence: the lag-1 autocorrelation of the target, the mean ``|Δtarget|`` per bar
  (turnover, units of ``max_leverage`` × equity per bar) and the fraction of bars whose side
  (long / flat / short) differs from the previous bar's.

Each (mode, asset) gets a verdict: ``long-biased`` / ``short-biased`` (``|Skew| ≥
skew_threshold``), ``saturated`` (at the bounds in ≥ half of the bars), ``always flat``
(flat in ≥ 95 %), ``churning`` (the side changes in ≥ 25 % of bars), else ``balanced``.

>>> runs = [ActionRun("deterministic", 0, pd.date_range("2024", periods=4, freq="h", tz="UTC"),
...                   np.array([[1.0], [1.0], [1.0], [0.5]]), np.zeros((4, 1)))]
>>> from quantum_trading.rl.spec import EnvSpec
>>> report = analyze_actions(runs, EnvSpec(symbols=("BTC/USDT:USDT",), timeframe="1h"))
>>> float(report.summary.loc[("deterministic", "BTC/USDT:USDT"), "Long [%]"])
100.0
>>> report.summary.loc[("deterministic", "BTC/USDT:USDT"), "Verdict"]
'long-biased, saturated'
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from quantum_trading.errors import ConfigError
from quantum_trading.rl.spec import EnvSpec

__all__ = [
    "SUMMARY_COLUMNS",
    "ActionRun",
    "BiasReport",
    "action_targets",
    "analyze_actions",
    "analyze_bias",
    "bias_table",
    "render_bias_report",
    "write_bias_report",
]

Mode = Literal["deterministic", "stochastic"]

SUMMARY_COLUMNS: tuple[str, ...] = (
    "Bars", "Long [%]", "Short [%]", "Flat [%]", "Skew", "Mean Target", "Mean |Target|",
    "At +1 [%]", "At -1 [%]", "Largest Bucket [%]", "Autocorr(1)", "Turnover [/bar]",
    "Side Changes [%]", "Verdict",
)
"""Columns of :attr:`BiasReport.summary` (targets in units of ``max_leverage``)."""

_BOUND_TOL = 1e-3
_HIST_BINS = 21


@dataclass(frozen=True)
class ActionRun:
    """One pass of a policy over the data.

    ``index``: the decision bars (a target decided at bar t's close fills at t+1's open);
    ``targets``: ``[T, n_assets]`` targets in units of ``max_leverage`` (in [-1, 1]);
    ``actions``: ``[T, action_dim]`` raw actions as the policy returned them.
    """

    mode: Mode
    episode: int
    index: pd.DatetimeIndex
    targets: np.ndarray
    actions: np.ndarray


def action_targets(actions: np.ndarray, spec: EnvSpec) -> np.ndarray:
    """Targets in units of ``max_leverage`` (``[T, n_assets]``, in [-1, 1]) of raw actions
    ``[T, action_dim]``: the Box action clipped to [-1, 1]; for ``multi_head`` ``(direction
    − 1) × size_buckets[size]`` per asset.

    >>> spec = EnvSpec(symbols=("A", "B"), timeframe="1h", action="multi_head")
    >>> action_targets(np.array([[2, 2, 0, 0, 0, 1]]), spec).tolist()
    [[1.0, -0.25]]
    """
    acts = np.asarray(actions, dtype=np.float64)
    if acts.ndim == 1:
        acts = acts[None, :]
    n = spec.n_assets
    if spec.action == "target":
        if acts.shape[1] != n:
            raise ConfigError(f"action_targets: {acts.shape[1]} action columns for {n} assets")
        return np.clip(acts, -1.0, 1.0)
    if acts.shape[1] != 3 * n:
        raise ConfigError(f"action_targets: {acts.shape[1]} action columns, multi_head needs "
                          f"{3 * n} (direction, size, stop per asset)")
    direction = acts[:, 0::3].astype(np.int64) - 1
    size = np.asarray(spec.size_buckets)[acts[:, 1::3].astype(np.int64)]
    return direction * size


def _largest_bucket(run: ActionRun, spec: EnvSpec, flat: np.ndarray) -> np.ndarray:
    """Bars at the largest size bucket (bool ``[T, N]``)."""
    if spec.action == "multi_head":
        size = np.asarray(run.actions)[:, 1::3].astype(np.int64)
        return (size == len(spec.size_buckets) - 1) & ~flat
    buckets = sorted(spec.size_buckets)
    cut = (buckets[-2] + buckets[-1]) / 2 if len(buckets) > 1 else 0.0
    return (np.abs(run.targets) > cut) & ~flat


def _autocorr(x: np.ndarray) -> float:
    if len(x) < 3 or np.std(x[:-1]) == 0 or np.std(x[1:]) == 0:
        return float("nan")
    return float(np.corrcoef(x[:-1], x[1:])[0, 1])


def _verdict(row: Mapping[str, float], skew_threshold: float) -> str:
    words = []
    if row["Flat [%]"] >= 95.0:
        return "always flat"
    if row["Skew"] >= skew_threshold:
        words.append("long-biased")
    elif row["Skew"] <= -skew_threshold:
        words.append("short-biased")
    if row["At +1 [%]"] + row["At -1 [%]"] >= 50.0:
        words.append("saturated")
    if row["Side Changes [%]"] >= 25.0:
        words.append("churning")
    return ", ".join(words) or "balanced"


@dataclass(frozen=True)
class BiasReport:
    """What :func:`analyze_actions` found.

    ``summary``: one row per (mode, symbol), columns :data:`SUMMARY_COLUMNS`;
    ``histograms``: ``{(mode, symbol): fractions per bin}`` over ``bin_edges`` (sum 1);
    ``runs``: the passes analysed; ``spec``: the model's spec.
    """

    spec: EnvSpec
    summary: pd.DataFrame
    histograms: dict[tuple[str, str], np.ndarray]
    bin_edges: np.ndarray
    runs: tuple[ActionRun, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    def row(self, symbol: str, mode: Mode = "deterministic") -> pd.Series:
        """The summary row of one asset and mode."""
        return self.summary.loc[(mode, symbol)]

    @property
    def flags(self) -> list[str]:
        """``"<mode> <symbol>: <verdict>"`` for every row that is not ``balanced``."""
        return [f"{mode} {sym}: {v}" for (mode, sym), v in self.summary["Verdict"].items()
                if v != "balanced"]


def analyze_actions(
    runs: Sequence[ActionRun], spec: EnvSpec, *, flat_tol: float = 0.05,
    skew_threshold: float = 0.2,
) -> BiasReport:
    """Statistics of the targets in ``runs`` per (mode, asset) (see the module docstring).

    Fractions pool the bars of every run of a mode; the autocorrelation is the mean over
    runs. ``flat_tol``: ``|target|`` below it counts as flat (units of ``max_leverage``);
    ``skew_threshold``: ``|long − short|`` fraction from which a side bias is flagged.
    """
    if not runs:
        raise ConfigError("analyze_actions: no runs to analyse")
    if not 0 <= flat_tol < 1:
        raise ConfigError(f"analyze_actions: flat_tol must be in [0, 1), got {flat_tol!r}")
    if not 0 < skew_threshold <= 1:
        raise ConfigError(f"analyze_actions: skew_threshold must be in (0, 1], got "
                          f"{skew_threshold!r}")
    edges = np.linspace(-1.0, 1.0, _HIST_BINS + 1)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    hists: dict[tuple[str, str], np.ndarray] = {}
    modes = [m for m in ("deterministic", "stochastic") if any(r.mode == m for r in runs)]
    for mode in modes:
        mine = [r for r in runs if r.mode == mode]
        for j, sym in enumerate(spec.symbols):
            t = np.concatenate([np.asarray(r.targets)[:, j] for r in mine])
            flats = [np.abs(np.asarray(r.targets)[:, j]) < flat_tol for r in mine]
            flat = np.concatenate(flats)
            largest = np.concatenate([
                _largest_bucket(r, spec, np.abs(np.asarray(r.targets)) < flat_tol)[:, j]
                for r in mine])
            diffs = np.concatenate([np.abs(np.diff(np.asarray(r.targets)[:, j])) for r in mine])
            sides = [np.sign(np.asarray(r.targets)[:, j]) * (~f) for r, f in zip(mine, flats,
                                                                               strict=True)]
            flips = np.concatenate([np.diff(sd) != 0 for sd in sides])
            acs = [_autocorr(np.asarray(r.targets)[:, j]) for r in mine]
            n = len(t)
            long_f = float(np.mean(t >= flat_tol)) if n else 0.0
            short_f = float(np.mean(t <= -flat_tol)) if n else 0.0
            row = {
                "Bars": n,
                "Long [%]": 100.0 * long_f,
                "Short [%]": 100.0 * short_f,
                "Flat [%]": 100.0 * float(np.mean(flat)) if n else 0.0,
                "Skew": long_f - short_f,
                "Mean Target": float(np.mean(t)) if n else float("nan"),
                "Mean |Target|": float(np.mean(np.abs(t))) if n else float("nan"),
                "At +1 [%]": 100.0 * float(np.mean(t >= 1.0 - _BOUND_TOL)) if n else 0.0,
                "At -1 [%]": 100.0 * float(np.mean(t <= -1.0 + _BOUND_TOL)) if n else 0.0,
                "Largest Bucket [%]": 100.0 * float(np.mean(largest)) if n else 0.0,
                "Autocorr(1)": float(np.nanmean(acs)) if not np.all(np.isnan(acs)) else float("nan"),
                "Turnover [/bar]": float(np.mean(diffs)) if len(diffs) else 0.0,
                "Side Changes [%]": 100.0 * float(np.mean(flips)) if len(flips) else 0.0,
            }
            row["Verdict"] = _verdict(row, skew_threshold)
            rows[(mode, sym)] = row
            counts, _ = np.histogram(np.clip(t, -1.0, 1.0), bins=edges)
            hists[(mode, sym)] = counts / max(1, counts.sum())
    summary = pd.DataFrame.from_dict(rows, orient="index")[list(SUMMARY_COLUMNS)]
    summary.index = pd.MultiIndex.from_tuples(list(rows), names=["mode", "symbol"])
    return BiasReport(spec=spec, summary=summary, histograms=hists, bin_edges=edges,
                      runs=tuple(runs), settings={"flat_tol": flat_tol,
                                                  "skew_threshold": skew_threshold})


def analyze_bias(
    policy: Any,
    bars: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    episodes: int = 5,
    seed: int = 0,
    flat_tol: float = 0.05,
    skew_threshold: float = 0.2,
) -> BiasReport:
    """Run ``policy`` over ``bars`` once deterministically and ``episodes`` times sampling its
    actions (seeds ``seed``, ``seed + 1`` …), each one episode from the first bar after the
    warm-up to the end (:func:`~quantum_trading.rl.rollout.run_policy`), and analyse the
    actions (:func:`analyze_actions`).

    ``policy``: a :class:`~quantum_trading.rl.strategy.PolicyStrategy` (its env config,
    instruments, funding and mark are used) or a bundle directory. Data whose asset set, order
    or timeframe differ from the model's spec raise ConfigError naming the field.
    Timing: about 1 ms per bar and run on a CPU core.

    >>> report = analyze_bias("user_data/models/run1/final", bars, episodes=3)  # doctest: +SKIP
    >>> report.flags                                                           # doctest: +SKIP
    ['deterministic BTC/USDT:USDT: long-biased']
    """
    from quantum_trading.rl.strategy import PolicyStrategy

    strat = policy if isinstance(policy, PolicyStrategy) else PolicyStrategy(policy)
    if not isinstance(episodes, int) or episodes < 0:
        raise ConfigError(f"analyze_bias: episodes must be an int >= 0, got {episodes!r}")
    spec = strat.spec
    runs = []
    for k, deterministic in enumerate([True] + [False] * episodes):
        roll = strat.rollout(bars, deterministic=deterministic, seed=seed + k - 1)
        runs.append(ActionRun("deterministic" if deterministic else "stochastic", max(0, k - 1),
                              roll.index, action_targets(roll.actions, spec), roll.actions))
    return analyze_actions(runs, spec, flat_tol=flat_tol, skew_threshold=skew_threshold)


# --------------------------------------------------------------------------------------------
# console table and HTML report
# --------------------------------------------------------------------------------------------

def _fmt(key: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if key == "Bars":
        return f"{int(value):,}"
    if not np.isfinite(value):
        return "–"
    if key.endswith("[%]"):
        return f"{value:.1f}"
    return f"{value:+.3f}" if key in ("Skew", "Mean Target", "Autocorr(1)") else f"{value:.3f}"


def bias_table(report: BiasReport, *, title: str = "action bias") -> Any:
    """The summary as a rich ``Table`` (verdicts coloured: red for a bias, green balanced)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("mode", style="dim")
    table.add_column("symbol", style="cyan")
    short = {"Largest Bucket [%]": "Top Bucket [%]", "Turnover [/bar]": "Turnover"}
    for col in SUMMARY_COLUMNS:
        table.add_column(short.get(col, col), justify="left" if col == "Verdict" else "right")
    for (mode, sym), row in report.summary.iterrows():
        cells = [_fmt(c, row[c]) for c in SUMMARY_COLUMNS]
        colour = "green" if row["Verdict"] == "balanced" else "red"
        cells[-1] = f"[{colour}]{cells[-1]}[/{colour}]"
        table.add_row(str(mode), str(sym), *cells)
    return table


def _histogram_figure(report: BiasReport, mode: str) -> Any:
    import plotly.graph_objects as go

    centres = (report.bin_edges[:-1] + report.bin_edges[1:]) / 2
    fig = go.Figure()
    for sym in report.spec.symbols:
        frac = report.histograms.get((mode, sym))
        if frac is not None:
            fig.add_trace(go.Bar(x=centres, y=100.0 * frac, name=sym))
    fig.update_layout(barmode="group", height=320, margin={"t": 20, "b": 30},
                      xaxis_title=f"target [× max leverage {report.spec.max_leverage:g}]",
                      yaxis_title="bars [%]", legend={"orientation": "h"})
    return fig


def _skew_figure(report: BiasReport) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    labels = [f"{sym} ({mode[:5]})" for mode, sym in report.summary.index]
    for col, colour in (("Long [%]", "#1a7f37"), ("Flat [%]", "#bbb"), ("Short [%]", "#cf222e")):
        fig.add_trace(go.Bar(y=labels, x=report.summary[col], name=col.replace(" [%]", ""),
                             orientation="h", marker={"color": colour}))
    fig.update_layout(barmode="stack", height=120 + 28 * len(labels), xaxis_title="bars [%]",
                      margin={"t": 20, "b": 30}, legend={"orientation": "h"})
    return fig


def _timeline_figure(report: BiasReport) -> Any:
    import plotly.graph_objects as go

    from quantum_trading.backtest.report import thin_last

    run = next((r for r in report.runs if r.mode == "deterministic"), report.runs[0])
    fig = go.Figure()
    for j, sym in enumerate(report.spec.symbols):
        series = thin_last(pd.Series(np.asarray(run.targets)[:, j], index=run.index))
        fig.add_trace(go.Scatter(x=series.index, y=series.values, name=sym,
                                 line={"width": 1, "shape": "hv"}))
    fig.update_layout(height=300, yaxis_title="target [× max leverage]", yaxis_range=[-1.05, 1.05],
                      margin={"t": 20, "b": 30}, legend={"orientation": "h"})
    return fig


def _summary_html(report: BiasReport) -> str:
    head = "<tr><th>mode</th><th>symbol</th>" + "".join(
        f"<th>{html.escape(c)}</th>" for c in SUMMARY_COLUMNS) + "</tr>"
    rows = [head]
    for (mode, sym), row in report.summary.iterrows():
        cells = "".join(f"<td>{html.escape(_fmt(c, row[c]))}</td>" for c in SUMMARY_COLUMNS[:-1])
        cls = "pos" if row["Verdict"] == "balanced" else "neg"
        rows.append(f"<tr><td>{html.escape(str(mode))}</td><td>{html.escape(str(sym))}</td>"
                    f"{cells}<td class='{cls}'>{html.escape(row['Verdict'])}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def render_bias_report(report: BiasReport, *, title: str = "Action bias") -> str:
    """The report as one self-contained HTML document: summary table, long/flat/short bars,
    target histograms per mode, and the deterministic run's targets over time (plotly.js
    embedded once, so it opens offline)."""
    from quantum_trading.backtest.report import REPORT_CSS, fig_html

    runs = report.runs
    modes = list(dict.fromkeys(r.mode for r in runs))
    first = runs[0]
    n_stoch = sum(r.mode == "stochastic" for r in runs)
    meta = (f"<p class='meta'>{len(first.index):,} decision bars per run, "
            f"{first.index[0]:%Y-%m-%d %H:%M} → {first.index[-1]:%Y-%m-%d %H:%M} UTC · "
            f"assets {html.escape(', '.join(report.spec.symbols))} · action "
            f"{report.spec.action}, max leverage {report.spec.max_leverage:g} · "
            f"{'1 deterministic run' if 'deterministic' in modes else 'no deterministic run'}"
            f", {n_stoch} stochastic runs · flat below |target| "
            f"{report.settings.get('flat_tol', 0.05):g}</p>")
    flags = report.flags
    meta += ("<p class='meta'><b>Flags:</b> " + "; ".join(html.escape(f) for f in flags) + "</p>"
             if flags else "<p class='meta'>No bias flagged.</p>")
    sections = [("Summary", _summary_html(report)),
                ("Long / flat / short", fig_html(_skew_figure(report), True))]
    for mode in modes:
        sections.append((f"Target distribution ({mode})",
                         fig_html(_histogram_figure(report, mode), False)))
    sections.append(("Targets over time (deterministic run)",
                     fig_html(_timeline_figure(report), False)))
    body = "".join(f"<h2>{html.escape(n)}</h2>{c}" for n, c in sections)
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{REPORT_CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{meta}{body}</body></html>")


def write_bias_report(report: BiasReport, path: str | Path, *, title: str = "Action bias"
                      ) -> Path:
    """Write :func:`render_bias_report` to ``path`` (folders created); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_bias_report(report, title=title), encoding="utf-8")
    return out
