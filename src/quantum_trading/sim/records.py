"""Record dtypes and state layout of the simulator kernels.

The kernels write fills, orders and trades into preallocated structured arrays of the
dtypes below (vectorbt's style), and keep their running state in small numpy arrays whose
columns are named by the integer constants here. Codes (order type, status, exit reason,
cap flags) are the values of the enums in :mod:`quantum_trading.domain`.

Units: sizes in base units, prices in USDT, money in USDT (``_usd``), bars as 0-based
positions in the bar index.
"""

from __future__ import annotations

import numpy as np

from quantum_trading.domain import CapFlag, ExitReason, OrderStatus, OrderType

__all__ = [
    "COST_COLUMNS",
    "TOT_FEES",
    "TOT_FUNDING",
    "TOT_IMPACT",
    "TOT_INSURANCE",
    "TOT_LIQ_FEE",
    "TOT_REALIZED",
    "TOT_SLIPPAGE",
    "TOT_SPREAD",
    "fill_dt",
    "order_dt",
    "risk_dt",
    "trade_dt",
]

# --- record dtypes ---------------------------------------------------------------------
fill_dt = np.dtype(
    [
        ("bar", np.int64),
        ("asset", np.int64),
        ("order_type", np.int64),  # OrderType
        ("side", np.int64),  # +1 buy, -1 sell
        ("size", np.float64),  # absolute base units
        ("price", np.float64),  # fill price, costs included
        ("ref_price", np.float64),  # price before spread/slippage/impact (open, stop level, ...)
        ("notional_usd", np.float64),  # size * price
        ("fee_usd", np.float64),
        ("spread_usd", np.float64),
        ("slippage_usd", np.float64),
        ("impact_usd", np.float64),
        ("liquidation_fee_usd", np.float64),
        ("realized_pnl_usd", np.float64),  # price PnL of the closed part, at fill prices
        ("position_after", np.float64),  # signed size after the fill
        ("cash_after_usd", np.float64),  # wallet balance after the fill
    ],
    align=True,
)
"""One execution (market, stop, take-profit, trailing, time stop, liquidation, bankruptcy)."""

order_dt = np.dtype(
    [
        ("bar", np.int64),  # fill bar (the open it was processed at)
        ("decision_bar", np.int64),  # bar whose close produced it
        ("asset", np.int64),
        ("order_type", np.int64),  # MARKET or TIME_STOP
        ("status", np.int64),  # OrderStatus
        ("cap_flags", np.int64),  # CapFlag bits
        ("target_frac", np.float64),  # target after leverage/short caps (multiple of equity)
        ("equity_usd", np.float64),  # equity at the open used for sizing
        ("requested_size", np.float64),  # signed units asked before margin caps
        ("filled_size", np.float64),  # signed units filled
        ("price", np.float64),  # fill price (NaN if not filled)
    ],
    align=True,
)
"""One market order processed at a bar's open (filled, capped or skipped)."""

trade_dt = np.dtype(
    [
        ("asset", np.int64),
        ("direction", np.int64),  # +1 long, -1 short
        ("entry_bar", np.int64),
        ("exit_bar", np.int64),
        ("entry_price", np.float64),  # size-weighted average of opening fills
        ("exit_price", np.float64),  # size-weighted average of closing fills (last close if open)
        ("size", np.float64),  # largest absolute size held
        ("entry_size", np.float64),  # total units opened (scale-ins included)
        ("gross_pnl_usd", np.float64),  # price PnL at fill prices (spread/slippage/impact inside)
        ("fees_usd", np.float64),
        ("funding_usd", np.float64),  # funding paid (+) or received (-)
        ("costs_usd", np.float64),  # spread + slippage + impact (already inside gross PnL)
        ("liquidation_fee_usd", np.float64),
        ("pnl_usd", np.float64),  # gross - fees - funding - liquidation fee
        ("exit_reason", np.int64),  # ExitReason
        ("is_open", np.int64),  # 1 for a position still open at the last bar
    ],
    align=True,
)
"""One position lifecycle, flat to flat."""

risk_dt = np.dtype(
    [
        ("bar", np.int64),  # bar of the decision (its open, or its close when at_close = 1)
        ("asset", np.int64),
        ("at_close", np.int64),  # 0: at the bar's open (order checks), 1: at its close
        ("action", np.int64),  # RD_APPROVE / RD_RESIZE / RD_REJECT (sim/risk_nb.py)
        ("reason", np.int64),  # RR_* reason code (sim/risk_nb.py)
        ("trading_state", np.int64),  # TS_* trading state when decided
        ("requested_size", np.float64),  # signed order units asked
        ("approved_size", np.float64),  # signed order units allowed (0 = rejected)
        ("position_before", np.float64),  # signed position when decided
        ("price", np.float64),  # price the notional was valued at (open, or close)
        ("equity_usd", np.float64),  # equity the limits were measured against
    ],
    align=True,
)
"""One risk decision: a market order checked at an open, or a drawdown flatten order."""

# --- codes as plain ints (numba reads module globals as constants) ------------------------
OT_NONE = -1
OT_MARKET = int(OrderType.MARKET)
OT_STOP_LOSS = int(OrderType.STOP_LOSS)
OT_TAKE_PROFIT = int(OrderType.TAKE_PROFIT)
OT_TRAILING = int(OrderType.TRAILING_STOP)
OT_TIME_STOP = int(OrderType.TIME_STOP)
OT_LIQUIDATION = int(OrderType.LIQUIDATION)
OT_BANKRUPTCY = int(OrderType.BANKRUPTCY)

ST_FILLED = int(OrderStatus.FILLED)
ST_NO_CHANGE = int(OrderStatus.NO_CHANGE)
ST_MIN_NOTIONAL = int(OrderStatus.SKIPPED_MIN_NOTIONAL)
ST_MARGIN = int(OrderStatus.SKIPPED_MARGIN)

CAP_LEVERAGE = int(CapFlag.LEVERAGE)
CAP_TIER = int(CapFlag.TIER)
CAP_MARGIN = int(CapFlag.MARGIN)
CAP_SHORT = int(CapFlag.SHORT)

EXIT_OPEN = int(ExitReason.OPEN)

MODE_CROSS = 0
MODE_ISOLATED = 1
REBAL_ON_CHANGE = 0
REBAL_EVERY_BAR = 1
REVERSAL_NET = 0  # AccountConfig.reversal_sizing = "net"
REVERSAL_AFTER_CLOSE = 1  # "after_close"

# --- account scalars: state.acct[...] -------------------------------------------------------
A_CASH = 0  # wallet balance (USDT): initial + realised - fees - funding - liq fees + insurance
A_REALIZED = 1  # cumulative price PnL of closed size, at fill prices
A_FEES = 2  # cumulative trading fees (>= 0)
A_SPREAD = 3  # cumulative half-spread cost (inside fill prices)
A_SLIPPAGE = 4  # cumulative slippage cost (inside fill prices)
A_IMPACT = 5  # cumulative market-impact cost (inside fill prices)
A_FUNDING = 6  # cumulative funding paid (+) / received (-)
A_LIQ_FEE = 7  # cumulative liquidation fees
A_INSURANCE = 8  # losses beyond equity covered by the insurance fund (equity floored at 0)
A_EQUITY = 9  # equity at the last close
N_ACCT = 10

N_COST = 8  # acct[A_REALIZED : A_REALIZED + N_COST] are the cumulative columns below
COST_COLUMNS: tuple[str, ...] = (
    "realized_pnl_usd",
    "fees_usd",
    "spread_usd",
    "slippage_usd",
    "impact_usd",
    "funding_usd",
    "liquidation_fee_usd",
    "insurance_usd",
)

# --- per-asset cost totals: state.asset_totals[i, ...] (acct[A_REALIZED:] split by asset) ----
TOT_REALIZED = 0
TOT_FEES = 1
TOT_SPREAD = 2
TOT_SLIPPAGE = 3
TOT_IMPACT = 4
TOT_FUNDING = 5
TOT_LIQ_FEE = 6
TOT_INSURANCE = 7

# --- counters: state.counters[...] ---------------------------------------------------------
C_FILLS = 0
C_ORDERS = 1
C_TRADES = 2
C_BANKRUPT = 3  # 1 once equity reached 0
C_BANKRUPT_BAR = 4  # bar where it happened (-1 if never)
C_NEXT_BAR = 5  # bars stepped so far (next bar to step)
C_SNAPS = 6  # account snapshots written (state.snap_bar / state.snap)
N_COUNTERS = 7

# --- account snapshots: state.snap[k, ...] --------------------------------------------------
# Written at the close of every bar where cash, positions or the cumulative costs changed (a
# fill or a funding settlement), and at the first bar stepped; the per-bar cash, positions and
# cumulative costs of SimResult are these rows carried forward (exact: nothing else changes them).
S_CASH = 0  # wallet balance at the close
S_COST = 1  # snap[k, S_COST : S_COST + N_COST] = acct[A_REALIZED : A_REALIZED + N_COST]
S_POS = 9  # snap[k, S_POS + i] = signed size of asset i at the close (N_SNAP_BASE + N columns)
N_SNAP_BASE = 9

# --- most records one step can write (the kernels stop before a step that might not fit) ----
FILLS_PER_ASSET_STEP = 3  # a reversal's two legs (reversal_sizing="after_close") + one exit
ORDERS_PER_ASSET_STEP = 1
TRADES_PER_ASSET_STEP = 2  # the trade a reversal closes + a stop on the new one
RISK_PER_ASSET_STEP = 3

# --- per-asset position state: state.pos[i, ...] ---------------------------------------------
P_SIZE = 0  # signed base units
P_ENTRY = 1  # average entry price
P_MARGIN = 2  # isolated margin (USDT); initial margin at entry for cross (informational)
P_SL = 3  # stop-loss level (NaN = none)
P_TP = 4  # take-profit level
P_TRAIL_FRAC = 5  # trailing distance as a fraction of the best price
P_TRAIL_DIST = 6  # trailing distance in price units
P_BEST = 7  # best price since entry (high for longs, low for shorts), updated at each close
P_LAST = 8  # last close (mark for unrealised PnL)
P_T_ENTRY_QTY = 9  # trade accumulators
P_T_ENTRY_NOTIONAL = 10
P_T_EXIT_QTY = 11
P_T_EXIT_NOTIONAL = 12
P_T_REALIZED = 13
P_T_FEES = 14
P_T_FUNDING = 15
P_T_COSTS = 16
P_T_LIQ_FEE = 17
P_T_MAX_SIZE = 18
N_POS = 19

Q_ENTRY_BAR = 0  # bar of the opening fill of the current trade
Q_PENDING = 1  # pending order type at the next open (OT_NONE, OT_MARKET, OT_TIME_STOP)
Q_DECISION_BAR = 2
Q_FLAGS = 3  # CapFlag bits of the pending order
N_POSI = 4

# --- pending order values: state.pend[i, ...] (captured at the decision bar) ----------------
D_TARGET = 0
D_SL_FRAC = 1
D_SL_DIST = 2
D_SL_PRICE = 3
D_TP_FRAC = 4
D_TP_DIST = 5
D_TP_PRICE = 6
D_TRAIL_FRAC = 7
D_TRAIL_DIST = 8
N_PEND = 9

# --- per-step scratch: state.work[i, ...] ----------------------------------------------------
W_CLASS = 0  # 0 nothing, 1 reduces exposure, 2 adds exposure
W_UNITS = 1  # desired signed position after the order
W_REQ = 2  # requested signed order size
W_FLAGS = 3
W_PO = 4  # path start (open)
W_PA = 5  # path end (adverse extreme)
W_LAM = 6  # path parameter at which the stop is hit (inf = not this bar)
W_STOP = 7  # the stop level hit
W_STYPE = 8  # OT_STOP_LOSS or OT_TRAILING
W_TYPE = 9  # pending order type being processed
W_Q = 10  # signed order size to execute (W_REQ unless the risk checks resized it)
N_WORK = 11

assert S_POS == S_COST + N_COST == N_SNAP_BASE
assert TOT_INSURANCE == A_INSURANCE - A_REALIZED and TOT_FUNDING == A_FUNDING - A_REALIZED

