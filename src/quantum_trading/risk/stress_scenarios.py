"""Stress scenarios: what :func:`~quantum_trading.risk.stress.run_stress` applies to a
:class:`~quantum_trading.risk.stress.PositionsSnapshot`.

A :class:`Scenario` is a set of instant price moves, funding settlements at a given rate and,
for liquidity scenarios, the cost multiplier of closing everything at once; the order in which
they are applied is described in :mod:`quantum_trading.risk.stress`.

Builders: :func:`price_shock`, :func:`historical_scenarios` (the worst non-overlapping windows
of the data, :func:`worst_windows`), :func:`correlation_one_shock` (every asset moves ``k`` of
its own σ in the same adverse direction), :func:`volatility_shock` (every position moves ``k``
σ against itself), :func:`funding_spike`, :func:`liquidity_drain` and
:func:`default_scenarios` (a set of all of them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from quantum_trading.errors import ConfigError, DataError

if TYPE_CHECKING:  # the snapshot module imports this one
    from quantum_trading.risk.stress import PositionsSnapshot

__all__ = [
    "SCENARIO_KINDS",
    "Scenario",
    "correlation_one_shock",
    "default_scenarios",
    "funding_spike",
    "historical_scenarios",
    "liquidity_drain",
    "price_shock",
    "volatility_shock",
    "worst_windows",
]

SCENARIO_KINDS = ("price_shock", "historical", "correlation_one", "volatility", "funding",
                  "liquidity", "custom")
"""Values of :attr:`Scenario.kind`."""


@dataclass(frozen=True, eq=False)
class Scenario:
    """One stress scenario, applied instantly (in the order :mod:`.stress` describes).

    Parameters
    ----------
    name, description:
        Label and a one-line explanation.
    kind:
        One of :data:`SCENARIO_KINDS`.
    moves:
        Symbol → price move as a fraction (−0.10 = −10 %), > −1. Held symbols not listed do
        not move; listed symbols not held are ignored.
    funding_rate:
        Funding rate per settlement (fraction; one number for every symbol, or symbol →
        rate); longs pay when it is positive.
    funding_settlements:
        Number of settlements at that rate.
    close_cost_multiplier:
        If set, every position is then closed at the moved price by a market order whose
        half-spread, slippage and impact are this many times the cost model's (fees as
        usual). None = positions stay open.
    impact_k:
        Square-root impact coefficient for that close (None = the cost config's).
    start, end:
        The data window a historical scenario was taken from.

    >>> Scenario("BTC -10 %", moves={"BTC/USDT:USDT": -0.10}).moves
    {'BTC/USDT:USDT': -0.1}
    """

    name: str
    kind: str = "custom"
    description: str = ""
    moves: Mapping[str, float] = field(default_factory=dict)
    funding_rate: float | Mapping[str, float] = 0.0
    funding_settlements: int = 0
    close_cost_multiplier: float | None = None
    impact_k: float | None = None
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None

    def __post_init__(self) -> None:
        def bad(what: str) -> ConfigError:
            return ConfigError(f"Scenario {self.name!r}: {what}")

        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("Scenario: name must be a non-empty string")
        if self.kind not in SCENARIO_KINDS:
            raise bad(f"kind must be one of {', '.join(SCENARIO_KINDS)}, got {self.kind!r}")
        moves = {str(k): float(v) for k, v in dict(self.moves).items()}
        for sym, v in moves.items():
            if not (math.isfinite(v) and v > -1.0):
                raise bad(f"move of {sym} must be a finite fraction > -1, got {v!r}")
        object.__setattr__(self, "moves", moves)
        rates = (dict(self.funding_rate) if isinstance(self.funding_rate, Mapping)
                 else {"": self.funding_rate})
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in rates.values()):
            raise bad(f"funding_rate must be finite, got {self.funding_rate!r}")
        n = self.funding_settlements
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise bad(f"funding_settlements must be an int >= 0, got {n!r}")
        for name in ("close_cost_multiplier", "impact_k"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise bad(f"{name} must be a number >= 0 or None, got {v!r}")

    def rate(self, symbol: str) -> float:
        """Funding rate per settlement for ``symbol``."""
        if isinstance(self.funding_rate, Mapping):
            return float(self.funding_rate.get(symbol, 0.0))
        return float(self.funding_rate)


def _pct(v: float) -> str:
    return f"{100.0 * v:+.2f} %"


def _moves_text(moves: Mapping[str, float]) -> str:
    return ", ".join(f"{s} {_pct(v)}" for s, v in moves.items()) or "no move"


def price_shock(moves: Mapping[str, float], *, name: str | None = None) -> Scenario:
    """Instant price moves per symbol (fractions: −0.10 = −10 %).

    >>> price_shock({"BTC/USDT:USDT": -0.1}).name
    'BTC/USDT:USDT -10.00 %'
    """
    text = _moves_text(moves)
    return Scenario(name or text, kind="price_shock", description=f"price shock: {text}",
                    moves=moves)


def funding_spike(rate: float | Mapping[str, float], n_settlements: int, *,
                  snapshot: PositionsSnapshot | None = None, name: str | None = None) -> Scenario:
    """Funding at ``rate`` per settlement for ``n_settlements`` settlements (no price move).

    With ``snapshot``, each held symbol gets ``|rate|`` with the sign that makes its position
    pay (longs +, shorts −): the adverse spike. P&L = ``−Σ size · mark · rate · n``.

    >>> funding_spike(0.003, 9).funding_rate
    0.003
    """
    if snapshot is not None:
        mag = rate if isinstance(rate, Mapping) else dict.fromkeys(snapshot.held, rate)
        rate = {s: abs(float(mag.get(s, 0.0))) * (1.0 if snapshot.positions.at[s, "size"] > 0
                                                  else -1.0) for s in snapshot.held}
        label = f"adverse funding {100 * max(map(abs, rate.values()), default=0.0):.3g} %"
    else:
        label = ("funding " + (f"{100 * float(rate):+.3g} %" if not isinstance(rate, Mapping)
                               else ", ".join(f"{s} {100 * v:+.3g} %" for s, v in rate.items())))
    return Scenario(name or f"{label} × {n_settlements}", kind="funding",
                    description=f"{label} per settlement for {n_settlements} settlements, at "
                    "the current marks", funding_rate=rate, funding_settlements=n_settlements)


def liquidity_drain(k: float, *, impact_k: float | None = None,
                    name: str | None = None) -> Scenario:
    """Close everything now with half-spread, slippage and impact × ``k`` (fees as usual).

    ``impact_k`` sets the square-root impact coefficient (None: the cost config's; it needs
    ``sigma`` and ``volume_usd`` in the snapshot).

    >>> liquidity_drain(5.0).close_cost_multiplier
    5.0
    """
    extra = "" if impact_k is None else f", impact k={impact_k:g}"
    return Scenario(name or f"liquidity drain ×{k:g}", kind="liquidity",
                    description=f"close every position at once with spread, slippage and "
                    f"impact ×{k:g}{extra}", close_cost_multiplier=float(k), impact_k=impact_k)


def _returns_frame(returns: pd.Series | pd.DataFrame) -> pd.DataFrame:
    if isinstance(returns, pd.Series):
        returns = returns.to_frame(name=returns.name if returns.name is not None else "asset")
    if not isinstance(returns, pd.DataFrame):
        raise TypeError(f"returns must be a pandas Series or DataFrame, got "
                        f"{type(returns).__name__}")
    frame = returns.astype(np.float64).dropna(how="any")
    if np.isinf(frame.to_numpy()).any():
        raise DataError("returns holds infinite values")
    return frame


def _sigmas(returns: pd.Series | pd.DataFrame, window_bars: int | None) -> pd.Series:
    frame = _returns_frame(returns)
    if window_bars is not None:
        frame = frame.tail(int(window_bars))
    if len(frame) < 10:
        raise ValueError(f"returns: need at least 10 rows for σ, got {len(frame)}")
    return np.log1p(frame).std(ddof=1)


def _sigma_scenario(snapshot: PositionsSnapshot, returns: pd.Series | pd.DataFrame, k: float,
                    horizon_bars: int, window_bars: int | None, common: bool) -> Scenario:
    sig = _sigmas(returns, window_bars)
    held = [s for s in snapshot.held if s in sig.index]
    missing = [s for s in snapshot.held if s not in sig.index]
    mag = {s: float(k * sig[s] * math.sqrt(horizon_bars)) for s in held}
    size = snapshot.positions["size"]
    if common:
        notional = snapshot.notional_usd
        down = {s: math.expm1(-m) for s, m in mag.items()}
        up = {s: math.expm1(m) for s, m in mag.items()}
        pnl_down = sum(notional[s] * v for s, v in down.items())
        pnl_up = sum(notional[s] * v for s, v in up.items())
        moves, way = (up, "up") if pnl_up < pnl_down else (down, "down")
        name, kind = f"correlations → 1, {k:g}σ {way}", "correlation_one"
        text = f"every asset {way} by {k:g}σ of its own ({horizon_bars} bars)"
    else:
        moves = {s: math.expm1(-m if size[s] > 0 else m) for s, m in mag.items()}
        name, kind = f"volatility ×{k:g}", "volatility"
        text = f"every position moves {k:g}σ ({horizon_bars} bars) against itself"
    if missing:
        text += f"; no returns for {', '.join(missing)}: not moved"
    return Scenario(name, kind=kind, description=f"{text}: {_moves_text(moves)}", moves=moves)


def correlation_one_shock(snapshot: PositionsSnapshot, returns: pd.Series | pd.DataFrame, *,
                          k: float = 3.0, horizon_bars: int = 24,
                          window_bars: int | None = 720) -> Scenario:
    """Correlations go to one: every asset moves by ``k`` of its own σ in the same direction,
    the direction that hurts the snapshot more.

    σ is the sample std (ddof 1) of the last ``window_bars`` log returns of each asset
    (``returns`` are simple returns, one column per symbol); the move of asset i is
    ``exp(±k·σ_i·sqrt(horizon_bars)) − 1``. A hedged pair loses the difference of its legs'
    moves.

    >>> r = pd.DataFrame({"A": [0.01, -0.01] * 20, "B": [0.02, -0.02] * 20})
    >>> from quantum_trading.risk.stress import PositionsSnapshot
    >>> snap = PositionsSnapshot(pd.DataFrame({"size": [1.0, -1.0], "entry_price": [100.0, 100.0],
    ...     "mark_price": [100.0, 100.0]}, index=["A", "B"]), cash_usd=1_000.0)
    >>> correlation_one_shock(snap, r, k=1.0, horizon_bars=1).name
    'correlations → 1, 1σ up'
    """
    return _sigma_scenario(snapshot, returns, k, horizon_bars, window_bars, common=True)


def volatility_shock(snapshot: PositionsSnapshot, returns: pd.Series | pd.DataFrame, *,
                     k: float = 3.0, horizon_bars: int = 24,
                     window_bars: int | None = 720) -> Scenario:
    """Volatility × ``k``: every position moves ``k·σ·sqrt(horizon_bars)`` (log) against
    itself — longs down, shorts up, hedges fail (σ as in :func:`correlation_one_shock`).

    >>> r = pd.Series([0.01, -0.01] * 20, name="A")
    >>> from quantum_trading.risk.stress import PositionsSnapshot
    >>> snap = PositionsSnapshot(pd.DataFrame({"size": [1.0], "entry_price": [100.0],
    ...     "mark_price": [100.0]}, index=["A"]), cash_usd=1_000.0)
    >>> round(volatility_shock(snap, r, k=2.0, horizon_bars=4).moves["A"], 4)
    -0.0397
    """
    return _sigma_scenario(snapshot, returns, k, horizon_bars, window_bars, common=False)


def worst_windows(returns: pd.Series | pd.DataFrame, *, window_bars: int, n_worst: int = 5,
                  weights: Mapping[str, float] | pd.Series | None = None) -> pd.DataFrame:
    """The ``n_worst`` worst non-overlapping windows of ``window_bars`` consecutive returns.

    A window's loss is that of fixed units held through it: ``Σ_i w_i · (Π (1 + r_i) − 1)``
    with ``w`` the signed exposures (multiples of equity; default: equally weighted long,
    ``1/N`` each; ``{symbol: 1.0}`` ranks by one asset). The worst window is taken first, then
    the worst among those not overlapping it, and so on (ties: the earliest).

    Parameters
    ----------
    returns:
        Per-bar simple returns, one column per symbol (rows with a missing value dropped).
    window_bars:
        Returns per window (1 = single bars; 24 = days of 1h bars).
    n_worst:
        How many windows (fewer if the data holds fewer non-overlapping ones).
    weights:
        Signed exposure per symbol; symbols must be columns of ``returns``.

    Returns
    -------
    pd.DataFrame
        Worst first: ``start`` and ``end`` (labels of the first and last return in the
        window: with bar returns, the move runs from the close before ``start`` to the close
        of ``end``), ``portfolio_return`` and each symbol's move (fractions).

    >>> r = pd.DataFrame({"A": [0.0, -0.1, -0.1, 0.05, -0.2, 0.0]})
    >>> worst_windows(r, window_bars=2, n_worst=2)[["start", "end"]].values.tolist()
    [[4, 5], [1, 2]]
    """
    frame = _returns_frame(returns)
    w_bars = int(window_bars)
    if w_bars < 1 or w_bars > len(frame):
        raise ValueError(f"window_bars must be in [1, {len(frame)}], got {window_bars!r}")
    if int(n_worst) < 1:
        raise ValueError(f"n_worst must be >= 1, got {n_worst!r}")
    cols = list(frame.columns)
    if weights is None:
        w = np.full(len(cols), 1.0 / len(cols))
    else:
        unknown = [s for s in dict(weights) if s not in cols]
        if unknown:
            raise ValueError(f"weights: no returns for {unknown} (columns: {cols})")
        w = np.array([float(dict(weights).get(c, 0.0)) for c in cols])
    growth = np.vstack([np.ones(len(cols)), np.cumprod(1.0 + frame.to_numpy(), axis=0)])
    moves = growth[w_bars:] / growth[:-w_bars] - 1.0  # row j: returns j .. j + w_bars − 1
    port = moves @ w
    left = port.copy()
    rows = []
    for _ in range(int(n_worst)):
        if np.isnan(left).all():
            break
        j = int(np.nanargmin(left))
        rows.append([frame.index[j], frame.index[j + w_bars - 1], port[j], *moves[j]])
        left[max(0, j - w_bars + 1): j + w_bars] = np.nan
    return pd.DataFrame(rows, columns=["start", "end", "portfolio_return", *cols])


def historical_scenarios(returns: pd.Series | pd.DataFrame, *, window_bars: int = 24,
                         n_worst: int = 5,
                         weights: Mapping[str, float] | pd.Series | None = None
                         ) -> list[Scenario]:
    """Scenarios from the worst non-overlapping windows of the data (:func:`worst_windows`):
    each asset moves as it did in that window.

    >>> idx = pd.date_range("2023-08-17", periods=6, freq="1h", tz="UTC")
    >>> r = pd.DataFrame({"A": [0.0, -0.1, -0.1, 0.05, -0.2, 0.0]}, index=idx)
    >>> sc = historical_scenarios(r, window_bars=1, n_worst=1)[0]
    >>> sc.name, round(sc.moves["A"], 6)
    ('worst 1-bar window #1 (2023-08-17)', -0.2)
    """
    worst = worst_windows(returns, window_bars=window_bars, n_worst=n_worst, weights=weights)
    out = []
    for k, row in enumerate(worst.itertuples(index=False), start=1):
        moves = dict(zip(worst.columns[3:], row[3:], strict=True))
        start, end = row[0], row[1]
        if isinstance(start, pd.Timestamp):
            first, span = f"{start:%Y-%m-%d}", f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
        else:
            first, span = str(start), f"{start} to {end}"
        out.append(Scenario(f"worst {window_bars}-bar window #{k} ({first})", kind="historical",
                            description=f"as from {span} ({window_bars} bars): "
                            f"{_moves_text(moves)}", moves=moves, start=start, end=end))
    return out


def default_scenarios(
    snapshot: PositionsSnapshot,
    returns: pd.Series | pd.DataFrame | None = None,
    *,
    shocks_pct: Sequence[float] = (-20.0, -10.0, 10.0, 20.0),
    k_sigma: float = 3.0,
    horizon_bars: int = 24,
    sigma_window_bars: int | None = 720,
    funding_rate: float = 0.003,
    funding_settlements: int = 9,
    liquidity_multiplier: float = 5.0,
    liquidity_impact_k: float | None = 0.5,
    historical_window_bars: int = 24,
    n_historical: int = 3,
) -> list[Scenario]:
    """A standard set: every held asset moved by each of ``shocks_pct`` (%); with
    ``returns``: the ``n_historical`` worst ``historical_window_bars`` windows for these
    positions, correlations → 1 and volatility × ``k_sigma`` over ``horizon_bars``; an adverse
    funding spike (``funding_rate`` × ``funding_settlements``: 0.3 % × 9 = three days at a
    high rate) and a liquidity drain (spread, slippage and impact × ``liquidity_multiplier``).

    >>> from quantum_trading.risk.stress import PositionsSnapshot
    >>> snap = PositionsSnapshot(pd.DataFrame({"size": [1.0], "entry_price": [100.0],
    ...     "mark_price": [100.0]}, index=["A"]), cash_usd=1_000.0)
    >>> [s.kind for s in default_scenarios(snap)][-3:]
    ['price_shock', 'funding', 'liquidity']
    """
    held = snapshot.held or snapshot.symbols
    out = [price_shock(dict.fromkeys(held, p / 100.0), name=f"all {p:+g} %")
           for p in shocks_pct]
    if returns is not None:
        frame = _returns_frame(returns)
        cols = [s for s in held if s in frame.columns]
        if cols and len(frame) >= max(historical_window_bars, 10):
            expo = snapshot.exposures
            weights = ({s: float(expo[s]) for s in cols}
                       if snapshot.held and np.isfinite(expo[cols]).all() else None)
            out += historical_scenarios(frame[cols], window_bars=historical_window_bars,
                                        n_worst=n_historical, weights=weights)
            out.append(correlation_one_shock(snapshot, frame[cols], k=k_sigma,
                                             horizon_bars=horizon_bars,
                                             window_bars=sigma_window_bars))
            out.append(volatility_shock(snapshot, frame[cols], k=k_sigma,
                                        horizon_bars=horizon_bars, window_bars=sigma_window_bars))
    out.append(funding_spike(funding_rate, funding_settlements, snapshot=snapshot))
    out.append(liquidity_drain(liquidity_multiplier, impact_k=liquidity_impact_k))
    return out
