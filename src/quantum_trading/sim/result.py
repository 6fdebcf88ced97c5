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
    A_REALIZED,
    C_BANKRUPT,
    C_BANKRUPT_BAR,
    C_FILLS,
    C_ORDERS,
    C_SNAPS,
    C_TRADES,
    COST_COLUMNS,
    N_COST,
    S_CASH,
    S_COST,
    S_POS,
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

    The pandas objects are built on first access and then kept (a sweep that reads only
    ``final_equity_usd`` or ``totals`` never pays for them); the result owns its arrays, so
    later changes to the inputs or to a reused simulator state do not reach it. Read-only.
    """

    __slots__ = ("_arrays", "_cache", "bankrupt_time", "index", "initial_cash_usd", "notes",
                 "records", "symbols", "totals")

    def __init__(self, *, symbols: tuple[str, ...], index: pd.Index, initial_cash_usd: float,
                 arrays: dict[str, np.ndarray], records: dict[str, np.ndarray],
                 totals: dict[str, float], bankrupt_time: pd.Timestamp | None,
                 notes: tuple[str, ...] = ()) -> None:
        self.symbols = symbols
        self.index = index
        self.initial_cash_usd = float(initial_cash_usd)
        self._arrays = arrays
        self.records = records
        self.totals = totals
        self.bankrupt_time = bankrupt_time
        self.notes = notes
        self._cache: dict[str, object] = {}

    def __repr__(self) -> str:
        return (f"SimResult(symbols={self.symbols}, bars={len(self.index)}, "
                f"fills={len(self.records['fills'])}, trades={len(self.records['trades'])}, "
                f"final_equity_usd={self.final_equity_usd:.2f}, bankrupt={self.bankrupt})")

    def _cached(self, name: str, build) -> object:
        value = self._cache.get(name)
        if value is None:
            value = self._cache[name] = build()
        return value

    # -- per bar ------------------------------------------------------------------------------
    @property
    def equity(self) -> pd.Series:
        """Equity (USDT) at each close: cash + unrealised PnL."""
        return self._cached("equity", lambda: pd.Series(
            self._arrays["equity"], index=self.index, name="equity_usd", copy=False))

    @property
    def cash(self) -> pd.Series:
        """Wallet balance (USDT) at each close."""
        return self._cached("cash", lambda: pd.Series(
            self._per_bar(S_CASH, S_CASH + 1)[:, 0], index=self.index, name="cash_usd",
            copy=False))

    @property
    def positions(self) -> pd.DataFrame:
        """Signed size (base units) of each asset at each close."""
        return self._cached("positions", lambda: pd.DataFrame(
            self._per_bar(S_POS, S_POS + len(self.symbols)), index=self.index,
            columns=list(self.symbols), copy=False))

    @property
    def margin_ratio(self) -> pd.Series:
        """Maintenance margin / equity at each close (0 when flat or bankrupt)."""
        return self._cached("margin_ratio", lambda: pd.Series(
            self._arrays["margin_ratio"], index=self.index, name="margin_ratio", copy=False))

    @property
    def costs(self) -> pd.DataFrame:
        """Cumulative realised PnL and costs (USDT) at each close, ``COST_COLUMNS``."""
        return self._cached("costs", lambda: pd.DataFrame(
            self._per_bar(S_COST, S_COST + N_COST), index=self.index,
            columns=list(COST_COLUMNS), copy=False))

    def _per_bar(self, lo: int, hi: int) -> np.ndarray:
        """Snapshot columns ``lo:hi`` carried forward to every bar ``[T, hi − lo]``."""
        return _expand_snapshots(self._arrays["snap_bar"], self._arrays["snap"][:, lo:hi],
                                 len(self.index), self.initial_cash_usd if lo == S_CASH else 0.0)

    # -- records ------------------------------------------------------------------------------
    @property
    def fills(self) -> pd.DataFrame:
        """Every execution: time, symbol, order_type, side, size, price, costs, PnL, ..."""
        def build() -> pd.DataFrame:
            rec = self.records["fills"]
            df = _records_frame(rec, self.index, self._sym, {"bar": "time"})
            df["order_type"] = _OT_NAMES[rec["order_type"]]
            return df
        return self._cached("fills", build)  # type: ignore[return-value]

    @property
    def orders(self) -> pd.DataFrame:
        """Every market order processed: status, cap flags, requested and filled size."""
        def build() -> pd.DataFrame:
            rec = self.records["orders"]
            df = _records_frame(rec, self.index, self._sym,
                                {"bar": "time", "decision_bar": "decision_time"})
            df["order_type"] = _OT_NAMES[rec["order_type"]]
            df["status"] = _STATUS_NAMES[rec["status"]]
            return df
        return self._cached("orders", build)  # type: ignore[return-value]

    @property
    def trades(self) -> pd.DataFrame:
        """Trades flat to flat (still-open ones last, valued at the last close)."""
        def build() -> pd.DataFrame:
            rec = self.records["trades"]
            df = _records_frame(rec, self.index, self._sym,
                                {"entry_bar": "entry_time", "exit_bar": "exit_time"})
            df["exit_reason"] = _EXIT_NAMES[rec["exit_reason"]]
            return df
        return self._cached("trades", build)  # type: ignore[return-value]

    @property
    def per_asset(self) -> pd.DataFrame:
        """Totals per asset (rows = symbols, columns = ``COST_COLUMNS``)."""
        return self._cached("per_asset", lambda: pd.DataFrame(
            self._arrays["asset_totals"], index=list(self.symbols), columns=list(COST_COLUMNS)))

    @property
    def risk_decisions(self) -> pd.DataFrame:
        """One row per risk decision (empty without risk limits)."""
        def build() -> pd.DataFrame:
            rec = self.records.get("risk_decisions")
            if rec is None:
                return _empty_risk_frame()
            return _risk_frame(rec, self.index, self._sym)
        return self._cached("risk_decisions", build)  # type: ignore[return-value]

    @property
    def risk_state(self) -> pd.DataFrame | None:
        """Per-bar risk state at each close; None without risk limits."""
        out = self._arrays.get("risk_out")
        if out is None:
            return None
        return self._cached("risk_state", lambda: _risk_state_frame(out, self.index))  # type: ignore[return-value]

    @property
    def _sym(self) -> np.ndarray:
        return np.array(self.symbols, dtype=object)

    # -- summaries ----------------------------------------------------------------------------
    @property
    def trading_state(self) -> pd.Series | None:
        """Risk trading state at each bar's close (``"active"``, ``"reducing"``,
        ``"halted"``); None without risk limits."""
        rs = self.risk_state
        return None if rs is None else rs["trading_state"]

    @property
    def final_equity_usd(self) -> float:
        """Equity at the last close."""
        eq = self._arrays["equity"]
        return float(eq[-1]) if len(eq) else self.initial_cash_usd

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


def _expand_snapshots(snap_bar: np.ndarray, cols: np.ndarray, n_bars: int,
                      first_value: float) -> np.ndarray:
    """Carry each snapshot row forward to the bars up to the next one; bars before the first
    snapshot get ``first_value`` in column 0 and 0 elsewhere (the initial cash; flat; no
    costs). Exact: between snapshots nothing changes these values."""
    if len(snap_bar) == 0 or snap_bar[0] > 0:
        first = np.zeros((1, cols.shape[1]))
        first[0, 0] = first_value
        cols = np.concatenate([first, cols])
        snap_bar = np.concatenate([[0], snap_bar])
    counts = np.diff(np.append(snap_bar, n_bars))
    out = np.repeat(cols, counts, axis=0)
    out.flags.writeable = False
    return out


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

    ``copy=False`` hands the state's per-bar arrays to the result without copying them (for a
    state that is not stepped or reused any more, as in :func:`~quantum_trading.sim.simulate`);
    records are always copied. The pandas objects are built on first access.
    """
    n_bars = len(index)

    def view(a: np.ndarray) -> np.ndarray:
        out = a[:n_bars].copy() if copy else a[:n_bars]
        out.flags.writeable = False
        return out

    fills = state.fills[: state.counters[C_FILLS]].copy()
    orders = state.orders[: state.counters[C_ORDERS]].copy()
    open_rec = np.zeros(len(symbols), dtype=trade_dt)
    m = open_trades_nb(state, n_bars - 1, open_rec)
    trades = np.concatenate([state.trades[: state.counters[C_TRADES]], open_rec[:m]])
    n_snaps = int(state.counters[C_SNAPS])
    arrays: dict[str, np.ndarray] = {
        "equity": view(state.out_equity),
        "margin_ratio": view(state.out_margin_ratio),
        "snap_bar": state.snap_bar[:n_snaps].copy(),
        "snap": state.snap[:n_snaps].copy(),
        "asset_totals": state.asset_totals.copy(),
    }
    totals: dict[str, float] = {name: float(state.acct[A_REALIZED + k]) if n_bars else 0.0
                                for k, name in enumerate(COST_COLUMNS)}
    upnl = float(state.acct[A_EQUITY] - state.acct[A_CASH])
    totals.update(initial_cash_usd=float(initial_cash_usd), final_cash_usd=float(state.acct[A_CASH]),
                  final_equity_usd=float(state.acct[A_EQUITY]), unrealized_pnl_usd=upnl)
    bankrupt_time = index[int(state.counters[C_BANKRUPT_BAR])] if state.counters[C_BANKRUPT] else None
    records = {"fills": fills, "orders": orders, "trades": trades}
    rs = state.risk
    if rs.ints[RI_ENABLED]:
        records["risk_decisions"] = rs.decisions[: rs.ints[RI_N_DECISIONS]].copy()
        arrays["risk_out"] = rs.out[:n_bars].copy()
    return SimResult(symbols=tuple(symbols), index=index, initial_cash_usd=initial_cash_usd,
                     arrays=arrays, records=records, totals=totals,
                     bankrupt_time=bankrupt_time, notes=tuple(notes))
