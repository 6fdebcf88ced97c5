"""The result of an optimisation: the ranked table, the winner, its significance, its regimes.

:class:`OptimizationResult` is what :func:`~quantum_trading.research.optimize.optimize`
returns; it also draws the parameter surface (:meth:`OptimizationResult.heatmap`) and the
regime timeline of the bars optimised over (:meth:`OptimizationResult.regime_figure`) for the
report (:mod:`~quantum_trading.research.report`). Building a figure takes milliseconds.

>>> from quantum_trading.data import generate_market
>>> from quantum_trading.research.optimize import optimize
>>> bars = generate_market(n_assets=1, n_bars=800, seed=5).ohlcv["BTC/USDT:USDT"]
>>> res = optimize(bars, "trend_following", grid={"fast": [10, 20], "slow": [50, 100]},
...                n_workers=1)
>>> res.surface("fast", "slow").shape, res.heatmap().data[0].type
((2, 2), 'heatmap')
>>> [t.type for t in res.regime_figure().data][:2], res.regimes["rules"].index.equals(bars.index)
(['scatter', 'heatmap'], True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from quantum_trading.errors import ConfigError
from quantum_trading.research.regime_analysis import regime_bands_figure
from quantum_trading.research.scoring import Constraints
from quantum_trading.research.stats import PBOResult

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["OptimizationResult"]


@dataclass(frozen=True, eq=False)
class OptimizationResult:
    """What :func:`~quantum_trading.research.optimize.optimize` found.

    Attributes
    ----------
    table:
        One row per parameter set tried (index: trial number in the order tried), sorted best
        first: the parameters, ``objective`` (the statistic; −inf when maximising, +inf when
        minimising, for sets that break a constraint or were pruned), ``feasible``,
        ``reason`` (why not feasible), ``state`` (``complete`` / ``pruned``), then
        :data:`~quantum_trading.research.sweep_job.TABLE_STATS`.
    best_params:
        The best feasible parameter set (None when there is none).
    best_stats:
        Its full backtest statistics (``Backtest(...).run().stats``, buy & hold included).
    best_returns:
        Its per-bar returns (the input of the deflated Sharpe ratio).
    dsr:
        Deflated Sharpe ratio of the best set given ``n_trials`` and the variance of the
        trials' per-bar Sharpe ratios (NaN when undefined).
    sr_benchmark:
        The Sharpe ratio the best of ``n_trials`` skill-less trials would show (annualised),
        the bar the best result must clear.
    pbo:
        Probability of backtest overfitting by CSCV over the trials' returns (``pbo.pbo``),
        or None (fewer than two complete trials).
    verdict:
        The significance in words
        (:func:`~quantum_trading.research.scoring.significance_verdict`).
    returns:
        Returns of every complete trial between sampled bars (columns = trial numbers).
    close:
        Close prices of the bars optimised over (the first symbol's), for the regime timeline
        (None when no regimes were detected).
    regimes:
        Regime label per bar of those bars, one column per detector (``"rules"``: volatility
        and trend rules, ``"hmm"``: a Gaussian HMM, both causal; NaN in the warm-up).
    regime_tables:
        Metrics per regime of the best set's backtest, per detector
        (:func:`~quantum_trading.research.regime_analysis.regime_metrics`; rows = regimes
        and ``"all"``).
    """

    strategy: str
    method: str
    objective: str
    direction: str
    constraints: Constraints
    table: pd.DataFrame
    param_names: tuple[str, ...]
    best_params: dict[str, Any] | None
    best_stats: pd.Series | None
    best_returns: pd.Series | None
    n_trials: int
    n_pruned: int
    trial_sharpes: np.ndarray = field(repr=False)
    dsr: float = math.nan
    sr_benchmark: float = math.nan
    pbo: PBOResult | None = field(default=None, repr=False)
    verdict: str = ""
    returns: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    periods_per_year: float = math.nan
    backend: str = "local"
    batched: bool = False
    elapsed_s: float = math.nan
    searched: tuple[str, ...] = ()
    causality_checked: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    close: pd.Series | None = field(default=None, repr=False)
    regimes: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    regime_tables: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def best_sharpe(self) -> float:
        """The best set's annualised Sharpe ratio."""
        if self.best_stats is None:
            return math.nan
        return float(self.best_stats["Sharpe Ratio"])

    def surface(self, x: str, y: str, value: str = "objective") -> pd.DataFrame:
        """``value`` over the ``x`` × ``y`` grid (rows ``y``, columns ``x``), the other
        searched parameters held at their best values.

        Where that leaves fewer than two points (Optuna's scattered trials), the best value
        over the other parameters is shown instead. −inf / +inf (infeasible) become NaN.
        """
        for name in (x, y):
            if name not in self.param_names:
                raise ConfigError(f"surface: {name!r} is not a parameter of {self.strategy} "
                                  f"(parameters: {', '.join(self.param_names)})")
        if value not in self.table.columns:
            raise ConfigError(f"surface: no column {value!r} in the results table")
        t = self.table[self.table["state"] == "complete"]
        if self.best_params is not None:
            mask = pd.Series(True, index=t.index)
            for name in self.searched:
                if name not in (x, y):
                    mask &= t[name] == self.best_params[name]
            if mask.sum() >= 2:
                t = t[mask]
        vals = t[value].astype(float).replace([np.inf, -np.inf], np.nan)
        frame = pd.DataFrame({x: t[x], y: t[y], value: vals})
        agg = "max" if self.direction == "maximize" else "min"
        return frame.pivot_table(index=y, columns=x, values=value, aggfunc=agg, dropna=False)

    def heatmap(self, x: str | None = None, y: str | None = None,
                value: str = "objective") -> go.Figure:
        """A plotly heatmap of :meth:`surface` (default: the first two searched parameters),
        the best set marked."""
        import plotly.graph_objects as go

        x, y = self._axes(x, y)
        surf = self.surface(x, y, value)
        label = self.objective if value == "objective" else value
        fig = go.Figure(go.Heatmap(
            z=surf.to_numpy(dtype=float), x=[str(c) for c in surf.columns],
            y=[str(i) for i in surf.index], colorscale="Viridis",
            colorbar={"title": {"text": label}},
            hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{label}=%{{z:.4g}}<extra></extra>"))
        if self.best_params is not None:
            fig.add_trace(go.Scatter(x=[str(self.best_params[x])], y=[str(self.best_params[y])],
                                     mode="markers", name="best",
                                     marker={"symbol": "x", "size": 14, "color": "red"}))
        others = [p for p in self.searched if p not in (x, y)]
        held = (" (" + ", ".join(f"{p}={self.best_params[p]}" for p in others) + ")"
                if others and self.best_params is not None else "")
        fig.update_layout(title=f"{label} over {x} × {y}{held}", xaxis_title=x, yaxis_title=y,
                          height=520, margin={"l": 60, "r": 20, "t": 60, "b": 50})
        fig.update_xaxes(type="category")
        fig.update_yaxes(type="category")
        return fig

    def _axes(self, x: str | None, y: str | None) -> tuple[str, str]:
        searched = list(self.searched) or list(self.param_names)
        if x is None or y is None:
            if len(searched) < 2:
                raise ConfigError("heatmap: fewer than two parameters were searched")
            x = x or searched[0]
            y = y or next(p for p in searched if p != x)
        return x, y

    def regime_figure(self, *, title: str | None = None) -> go.Figure:
        """The regime timeline of the bars optimised over: the close on top, one band per
        detector under it (:func:`~quantum_trading.research.regime_analysis.regime_bands_figure`).

        Raises ConfigError when no regimes were detected (``regimes=()``).
        """
        if self.close is None or self.regimes.empty:
            raise ConfigError("regime_figure: no regimes were detected for this optimisation")
        return regime_bands_figure(
            self.close, self.regimes,
            title=title or f"Regimes of the {len(self.close):,} bars optimised over")

    def summary(self) -> str:
        """A few lines: best parameters, best objective, DSR, PBO, verdict."""
        lines = [f"{self.method} search of {self.strategy}: {len(self.table)} parameter sets "
                 f"({self.n_pruned} pruned), objective {self.objective} ({self.direction}), "
                 f"constraints: {self.constraints.describe()}"]
        if self.best_params is None:
            lines.append("no parameter set met the constraints")
        else:
            shown = ", ".join(f"{k}={self.best_params[k]}" for k in self.searched)
            obj = self.table["objective"].iloc[0]
            lines.append(f"best: {shown} → {self.objective} {obj:.4g}, Sharpe "
                         f"{self.best_sharpe:.3f}")
        pbo = self.pbo.pbo if self.pbo is not None else math.nan
        lines.append(f"deflated Sharpe ratio {self.dsr:.3f}, expected best Sharpe of "
                     f"skill-less trials {self.sr_benchmark:.3f}, PBO {pbo:.3f}")
        lines.append(self.verdict)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
