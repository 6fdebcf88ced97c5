"""Random simulator scenarios and an independent replay of the accounting, for property tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantum_trading.domain import Instrument, Signals, StopSpec
from quantum_trading.sim import AccountConfig, CostsConfig

from ._util import random_bars

BTC_LIKE_TIERS = (
    (0.0, 125.0, 0.004, 0.0),
    (5_000.0, 50.0, 0.01, 30.0),
    (20_000.0, 20.0, 0.025, 330.0),
    (100_000.0, 5.0, 0.10, 7_830.0),
)


@dataclass
class Scenario:
    bars: dict[str, pd.DataFrame]
    signals: Signals
    instruments: dict[str, Instrument]
    costs: CostsConfig
    account: AccountConfig


def scenario(seed: int, *, n_assets: int, n_bars: int, isolated: bool, every_bar: bool,
             leverage: float, vol: float, stops: bool, impact: bool, lot: bool,
             funding: bool, nan_frac: float | None = None) -> Scenario:
    """A random market and strategy. ``nan_frac``: share of bars without a decision
    (default 0.5, 0.1 with ``every_bar``); near 1 for long runs of bars where nothing happens."""
    rng = np.random.default_rng(seed)
    names = [f"A{i}" for i in range(n_assets)]
    frames = {s: random_bars(rng, n_bars, vol=vol, start_price=float(rng.uniform(5, 500)),
                             gap=vol / 2) for s in names}
    idx = frames[names[0]].index
    tgt = rng.uniform(-1.5 * leverage, 1.5 * leverage, (n_bars, n_assets))
    tgt[rng.random((n_bars, n_assets)) < 0.2] = 0.0
    if nan_frac is None:
        nan_frac = 0.5 if not every_bar else 0.1
    tgt[rng.random((n_bars, n_assets)) < nan_frac] = np.nan
    target = pd.DataFrame(tgt, index=idx, columns=names)
    sl = tp = tr = None
    if stops:
        sl = StopSpec.fraction(float(rng.uniform(0.005, 0.1)))
        tp = StopSpec.fraction(float(rng.uniform(0.01, 0.2)))
        if rng.random() < 0.5:
            tr = StopSpec.fraction(float(rng.uniform(0.01, 0.1)))
        else:
            atr = pd.DataFrame({s: (f.high - f.low).rolling(3, min_periods=1).mean()
                                for s, f in frames.items()})
            tr = StopSpec.atr(float(rng.uniform(0.5, 3)), atr)
    time_stop = int(rng.integers(2, 10)) if stops and rng.random() < 0.5 else None
    signals = Signals(target, stop_loss=sl, take_profit=tp, trailing_stop=tr,
                      time_stop_bars=time_stop)
    instruments = {
        s: Instrument(symbol=s, lot_size=0.01 if lot else 0.0,
                      min_notional_usd=5.0 if lot else 0.0, max_leverage=125.0,
                      margin_tiers=BTC_LIKE_TIERS, taker_fee_bps=float(rng.uniform(0, 8)),
                      maker_fee_bps=float(rng.uniform(0, 4)))
        for s in names
    }
    costs = CostsConfig(
        half_spread_bps=float(rng.uniform(0, 5)), slippage_bps=float(rng.uniform(0, 5)),
        impact_k=float(rng.uniform(0.1, 1.0)) if impact else 0.0, impact_window_bars=5,
        default_funding_rate=float(rng.uniform(-0.002, 0.002)) if funding else 0.0,
        funding_interval_h=int(rng.choice([1, 4, 8])),
        take_profit_order="market" if rng.random() < 0.3 else "limit",
    )
    account = AccountConfig(
        initial_cash_usd=float(rng.uniform(1_000, 100_000)),
        margin_mode="isolated" if isolated else "cross",
        leverage=leverage,
        liquidation_fee_rate=float(rng.choice([0.0, 0.002, 0.0125])),
        rebalance="every_bar" if every_bar else "on_change",
        min_rebalance_frac=float(rng.uniform(0, 0.05)) if every_bar else 0.0,
        size_with_costs=bool(rng.random() < 0.3),
        allow_short=bool(rng.random() < 0.8),
        reversal_sizing="after_close" if rng.random() < 0.3 else "net",
    )
    return Scenario(frames, signals, instruments, costs, account)


def replay_positions(fills: pd.DataFrame, symbols, n_bars: int):
    """Independent replay of fills: per-bar size and average entry at each close, and the
    realised PnL of each fill (closing part at the fill price against the average entry)."""
    n = len(symbols)
    col = {s: i for i, s in enumerate(symbols)}
    size = np.zeros(n)
    entry = np.zeros(n)
    sizes = np.zeros((n_bars, n))
    entries = np.zeros((n_bars, n))
    realized = []
    bars_of = fills["bar"].to_numpy()
    k = 0
    for t in range(n_bars):
        while k < len(fills) and bars_of[k] == t:
            f = fills.iloc[k]
            i = col[f.symbol]
            q = f["side"] * f["size"]
            cur = size[i]
            pnl = 0.0
            if cur != 0 and np.sign(q) != np.sign(cur):
                closed = min(abs(q), abs(cur))
                pnl = closed * (f.price - entry[i]) * np.sign(cur)
                if abs(q) > abs(cur):
                    entry[i] = f.price
                elif abs(q) == abs(cur):
                    entry[i] = 0.0
            elif cur == 0:
                entry[i] = f.price
            else:
                entry[i] = (abs(cur) * entry[i] + abs(q) * f.price) / (abs(cur) + abs(q))
            size[i] = f.position_after
            realized.append(pnl)
            k += 1
        sizes[t] = size
        entries[t] = entry
    return sizes, entries, np.array(realized)
