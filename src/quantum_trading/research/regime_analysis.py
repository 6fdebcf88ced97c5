"""Analysis of regime labels: detection in one call, scores against true labels, metrics per
regime, timeline figures. The labels come from :mod:`quantum_trading.research.regimes` (or
anywhere else).

* :func:`detect_regimes` — the rule and/or HMM labels of one market, one column per detector;
* :func:`score_regimes` — adjusted Rand index and matched accuracy against known labels;
* :func:`regime_metrics` — a backtest's performance split by regime;
* :func:`regime_timeline_figure` — prices over coloured regime spans;
* :func:`regime_bands_figure` — prices on top, one regime band per detector underneath (the
  optimisation report's regime timeline).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from quantum_trading.backtest import BacktestResult
from quantum_trading.backtest import metrics as m
from quantum_trading.backtest.report import thin_last
from quantum_trading.errors import ConfigError
from quantum_trading.research.regimes import (
    _float,
    _int,
    hmm_regimes,
    rule_regimes,
    rule_vol_window,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "REGIME_DETECTORS",
    "RegimeScore",
    "detect_regimes",
    "regime_bands_figure",
    "regime_metrics",
    "regime_timeline_figure",
    "score_regimes",
]

REGIME_DETECTORS: tuple[str, ...] = ("rules", "hmm")
"""Detectors :func:`detect_regimes` runs: volatility/trend rules and a Gaussian HMM."""

_COLORS = {"trend_up": "#2ca02c", "trend_down": "#d62728", "range": "#1f77b4",
           "high_vol": "#ff7f0e"}
_PALETTE = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
_METRIC_COLUMNS = ("Bars", "Share [%]", "Return [%]", "Sharpe Ratio", "Max. Drawdown [%]",
                   "# Trades", "Win Rate [%]", "Exposure [%]")
_MAX_BANDS = 2_000  # cells per regime band in a figure


def detect_regimes(data: pd.DataFrame | pd.Series, detectors: Sequence[str] = ("rules",), *,
                   seed: int = 0) -> pd.DataFrame:
    """Regime labels of one market by each detector, all causal (known at the bar's close).

    Parameters
    ----------
    data:
        OHLCV frame or close Series on a UTC index of bar open times.
    detectors:
        Any of :data:`REGIME_DETECTORS`: ``"rules"`` —
        :func:`~quantum_trading.research.regimes.rule_regimes` with a volatility window of
        :func:`~quantum_trading.research.regimes.rule_vol_window` ``(T)`` =
        ``min(720, T // 4)`` bars (milliseconds on 100,000 bars); ``"hmm"`` —
        :func:`~quantum_trading.research.regimes.hmm_regimes` fitted on the first half of the
        bars, forward-filtered labels for all (seconds on 100,000 bars; the first half is
        in-sample).
    seed:
        Seed of the HMM's initialisation.

    Returns
    -------
    pd.DataFrame
        One categorical column per detector, in the order given, on ``data``'s index (NaN
        in the warm-up).

    >>> from quantum_trading.data import generate_market
    >>> bars = generate_market(n_assets=1, n_bars=2000, seed=4).ohlcv["BTC/USDT:USDT"]
    >>> labels = detect_regimes(bars, ("rules", "hmm"))
    >>> list(labels.columns), len(labels) == len(bars), "trend_up" in set(labels["rules"])
    (['rules', 'hmm'], True, True)
    """
    names = (detectors,) if isinstance(detectors, str) else tuple(dict.fromkeys(detectors))
    n = len(data)
    out: dict[str, pd.Series] = {}
    for name in names:
        if name == "rules":
            out[name] = rule_regimes(data, vol_window=rule_vol_window(n))
        elif name == "hmm":
            out[name] = hmm_regimes(data, train_bars=max(2, n // 2), seed=seed)
        else:
            raise ConfigError(f"unknown regime detector {name!r} (use one of "
                              f"{', '.join(REGIME_DETECTORS)})")
    return pd.DataFrame(out, index=data.index)



@dataclass(frozen=True)
class RegimeScore:
    """How well detected regimes match known ones (:func:`score_regimes`).

    Attributes
    ----------
    ari:
        Adjusted Rand index, in [-1, 1]: 0 for random labels, 1 for a perfect match up to
        renaming.
    accuracy:
        Share of bars whose detected label maps to the true one under the best one-to-one
        matching of labels (Hungarian algorithm); unmatched detected labels count as wrong.
    majority_rate:
        Share of the most common true label: the accuracy of always guessing it (chance).
    n_bars:
        Bars compared (both labels present).
    mapping:
        Detected label → matched true label.
    confusion:
        Bar counts, rows = detected labels, columns = true labels.
    """

    ari: float
    accuracy: float
    majority_rate: float
    n_bars: int
    mapping: dict[Any, Any] = field(repr=False)
    confusion: pd.DataFrame = field(repr=False)


def _py(value: Any) -> Any:
    """A numpy scalar as the Python value (readable mappings)."""
    return value.item() if isinstance(value, np.generic) else value


def score_regimes(detected: pd.Series, true: pd.Series) -> RegimeScore:
    """Score ``detected`` regime labels against ``true`` ones, bar by bar.

    The two Series are aligned on their common index; bars where either is NaN are left out.
    Labels may be any hashable values (names, integer codes) and need not share names.

    Returns
    -------
    RegimeScore
        Adjusted Rand index, matched accuracy, the majority-class rate, the matching and
        the confusion table.

    >>> import pandas as pd
    >>> true = pd.Series([0, 0, 1, 1, 2, 2])
    >>> found = pd.Series(["a", "a", "b", "b", "b", "c"])
    >>> s = score_regimes(found, true)
    >>> round(s.accuracy, 4), s.mapping, round(s.majority_rate, 4)
    (0.8333, {'a': 0, 'b': 1, 'c': 2}, 0.3333)
    """
    if not isinstance(detected, pd.Series) or not isinstance(true, pd.Series):
        raise ConfigError("score_regimes: detected and true must be pandas Series")
    common = detected.index.intersection(true.index, sort=False)
    d = detected.reindex(common).astype(object)
    t = true.reindex(common).astype(object)
    keep = (d.notna() & t.notna()).to_numpy()
    d, t = d[keep], t[keep]
    if len(d) == 0:
        raise ConfigError("score_regimes: no bar has both a detected and a true label")
    confusion = pd.crosstab(pd.Series(d.to_numpy(), name="detected"),
                            pd.Series(t.to_numpy(), name="true"))
    counts = confusion.to_numpy()
    rows, cols = linear_sum_assignment(-counts)
    mapping = {_py(confusion.index[r]): _py(confusion.columns[c])
               for r, c in zip(rows, cols, strict=True)}
    n = len(d)
    return RegimeScore(
        ari=float(adjusted_rand_score(t.to_numpy(), d.to_numpy())),
        accuracy=float(counts[rows, cols].sum() / n),
        majority_rate=float(counts.sum(axis=0).max() / n),
        n_bars=int(n),
        mapping=mapping,
        confusion=confusion,
    )


# --------------------------------------------------------------------------------------------
# Performance per regime
# --------------------------------------------------------------------------------------------

def _ordered_labels(labels: pd.Series) -> list[Any]:
    if isinstance(labels.dtype, pd.CategoricalDtype):
        return list(labels.cat.categories)
    present = pd.unique(labels.dropna())
    try:
        return sorted(present)
    except TypeError:
        return list(present)


def _row(r: np.ndarray, n_total: int, ppy: float, pnl: np.ndarray | None,
         exposed: np.ndarray | None) -> dict[str, float]:
    growth = np.cumprod(1.0 + r)
    return {
        "Bars": float(len(r)),
        "Share [%]": 100.0 * len(r) / n_total if n_total else math.nan,
        "Return [%]": 100.0 * (float(growth[-1]) - 1.0) if len(r) else math.nan,
        "Sharpe Ratio": m.sharpe_ratio(r, ppy),
        "Max. Drawdown [%]": m.max_drawdown_pct(np.r_[1.0, growth]) if len(r) else math.nan,
        "# Trades": math.nan if pnl is None else float(len(pnl)),
        "Win Rate [%]": math.nan if pnl is None else m.win_rate_pct(pnl),
        "Exposure [%]": (math.nan if exposed is None or not len(exposed)
                         else 100.0 * float(np.mean(exposed))),
    }


def regime_metrics(
    result_or_returns: BacktestResult | pd.Series,
    regimes: pd.Series,
    *,
    periods_per_year: float | None = None,
    lag: int = 0,
) -> pd.DataFrame:
    """Performance of a backtest (or of a return series) split by regime.

    Each bar's return ``r_t = E_t / E_{t-1} - 1`` (earned during bar t) is attributed to the
    label of bar t, shifted by ``lag`` bars (``lag=1``: the regime known at the previous
    close, the one a trader could have acted on). Bars without a label are left out.

    Parameters
    ----------
    result_or_returns:
        A :class:`~quantum_trading.backtest.BacktestResult`, or simple per-bar returns
        (fractions) on a ``DatetimeIndex`` of bar open times.
    regimes:
        Label per bar (categorical, strings or integer codes) on the bars' index.
    periods_per_year:
        Bars per year for the Sharpe ratio; default: the result's, else 365.25 days / the
        median bar spacing of the returns (a 24/7 market).
    lag:
        Bars to delay the labels by [0..1000].

    Returns
    -------
    pd.DataFrame
        One row per regime (all categories for a categorical, in order) and a last row
        ``"all"`` over every labelled bar. Columns:

        * ``Bars``, ``Share [%]``: labelled return bars in the regime, and their share;
        * ``Return [%]``: ``100 · (Π(1 + r) − 1)`` over the regime's bars, compounded;
        * ``Sharpe Ratio``: ``mean / std(ddof=1) · √periods_per_year`` of those returns;
        * ``Max. Drawdown [%]``: of the equity curve that strings the regime's bars together
          (time in other regimes cut out), starting at 1;
        * ``# Trades``, ``Win Rate [%]``: trades whose entry bar (the fill at its open) has
          the label, and the share with a positive net PnL (NaN for a return series);
        * ``Exposure [%]``: share of the regime's bars with a position open at the close
          (NaN for a return series).

    >>> import pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC")
    >>> r = pd.Series([0.0, 0.01, -0.02, 0.03, 0.01], index=idx)
    >>> labels = pd.Series(["a", "a", "b", "b", "a"], index=idx)
    >>> table = regime_metrics(r, labels)
    >>> table.index.tolist(), table["Bars"].tolist(), table["Return [%]"].round(4).tolist()
    (['a', 'b', 'all'], [3, 2, 5], [2.01, 0.94, 2.9689])
    """
    if not isinstance(regimes, pd.Series):
        raise ConfigError("regime_metrics: regimes must be a pandas Series of labels per bar")
    lag = _int(lag, "lag", 0, 1000)
    labels = regimes.shift(lag) if lag else regimes
    trades: pd.DataFrame | None = None
    positions: pd.DataFrame | None = None
    if isinstance(result_or_returns, BacktestResult):
        returns = result_or_returns.returns
        trades = result_or_returns.trades
        positions = result_or_returns.sim.positions
        ppy = result_or_returns.periods_per_year if periods_per_year is None \
            else float(periods_per_year)
    elif isinstance(result_or_returns, pd.Series):
        returns = result_or_returns.astype(np.float64)
        if periods_per_year is not None:
            ppy = float(periods_per_year)
        elif isinstance(returns.index, pd.DatetimeIndex):
            ppy = m.periods_per_year(returns.index)
        else:
            raise ConfigError("regime_metrics: returns without a DatetimeIndex need "
                              "periods_per_year")
    else:
        raise ConfigError("regime_metrics: result_or_returns must be a BacktestResult or a "
                          f"return Series, got {type(result_or_returns).__name__}")
    lab = labels.reindex(returns.index)
    keep = lab.notna().to_numpy() & np.isfinite(returns.to_numpy())
    if not keep.any():
        raise ConfigError("regime_metrics: no return bar has a regime label (check the index)")
    r_all = returns.to_numpy()
    lab_values = lab.astype(object).to_numpy()
    exposed = None
    if positions is not None:
        exposed = (positions.reindex(returns.index).abs().sum(axis=1) > 0).to_numpy()
    entry_labels = None
    if trades is not None:
        entry_labels = labels.reindex(pd.DatetimeIndex(trades["entry_time"])).astype(object)
        entry_labels = entry_labels.to_numpy()
        pnl_all = trades["pnl_usd"].to_numpy(dtype=np.float64)
    n_total = int(keep.sum())
    rows: dict[Any, dict[str, float]] = {}
    for label in _ordered_labels(labels):
        mask = keep & (lab_values == label)
        pnl = None if entry_labels is None else pnl_all[entry_labels == label]
        rows[label] = _row(r_all[mask], n_total, ppy, pnl,
                           None if exposed is None else exposed[mask])
    labelled_trades = None
    if entry_labels is not None:
        labelled_trades = pnl_all[pd.notna(entry_labels)]
    rows["all"] = _row(r_all[keep], n_total, ppy, labelled_trades,
                       None if exposed is None else exposed[keep])
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(_METRIC_COLUMNS))
    table["Bars"] = table["Bars"].astype(np.int64)
    table.index.name = "regime"
    return table


# --------------------------------------------------------------------------------------------
# Timeline figure
# --------------------------------------------------------------------------------------------

def regime_timeline_figure(
    close: pd.Series,
    regimes: pd.Series,
    *,
    title: str = "Market regimes",
    colors: Mapping[Any, str] | None = None,
    opacity: float = 0.25,
) -> go.Figure:
    """Price line over coloured background spans, one span per run of equal labels.

    Parameters
    ----------
    close:
        Prices per bar (UTC index of bar open times).
    regimes:
        Label per bar on the same index (NaN = no span).
    title:
        Figure title.
    colors:
        Label → CSS colour; defaults: trend_up green, trend_down red, range blue, high_vol
        orange, others from a fixed palette.
    opacity:
        Span opacity [0..1].

    Returns
    -------
    plotly.graph_objects.Figure
        The close line, one rectangle per span (bar t's span covers ``[t, next label
        change)``; the last one ends one bar after the last open) and a legend entry per
        regime.

    >>> import pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")
    >>> fig = regime_timeline_figure(pd.Series([1.0, 2, 3, 2, 1, 2], index=idx),
    ...                              pd.Series(["trend_up"] * 3 + ["trend_down"] * 3, index=idx))
    >>> len(fig.layout.shapes), [t.name for t in fig.data]
    (2, ['close', 'trend_down', 'trend_up'])
    """
    import plotly.graph_objects as go

    if not isinstance(close, pd.Series) or not isinstance(regimes, pd.Series):
        raise ConfigError("regime_timeline_figure: close and regimes must be pandas Series")
    opacity = _float(opacity, "opacity", 0.0, 1.0)
    labels = regimes.reindex(close.index)
    order = _ordered_labels(labels)
    palette = _palette_for(order, colors)
    values = labels.astype(object).to_numpy()
    index = close.index
    n = len(index)
    shapes = []
    if n:
        step = index[-1] - index[-2] if n > 1 else pd.Timedelta(0)
        change = np.r_[True, values[1:] != values[:-1]]
        starts = np.flatnonzero(change)
        stops = np.r_[starts[1:], n]
        for s, e in zip(starts, stops, strict=True):
            if pd.isna(values[s]):
                continue
            x1 = index[e] if e < n else index[-1] + step
            shapes.append(dict(type="rect", xref="x", yref="paper", x0=index[s], x1=x1, y0=0,
                               y1=1, fillcolor=palette[values[s]], opacity=opacity,
                               line_width=0, layer="below"))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=index, y=close.to_numpy(), name="close", mode="lines",
                             line=dict(color="black", width=1)))
    present = set(pd.unique(values[pd.notna(values)]))
    for label in order:
        if label in present:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=str(label),
                                     marker=dict(size=12, symbol="square",
                                                 color=palette[label])))
    fig.update_layout(title=title, shapes=shapes, template="plotly_white",
                      legend_title_text="regime", xaxis_title="time (UTC)",
                      yaxis_title="price")
    return fig


def _palette_for(labels: Sequence[Any], colors: Mapping[Any, str] | None) -> dict[Any, str]:
    palette = dict(colors or {})
    extra = iter(_PALETTE * (1 + len(labels) // len(_PALETTE)))
    for label in labels:
        if label not in palette:
            palette[label] = _COLORS.get(str(label)) or next(extra)
    return palette


def _band_cells(values: np.ndarray, index: pd.DatetimeIndex, codes: dict[Any, int],
                max_cells: int) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Cells of one band: every bar while there are at most ``max_cells``, else buckets of
    ``k = ceil(T / max_cells)`` bars, each with its most common label (−1 = no label);
    stamped at each bucket's first bar."""
    n = len(values)
    code = np.array([codes.get(v, -1) if not pd.isna(v) else -1 for v in values],
                    dtype=np.int64)
    k = max(1, math.ceil(n / max_cells))
    if k == 1:
        return index, code
    bucket = np.arange(n) // k
    counts = np.zeros((int(bucket[-1]) + 1, len(codes) + 1), dtype=np.int64)
    np.add.at(counts, (bucket, code + 1), 1)
    counts[:, 0] = np.where(counts[:, 1:].sum(axis=1) > 0, -1, counts[:, 0])
    return index[::k], counts.argmax(axis=1) - 1


def regime_bands_figure(
    close: pd.Series,
    regimes: pd.DataFrame | Mapping[str, pd.Series],
    *,
    title: str = "Market regimes",
    colors: Mapping[Any, str] | None = None,
    max_cells: int = _MAX_BANDS,
) -> go.Figure:
    """The close on top and, under it on the same time axis, one coloured band per detector.

    Parameters
    ----------
    close:
        Prices per bar (UTC index of bar open times); drawn with at most about 5,000 points
        (:func:`~quantum_trading.backtest.report.thin_last`).
    regimes:
        Labels per bar, one column (or mapping entry) per detector, e.g.
        :func:`detect_regimes`'s frame; reindexed on ``close``'s index.
    title:
        Figure title.
    colors:
        Label → CSS colour (defaults as :func:`regime_timeline_figure`).
    max_cells:
        Most cells per band [10..100,000]: longer runs are drawn in buckets of
        ``ceil(T / max_cells)`` bars, each with its most common label (plotting only).

    Returns
    -------
    plotly.graph_objects.Figure
        Row 1: the close line; row ``2 + j``: a one-row heatmap of detector ``j``'s labels
        (cell ``i`` covers its bar or bucket from its open time; no label = blank), hover
        text the label; one legend entry per regime. Built in milliseconds.

    >>> import pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")
    >>> fig = regime_bands_figure(pd.Series([1.0, 2, 3, 2, 1, 2], index=idx),
    ...     {"rules": pd.Series(["trend_up"] * 3 + ["trend_down"] * 3, index=idx)})
    >>> [t.type for t in fig.data][:2], fig.data[1].text[0][:4]
    (['scatter', 'heatmap'], ['trend_up', 'trend_up', 'trend_up', 'trend_down'])
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not isinstance(close, pd.Series):
        raise ConfigError("regime_bands_figure: close must be a pandas Series")
    frame = pd.DataFrame(dict(regimes)) if isinstance(regimes, Mapping) else regimes
    if not isinstance(frame, pd.DataFrame) or frame.shape[1] == 0:
        raise ConfigError("regime_bands_figure: regimes must be a DataFrame or a mapping of "
                          "label Series with at least one detector")
    max_cells = _int(max_cells, "max_cells", 10, 100_000)
    frame = frame.reindex(close.index)
    order: list[Any] = []
    for name in frame.columns:
        order += [v for v in _ordered_labels(frame[name]) if v not in order]
    palette = _palette_for(order, colors)
    codes = {label: i for i, label in enumerate(order)}
    n_bands = frame.shape[1]
    band_share = min(0.12, 0.4 / n_bands)
    fig = make_subplots(rows=1 + n_bands, cols=1, shared_xaxes=True, vertical_spacing=0.02,
                        row_heights=[1.0 - band_share * n_bands] + [band_share] * n_bands)
    line = thin_last(close)
    fig.add_trace(go.Scatter(x=line.index, y=line.to_numpy(), name="close", mode="lines",
                             line={"color": "black", "width": 1}), row=1, col=1)
    n_codes = max(1, len(order))
    scale = []
    for i, label in enumerate(order):
        scale += [[i / n_codes, palette[label]], [(i + 1) / n_codes, palette[label]]]
    present: set[Any] = set()
    for j, name in enumerate(frame.columns):
        values = frame[name].astype(object).to_numpy()
        present |= {v for v in pd.unique(values) if not pd.isna(v)}
        x, cell = _band_cells(values, close.index, codes, max_cells)
        z = np.where(cell >= 0, cell, np.nan).astype(np.float64)
        text = [order[c] if c >= 0 else "" for c in cell]
        fig.add_trace(go.Heatmap(
            x=x, y=[str(name)], z=[z], text=[[str(t) for t in text]], zmin=-0.5,
            zmax=n_codes - 0.5, colorscale=scale or [[0, "#ffffff"], [1, "#ffffff"]],
            showscale=False, name=str(name),
            hovertemplate=f"%{{x}}<br>{name}: %{{text}}<extra></extra>"), row=2 + j, col=1)
        fig.update_yaxes(showgrid=False, fixedrange=True, row=2 + j, col=1)
    for label in order:
        if label in present:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=str(label),
                                     marker={"size": 12, "symbol": "square",
                                             "color": palette[label]}), row=1, col=1)
    fig.update_layout(title=title, template="plotly_white", legend_title_text="regime",
                      height=420 + 70 * n_bands, margin={"l": 60, "r": 20, "t": 60, "b": 40})
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=1 + n_bands, col=1)
    return fig
