"""The simulator's kernel inputs and state as NamedTuples of numpy arrays.

Everything a kernel touches is here: market arrays (:class:`BarArrays`), strategy arrays
(:class:`SignalArrays`), fixed parameters (:class:`SimParams`) and the mutable running state
(:class:`SimState`: account scalars, positions, pending orders, record buffers, per-bar
equity and margin ratio, and account snapshots — cash, cumulative costs and positions at the
close of each bar where a fill or funding changed them). Risk limits ride along as nested NamedTuples (``SimParams.risk``, ``SimState.risk``;
:mod:`quantum_trading.sim.risk_nb`), switched off unless a
:class:`~quantum_trading.sim.config.RiskConfig` is given. Arrays in :class:`BarArrays` and :class:`SignalArrays` are float64, C-contiguous,
2-D and *flexible*: shape ``[T, N]``, ``[1, N]``, ``[T, 1]`` or ``[1, 1]`` (a length-1 axis
broadcasts), so a constant needs no ``[T, N]`` copy and a one-bar step passes ``[1, N]`` rows.

:func:`new_state` allocates a state; :func:`ensure_capacity` grows its record buffers and
per-bar outputs (copying what is there) so that no record is ever dropped. A state's
snapshot buffer holds one row per bar of ``n_bars``, so a run of that length never stops for
it (rows never written cost no memory).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from quantum_trading.sim.config import RiskConfig
from quantum_trading.sim.records import (
    A_CASH,
    A_EQUITY,
    C_BANKRUPT_BAR,
    C_FILLS,
    C_ORDERS,
    C_SNAPS,
    C_TRADES,
    FILLS_PER_ASSET_STEP,
    N_ACCT,
    N_COST,
    N_COUNTERS,
    N_PEND,
    N_POS,
    N_POSI,
    N_SNAP_BASE,
    N_WORK,
    ORDERS_PER_ASSET_STEP,
    OT_NONE,
    P_BEST,
    P_LAST,
    P_SL,
    P_TP,
    P_TRAIL_DIST,
    P_TRAIL_FRAC,
    Q_ENTRY_BAR,
    Q_PENDING,
    REVERSAL_NET,
    RISK_PER_ASSET_STEP,
    TRADES_PER_ASSET_STEP,
    fill_dt,
    order_dt,
    trade_dt,
)
from quantum_trading.sim.risk_nb import (
    NO_TRADE_LIMIT,
    RI_ENABLED,
    RI_N_DECISIONS,
    RISK_OFF,
    RiskParams,
    RiskState,
    new_risk_state,
)

__all__ = [
    "BarArrays",
    "SignalArrays",
    "SimParams",
    "SimState",
    "ensure_capacity",
    "has_capacity",
    "new_state",
    "readonly_2d",
    "risk_params",
]


def readonly_2d(a: np.ndarray) -> np.ndarray:
    """A read-only, C-contiguous float64 2-D view (copy only if the layout or dtype differ).

    Every kernel input is passed read-only, so the whole-array and one-bar paths share one
    compiled signature (pandas hands out read-only arrays anyway).
    """
    arr = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {arr.shape}")
    view = arr.view()
    view.flags.writeable = False
    return view


class BarArrays(NamedTuple):
    """Market inputs, flexible 2-D float64 arrays (bar × asset).

    ``mark``: mark price used for funding (NaN → the bar's open). ``funding_rate``: rate
    settled at the bar's open (NaN or 0 → no settlement). ``sigma``: per-bar volatility of
    returns and ``volume_usd``: bar notional volume, both known before the bar (causal), for
    the square-root impact (NaN → no impact).
    """

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    mark: np.ndarray
    funding_rate: np.ndarray
    sigma: np.ndarray
    volume_usd: np.ndarray


class SignalArrays(NamedTuple):
    """Strategy inputs, flexible 2-D float64 arrays read at the decision bar (NaN = none).

    ``target`` is the signed notional as a multiple of equity. Stop inputs: ``*_frac`` a
    fraction of the entry fill price, ``*_dist`` a distance in price units, ``*_price`` an
    absolute level; at most one of each family is meant to be non-NaN (price wins, then
    fraction, then distance).
    """

    target: np.ndarray
    sl_frac: np.ndarray
    sl_dist: np.ndarray
    sl_price: np.ndarray
    tp_frac: np.ndarray
    tp_dist: np.ndarray
    tp_price: np.ndarray
    trail_frac: np.ndarray
    trail_dist: np.ndarray


class SimParams(NamedTuple):
    """Fixed parameters (rates as fractions, not bps). Per-asset arrays are ``[N]``."""

    margin_mode: int  # MODE_CROSS / MODE_ISOLATED
    rebalance: int  # REBAL_ON_CHANGE / REBAL_EVERY_BAR
    min_rebalance_frac: float
    size_with_costs: int  # 1: size from the cost-adjusted fill price incl. fee
    allow_short: int
    tp_market: int  # 1: take-profit fills as a market order (taker fee, costs)
    liquidation_fee_rate: float
    max_impact_frac: float
    leverage: np.ndarray
    lot_size: np.ndarray
    min_notional: np.ndarray
    taker_fee: np.ndarray
    maker_fee: np.ndarray
    half_spread: np.ndarray
    slippage: np.ndarray
    impact_k: np.ndarray
    max_notional: np.ndarray  # tier cap on position notional at the chosen leverage
    tiers: np.ndarray  # [N, K, 4], floors padded with +inf
    n_tiers: np.ndarray  # [N] int64
    time_stop_bars: np.ndarray  # [N] int64, 0 = none
    risk: RiskParams = RISK_OFF  # risk limits (risk_nb); RISK_OFF = no checks
    reversal_sizing: int = REVERSAL_NET  # REVERSAL_NET / REVERSAL_AFTER_CLOSE


class SimState(NamedTuple):
    """Mutable running state; see :mod:`quantum_trading.sim.records` for column names."""

    acct: np.ndarray  # [N_ACCT] float64
    counters: np.ndarray  # [N_COUNTERS] int64
    pos: np.ndarray  # [N, N_POS] float64
    posi: np.ndarray  # [N, N_POSI] int64
    pend: np.ndarray  # [N, N_PEND] float64
    last_target: np.ndarray  # [N] float64, NaN until the first decision
    asset_totals: np.ndarray  # [N, N_COST] float64
    fills: np.ndarray  # fill_dt records
    orders: np.ndarray  # order_dt records
    trades: np.ndarray  # trade_dt records (closed trades)
    out_equity: np.ndarray  # [T] equity at each close
    out_margin_ratio: np.ndarray  # [T] maintenance margin / equity at each close
    snap_bar: np.ndarray  # [S] int64: bar of each account snapshot (ascending)
    snap: np.ndarray  # [S, N_SNAP_BASE + N]: cash, cumulative costs, positions at that close
    scratch: np.ndarray  # [N * (K + 1) + 2] float64 (liquidation breakpoints)
    work: np.ndarray  # [N, N_WORK] float64 per-step scratch
    risk: RiskState  # risk state, decision records and per-bar risk outputs (risk_nb)


def new_state(
    n_assets: int,
    initial_cash_usd: float,
    *,
    n_bars: int,
    n_tiers_max: int,
    fills_capacity: int | None = None,
    orders_capacity: int | None = None,
    trades_capacity: int | None = None,
    risk: bool = False,
    risk_multiplier: float = 1.0,
) -> SimState:
    """A fresh state: flat, cash = ``initial_cash_usd``, room for ``n_bars`` bars.

    Record buffers and per-bar outputs are left uninitialised: only the first
    ``counters[C_FILLS]`` (...) records and the stepped bars are ever read. ``risk``: allocate
    the risk decision records and per-bar risk outputs (needed when ``SimParams.risk`` is
    enabled), starting with the behavioural multiplier ``risk_multiplier``.
    """
    n = int(n_assets)
    guess = 256 + n * max(16, n_bars // 64)
    acct = np.zeros(N_ACCT, dtype=np.float64)
    acct[A_CASH] = initial_cash_usd
    acct[A_EQUITY] = initial_cash_usd
    counters = np.zeros(N_COUNTERS, dtype=np.int64)
    counters[C_BANKRUPT_BAR] = -1
    pos = np.zeros((n, N_POS), dtype=np.float64)
    pos[:, [P_SL, P_TP, P_TRAIL_FRAC, P_TRAIL_DIST, P_BEST, P_LAST]] = np.nan
    posi = np.zeros((n, N_POSI), dtype=np.int64)
    posi[:, Q_PENDING] = OT_NONE
    posi[:, Q_ENTRY_BAR] = -1
    return SimState(
        acct=acct,
        counters=counters,
        pos=pos,
        posi=posi,
        pend=np.full((n, N_PEND), np.nan),
        last_target=np.full(n, np.nan),
        asset_totals=np.zeros((n, N_COST), dtype=np.float64),
        fills=np.empty(fills_capacity or guess, dtype=fill_dt),
        orders=np.empty(orders_capacity or guess, dtype=order_dt),
        trades=np.empty(trades_capacity or guess, dtype=trade_dt),
        out_equity=np.empty(max(n_bars, 1), dtype=np.float64),
        out_margin_ratio=np.empty(max(n_bars, 1), dtype=np.float64),
        # at most one snapshot a bar: room for n_bars (untouched rows cost no memory)
        snap_bar=np.empty(max(n_bars, 1) + 1, dtype=np.int64),
        snap=np.empty((max(n_bars, 1) + 1, N_SNAP_BASE + n), dtype=np.float64),
        scratch=np.zeros(n * (n_tiers_max + 1) + 2, dtype=np.float64),
        work=np.zeros((n, N_WORK), dtype=np.float64),
        risk=new_risk_state(n, enabled=risk, n_bars=n_bars if risk else 1,
                            capacity=guess if risk else 0, multiplier=risk_multiplier),
    )


def risk_params(config: RiskConfig | None, bar_open_ns: np.ndarray | None = None) -> RiskParams:
    """Kernel risk parameters from a :class:`RiskConfig` (percent → fractions, None → inf).

    ``bar_open_ns``: bar open times (int64 ns UTC, ``[T]``; or ``[1]`` for one-bar steps);
    ``None`` for the live engine, which passes times itself. ``config=None`` → no checks.
    """
    if config is None:
        return RISK_OFF
    times = np.zeros(1, dtype=np.int64) if bar_open_ns is None else bar_open_ns
    times = np.ascontiguousarray(times, dtype=np.int64).reshape(-1).view()
    times.flags.writeable = False

    def frac(pct: float | None) -> float:
        return np.inf if pct is None else float(pct) / 100.0

    def cap(value: float | None) -> float:
        return np.inf if value is None else float(value)

    return RiskParams(
        enabled=1,
        max_position_frac=float(config.max_position_frac),
        max_leverage=float(config.max_leverage),
        max_gross_exposure=cap(config.max_gross_exposure),
        max_net_exposure=cap(config.max_net_exposure),
        max_trades_per_day=(NO_TRADE_LIMIT if config.max_trades_per_day is None
                            else int(config.max_trades_per_day)),
        daily_loss_frac=frac(config.daily_loss_limit_pct),
        weekly_loss_frac=frac(config.weekly_loss_limit_pct),
        max_drawdown_frac=frac(config.max_drawdown_pct),
        bar_open_ns=times,
    )


def _grown(arr: np.ndarray, size: int) -> np.ndarray:
    out = np.empty((size, *arr.shape[1:]), dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


def ensure_capacity(state: SimState, *, bars_needed: int) -> SimState:
    """Return ``state`` with room for one more step at bar ``bars_needed - 1``.

    A step writes at most 3 fills, 2 closed trades, 1 order and 3 risk decisions per asset,
    one account snapshot and one row of per-bar outputs. Buffers that are short are doubled
    (contents copied); the others are shared with the input state.
    """
    n = state.pos.shape[0]
    changes: dict[str, Any] = {}
    for name, counter, per_step in (
        ("fills", C_FILLS, FILLS_PER_ASSET_STEP * n),
        ("orders", C_ORDERS, ORDERS_PER_ASSET_STEP * n),
        ("trades", C_TRADES, TRADES_PER_ASSET_STEP * n),
        ("snap", C_SNAPS, 1),
    ):
        buf = getattr(state, name)
        used = int(state.counters[counter])
        if buf.shape[0] - used < per_step:
            size = max(2 * buf.shape[0], used + per_step)
            changes[name] = _grown(buf, size)
            if name == "snap":
                changes["snap_bar"] = _grown(state.snap_bar, size)
    if state.out_equity.shape[0] < bars_needed:
        size = max(2 * state.out_equity.shape[0], bars_needed)
        for name in ("out_equity", "out_margin_ratio"):
            changes[name] = _grown(getattr(state, name), size)
    rs = state.risk
    if rs.ints[RI_ENABLED]:
        rchanges: dict[str, np.ndarray] = {}
        used = int(rs.ints[RI_N_DECISIONS])
        need = RISK_PER_ASSET_STEP * n
        if rs.decisions.shape[0] - used < need:
            rchanges["decisions"] = _grown(rs.decisions, max(2 * rs.decisions.shape[0], used + need))
        if rs.out.shape[0] < bars_needed:
            rchanges["out"] = _grown(rs.out, max(2 * rs.out.shape[0], bars_needed))
        if rchanges:
            changes["risk"] = rs._replace(**rchanges)
    return state._replace(**changes) if changes else state


def has_capacity(state: SimState, t: int) -> bool:
    """Whether one step at bar ``t`` fits in the buffers (the kernels check the same)."""
    n = state.pos.shape[0]
    rs = state.risk
    return bool(
        state.fills.shape[0] - state.counters[C_FILLS] >= FILLS_PER_ASSET_STEP * n
        and state.orders.shape[0] - state.counters[C_ORDERS] >= ORDERS_PER_ASSET_STEP * n
        and state.trades.shape[0] - state.counters[C_TRADES] >= TRADES_PER_ASSET_STEP * n
        and state.snap.shape[0] - state.counters[C_SNAPS] >= 1
        and state.out_equity.shape[0] > t
        and (not rs.ints[RI_ENABLED]
             or (rs.decisions.shape[0] - rs.ints[RI_N_DECISIONS] >= RISK_PER_ASSET_STEP * n
                 and rs.out.shape[0] > t))
    )
