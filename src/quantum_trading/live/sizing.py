"""From a strategy's target to the orders the trader sends, sized as the simulator sizes them.

The backtest's order rule (:mod:`quantum_trading.sim.orders_nb`) applied to the trader's
account: so a paper or live run sends the sizes the backtest filled.

* :func:`read_targets` — bar t's target row → pending target fractions, at bar t's close:
  ``on_change`` keeps only targets that differ from the last non-NaN one (edge-triggered),
  ``every_bar`` keeps every non-NaN one; a short target becomes 0 in a long-only account and
  ``|target|`` is capped at the leverage (as ``read_targets_nb``).
* :func:`plan_orders` — pending targets → signed order sizes at the **reference instant**
  (the moment the orders are sent; in a replay the next bar's open, live the ticker):
  ``units = target × equity / price`` (``equity`` = cash after the funding due at that
  instant + unrealised PnL at the reference prices, summed in asset order), capped by the
  tier notional of the leverage, rounded toward zero to the lot; the order is ``units −
  position`` (lot-rounded; exactly ``−position`` to close). Orders that add exposure need
  the minimum notional; reductions are checked by the risk engine first (always approved),
  then additions in asset order, each seeing the positions the ones before leave (resize /
  reject as the engine answers); finally additions are scaled together to the margin left
  (as ``fill_pending_nb``). The margin cap uses the equity after the reductions' estimated
  costs (spread, slippage, taker fee; impact not modelled here).
* :func:`exit_levels` — the stop-loss / take-profit / trailing rules of the decision bar,
  turned into prices once the entry fill price is known.

All sizes are signed base units, prices USDT, equity USDT.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from quantum_trading.domain import Instrument, Signals, StopSpec
from quantum_trading.risk.engine import RiskEngine
from quantum_trading.risk.limits import RiskAction, RiskDecision
from quantum_trading.sim.config import AccountConfig, CostsConfig
from quantum_trading.sim.lots_nb import round_lot_nb, trunc_lot_nb

__all__ = [
    "ExitRules",
    "OrderPlan",
    "exit_levels",
    "exit_rules",
    "exit_rules_of",
    "plan_orders",
    "read_targets",
    "reference_equity",
    "target_row",
]

_DUST = 1e-9  # orders smaller than this fraction of the position are no change (as the sim)
_MARGIN_TOL = 1e-9


@dataclass(frozen=True)
class OrderPlan:
    """One symbol's order at the reference instant.

    ``status``: ``send`` (``size`` ≠ 0), ``no_change``, ``deadband`` (every_bar resize
    under ``min_rebalance_frac``), ``min_notional``, ``risk_rejected``, ``margin`` (scaled to
    nothing). ``requested`` is the size before the risk engine and the margin cap, ``size``
    what is sent; ``units`` the position wanted after it; ``reduce`` whether it only reduces
    ``|position|``; ``flags`` the caps applied (short, leverage, tier, margin).
    """

    symbol: str
    target: float
    units: float
    requested: float
    size: float
    reduce: bool
    status: str
    decision: RiskDecision | None = None
    flags: tuple[str, ...] = ()


def target_row(signals: Signals, symbols: Sequence[str]) -> dict[str, float]:
    """The last row of ``signals.target`` by symbol (one column = the one symbol)."""
    target = signals.target
    if target.shape[1] == 1 and len(symbols) == 1:
        return {symbols[0]: float(target.iloc[-1, 0])}
    missing = [s for s in symbols if s not in target.columns]
    if missing:
        raise KeyError(f"the strategy's target has no column for {missing}")
    row = target.iloc[-1]
    return {s: float(row[s]) for s in symbols}


def read_targets(raw: Mapping[str, float], last: dict[str, float], account: AccountConfig,
                 leverage: Mapping[str, float]) -> tuple[dict[str, float], dict[str, tuple[str, ...]]]:
    """Pending target fractions of this close and the caps applied, per symbol.

    ``last`` (the last non-NaN raw target per symbol, NaN before any) is updated in place.

    >>> last = {"BTC": 1.0}
    >>> read_targets({"BTC": 1.0}, last, AccountConfig(), {"BTC": 1.0})  # unchanged: no order
    ({}, {})
    >>> read_targets({"BTC": -3.0}, last, AccountConfig(leverage=2.0), {"BTC": 2.0})
    ({'BTC': -2.0}, {'BTC': ('leverage',)})
    """
    out: dict[str, float] = {}
    flags: dict[str, tuple[str, ...]] = {}
    for symbol, value in raw.items():
        if math.isnan(value):
            continue
        prev = last.get(symbol, math.nan)
        if account.rebalance == "on_change" and not math.isnan(prev) and value == prev:
            continue
        last[symbol] = value
        f, caps = value, []
        if not account.allow_short and f < 0.0:
            f, caps = 0.0, ["short"]
        lev = leverage[symbol]
        if f > lev:
            f, caps = lev, [*caps, "leverage"]
        elif f < -lev:
            f, caps = -lev, [*caps, "leverage"]
        out[symbol] = f
        flags[symbol] = tuple(caps)
    return out, flags


def reference_equity(cash_usd: float, positions: Mapping[str, float],
                     entries: Mapping[str, float], prices: Mapping[str, float],
                     symbols: Sequence[str]) -> float:
    """Cash + Σ size × (price − entry), added in asset order (the simulator's sum)."""
    equity = float(cash_usd)
    for s in symbols:
        size = positions.get(s, 0.0)
        if size != 0.0:
            equity += size * (prices[s] - entries[s])
    return equity


def _is_reduce(u: float, cur: float) -> bool:
    return u == 0.0 or (cur != 0.0 and (u > 0.0) == (cur > 0.0) and abs(u) < abs(cur))


def _fee(inst: Instrument, costs: CostsConfig) -> float:
    bps = costs.taker_fee_bps if costs.taker_fee_bps is not None else inst.taker_fee_bps
    return bps / 1e4


def _units(f: float, equity: float, p: float, cur: float, inst: Instrument, lev: float,
           costs: CostsConfig, account: AccountConfig) -> tuple[float, bool]:
    if f == 0.0:
        return 0.0, False
    ref = p
    if account.size_with_costs:
        d0 = f * equity / p - cur
        side = 1.0 if d0 > 0.0 else -1.0
        if d0 == 0.0:
            side = 1.0 if f > 0.0 else -1.0
        pf = p * (1.0 + side * (costs.half_spread_bps / 1e4 + costs.slippage_bps / 1e4))
        ref = pf * (1.0 + _fee(inst, costs))
    u = f * equity / ref
    cap = inst.max_notional_usd(lev)
    tier = abs(u) * p > cap
    if tier:
        u = cap / p if u > 0.0 else -cap / p
    return float(trunc_lot_nb(u, inst.lot_size)), tier


@dataclass
class _Work:
    symbol: str
    target: float
    units: float
    requested: float
    size: float
    reduce: bool
    flags: list[str]
    decision: RiskDecision | None = None
    status: str = "send"


def plan_orders(time: pd.Timestamp, targets: Mapping[str, float], *, symbols: Sequence[str],
                cash_usd: float, positions: Mapping[str, float], entries: Mapping[str, float],
                prices: Mapping[str, float], instruments: Mapping[str, Instrument],
                account: AccountConfig, costs: CostsConfig, leverage: Mapping[str, float],
                risk: RiskEngine | None = None,
                flags: Mapping[str, tuple[str, ...]] | None = None,
                working: Mapping[str, float] | None = None) -> list[OrderPlan]:
    """The orders that move each pending target's symbol to its target (see the module).

    Parameters
    ----------
    time:
        The reference instant (the risk engine records it; its day must already be observed
        with :meth:`RiskEngine.update`).
    targets:
        Pending target fractions from :func:`read_targets`.
    cash_usd:
        Wallet at the reference instant (after the funding settled there).
    positions, entries, prices:
        Signed sizes, entry prices and reference prices by symbol (prices for every symbol).
    working:
        Signed sizes still to fill of orders already sent (market / limit orders not final,
        e.g. the rest of a partial fill) by symbol: they count as held, so the new orders
        and the risk checks see the position they will leave (equity still comes from
        ``positions``). None = nothing in flight.

    Returns
    -------
    list[OrderPlan]
        One plan per pending target: reductions first, then additions, each in asset order
        (the order to send them in).
    """
    equity = reference_equity(cash_usd, positions, entries, prices, symbols)
    if working:
        positions = {s: float(positions.get(s, 0.0)) + float(working.get(s, 0.0))
                     for s in symbols}
    proj = {s: float(positions.get(s, 0.0)) for s in symbols}
    px = {s: float(prices[s]) for s in symbols}
    work: list[_Work] = []
    done: list[_Work] = []
    for s in symbols:
        if s not in targets:
            continue
        f, inst, p, cur = targets[s], instruments[s], px[s], proj[s]
        caps = list((flags or {}).get(s, ()))
        u, tier = _units(f, equity, p, cur, inst, leverage[s], costs, account)
        if tier:
            caps.append("tier")
        delta = -cur if u == 0.0 else float(round_lot_nb(u - cur, inst.lot_size))
        if abs(delta) <= _DUST * abs(cur):
            delta = 0.0
        w = _Work(s, f, u, delta, delta, _is_reduce(u, cur), caps)
        if account.rebalance == "every_bar" and delta != 0.0 and u != 0.0 \
                and abs(delta) * p < account.min_rebalance_frac * equity:
            w.status = "deadband"
        elif delta == 0.0:
            w.status = "no_change"
        elif not w.reduce and abs(delta) * p < inst.min_notional_usd:
            w.status = "min_notional"
        elif w.reduce and risk is not None:
            _check(risk, time, w, proj, px, equity)
        if w.status == "send":
            work.append(w)
        else:
            done.append(w)
    if risk is not None:
        for w in [w for w in work if not w.reduce]:
            cur = proj[w.symbol]
            _check(risk, time, w, proj, px, equity)
            if w.status != "send" or w.size == w.requested:
                continue
            w.units = 0.0 if w.size == -cur else cur + w.size
            if _is_reduce(w.units, cur):
                w.reduce = True  # a flip cut down to a close
            elif abs(w.size) * px[w.symbol] < instruments[w.symbol].min_notional_usd:
                w.status = "min_notional"
    _margin_cap([w for w in work if w.status == "send"], positions, entries, px, equity,
                instruments, costs, leverage)
    sent = [w for w in work if w.status == "send" and w.reduce] + \
        [w for w in work if w.status == "send" and not w.reduce]
    rest = done + [w for w in work if w.status != "send"]
    order = {s: k for k, s in enumerate(symbols)}
    rest.sort(key=lambda w: order[w.symbol])
    return [OrderPlan(w.symbol, w.target, w.units, w.requested, w.size if w.status == "send"
                      else 0.0, w.reduce, w.status, w.decision, tuple(w.flags))
            for w in sent + rest]


def _check(risk: RiskEngine, time: pd.Timestamp, w: _Work, proj: dict[str, float],
           px: Mapping[str, float], equity: float) -> None:
    known = {s: v for s, v in proj.items() if s in risk.symbols}
    prices = {s: v for s, v in px.items() if s in risk.symbols}
    d = risk.check_order(time, w.symbol, w.size, equity_usd=equity, positions=known,
                         prices=prices)
    w.decision = d
    qa = 0.0 if d.action == RiskAction.REJECT else float(d.approved_size)
    cur = proj[w.symbol]
    if qa == 0.0:
        w.status, w.size = "risk_rejected", 0.0
        return
    w.size = qa
    proj[w.symbol] = 0.0 if qa == -cur else cur + qa


def _margin_cap(work: list[_Work], positions: Mapping[str, float],
                entries: Mapping[str, float], px: Mapping[str, float], equity: float,
                instruments: Mapping[str, Instrument], costs: CostsConfig,
                leverage: Mapping[str, float]) -> None:
    adds = [w for w in work if not w.reduce]
    if not adds:
        return
    after = dict(positions)
    eq2 = equity
    slip = costs.half_spread_bps / 1e4 + costs.slippage_bps / 1e4
    for w in work:
        if w.reduce:
            inst, p = instruments[w.symbol], px[w.symbol]
            pf = p * (1.0 + slip)
            eq2 -= abs(w.size) * p * slip + abs(w.size) * pf * _fee(inst, costs)
            after[w.symbol] = after.get(w.symbol, 0.0) + w.size
    add_by = {w.symbol: w for w in adds}
    used = req = 0.0
    for s, p in px.items():
        size = after.get(s, 0.0)
        lev = leverage.get(s, 1.0)
        w = add_by.get(s)
        if w is not None:
            kept = abs(size) if size != 0.0 and (size > 0.0) == (w.units > 0.0) else 0.0
            used += kept * p / lev
            req += (abs(w.units) - kept) * p / lev
        elif size != 0.0:
            used += abs(size) * p / lev
    avail = eq2 - used
    if not (req > 0.0 and (avail <= 0.0 or req > avail * (1.0 + _MARGIN_TOL))):
        return
    scale = avail / req if avail > 0.0 else 0.0
    for w in adds:
        s, lot, p = after.get(w.symbol, 0.0), instruments[w.symbol].lot_size, px[w.symbol]
        kept = abs(s) if s != 0.0 and (s > 0.0) == (w.units > 0.0) else 0.0
        na = float(trunc_lot_nb(kept + scale * (abs(w.units) - kept), lot))
        w.units = na if w.units > 0.0 else -na
        w.flags.append("margin")
        w.size = -s if w.units == 0.0 else float(round_lot_nb(w.units - s, lot))
        if w.size == 0.0:
            w.status = "margin"
        elif not _is_reduce(w.units, s) and abs(w.size) * p < instruments[w.symbol].min_notional_usd:
            w.status = "min_notional"


# ------------------------------------------------------------------------------- exits
@dataclass(frozen=True)
class ExitRules:
    """The exit rules read at a decision bar for one symbol (NaN = none): stop-loss and
    take-profit as (fraction of the entry price, distance in USDT, price), trailing as
    (fraction, distance)."""

    sl_frac: float = math.nan
    sl_dist: float = math.nan
    sl_price: float = math.nan
    tp_frac: float = math.nan
    tp_dist: float = math.nan
    tp_price: float = math.nan
    trail_frac: float = math.nan
    trail_dist: float = math.nan

    @property
    def empty(self) -> bool:
        """No rule at all."""
        return all(math.isnan(v) for v in self.as_dict().values())

    def as_dict(self) -> dict[str, float]:
        """Field name → value."""
        return {k: getattr(self, k) for k in ExitRules.__dataclass_fields__}


def _spec_value(spec: StopSpec | None, symbol: str, n_symbols: int) -> tuple[str, float]:
    if spec is None:
        return "", math.nan
    value = spec.value
    if isinstance(value, pd.DataFrame):
        col = symbol if symbol in value.columns else (value.columns[0] if value.shape[1] == 1
                                                       and n_symbols == 1 else None)
        v = math.nan if col is None else float(value[col].iloc[-1])
    elif isinstance(value, pd.Series):
        v = float(value.iloc[-1])
    else:
        v = float(value)
    return spec.kind, v


def exit_rules(signals: Signals, symbol: str, n_symbols: int) -> ExitRules:
    """The stop-loss / take-profit / trailing rules of ``signals``' last bar for ``symbol``."""
    return exit_rules_of(signals.stop_loss, signals.take_profit, signals.trailing_stop,
                         symbol, n_symbols)


def exit_rules_of(stop_loss: StopSpec | None, take_profit: StopSpec | None,
                  trailing_stop: StopSpec | None, symbol: str, n_symbols: int) -> ExitRules:
    """:func:`exit_rules` from the three specs themselves (a spec's value: a number, a
    Series of the one asset, or a DataFrame with a column per symbol; its last row is read).
    """
    values: dict[str, float] = {}
    for prefix, spec in (("sl", stop_loss), ("tp", take_profit), ("trail", trailing_stop)):
        kind, v = _spec_value(spec, symbol, n_symbols)
        if kind and math.isfinite(v) and v > 0:
            key = {"fraction": "frac", "distance": "dist", "price": "price"}[kind]
            values[f"{prefix}_{key}"] = v
    return ExitRules(**values)


def exit_levels(rules: ExitRules, size: float, entry: float
                ) -> tuple[float | None, float | None, float | None]:
    """Stop-loss price, take-profit price and trailing distance (% of the best price) of a
    position of signed ``size`` entered at ``entry`` (None where there is no rule)."""
    d = 1.0 if size > 0 else -1.0
    sl = tp = trail = None
    if not math.isnan(rules.sl_price):
        sl = rules.sl_price
    elif not math.isnan(rules.sl_frac):
        sl = entry * (1.0 - d * rules.sl_frac)
    elif not math.isnan(rules.sl_dist):
        sl = entry - d * rules.sl_dist
    if not math.isnan(rules.tp_price):
        tp = rules.tp_price
    elif not math.isnan(rules.tp_frac):
        tp = entry * (1.0 + d * rules.tp_frac)
    elif not math.isnan(rules.tp_dist):
        tp = entry + d * rules.tp_dist
    if not math.isnan(rules.trail_frac):
        trail = rules.trail_frac * 100.0
    elif not math.isnan(rules.trail_dist):
        trail = rules.trail_dist / entry * 100.0
    sl = sl if sl is not None and sl > 0 else None
    tp = tp if tp is not None and tp > 0 else None
    return sl, tp, trail
