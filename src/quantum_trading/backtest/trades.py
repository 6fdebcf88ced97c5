"""The backtest's trade log: the simulator's trades with every cost in its own column.

The simulator reports per trade the fees, funding, liquidation fee and ``costs_usd`` (spread +
slippage + impact together). Here the three execution costs are split apart by attributing
each fill's ``spread_usd``, ``slippage_usd`` and ``impact_usd`` to the trades it belongs to,
with the simulator's own rule: a fill that closes part of a position and opens the other
side (a flip) is split in proportion to the units closed and opened. Nothing is simulated
again; this is bookkeeping on the simulator's fill records.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantum_trading.sim import SimResult

__all__ = ["TRADE_COLUMNS", "trade_log"]

TRADE_COLUMNS = (
    "symbol", "direction", "entry_time", "exit_time", "entry_price", "exit_price", "size",
    "entry_notional_usd", "pnl_usd", "return_pct", "gross_pnl_usd", "fees_usd", "funding_usd",
    "spread_usd", "slippage_usd", "impact_usd", "liquidation_fee_usd", "exit_reason",
    "holding_time", "is_open", "entry_bar", "exit_bar",
)
"""Columns of :func:`trade_log`, in order."""


def _split_costs(fills: pd.DataFrame, n_assets: int) -> dict[int, np.ndarray]:
    """Per asset, ``[k, 3]`` spread / slippage / impact (USDT) of its k-th trade, in order of
    entry (the order trades follow one another on one asset)."""
    out: dict[int, list[np.ndarray]] = {i: [] for i in range(n_assets)}
    if len(fills) == 0:
        return {i: np.zeros((0, 3)) for i in range(n_assets)}
    asset = fills["asset"].to_numpy(dtype=np.int64)
    side = fills["side"].to_numpy(dtype=np.float64)
    size = fills["size"].to_numpy(dtype=np.float64)
    after = fills["position_after"].to_numpy(dtype=np.float64)
    costs = fills[["spread_usd", "slippage_usd", "impact_usd"]].to_numpy(dtype=np.float64)
    for i in range(n_assets):
        rows = np.flatnonzero(asset == i)
        current: np.ndarray | None = None
        for r in rows:
            q = side[r] * size[r]
            before = after[r] - q
            a = abs(q)
            if a == 0.0:
                continue
            closed = min(a, abs(before)) if before != 0.0 and (before > 0) != (q > 0) else 0.0
            opened = a - closed
            if closed > 0.0 and current is not None:
                current += costs[r] * (closed / a)
                if closed >= abs(before):  # flat: the trade is complete
                    out[i].append(current)
                    current = None
            if opened > 0.0:
                if current is None:
                    current = np.zeros(3)
                current += costs[r] * (opened / a)
        if current is not None:  # still open at the end
            out[i].append(current)
    return {i: np.array(v).reshape(-1, 3) for i, v in out.items()}


def trade_log(sim: SimResult) -> pd.DataFrame:
    """One row per trade (flat to flat), sorted by entry time, with costs split apart.

    Columns (:data:`TRADE_COLUMNS`): ``symbol``; ``direction`` ("long"/"short");
    ``entry_time`` / ``exit_time`` (open time of the entry / exit bar; the last bar for a
    trade still open); ``entry_price`` / ``exit_price`` (size-weighted fill prices, costs
    inside; an open trade's exit price is the last close); ``size`` (largest absolute size
    held, base units); ``entry_notional_usd``; ``pnl_usd`` (net: gross − fees − funding −
    liquidation fee); ``return_pct`` (net PnL in % of the entry notional); ``gross_pnl_usd``
    (price PnL at fill prices, so spread, slippage and impact are inside it);
    ``fees_usd``, ``funding_usd`` (paid; negative = received), ``spread_usd``,
    ``slippage_usd``, ``impact_usd``, ``liquidation_fee_usd``; ``exit_reason`` (signal,
    stop_loss, take_profit, trailing_stop, time_stop, liquidation, bankruptcy, open);
    ``holding_time`` (exit time − entry time); ``is_open``; ``entry_bar`` / ``exit_bar``
    (0-based bar numbers).

    >>> from quantum_trading.sim import CostsConfig, simulate
    >>> from quantum_trading.domain import Signals
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC")
    >>> px = pd.DataFrame({"open": [100.0, 100, 110, 120], "high": [100.0, 110, 120, 120],
    ...                    "low": [100.0, 100, 110, 120], "close": [100.0, 110, 120, 120]},
    ...                   index=idx)
    >>> res = simulate(px, Signals(pd.Series([1.0, None, 0.0, None], index=idx, name="X")),
    ...                costs=CostsConfig(default_funding_rate=0))
    >>> log = trade_log(res)
    >>> log[["direction", "exit_reason"]].values.tolist()
    [['long', 'signal']]
    >>> bool(np.isclose(log[["spread_usd", "slippage_usd", "impact_usd"]].sum(axis=1).iloc[0],
    ...                 res.trades["costs_usd"].iloc[0]))
    True
    """
    tr = sim.trades
    n = len(tr)
    split = _split_costs(sim.fills, len(sim.symbols))
    spread = np.zeros(n)
    slippage = np.zeros(n)
    impact = np.zeros(n)
    asset = tr["asset"].to_numpy(dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
    for i, arr in split.items():
        rows = np.flatnonzero(asset == i)
        if len(rows) == 0:
            continue
        order = rows[np.argsort(tr["entry_bar"].to_numpy()[rows], kind="stable")]
        if len(order) != len(arr):  # cannot happen with simulator output; keep costs together
            raise RuntimeError(f"trade_log: {len(arr)} fill sequences for {len(order)} trades "
                               f"of {sim.symbols[i]}")
        spread[order], slippage[order], impact[order] = arr[:, 0], arr[:, 1], arr[:, 2]
    entry_notional = (tr["entry_price"] * tr["entry_size"]).to_numpy(dtype=np.float64)
    pnl = tr["pnl_usd"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = np.where(entry_notional > 0, 100.0 * pnl / np.where(entry_notional > 0,
                                                                  entry_notional, 1.0), np.nan)
    log = pd.DataFrame({
        "symbol": tr["symbol"].astype(str),
        "direction": np.where(tr["direction"].to_numpy() > 0, "long", "short"),
        "entry_time": tr["entry_time"],
        "exit_time": tr["exit_time"],
        "entry_price": tr["entry_price"],
        "exit_price": tr["exit_price"],
        "size": tr["size"],
        "entry_notional_usd": entry_notional,
        "pnl_usd": pnl,
        "return_pct": ret,
        "gross_pnl_usd": tr["gross_pnl_usd"],
        "fees_usd": tr["fees_usd"],
        "funding_usd": tr["funding_usd"],
        "spread_usd": spread,
        "slippage_usd": slippage,
        "impact_usd": impact,
        "liquidation_fee_usd": tr["liquidation_fee_usd"],
        "exit_reason": tr["exit_reason"].astype(str),
        "holding_time": tr["exit_time"] - tr["entry_time"],
        "is_open": tr["is_open"].to_numpy().astype(bool),
        "entry_bar": tr["entry_bar"],
        "exit_bar": tr["exit_bar"],
    }, columns=list(TRADE_COLUMNS))
    log = log.sort_values(["entry_time", "symbol"], kind="stable").reset_index(drop=True)
    log.index.name = "trade"
    return log
