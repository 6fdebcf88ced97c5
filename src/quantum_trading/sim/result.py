"""Simulation results as pandas objects (and the raw kernel records underneath).

Signs and identities (all USDT, cumulative from the start):

* ``equity = cash + unrealised PnL`` at every close;
* ``equity = initial + realized_pnl − fees − funding − liquidation_fee + insurance +
  unrealised PnL``, where ``realized_pnl`` is measured on fill prices (so spread, slippage and
  impact — reported in their own columns — are inside it), ``funding`` is what was *paid*
  (negative when received) and ``insurance`` is the loss beyond zero equity that the
  insurance fund absorbed (equity is floored at 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from quantum_trading.domain import (
    CapFlag,
    ExitReason,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Side,
    Trade,
)
from quantum_trading.sim.accounting_nb import open_trades_nb
from quantum_trading.sim.records import (
    A_CASH,
    A_EQUITY,
    C_BANKRUPT,
    C_BANKRUPT_BAR,
    C_FILLS,
    C_ORDERS,
    C_TRADES,
    COST_COLUMNS,
    risk_dt,
    trade_dt,
)
from quantum_trading.sim.risk_nb import (
    ACTION_NAMES,
    REASON_NAMES,
    REASON_TEXTS,
    RI_ENABLED,
    RI_N_DECISIONS,
    RISK_OUT_COLUMNS,
    RO_REASON,
    RO_STATE,
    TRADING_STATE_NAMES,
)
from quantum_trading.sim.state import SimState

__all__ = ["SimResult", "build_result"]

_OT_NAMES = np.array([m.name.lower() for m in OrderType], dtype=object)
_EXIT_NAMES = np.array([m.name.lower() for m in ExitReason], dtype=object)
_STATUS_NAMES = np.array([m.name.lower() for m in OrderStatus], dtype=object)
_ACTION_NAMES = np.array(ACTION_NAMES, dtype=object)
_REASON_NAMES = np.array(REASON_NAMES, dtype=object)
_REASON_TEXTS = np.array(REASON_TEXTS, dtype=object)
_STATE_NAMES = np.array(TRADING_STATE_NAMES, dtype=object)


@dataclass(frozen=True)
class SimResult:
    """What a simulation produced, labelled with times and symbols.

    Per-bar series are valued at each bar's close. ``fills``, ``orders`` and ``trades`` have
    one row per record (``time`` = bar open time of the event; trades still open at the end
    have ``exit_reason == "open"`` and are valued at the last close). ``records`` holds the
    raw structured arrays (dtypes in :mod:`quantum_trading.sim.records`).

    With risk limits: ``risk_decisions`` has one row per decision (``time`` = open time of the
    bar; ``at`` = ``"open"`` for an order checked at that open, ``"close"`` for a drawdown
    flatten decided at that bar's close; ``action`` approve / resize / reject; ``reason``
    and ``reason_text``; ``trading_state`` when decided; signed ``requested_size`` and
    ``approved_size``); ``risk_state`` has one row per bar, as of its close
    (``trading_state`` active / reducing / halted, ``lock_reason``, ``equity_open_usd``,
    day / week start and peak equity, ``trades_today``, ``risk_multiplier``). Without risk
    limits ``risk_decisions`` is empty and ``risk_state`` is None.
    """

    symbols: tuple[str, ...]
    index: pd.Index
    initial_cash_usd: float
    equity: pd.Series
    cash: pd.Series
    positions: pd.DataFrame
    margin_ratio: pd.Series
    costs: pd.DataFrame
    fills: pd.DataFrame
    orders: pd.DataFrame
    trades: pd.DataFrame
    totals: dict[str, float]
    per_asset: pd.DataFrame
    bankrupt_time: pd.Timestamp | None
    notes: tuple[str, ...] = ()
    records: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    risk_decisions: pd.DataFrame = field(default_factory=lambda: _empty_risk_frame(), repr=False)
    risk_state: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def trading_state(self) -> pd.Series | None:
        """Risk trading state at each bar's close (``"active"``, ``"reducing"``,
        ``"halted"``); None without risk limits."""
        return None if self.risk_state is None else self.risk_state["trading_state"]

    @property
    def final_equity_usd(self) -> float:
        """Equity at the last close."""
        return float(self.equity.iloc[-1]) if len(self.equity) else self.initial_cash_usd

    @property
    def bankrupt(self) -> bool:
        """Whether equity reached 0 (no trading after that)."""
        return self.bankrupt_time is not None

    def fill_list(self) -> list[Fill]:
        """Fills as :class:`~quantum_trading.domain.Fill` objects."""
        return [
            Fill(time=r.time, symbol=r.symbol, side=Side(r.side),
                 order_type=OrderType[r.order_type.upper()], size=r.size, price=r.price,
                 ref_price=r.ref_price, fee_usd=r.fee_usd, spread_usd=r.spread_usd,
                 slippage_usd=r.slippage_usd, impact_usd=r.impact_usd,
                 liquidation_fee_usd=r.liquidation_fee_usd, realized_pnl_usd=r.realized_pnl_usd)
            for r in self.fills.itertuples(index=False)
        ]

    def order_list(self) -> list[Order]:
        """Orders as :class:`~quantum_trading.domain.Order` objects."""
        return [
            Order(time=r.time, decision_time=r.decision_time, symbol=r.symbol,
                  order_type=OrderType[r.order_type.upper()],
                  status=OrderStatus[r.status.upper()], cap_flags=CapFlag(int(r.cap_flags)),
                  target_frac=r.target_frac, equity_usd=r.equity_usd,
                  requested_size=r.requested_size, filled_size=r.filled_size, price=r.price)
            for r in self.orders.itertuples(index=False)
        ]

    def trade_list(self) -> list[Trade]:
        """Trades as :class:`~quantum_trading.domain.Trade` objects."""
        return [
            Trade(symbol=r.symbol, direction=Side(r.direction), entry_time=r.entry_time,
                  exit_time=r.exit_time, entry_price=r.entry_price, exit_price=r.exit_price,
                  size=r.size, pnl_usd=r.pnl_usd, gross_pnl_usd=r.gross_pnl_usd,
                  fees_usd=r.fees_usd, funding_usd=r.funding_usd, costs_usd=r.costs_usd,
                  liquidation_fee_usd=r.liquidation_fee_usd,
                  exit_reason=ExitReason[r.exit_reason.upper()])
            for r in self.trades.itertuples(index=False)
        ]


def _records_frame(rec: np.ndarray, index: pd.Index, symbols: np.ndarray,
                   time_cols: dict[str, str]) -> pd.DataFrame:
    data: dict[str, object] = {}
    for src, dst in time_cols.items():
        data[dst] = index[rec[src]]
    data["symbol"] = symbols[rec["asset"]]
    for name in rec.dtype.names:
        data[name] = rec[name]
    return pd.DataFrame(data)


def _risk_frame(rec: np.ndarray, index: pd.Index, symbols: np.ndarray) -> pd.DataFrame:
    df = _records_frame(rec, index, symbols, {"bar": "time"})
    df.insert(2, "at", np.where(rec["at_close"] == 1, "close", "open").astype(object))
    df["action"] = _ACTION_NAMES[rec["action"]]
    df["reason"] = _REASON_NAMES[rec["reason"]]
    df["trading_state"] = _STATE_NAMES[rec["trading_state"]]
    df["reason_text"] = _REASON_TEXTS[rec["reason"]]
    return df.drop(columns=["at_close"])


def _empty_risk_frame() -> pd.DataFrame:
    return _risk_frame(np.zeros(0, dtype=risk_dt), pd.RangeIndex(0),
                       np.array([], dtype=object))


def _risk_state_frame(out: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """Per-bar risk outputs; the state and its reason as categoricals (cheap on 1e6 bars)."""
    cols: dict[str, object] = {name: out[:, k] for k, name in enumerate(RISK_OUT_COLUMNS)}
    cols["trading_state"] = pd.Categorical.from_codes(out[:, RO_STATE].astype(np.int64),
                                                      categories=list(TRADING_STATE_NAMES))
    cols["lock_reason"] = pd.Categorical.from_codes(out[:, RO_REASON].astype(np.int64),
                                                    categories=list(REASON_NAMES))
    cols["trades_today"] = out[:, RISK_OUT_COLUMNS.index("trades_today")].astype(np.int64)
    return pd.DataFrame(cols, index=index)


def build_result(state: SimState, *, symbols: tuple[str, ...], index: pd.Index,
                 initial_cash_usd: float, notes: tuple[str, ...] = (),
                 copy: bool = True) -> SimResult:
    """Wrap the state after ``len(index)`` steps into a :class:`SimResult`.

    ``copy=False`` shares the per-bar arrays with ``state`` (for a state that is not stepped
    any more, as in :func:`~quantum_trading.sim.simulate`).
    """
    n_bars = len(index)

    def view(a: np.ndarray) -> np.ndarray:
        return a[:n_bars].copy() if copy else a[:n_bars]

    sym = np.array(symbols, dtype=object)
    fills = state.fills[: state.counters[C_FILLS]].copy()
    orders = state.orders[: state.counters[C_ORDERS]].copy()
    open_rec = np.zeros(len(symbols), dtype=trade_dt)
    m = open_trades_nb(state, n_bars - 1, open_rec)
    trades = np.concatenate([state.trades[: state.counters[C_TRADES]], open_rec[:m]])

    fills_df = _records_frame(fills, index, sym, {"bar": "time"})
    fills_df["order_type"] = _OT_NAMES[fills["order_type"]]
    orders_df = _records_frame(orders, index, sym, {"bar": "time", "decision_bar": "decision_time"})
    orders_df["order_type"] = _OT_NAMES[orders["order_type"]]
    orders_df["status"] = _STATUS_NAMES[orders["status"]]
    trades_df = _records_frame(trades, index, sym, {"entry_bar": "entry_time", "exit_bar": "exit_time"})
    trades_df["exit_reason"] = _EXIT_NAMES[trades["exit_reason"]]

    costs = pd.DataFrame(view(state.out_cum), index=index, columns=list(COST_COLUMNS), copy=False)
    totals = {name: float(state.out_cum[n_bars - 1, k]) if n_bars else 0.0
              for k, name in enumerate(COST_COLUMNS)}
    upnl = float(state.acct[A_EQUITY] - state.acct[A_CASH])
    totals.update(initial_cash_usd=float(initial_cash_usd), final_cash_usd=float(state.acct[A_CASH]),
                  final_equity_usd=float(state.acct[A_EQUITY]), unrealized_pnl_usd=upnl)
    bankrupt_time = index[int(state.counters[C_BANKRUPT_BAR])] if state.counters[C_BANKRUPT] else None
    records = {"fills": fills, "orders": orders, "trades": trades}
    risk_kwargs: dict[str, object] = {}
    rs = state.risk
    if rs.ints[RI_ENABLED]:
        decisions = rs.decisions[: rs.ints[RI_N_DECISIONS]].copy()
        records["risk_decisions"] = decisions
        risk_kwargs = {"risk_decisions": _risk_frame(decisions, index, sym),
                       "risk_state": _risk_state_frame(rs.out[:n_bars].copy(), index)}
    return SimResult(
        symbols=symbols,
        index=index,
        initial_cash_usd=float(initial_cash_usd),
        equity=pd.Series(view(state.out_equity), index=index, name="equity_usd", copy=False),
        cash=pd.Series(view(state.out_cash), index=index, name="cash_usd", copy=False),
        positions=pd.DataFrame(view(state.out_positions), index=index, columns=list(symbols),
                               copy=False),
        margin_ratio=pd.Series(view(state.out_margin_ratio), index=index, name="margin_ratio",
                               copy=False),
        costs=costs,
        fills=fills_df,
        orders=orders_df,
        trades=trades_df,
        totals=totals,
        per_asset=pd.DataFrame(state.asset_totals.copy(), index=list(symbols),
                               columns=list(COST_COLUMNS)),
        bankrupt_time=bankrupt_time,
        notes=notes,
        records=records,
        **risk_kwargs,  # type: ignore[arg-type]
    )
