"""Benchmark the batched parameter sweep against vectorbt's parameter broadcasting.

Workload: the EMA-cross rule (long when EMA(fast) crosses above EMA(slow), flat when it
crosses below; decided at the close, filled at the next bar's open) on a grid of
``--fast`` × ``--slow`` windows (default 100 × 100 = 10,000 combinations: fast 2..101, slow
105..600 step 5) over ``--bars`` bars (default 100,000) of the real Binance BTC/USDT:USDT 1m
bars tiled with a continuous splice (``bench/_bars.py``). Same trading rules on both sides:
4 bp fee and 1 bp slippage per fill, all equity in at the next open, long only, no funding,
no risk engine.

* **ours**: :func:`quantum_trading.research.sweep.sweep` with the library's
  ``trend_following`` rule (its parameter ranges widened for the grid): each EMA computed once
  per distinct window, targets of a batch of combinations built in one numba kernel, then the
  simulator's own kernel loop (``sim.engine_nb.simulate_nb``) per combination on every core
  (one thread per core), reduced to the backtest statistics (Sharpe, drawdown, trades, …
  equal to ``Backtest(...).run().stats``) and an equity sample for the PBO. Timed end to end:
  pandas bars in, results table out. ``ours_1_thread`` is the same on one core.
* **vectorbt**: ``vbt.MA.run(close, windows, ewm=True)`` for the repeated fast and tiled slow
  window lists, ``ma_crossed_above`` / ``ma_crossed_below`` shifted one bar, one
  ``Portfolio.from_signals`` over all columns with ``price=open`` (so it too fills at the next
  open), ``fees``, ``slippage``, ``size=inf``; then ``pf.final_value()`` and, as a second
  figure, also ``pf.sharpe_ratio()`` (ours always produces the statistics). vectorbt holds
  every column in memory (a 100,000 × 10,000 float array is 8 GB, and it makes several), so
  it runs on the first ``--vbt-fast`` fast windows × all slow windows (default 10 × 100 =
  1,000 combinations); ours also runs that subset, so both rates are compared on the same
  work too. vectorbt runs on one core (its kernels are serial).

EMAs differ in their warm-up (ours seeded with the SMA like TA-Lib, vectorbt's ``ewm`` with
``adjust=False`` from the first value), so a few crossings near the start differ; the
simulations are otherwise the same rules (see ``tests/parity/`` for exact parity).

Rates are bar·combinations per second. Numba code is compiled first; candidates run
``--repeat`` rounds in a rotating order and the best time of each is kept. Prints one JSON
document::

    .venv/bin/python bench/sweep.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from _bars import SOURCE, load_bars
from _timing import rotating
from quantum_trading.domain import Instrument
from quantum_trading.paths import real_data_dir
from quantum_trading.research.sweep import sweep
from quantum_trading.sim import AccountConfig, CostsConfig
from quantum_trading.strategies import IntParam, ParamSpace, TrendFollowing

FEE = 0.0004
SLIPPAGE = 0.0001
CASH_USD = 10_000.0
SYMBOL = "BTC/USDT:USDT"


class WideTrend(TrendFollowing):
    """The library's EMA-cross rule with ranges wide enough for a 100 × 100 grid."""

    params = ParamSpace({**dict(TrendFollowing.params.items()),
                         "fast": IntParam(2, 200, default=20),
                         "slow": IntParam(3, 1000, default=50)},
                        constraints=TrendFollowing.params.constraints)


def windows(n_fast: int, n_slow: int) -> tuple[list[int], list[int]]:
    """Fast 2, 3, …; slow 105, 110, … (every fast window below every slow one)."""
    return list(range(2, 2 + n_fast)), list(range(105, 105 + 5 * n_slow, 5))


def ours(bars: pd.DataFrame, fast: list[int], slow: list[int], threads: int | None
         ) -> pd.DataFrame:
    res = sweep(bars, WideTrend(), {"fast": fast, "slow": slow},
                instrument=Instrument.generic(SYMBOL, taker_fee_bps=FEE * 1e4,
                                              maker_fee_bps=FEE * 1e4),
                costs=CostsConfig(slippage_bps=SLIPPAGE * 1e4, half_spread_bps=0.0, impact_k=0.0,
                                  default_funding_rate=0.0),
                account=AccountConfig(initial_cash_usd=CASH_USD, leverage=1.0, allow_short=False,
                                      size_with_costs=True),
                risk=None, n_threads=threads)
    assert res.batched
    return res.table


def vbt_sweep(bars: pd.DataFrame, fast: list[int], slow: list[int], sharpe: bool) -> pd.Series:
    import vectorbt as vbt

    close = bars["close"]
    f = vbt.MA.run(close, np.repeat(fast, len(slow)), ewm=True, short_name="fast")
    s = vbt.MA.run(close, np.tile(slow, len(fast)), ewm=True, short_name="slow")
    entries = f.ma_crossed_above(s).vbt.fshift(1, fill_value=False)
    exits = f.ma_crossed_below(s).vbt.fshift(1, fill_value=False)
    pf = vbt.Portfolio.from_signals(close=close, entries=entries, exits=exits,
                                    price=bars["open"], fees=FEE, slippage=SLIPPAGE,
                                    init_cash=CASH_USD, size=np.inf, freq="1min")
    out = pf.final_value()
    if sharpe:
        pf.sharpe_ratio()
    return out


def naive(bars: pd.DataFrame) -> pd.DataFrame:
    """The bars on a tz-naive index, vectorbt's fastest input (with pandas 3 it turns a
    tz-aware index into Timestamp objects on every wrap; see bench/simulator.py)."""
    out = bars.copy(deep=False)
    out.index = bars.index.tz_localize(None)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--fast", type=int, default=100, help="fast windows in the grid")
    parser.add_argument("--slow", type=int, default=100, help="slow windows in the grid")
    parser.add_argument("--vbt-fast", type=int, default=10,
                        help="fast windows of the subset vectorbt runs (all slow windows)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    bars = load_bars(args.bars, args.data_dir or real_data_dir())
    bars.attrs["symbol"] = SYMBOL
    vbars = naive(bars)
    fast, slow = windows(args.fast, args.slow)
    sub_fast = fast[: args.vbt_fast]
    n_all, n_sub = len(fast) * len(slow), len(sub_fast) * len(slow)
    threads = os.cpu_count() or 1

    # compile and warm up on a short slice
    ours(bars.iloc[:3000], fast[:3], slow[:3], None)
    vbt_sweep(vbars.iloc[:3000], fast[:3], slow[:3], True)

    timed = rotating({
        "ours": lambda: ours(bars, fast, slow, None),
        "ours_subset": lambda: ours(bars, sub_fast, slow, None),
        "ours_subset_1_thread": lambda: ours(bars, sub_fast, slow, 1),
        "vbt": lambda: vbt_sweep(vbars, sub_fast, slow, False),
        "vbt_sharpe": lambda: vbt_sweep(vbars, sub_fast, slow, True),
    }, args.repeat)
    t_all, table = timed["ours"]
    t_sub, sub_table = timed["ours_subset"]
    t_one, _ = timed["ours_subset_1_thread"]
    t_vbt, finals = timed["vbt"]
    t_vbt_sr, _ = timed["vbt_sharpe"]
    work_all, work_sub = args.bars * n_all, args.bars * n_sub
    rate = {
        "ours": work_all / t_all,
        "ours_subset": work_sub / t_sub,
        "ours_subset_1_thread": work_sub / t_one,
        "vbt": work_sub / t_vbt,
        "vbt_with_sharpe": work_sub / t_vbt_sr,
    }
    best_ours = sub_table.loc[sub_table["Equity Final [$]"].idxmax(), ["fast", "slow"]]
    best_vbt = finals.idxmax()  # (fast_window, fast_ewm, slow_window, slow_ewm)
    best_vbt = (best_vbt[0], best_vbt[2])
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": threads, "platform": platform.platform(),
                    "python": sys.version.split()[0], "load_avg": os.getloadavg()},
        "data": f"{SOURCE} tiled (continuous splice) to {args.bars} bars",
        "grid": {"fast": [fast[0], fast[-1]], "slow": [slow[0], slow[-1]],
                 "combinations": n_all},
        "vbt_subset": {"fast": [sub_fast[0], sub_fast[-1]], "combinations": n_sub},
        "ours_s": t_all, "ours_subset_s": t_sub, "ours_subset_1_thread_s": t_one,
        "vbt_s": t_vbt, "vbt_with_sharpe_s": t_vbt_sr,
        "bar_combos_per_s": rate,
        "ours_vs_vbt": rate["ours"] / rate["vbt"],
        "ours_vs_vbt_with_sharpe": rate["ours"] / rate["vbt_with_sharpe"],
        "ours_subset_vs_vbt": rate["ours_subset"] / rate["vbt"],
        "ours_1_thread_vs_vbt": rate["ours_subset_1_thread"] / rate["vbt"],
        "best_sharpe_pair": [int(v) for v in
                             table.loc[table["Sharpe Ratio"].idxmax(), ["fast", "slow"]]],
        "subset_best_final_equity_pair": {"ours": [int(v) for v in best_ours],
                                          "vbt": [int(v) for v in best_vbt]},
    }
    print(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
