"""Risk-limit kernels: the one implementation of the risk rules (trading state and order checks).

Two callers share these kernels, so a rule exists once:

* the simulator step (:func:`~quantum_trading.sim.engine_nb.step_nb`) when ``simulate(...,
  risk=RiskConfig(...))`` or ``Simulator(..., risk=...)`` is used (backtests, RL env, paper);
* :class:`quantum_trading.risk.engine.RiskEngine` (live trading), which adds text reasons, a
  decision log, a manual reset and the behavioural multiplier around them.

They live in ``sim/`` (not ``risk/``) because ``sim`` may not import the layer above it; the
``risk`` package re-exports them from :mod:`quantum_trading.risk.limits_nb`.

Rules
-----
State bookkeeping, :func:`update_risk_state_nb` (one *equity observation* at a time):
the first observation of a UTC day sets the day's start equity and resets the day's trade count;
the first of a week (Monday 00:00 UTC) sets the week's start equity; the peak is the highest
equity observed. Then, with ``E`` the observed equity:

* ``E ≤ peak·(1 − max_drawdown)`` → **halted** until :func:`reset_risk_state_nb` (a person);
  the caller flattens every position (reduce-only market orders);
* ``E ≤ day_start·(1 − daily_loss)`` → **reducing** until the next UTC day;
* ``E ≤ week_start·(1 − weekly_loss)`` → **reducing** until the next week.

Order checks, :func:`check_order_nb` (a market order of ``q`` units, signed):

1. an order that reduces ``|position|`` without flipping is always approved (even halted);
2. otherwise, halted / reducing, a leverage setting above ``max_leverage`` or the day's trade
   count at ``max_trades_per_day`` block the part that adds risk: a flip is resized to a close,
   anything else is rejected;
3. the position the order leaves is capped (resized toward zero, lot-rounded) so that
   ``|notional| ≤ max_position_frac·m·E``, ``Σ|notional| ≤ max_gross·m·E`` and
   ``|Σ notional| ≤ max_net·m·E`` (``m`` the risk multiplier, notionals at ``prices``);
   nothing left → rejected. Approved orders that add risk count as the day's trades.

Units: sizes in base units, prices in USDT, equity in USDT, times in ns since the epoch (UTC).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from quantum_trading.sim.costs_nb import flex_nb
from quantum_trading.sim.lots_nb import round_lot_nb, trunc_lot_nb
from quantum_trading.sim.records import (
    C_BANKRUPT,
    D_TARGET,
    OT_MARKET,
    P_SIZE,
    Q_DECISION_BAR,
    Q_FLAGS,
    Q_PENDING,
    risk_dt,
)

__all__ = [
    "ACTION_NAMES",
    "REASON_NAMES",
    "REASON_TEXTS",
    "RISK_OFF",
    "RISK_OUT_COLUMNS",
    "TRADING_STATE_NAMES",
    "RiskParams",
    "RiskState",
    "check_order_nb",
    "halt_risk_state_nb",
    "new_risk_state",
    "reset_risk_state_nb",
    "update_risk_state_nb",
]

NS_PER_DAY = 86_400_000_000_000
NO_TRADE_LIMIT = 2**62
_TOL = 1e-9  # relative tolerance of the size caps

# --- codes (the IntEnums of quantum_trading.risk.limits carry the same values) ---------------
TS_ACTIVE = 0
TS_REDUCING = 1
TS_HALTED = 2
TRADING_STATE_NAMES: tuple[str, ...] = ("active", "reducing", "halted")

RD_APPROVE = 0
RD_RESIZE = 1
RD_REJECT = 2
ACTION_NAMES: tuple[str, ...] = ("approve", "resize", "reject")

RR_OK = 0
RR_REDUCES_RISK = 1
RR_MAX_DRAWDOWN = 2
RR_DAILY_LOSS = 3
RR_WEEKLY_LOSS = 4
RR_MAX_LEVERAGE = 5
RR_MAX_TRADES = 6
RR_MAX_POSITION = 7
RR_MAX_GROSS = 8
RR_MAX_NET = 9
RR_DRAWDOWN_FLATTEN = 10
RR_MANUAL_HALT = 11
REASON_NAMES: tuple[str, ...] = (
    "ok", "reduces_risk", "max_drawdown", "daily_loss", "weekly_loss", "max_leverage",
    "max_trades_per_day", "max_position", "max_gross_exposure", "max_net_exposure",
    "drawdown_flatten", "manual_halt",
)
REASON_TEXTS: tuple[str, ...] = (
    "within every limit",
    "reduces |position|: always allowed",
    "halted: drawdown from the peak reached max_drawdown_pct; reduce-only until reset()",
    "reducing: daily loss reached daily_loss_limit_pct; reduce-only until the next UTC day",
    "reducing: weekly loss reached weekly_loss_limit_pct; reduce-only until next Monday UTC",
    "the account leverage setting is above max_leverage",
    "the day's trades reached max_trades_per_day",
    "position notional above max_position_frac x equity x risk multiplier",
    "gross exposure above max_gross_exposure x equity x risk multiplier",
    "net exposure above max_net_exposure x equity x risk multiplier",
    "flatten: drawdown limit hit, reduce-only market order closing the position",
    "halted by a person; reduce-only until reset()",
)

# --- RiskState layout ---------------------------------------------------------------------------
RA_DAY_START = 0  # equity at the first observation of the UTC day
RA_WEEK_START = 1  # equity at the first observation of the week (Monday 00:00 UTC)
RA_PEAK = 2  # highest equity observed (since the start or the last reset)
RA_MULT = 3  # behavioural risk multiplier in [0, 1]
RA_EQUITY = 4  # last equity observed
RA_OPEN_EQ = 5  # equity at this bar's open observation (NaN if none), for the outputs
N_RACCT = 6

RI_ENABLED = 0
RI_STARTED = 1  # 1 after the first observation
RI_STATE = 2  # TS_*
RI_REASON = 3  # RR_* reason of the state (RR_OK when active)
RI_DAY = 4  # UTC day index of the last observation (days since 1970-01-01)
RI_WEEK = 5  # week index (weeks starting Monday)
RI_TRADES = 6  # approved orders that added risk this UTC day
RI_DAILY_LOCK = 7  # 1 while the daily loss lock holds
RI_WEEKLY_LOCK = 8
RI_HALTED = 9  # 0, or the halt's reason (RR_MAX_DRAWDOWN, RR_MANUAL_HALT)
RI_N_DECISIONS = 10  # decision records written (simulator)
N_RINT = 11

RO_STATE = 0
RO_REASON = 1
RO_EQUITY_OPEN = 2
RO_DAY_START = 3
RO_WEEK_START = 4
RO_PEAK = 5
RO_TRADES = 6
RO_MULT = 7
N_ROUT = 8
RISK_OUT_COLUMNS: tuple[str, ...] = (
    "trading_state", "lock_reason", "equity_open_usd", "day_start_equity_usd",
    "week_start_equity_usd", "peak_equity_usd", "trades_today", "risk_multiplier",
)


class RiskParams(NamedTuple):
    """Risk limits as kernel parameters (fractions, not percent; ``inf`` = no limit).

    ``bar_open_ns``: bar open times (int64 ns, UTC) for the simulator, ``[T]`` or ``[1]`` (a
    one-bar step writes its time into row 0); unused by :func:`check_order_nb` and
    :func:`update_risk_state_nb`, which take the time as an argument.
    """

    enabled: int
    max_position_frac: float
    max_leverage: float
    max_gross_exposure: float
    max_net_exposure: float
    max_trades_per_day: int
    daily_loss_frac: float
    weekly_loss_frac: float
    max_drawdown_frac: float
    bar_open_ns: np.ndarray


class RiskState(NamedTuple):
    """Mutable risk state (columns ``RA_*``, ``RI_*``, ``RO_*`` of this module).

    ``forced``: 1 for a drawdown flatten order pending (it skips the checks once);
    ``proj`` / ``prices``: per-open scratch (positions after the orders checked so far, the
    opens); ``decisions``: :data:`~quantum_trading.sim.records.risk_dt` records; ``out``:
    ``[T, N_ROUT]`` per-bar outputs.
    """

    acct: np.ndarray  # [N_RACCT] float64
    ints: np.ndarray  # [N_RINT] int64
    forced: np.ndarray  # [N] int64
    proj: np.ndarray  # [N] float64
    prices: np.ndarray  # [N] float64
    decisions: np.ndarray  # risk_dt records
    out: np.ndarray  # [T, N_ROUT] float64


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


RISK_OFF = RiskParams(enabled=0, max_position_frac=np.inf, max_leverage=np.inf,
                      max_gross_exposure=np.inf, max_net_exposure=np.inf,
                      max_trades_per_day=NO_TRADE_LIMIT, daily_loss_frac=np.inf,
                      weekly_loss_frac=np.inf, max_drawdown_frac=np.inf,
                      bar_open_ns=_readonly(np.zeros(1, dtype=np.int64)))
"""Parameters of a simulation without risk checks (the default of ``SimParams.risk``)."""


def new_risk_state(n_assets: int, *, enabled: bool, n_bars: int = 1, capacity: int = 0,
                   multiplier: float = 1.0) -> RiskState:
    """A fresh risk state: active, no observation yet, multiplier ``multiplier``.

    ``capacity`` decision records and ``n_bars`` output rows (a disabled state keeps both
    minimal: the kernels never touch them).
    """
    acct = np.full(N_RACCT, np.nan)
    acct[RA_MULT] = multiplier
    ints = np.zeros(N_RINT, dtype=np.int64)
    ints[RI_ENABLED] = int(enabled)
    n = int(n_assets)
    return RiskState(acct=acct, ints=ints, forced=np.zeros(n, dtype=np.int64),
                     proj=np.zeros(n), prices=np.zeros(n),
                     decisions=np.empty(max(int(capacity), 0), dtype=risk_dt),
                     out=np.full((max(int(n_bars), 1), N_ROUT), np.nan))


# --- the rules -----------------------------------------------------------------------------------
@njit(cache=True, _nrt=False)
def _refresh_state_nb(rs) -> None:
    ints = rs.ints
    if ints[RI_HALTED] != 0:
        ints[RI_STATE] = TS_HALTED
        ints[RI_REASON] = ints[RI_HALTED]
    elif ints[RI_WEEKLY_LOCK] != 0:
        ints[RI_STATE] = TS_REDUCING
        ints[RI_REASON] = RR_WEEKLY_LOSS
    elif ints[RI_DAILY_LOCK] != 0:
        ints[RI_STATE] = TS_REDUCING
        ints[RI_REASON] = RR_DAILY_LOSS
    else:
        ints[RI_STATE] = TS_ACTIVE
        ints[RI_REASON] = RR_OK


@njit(cache=True, _nrt=False)
def update_risk_state_nb(rs, rp, time_ns: int, equity: float) -> int:
    """Observe ``equity`` (USDT) at ``time_ns``; roll day/week, move the peak, apply the locks.

    Observations must come in time order. Observing the same ``(time_ns, equity)`` twice
    changes nothing. Returns 1 when this observation halted the account (drawdown limit):
    the caller must flatten every position; else 0.
    """
    a = rs.acct
    s = rs.ints
    day = time_ns // NS_PER_DAY
    week = (day + 3) // 7  # 1970-01-01 was a Thursday: weeks start on Mondays
    if s[RI_STARTED] == 0:
        s[RI_STARTED] = 1
        s[RI_DAY] = day
        s[RI_WEEK] = week
        a[RA_DAY_START] = equity
        a[RA_WEEK_START] = equity
        a[RA_PEAK] = equity
    if day != s[RI_DAY]:
        s[RI_DAY] = day
        s[RI_TRADES] = 0
        s[RI_DAILY_LOCK] = 0
        a[RA_DAY_START] = equity
    if week != s[RI_WEEK]:
        s[RI_WEEK] = week
        s[RI_WEEKLY_LOCK] = 0
        a[RA_WEEK_START] = equity
    if equity > a[RA_PEAK]:
        a[RA_PEAK] = equity
    a[RA_EQUITY] = equity
    newly = 0
    if s[RI_HALTED] == 0 and equity <= a[RA_PEAK] * (1.0 - rp.max_drawdown_frac):
        s[RI_HALTED] = RR_MAX_DRAWDOWN
        newly = 1
    if s[RI_DAILY_LOCK] == 0 and equity <= a[RA_DAY_START] * (1.0 - rp.daily_loss_frac):
        s[RI_DAILY_LOCK] = 1
    if s[RI_WEEKLY_LOCK] == 0 and equity <= a[RA_WEEK_START] * (1.0 - rp.weekly_loss_frac):
        s[RI_WEEKLY_LOCK] = 1
    _refresh_state_nb(rs)
    return newly


@njit(cache=True, _nrt=False)
def reset_risk_state_nb(rs) -> None:
    """Manual reset: clear the halt and both loss locks; peak, day and week start equity
    restart from the last equity observed (so the same loss does not lock again)."""
    s = rs.ints
    s[RI_HALTED] = 0
    s[RI_DAILY_LOCK] = 0
    s[RI_WEEKLY_LOCK] = 0
    if s[RI_STARTED] != 0:
        e = rs.acct[RA_EQUITY]
        rs.acct[RA_PEAK] = e
        rs.acct[RA_DAY_START] = e
        rs.acct[RA_WEEK_START] = e
    _refresh_state_nb(rs)


@njit(cache=True, _nrt=False)
def halt_risk_state_nb(rs, reason: int) -> int:
    """Halt now (kill switch) with ``reason``; returns 1 if it was not halted before."""
    if rs.ints[RI_HALTED] != 0:
        return 0
    rs.ints[RI_HALTED] = reason
    _refresh_state_nb(rs)
    return 1


@njit(cache=True, _nrt=False)
def check_order_nb(rs, rp, i: int, q: float, positions: np.ndarray, prices: np.ndarray,
                   equity: float, leverage: float, lot: float):
    """Decide on a market order of ``q`` units (signed) of asset ``i``.

    Parameters
    ----------
    rs, rp:
        :class:`RiskState` (its trade count is updated) and :class:`RiskParams`.
    positions, prices:
        ``[N]`` signed positions before the order and the prices to value them at (USDT).
    equity:
        Equity (USDT) the limits are measured against.
    leverage, lot:
        The account's leverage setting for the asset (×) and its lot size (0 = none).

    Returns
    -------
    (action, approved_q, reason):
        ``RD_APPROVE`` (``approved_q == q``), ``RD_RESIZE`` (``|approved_q| < |q|``, lot-rounded)
        or ``RD_REJECT`` (``approved_q == 0``), and the ``RR_*`` reason.
    """
    if q == 0.0:
        return RD_APPROVE, 0.0, RR_OK
    cur = positions[i]
    u = cur + q
    if cur != 0.0 and (q > 0.0) != (cur > 0.0) and abs(q) <= abs(cur):
        return RD_APPROVE, q, RR_REDUCES_RISK
    flip = cur != 0.0 and (u > 0.0) != (cur > 0.0)
    block = RR_OK
    if rs.ints[RI_STATE] != TS_ACTIVE:
        block = rs.ints[RI_REASON]
    elif leverage > rp.max_leverage:
        block = RR_MAX_LEVERAGE
    elif rs.ints[RI_TRADES] >= rp.max_trades_per_day:
        block = RR_MAX_TRADES
    if block != RR_OK:
        if flip:
            return RD_RESIZE, -cur, block
        return RD_REJECT, 0.0, block
    # caps on the position the order leaves (units of asset i, absolute)
    p = prices[i]
    scale = rs.acct[RA_MULT] * equity
    if scale < 0.0:
        scale = 0.0
    cap = rp.max_position_frac * scale / p
    reason = RR_MAX_POSITION
    if rp.max_gross_exposure < np.inf or rp.max_net_exposure < np.inf:
        gross = 0.0
        net = 0.0
        for j in range(positions.shape[0]):
            if j != i:
                gross += abs(positions[j]) * prices[j]
                net += positions[j] * prices[j]
        c = (rp.max_gross_exposure * scale - gross) / p
        if c < cap:
            cap = c
            reason = RR_MAX_GROSS
        limit = rp.max_net_exposure * scale
        c = (limit - net) / p if u > 0.0 else (limit + net) / p
        if c < cap:
            cap = c
            reason = RR_MAX_NET
    if cap < 0.0:
        cap = 0.0
    if abs(u) <= cap * (1.0 + _TOL):
        rs.ints[RI_TRADES] += 1
        return RD_APPROVE, q, RR_OK
    na = trunc_lot_nb(cap, lot)
    if not flip and na <= abs(cur):
        return RD_REJECT, 0.0, reason
    ua = na if u > 0.0 else -na
    qa = -cur if ua == 0.0 else round_lot_nb(ua - cur, lot)
    if qa == 0.0:
        return RD_REJECT, 0.0, reason
    if ua != 0.0:
        rs.ints[RI_TRADES] += 1
    return RD_RESIZE, qa, reason


# --- simulator glue (called from step_nb / fill_pending_nb when params.risk.enabled) ---------------
@njit(cache=True, _nrt=False)
def _record_nb(rs, t: int, i: int, at_close: int, action: int, reason: int, q: float,
               qa: float, cur: float, price: float, equity: float) -> None:
    k = rs.ints[RI_N_DECISIONS]
    rec = rs.decisions[k]
    rec["bar"] = t
    rec["asset"] = i
    rec["at_close"] = at_close
    rec["action"] = action
    rec["reason"] = reason
    rec["trading_state"] = rs.ints[RI_STATE]
    rec["requested_size"] = q
    rec["approved_size"] = qa
    rec["position_before"] = cur
    rec["price"] = price
    rec["equity_usd"] = equity
    rs.ints[RI_N_DECISIONS] = k + 1


@njit(cache=True, _nrt=False)
def _flatten_nb(state, t: int, at_close: int, prices: np.ndarray, equity: float) -> None:
    """Make a reduce-only market order closing every position pending for the next fill."""
    rs = state.risk
    for i in range(state.pos.shape[0]):
        s = state.pos[i, P_SIZE]
        if s == 0.0:
            continue
        state.posi[i, Q_PENDING] = OT_MARKET
        state.posi[i, Q_DECISION_BAR] = t
        state.posi[i, Q_FLAGS] = 0
        state.pend[i, D_TARGET] = 0.0
        rs.forced[i] = 1
        _record_nb(rs, t, i, at_close, RD_APPROVE, RR_DRAWDOWN_FLATTEN, -s, -s, s, prices[i],
                   equity)


@njit(cache=True, _nrt=False)
def _bar_time_nb(rp, t: int) -> int:
    return rp.bar_open_ns[t if rp.bar_open_ns.shape[0] > 1 else 0]


@njit(cache=True, _nrt=False)
def risk_open_nb(state, params, bars, t: int, equity: float) -> bool:
    """At bar ``t``'s open, after funding, before market orders: observe the equity, set up
    the order checks, and flatten at this open if the drawdown limit is hit now.

    Returns True when flatten orders were made pending.
    """
    rs = state.risk
    rs.acct[RA_OPEN_EQ] = equity
    for j in range(state.pos.shape[0]):
        rs.prices[j] = flex_nb(bars.open, t, j)
        rs.proj[j] = state.pos[j, P_SIZE]
    if update_risk_state_nb(rs, params.risk, _bar_time_nb(params.risk, t), equity) == 0:
        return False
    _flatten_nb(state, t, 0, rs.prices, equity)
    return True


@njit(cache=True, _nrt=False)
def risk_check_nb(state, params, t: int, i: int, q: float, equity: float) -> float:
    """Check (and record) the market order ``q`` of asset ``i`` at bar ``t``'s open.

    Returns the approved size (0 = rejected). A pending flatten order passes unchecked (it
    was recorded when it was made). Later checks at this open see the positions this order
    leaves.
    """
    rs = state.risk
    cur = rs.proj[i]
    if rs.forced[i] != 0:
        rs.forced[i] = 0
        rs.proj[i] = cur + q
        return q
    action, qa, reason = check_order_nb(rs, params.risk, i, q, rs.proj, rs.prices, equity,
                                        params.leverage[i], params.lot_size[i])
    _record_nb(rs, t, i, 0, action, reason, q, qa, cur, rs.prices[i], equity)
    if qa != 0.0:
        rs.proj[i] = 0.0 if qa == -cur else cur + qa
    return qa


@njit(cache=True, _nrt=False)
def risk_after_fill_nb(state) -> None:
    """Clear flatten flags left after this open's fills (nothing skips a check later)."""
    for i in range(state.risk.forced.shape[0]):
        state.risk.forced[i] = 0


@njit(cache=True, _nrt=False)
def risk_close_nb(state, params, bars, t: int, equity: float) -> None:
    """At bar ``t``'s close, after the strategy's decision: observe the equity (drawdown →
    flatten orders for the next open, replacing the decision), write the per-bar outputs."""
    rs = state.risk
    if state.counters[C_BANKRUPT] == 0:
        if update_risk_state_nb(rs, params.risk, _bar_time_nb(params.risk, t), equity) != 0:
            for j in range(state.pos.shape[0]):
                rs.prices[j] = flex_nb(bars.close, t, j)
            _flatten_nb(state, t, 1, rs.prices, equity)
    out = rs.out
    a = rs.acct
    out[t, RO_STATE] = rs.ints[RI_STATE]
    out[t, RO_REASON] = rs.ints[RI_REASON]
    out[t, RO_EQUITY_OPEN] = a[RA_OPEN_EQ]
    out[t, RO_DAY_START] = a[RA_DAY_START]
    out[t, RO_WEEK_START] = a[RA_WEEK_START]
    out[t, RO_PEAK] = a[RA_PEAK]
    out[t, RO_TRADES] = rs.ints[RI_TRADES]
    out[t, RO_MULT] = a[RA_MULT]
    a[RA_OPEN_EQ] = np.nan
