"""Stress tests: what a set of open positions would lose, and whether it would be liquidated,
under historical and hypothetical scenarios.

A :class:`PositionsSnapshot` is the account at one moment: signed sizes (base units), entry and
mark prices, the wallet balance (``cash_usd``) and, for isolated margin, each position's
margin. It comes from a simulation at a bar (:meth:`PositionsSnapshot.from_sim`), from a
positions file (:meth:`PositionsSnapshot.from_file`) or is built directly.

A :class:`Scenario` is applied instantly to the snapshot, in the simulator's order of events
(``docs/simulator.md``):

1. **funding** ``n`` settlements at rate ``r`` on the position held, at the current mark:
   ``payment = −size · mark · r`` per settlement (the simulator's ``funding_payment_nb``; longs
   pay when ``r > 0``; isolated positions pay from their own margin);
2. **price move**: every moved asset jumps from its mark ``P`` to ``P · (1 + move)``;
3. **margin check** at the moved prices with the simulator's own margin rules
   (:mod:`quantum_trading.sim.margin_nb`): maintenance margin from the instrument's tiers;
   **cross** — the account is liquidated when wallet + unrealised PnL ≤ Σ maintenance (every
   position goes); **isolated** — a position is liquidated when its margin + its unrealised
   PnL ≤ its maintenance. The liquidation price is where the margin ran out on the straight
   path from the marks to the moved prices (``liquidation_lambda_nb``; for one position it is
   Binance's formula ``liquidation_price_nb``);
4. **closing** (liquidity scenarios only): every position is closed by a market order at the
   moved price with the simulator's cost formulas (``costs_nb``: half-spread, slippage and
   square-root impact inside the fill price, taker fee on top), each cost × ``k``.

:func:`run_stress` reports, per scenario, the P&L in USDT and in % of the equity before it
(mark-to-market: liquidations not executed), the equity and margin ratio (Σ maintenance ÷
equity, the simulator's ``SimResult.margin_ratio``) at the moved prices, which positions would
be liquidated and at what price, and the equity if those liquidations were executed as the
simulator executes them (at the liquidation price, liquidation fee capped at the margin left;
a loss beyond it goes to the insurance fund, equity floored at 0).

:class:`Scenario` and its builders (:func:`price_shock`, :func:`historical_scenarios`,
:func:`worst_windows`, :func:`correlation_one_shock`, :func:`volatility_shock`,
:func:`funding_spike`, :func:`liquidity_drain`, :func:`default_scenarios`) live in
:mod:`quantum_trading.risk.stress_scenarios` and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quantum_trading.domain import Instrument, MarginMode, default_instrument
from quantum_trading.errors import ConfigError
from quantum_trading.risk.positions_snapshot import PositionsSnapshot
from quantum_trading.risk.stress_scenarios import (
    SCENARIO_KINDS,
    Scenario,
    correlation_one_shock,
    default_scenarios,
    funding_spike,
    historical_scenarios,
    liquidity_drain,
    price_shock,
    volatility_shock,
    worst_windows,
)
from quantum_trading.sim.config import AccountConfig, CostsConfig
from quantum_trading.sim.costs_nb import (
    impact_frac_nb,
    market_fill_price_nb,
)
from quantum_trading.sim.funding_nb import funding_payment_nb
from quantum_trading.sim.inputs import build_params
from quantum_trading.sim.margin_nb import liquidation_lambda_nb, maintenance_margin_nb
from quantum_trading.sim.records import N_POS, N_WORK, P_ENTRY, P_SIZE, W_PA, W_PO

__all__ = [
    "SCENARIO_KINDS",
    "STRESS_COLUMNS",
    "PositionsSnapshot",
    "Scenario",
    "correlation_one_shock",
    "default_scenarios",
    "funding_spike",
    "historical_scenarios",
    "liquidity_drain",
    "price_shock",
    "run_stress",
    "stress_positions",
    "volatility_shock",
    "worst_windows",
]

STRESS_COLUMNS = (
    "name", "kind", "description", "start", "end", "moves", "price_pnl_usd",
    "funding_pnl_usd", "closing_cost_usd", "pnl_usd", "pnl_pct", "equity_after_usd",
    "maintenance_margin_usd", "margin_ratio_after", "liquidated", "liquidation_prices",
    "equity_after_liquidation_usd",
)
"""Columns of :func:`run_stress`'s table, in order."""

_POSITION_COLUMNS = ("size", "entry_price", "mark_price", "margin_usd", "sigma", "volume_usd")
_DEFAULT_ACCOUNT = AccountConfig()
_DEFAULT_COSTS = CostsConfig()


# --------------------------------------------------------------------------------------------
# applying scenarios
# --------------------------------------------------------------------------------------------
def _instruments(symbols: Sequence[str], instruments: Any) -> list[Instrument]:
    if isinstance(instruments, Instrument):
        if len(symbols) != 1:
            raise ConfigError("instruments: pass a dict symbol -> Instrument for several symbols")
        return [instruments]
    given = dict(instruments or {})
    return [given.get(s) or default_instrument(s) for s in symbols]


@dataclass(frozen=True)
class _Book:
    """The snapshot as arrays plus the simulator's parameters for its symbols."""

    symbols: tuple[str, ...]
    size: np.ndarray
    entry: np.ndarray
    mark: np.ndarray
    margin: np.ndarray
    sigma: np.ndarray
    volume_usd: np.ndarray
    cash: float
    params: Any
    isolated: bool
    impact_k: float


def _book(snapshot: PositionsSnapshot, instruments: Any, account: AccountConfig,
          costs: CostsConfig) -> _Book:
    if not isinstance(snapshot, PositionsSnapshot):
        raise ConfigError(f"snapshot must be a PositionsSnapshot, got {type(snapshot).__name__}")
    if not isinstance(account, AccountConfig) or not isinstance(costs, CostsConfig):
        raise ConfigError("account must be an AccountConfig and costs a CostsConfig")
    symbols = snapshot.symbols
    if isinstance(account.leverage, dict):  # only the snapshot's symbols matter here
        account = account.model_copy(update={"leverage": {
            s: v for s, v in account.leverage.items() if s in symbols}})
    params = build_params(symbols, _instruments(symbols, instruments), costs, account, None)
    p = snapshot.positions
    size = p["size"].to_numpy(np.float64)
    entry = p["entry_price"].to_numpy(np.float64)
    margin = p["margin_usd"].to_numpy(np.float64)
    default = np.abs(size) * entry / params.leverage
    margin = np.where(np.isnan(margin), default, margin)
    return _Book(symbols, size, entry, p["mark_price"].to_numpy(np.float64), margin,
                 p["sigma"].to_numpy(np.float64), p["volume_usd"].to_numpy(np.float64),
                 snapshot.cash_usd, params, account.margin_mode == MarginMode.ISOLATED,
                 float(costs.impact_k))


def _evaluate(book: _Book, sc: Scenario) -> tuple[dict[str, Any], dict[str, Any]]:
    prm = book.params
    n = len(book.symbols)
    s, e, mark = book.size, book.entry, book.mark
    held = s != 0.0
    # 1) funding at the current marks
    fund = np.array([funding_payment_nb(s[i], mark[i], sc.rate(sym)) * sc.funding_settlements
                     for i, sym in enumerate(book.symbols)])
    cash = book.cash + fund.sum()
    margin = book.margin + fund
    # 2) price move
    move = np.array([sc.moves.get(sym, 0.0) for sym in book.symbols])
    shocked = mark * (1.0 + move)
    price_pnl = s * (shocked - mark)
    # 3) margin at the moved prices, liquidation on the path mark → moved price
    mm = np.array([maintenance_margin_nb(prm.tiers[i], prm.n_tiers[i], abs(s[i]) * shocked[i])
                   for i in range(n)])
    equity = cash + float(np.sum(s * (shocked - e)))
    pos = np.zeros((n, N_POS))
    pos[:, P_SIZE], pos[:, P_ENTRY] = s, e
    work = np.zeros((n, N_WORK))
    work[:, W_PO], work[:, W_PA] = mark, shocked
    scratch = np.empty(n * prm.tiers.shape[1] + 1)
    lam = np.full(n, np.inf)
    if held.any():
        if book.isolated:
            for i in np.flatnonzero(held):
                lam[i] = liquidation_lambda_nb(0.0, margin[i], pos, work, prm.tiers,
                                               prm.n_tiers, int(i), scratch)
        else:
            lam[held] = liquidation_lambda_nb(0.0, cash, pos, work, prm.tiers, prm.n_tiers, -1,
                                              scratch)
    liq = held & (lam <= 1.0)
    liq_px = np.where(liq, mark + np.where(liq, lam, 0.0) * (shocked - mark), np.nan)
    # 4) closing at stressed costs (positions the liquidation left)
    close_cost = np.zeros(n)
    if sc.close_cost_multiplier is not None:
        k = sc.close_cost_multiplier
        ik = book.impact_k if sc.impact_k is None else sc.impact_k
        for i in np.flatnonzero(held & ~liq):
            notional = abs(s[i]) * shocked[i]
            frac = k * (prm.half_spread[i] + prm.slippage[i] + impact_frac_nb(
                notional, book.sigma[i], book.volume_usd[i], ik, prm.max_impact_frac))
            fill = market_fill_price_nb(-1 if s[i] > 0 else 1, shocked[i], frac)
            close_cost[i] = notional * frac + abs(s[i]) * fill * prm.taker_fee[i]
    # equity if the liquidations are executed as the simulator does
    upnl_liq = s * (liq_px - e)
    if liq.any() and not book.isolated:
        after = cash + float(np.sum(upnl_liq[liq]))
        fee = min(prm.liquidation_fee_rate * float(np.sum(np.abs(s[liq]) * liq_px[liq])),
                  max(after, 0.0))
        eq_liq = max(after - fee, 0.0)
    else:
        eq_liq = cash + float(np.sum((s * (shocked - e))[~liq]))
        for i in np.flatnonzero(liq):
            remaining = margin[i] + upnl_liq[i]
            fee = min(prm.liquidation_fee_rate * abs(s[i]) * liq_px[i], max(remaining, 0.0))
            eq_liq += upnl_liq[i] - fee + max(-remaining, 0.0)
        eq_liq -= close_cost.sum()
        eq_liq = max(eq_liq, 0.0)
    eq0 = book.cash + float(np.sum(s * (mark - e)))
    pnl = float(price_pnl.sum() + fund.sum() - close_cost.sum())
    mm_total = float(mm.sum())
    row = {
        "name": sc.name, "kind": sc.kind, "description": sc.description,
        "start": sc.start, "end": sc.end,
        "moves": {sym: float(move[i]) for i, sym in enumerate(book.symbols)
                  if held[i] and sym in sc.moves},
        "price_pnl_usd": float(price_pnl.sum()), "funding_pnl_usd": float(fund.sum()),
        "closing_cost_usd": float(close_cost.sum()), "pnl_usd": pnl,
        "pnl_pct": 100.0 * pnl / eq0 if eq0 > 0 else math.nan,
        "equity_after_usd": equity - float(close_cost.sum()),
        "maintenance_margin_usd": mm_total,
        "margin_ratio_after": mm_total / equity if equity > 0 else math.inf,
        "liquidated": [book.symbols[i] for i in np.flatnonzero(liq)],
        "liquidation_prices": {book.symbols[i]: float(liq_px[i]) for i in np.flatnonzero(liq)},
        "equity_after_liquidation_usd": eq_liq if liq.any() else equity - float(close_cost.sum()),
    }
    detail = {
        "size": s, "entry_price": e, "mark_price": mark, "shocked_price": shocked,
        "price_pnl_usd": price_pnl, "funding_pnl_usd": fund, "closing_cost_usd": close_cost,
        "maintenance_margin_usd": mm, "margin_usd": np.where(held, margin, 0.0)
        if book.isolated else np.nan, "liquidated": liq, "liquidation_price": liq_px,
    }
    return row, detail


def run_stress(
    snapshot: PositionsSnapshot,
    scenarios: Scenario | Iterable[Scenario],
    *,
    instruments: Instrument | Mapping[str, Instrument] | None = None,
    account: AccountConfig | None = None,
    costs: CostsConfig | None = None,
) -> pd.DataFrame:
    """Apply each scenario to the snapshot (see the module docstring).

    Parameters
    ----------
    snapshot:
        The positions and wallet.
    scenarios:
        One :class:`Scenario` or several.
    instruments:
        Margin tiers and fees per symbol (default: the Binance presets for BTC/ETH, else
        :meth:`Instrument.generic`).
    account:
        Margin mode, leverage (isolated margins not given in the snapshot) and liquidation
        fee rate (default :class:`~quantum_trading.sim.AccountConfig`: cross, 1×).
    costs:
        Cost model for liquidity scenarios (default :class:`~quantum_trading.sim.CostsConfig`).

    Returns
    -------
    pd.DataFrame
        One row per scenario, columns :data:`STRESS_COLUMNS`: ``pnl_usd`` (= price PnL +
        funding PnL − closing costs; mark-to-market, liquidations not executed), ``pnl_pct``
        (% of the equity before), ``equity_after_usd``, ``maintenance_margin_usd`` and
        ``margin_ratio_after`` (maintenance ÷ equity at the moved prices, before any close;
        inf when equity ≤ 0), ``liquidated`` (symbols; cross: all or none),
        ``liquidation_prices`` and ``equity_after_liquidation_usd``. ``attrs`` holds the
        snapshot's ``equity_usd``, ``maintenance_margin_usd``, ``margin_ratio``,
        ``margin_mode`` and ``time``.

    Examples
    --------
    >>> from quantum_trading.domain import BINANCE_BTCUSDT_PERP as BTC
    >>> snap = PositionsSnapshot(pd.DataFrame({"size": [1.0], "entry_price": [30_000.0],
    ...     "mark_price": [30_000.0]}, index=[BTC.symbol]), cash_usd=3_000.0)
    >>> table = run_stress(snap, price_shock({BTC.symbol: -0.10}),
    ...                    account=AccountConfig(leverage=10.0, margin_mode="isolated"))
    >>> float(table.loc[0, "pnl_usd"]), table.loc[0, "liquidated"]
    (-3000.0, ['BTC/USDT:USDT'])
    >>> round(table.loc[0, "liquidation_prices"][BTC.symbol], 2)  # Binance's formula
    27108.43
    """
    account = account or _DEFAULT_ACCOUNT
    book = _book(snapshot, instruments, account, costs or _DEFAULT_COSTS)
    items = [scenarios] if isinstance(scenarios, Scenario) else list(scenarios)
    for sc in items:
        if not isinstance(sc, Scenario):
            raise ConfigError(f"scenarios must be Scenario objects, got {type(sc).__name__}")
    rows = []
    for sc in items:
        row, _ = _evaluate(book, sc)
        missing = [sym for sym in snapshot.held if sc.moves and sym not in sc.moves
                   and sc.kind in ("historical", "price_shock")]
        if missing:
            row["description"] += f" ({', '.join(missing)} not moved)"
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(STRESS_COLUMNS))
    base, _ = _evaluate(book, Scenario("now"))
    table.attrs.update(equity_usd=snapshot.equity_usd,
                       maintenance_margin_usd=base["maintenance_margin_usd"],
                       margin_ratio=base["margin_ratio_after"],
                       margin_mode=MarginMode(account.margin_mode).value, time=snapshot.time)
    return table


def stress_positions(
    snapshot: PositionsSnapshot,
    scenario: Scenario,
    *,
    instruments: Instrument | Mapping[str, Instrument] | None = None,
    account: AccountConfig | None = None,
    costs: CostsConfig | None = None,
) -> pd.DataFrame:
    """Per-position detail of one scenario: ``size``, ``entry_price``, ``mark_price``,
    ``shocked_price``, ``price_pnl_usd``, ``funding_pnl_usd``, ``closing_cost_usd``,
    ``maintenance_margin_usd``, ``margin_usd`` (isolated; NaN under cross), ``liquidated``
    and ``liquidation_price`` (arguments as :func:`run_stress`).

    >>> snap = PositionsSnapshot(pd.DataFrame({"size": [2.0], "entry_price": [100.0],
    ...     "mark_price": [100.0]}, index=["X"]), cash_usd=1_000.0)
    >>> float(stress_positions(snap, funding_spike(0.01, 3)).loc["X", "funding_pnl_usd"])
    -6.0
    """
    book = _book(snapshot, instruments, account or _DEFAULT_ACCOUNT, costs or _DEFAULT_COSTS)
    return pd.DataFrame(_evaluate(book, scenario)[1],
                        index=pd.Index(book.symbols, name="symbol"))
