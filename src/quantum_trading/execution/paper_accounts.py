"""The paper exchange's account: money and positions kept in a simulator state, changed only by
the simulator's kernels.

:class:`PaperAccount` owns a :class:`~quantum_trading.sim.state.SimState` (one asset per symbol)
and the :class:`~quantum_trading.sim.state.SimParams` built by the simulator's own
:func:`~quantum_trading.sim.inputs.build_params`. Every change of cash or position goes through
a kernel of :mod:`quantum_trading.sim`:

* a taker fill (market order, triggered stop, marketable limit):
  :func:`~quantum_trading.sim.orders_nb.execute_market_nb` — half-spread, slippage and square-root
  impact inside the fill price, taker fee on the fill price (the backtest's arithmetic);
* a maker fill (a resting limit order): :func:`~quantum_trading.sim.accounting_nb.apply_fill_nb`
  at the limit price with the maker fee, exactly as the simulator books a limit take-profit;
* funding: :func:`~quantum_trading.sim.engine_nb.settle_funding_nb` (``−size · mark · rate``,
  longs pay when positive);
* liquidation: :func:`~quantum_trading.sim.margin_nb.liquidation_lambda_nb` on the bar's adverse
  path, then :func:`~quantum_trading.sim.liquidation_nb.liquidate_cross_nb` /
  :func:`~quantum_trading.sim.liquidation_nb.liquidate_isolated_nb`; bankruptcy closes with
  :func:`~quantum_trading.sim.liquidation_nb.bankruptcy_close_nb`.

σ and notional volume for the impact model come from
:func:`~quantum_trading.sim.costs_nb.impact_inputs_at_nb` over the symbol's earlier bars (causal),
as in :class:`~quantum_trading.sim.Simulator`.

Units: sizes in base units (signed: + long), prices and money in USDT. Kernel records (fill_dt,
trade_dt of :mod:`quantum_trading.sim.records`) are copied out after each call and the state's
buffers are reused, so the state never grows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from quantum_trading.domain import Instrument, MarginMode
from quantum_trading.sim.accounting_nb import apply_fill_nb
from quantum_trading.sim.config import AccountConfig, CostsConfig
from quantum_trading.sim.costs_nb import impact_frac_nb, impact_inputs_at_nb

# the simulator's own event kernels (one implementation: the paper account calls them as the
# step does, it never re-writes their arithmetic)
from quantum_trading.sim.engine_nb import settle_funding_nb
from quantum_trading.sim.inputs import build_params
from quantum_trading.sim.liquidation_nb import (
    bankruptcy_close_nb,
    liquidate_cross_nb,
    liquidate_isolated_nb,
)
from quantum_trading.sim.margin_nb import liquidation_lambda_nb, liquidation_price_nb, tier_index_nb
from quantum_trading.sim.orders_nb import execute_market_nb
from quantum_trading.sim.records import (
    A_CASH,
    A_EQUITY,
    C_BANKRUPT,
    C_FILLS,
    C_TRADES,
    P_ENTRY,
    P_LAST,
    P_MARGIN,
    P_SIZE,
    W_PA,
    W_PO,
)
from quantum_trading.sim.state import BarArrays, new_state, readonly_2d

__all__ = ["PaperAccount"]

_HISTORY0 = 256  # initial rows of the per-symbol close/volume history (grows by doubling)


class PaperAccount:
    """Cash, positions and costs of a paper account, on the simulator's kernels.

    Parameters
    ----------
    instruments:
        One :class:`~quantum_trading.domain.Instrument` per symbol (asset order).
    costs, account:
        The simulator's :class:`~quantum_trading.sim.CostsConfig` and
        :class:`~quantum_trading.sim.AccountConfig` (initial cash, margin mode, leverage,
        liquidation fee).

    Notes
    -----
    Each symbol has its own bar counter (``bar_no``), written into the kernel records. Prices of
    symbols without a bar at the moment are their last close (the kernels see them as constant).

    >>> from quantum_trading.domain import BINANCE_BTCUSDT_PERP
    >>> acc = PaperAccount([BINANCE_BTCUSDT_PERP])
    >>> acc.set_bar(0, 30_000.0, 30_100.0, 29_900.0, 30_050.0)
    >>> rec = acc.taker_fill(0, 0, 0.01, 30_000.0, 0)[0][0]
    >>> round(float(rec["price"]), 2), round(float(rec["fee_usd"]), 4)
    (30004.5, 0.12)
    """

    def __init__(
        self,
        instruments: Sequence[Instrument],
        *,
        costs: CostsConfig | None = None,
        account: AccountConfig | None = None,
    ) -> None:
        self.instruments = tuple(instruments)
        self.symbols = tuple(inst.symbol for inst in self.instruments)
        self.costs = costs if costs is not None else CostsConfig()
        self.account = account if account is not None else AccountConfig()
        n = len(self.symbols)
        self.params = build_params(self.symbols, self.instruments, self.costs, self.account, None)
        self.isolated = self.account.margin_mode == MarginMode.ISOLATED
        self.state = new_state(
            n,
            self.account.initial_cash_usd,
            n_bars=1,
            n_tiers_max=self.params.tiers.shape[1],
            fills_capacity=4 * n + 8,
            orders_capacity=4,
            trades_capacity=4 * n + 8,
        )
        self._rows = {k: np.full((1, n), np.nan) for k in BarArrays._fields}
        self.bars = BarArrays(**{k: readonly_2d(v) for k, v in self._rows.items()})
        self._impact_on = bool(self.params.impact_k.max() > 0.0)
        self._close_hist = [np.zeros((_HISTORY0, 1)) for _ in range(n)]
        self._volume_hist = [np.zeros((_HISTORY0, 1)) for _ in range(n)]
        self._sigma1 = np.full(1, np.nan)
        self._vol1 = np.full(1, np.nan)

    # ------------------------------------------------------------------ bar inputs
    def set_bar(self, i: int, open_: float, high: float, low: float, close: float) -> None:
        """Put symbol ``i``'s current bar into the kernel rows (others keep their last close)."""
        for j in range(len(self.symbols)):
            if j == i:
                continue
            last = self.state.pos[j, P_LAST]
            if not math.isnan(last):
                for key in ("open", "high", "low", "close"):
                    self._rows[key][0, j] = last
        self._rows["open"][0, i] = open_
        self._rows["high"][0, i] = high
        self._rows["low"][0, i] = low
        self._rows["close"][0, i] = close

    def set_impact_inputs(self, i: int, bar_no: int) -> None:
        """σ and notional volume for symbol ``i``'s bar ``bar_no`` from its earlier bars only
        (the simulator's :func:`~quantum_trading.sim.costs_nb.impact_inputs_at_nb`)."""
        if not self._impact_on:
            return
        hist_c, hist_v = self._close_hist[i], self._volume_hist[i]
        impact_inputs_at_nb(
            hist_c, hist_v, bar_no, self.costs.impact_window_bars, self._sigma1, self._vol1
        )
        self._rows["sigma"][0, i] = self._sigma1[0]
        self._rows["volume_usd"][0, i] = self._vol1[0]

    def push_history(self, i: int, bar_no: int, close: float, volume: float) -> None:
        """Remember bar ``bar_no``'s close and volume (inputs of later impact estimates)."""
        if not self._impact_on:
            return
        if self._close_hist[i].shape[0] <= bar_no:
            for hist in (self._close_hist, self._volume_hist):
                old = hist[i]
                grown = np.zeros((2 * old.shape[0], 1))
                grown[: old.shape[0]] = old
                hist[i] = grown
        self._close_hist[i][bar_no, 0] = close
        self._volume_hist[i][bar_no, 0] = volume

    def taker_cost_frac(self, i: int, units: float, ref: float) -> float:
        """Half-spread + slippage + impact (fraction of price) of a taker fill of ``units`` at
        ``ref`` now: what :meth:`taker_fill` adds to (buys) or takes from (sells) the price."""
        p = self.params
        imp = impact_frac_nb(
            abs(units) * ref,
            float(self.bars.sigma[0, i]),
            float(self.bars.volume_usd[0, i]),
            float(p.impact_k[i]),
            float(p.max_impact_frac),
        )
        return float(p.half_spread[i]) + float(p.slippage[i]) + imp

    # ------------------------------------------------------------------ bookings (kernels)
    def _collect(self) -> tuple[np.ndarray, np.ndarray]:
        st = self.state
        fills = st.fills[: st.counters[C_FILLS]].copy()
        trades = st.trades[: st.counters[C_TRADES]].copy()
        st.counters[C_FILLS] = 0
        st.counters[C_TRADES] = 0
        return fills, trades

    def taker_fill(
        self, i: int, bar_no: int, units: float, ref: float, otype: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fill ``units`` (signed) of symbol ``i`` as a taker at reference price ``ref`` with the
        simulator's market-fill kernel. Returns the new (fill records, closed-trade records)."""
        execute_market_nb(
            self.state, self.params, self.bars, bar_no, i, float(units), float(ref), int(otype)
        )
        return self._collect()

    def maker_fill(
        self, i: int, bar_no: int, units: float, price: float, otype: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fill ``units`` (signed) at ``price`` as a maker: no spread, slippage or impact, the
        maker fee ``|units|·price·maker_fee`` (the simulator's limit take-profit booking)."""
        fee = abs(units) * price * self.params.maker_fee[i]
        apply_fill_nb(
            self.state,
            self.params,
            bar_no,
            i,
            float(units),
            float(price),
            float(price),
            float(fee),
            0.0,
            0.0,
            0.0,
            0.0,
            int(otype),
        )
        return self._collect()

    def settle_funding(self, i: int, mark: float, rate: float) -> float:
        """Settle one funding payment on symbol ``i``'s position; returns the cash received
        (negative: paid)."""
        before = float(self.state.acct[A_CASH])
        settle_funding_nb(
            self.state.acct,
            self.state.asset_totals,
            self.state.pos,
            i,
            float(mark),
            float(rate),
            self.isolated,
        )
        return float(self.state.acct[A_CASH]) - before

    def _set_paths(self, i: int, open_: float, adverse: float) -> None:
        pos, work = self.state.pos, self.state.work
        for j in range(len(self.symbols)):
            if j == i:
                work[j, W_PO] = open_
                work[j, W_PA] = adverse
            else:
                last = pos[j, P_LAST]
                work[j, W_PO] = last
                work[j, W_PA] = last

    def liquidation_lambda(self, i: int, open_: float, adverse: float, lam_lo: float) -> float:
        """First point λ ∈ [lam_lo, 1] of symbol ``i``'s path ``open → adverse`` where margin
        falls to maintenance (``inf``: it holds). Cross: every position (others at their last
        close); isolated: symbol ``i``'s own margin."""
        st, p = self.state, self.params
        if st.pos[i, P_SIZE] == 0.0:
            return math.inf
        self._set_paths(i, open_, adverse)
        if self.isolated:
            return float(
                liquidation_lambda_nb(
                    lam_lo, st.pos[i, P_MARGIN], st.pos, st.work, p.tiers, p.n_tiers, i, st.scratch
                )
            )
        return float(
            liquidation_lambda_nb(
                lam_lo, st.acct[A_CASH], st.pos, st.work, p.tiers, p.n_tiers, -1, st.scratch
            )
        )

    def liquidate(
        self, i: int, bar_no: int, open_: float, adverse: float, lam: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Liquidate at path point ``lam`` (cross: every position; isolated: symbol ``i``)."""
        self._set_paths(i, open_, adverse)
        if self.isolated:
            liquidate_isolated_nb(self.state, self.params, bar_no, i, float(lam))
        else:
            liquidate_cross_nb(self.state, self.params, bar_no, float(lam))
        return self._collect()

    def bankrupt_close(self, bar_no: int, at_close: bool) -> tuple[np.ndarray, np.ndarray]:
        """Close every position without costs at the current open (or close) and mark the
        account bankrupt (the simulator's bankruptcy kernel)."""
        bankruptcy_close_nb(self.state, self.params, self.bars, bar_no, bool(at_close))
        return self._collect()

    # ------------------------------------------------------------------ marking and reading
    def mark(self, i: int, price: float) -> None:
        """Set symbol ``i``'s mark (its last close)."""
        self.state.pos[i, P_LAST] = price

    def equity(self, i: int | None = None, price: float | None = None) -> float:
        """Cash + unrealised PnL (summed in asset order, as the simulator does), with symbol
        ``i`` valued at ``price`` and the others at their last close."""
        pos = self.state.pos
        upnl = 0.0
        for j in range(pos.shape[0]):
            s = pos[j, P_SIZE]
            if s == 0.0:
                continue
            px = price if (j == i and price is not None) else pos[j, P_LAST]
            upnl += s * (px - pos[j, P_ENTRY])
        return float(self.state.acct[A_CASH] + upnl)

    def close_equity(self) -> float:
        """Equity at the marks (last closes), stored as the simulator stores it at a close."""
        eq = self.equity()
        self.state.acct[A_EQUITY] = eq
        return eq

    def used_margin(self, i: int | None = None, price: float | None = None) -> float:
        """Initial margin of the open positions: ``Σ |size|·price / leverage`` (isolated: the
        positions' own margins)."""
        pos = self.state.pos
        used = 0.0
        for j in range(pos.shape[0]):
            s = pos[j, P_SIZE]
            if s == 0.0:
                continue
            if self.isolated:
                used += pos[j, P_MARGIN]
            else:
                px = price if (j == i and price is not None) else pos[j, P_LAST]
                used += abs(s) * px / self.params.leverage[j]
        return float(used)

    @property
    def cash_usd(self) -> float:
        """Wallet balance (USDT): initial + realised PnL − fees − funding − liquidation fee."""
        return float(self.state.acct[A_CASH])

    @property
    def bankrupt(self) -> bool:
        """True once equity reached 0; the account never trades again."""
        return bool(self.state.counters[C_BANKRUPT])

    def size(self, i: int) -> float:
        """Signed position of symbol ``i`` (base units)."""
        return float(self.state.pos[i, P_SIZE])

    def entry(self, i: int) -> float:
        """Average entry price of symbol ``i``'s position (0 when flat)."""
        return float(self.state.pos[i, P_ENTRY])

    def last(self, i: int) -> float:
        """Symbol ``i``'s mark (last close; NaN before its first bar)."""
        return float(self.state.pos[i, P_LAST])

    def leverage(self, i: int) -> float:
        """Leverage setting of symbol ``i``."""
        return float(self.params.leverage[i])

    def set_leverage(self, i: int, leverage: float) -> None:
        """Change symbol ``i``'s leverage (new positions' initial margin, the tier cap)."""
        self.params.leverage[i] = float(leverage)
        self.params.max_notional[i] = self.instruments[i].max_notional_usd(float(leverage))

    def isolated_margin(self, i: int) -> float:
        """Symbol ``i``'s isolated margin (USDT; 0 under cross margin or when flat)."""
        if not self.isolated or self.size(i) == 0.0:
            return 0.0
        return float(self.state.pos[i, P_MARGIN])

    def maintenance_margin(self, i: int) -> float:
        """Maintenance margin (USDT) of symbol ``i``'s position at its mark."""
        s = self.size(i)
        if s == 0.0:
            return 0.0
        return self.instruments[i].maintenance_margin_usd(abs(s) * self.last(i))

    def liquidation_price(self, i: int) -> float | None:
        """Binance's liquidation price of symbol ``i``'s position (the simulator's formula with
        the tier at its mark; cross: the other positions' PnL and maintenance count in the
        wallet)."""
        s = self.size(i)
        if s == 0.0 or math.isnan(self.last(i)):
            return None
        p = self.params
        k = tier_index_nb(p.tiers[i], p.n_tiers[i], abs(s) * self.last(i))
        if self.isolated:
            wallet = float(self.state.pos[i, P_MARGIN])
        else:
            wallet = self.cash_usd
            for j in range(len(self.symbols)):
                sj = self.size(j)
                if j == i or sj == 0.0:
                    continue
                wallet += sj * (self.last(j) - self.entry(j)) - self.maintenance_margin(j)
        lp = float(
            liquidation_price_nb(
                wallet, s, self.entry(i), float(p.tiers[i, k, 2]), float(p.tiers[i, k, 3])
            )
        )
        return lp if lp > 0.0 and math.isfinite(lp) else None
