"""Benchmark the library strategies' ``signals()``: the per-bar cost in the live trader, which
calls it on a window of the latest bars at every bar close. Prints one JSON object per
(strategy, window) and a summary line:

    .venv/bin/python bench/strategies.py

Data: the last ``--bars`` (default 300 and 1,000) real Binance BTC/USDT:USDT 1h bars from the
shared data folder, one asset, default parameters plus one ATR-stop set (the ATR kernel is the
stops' extra work). Each figure is the best of ``--repeat`` rounds of ``--calls`` back-to-back
calls, in µs per call (warm: numba kernels compiled and the first call made before timing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from quantum_trading.paths import real_data_dir
from quantum_trading.strategies.library import LIBRARY

SOURCE = "binance/futures/BTC_USDT_USDT-1h-futures.feather"
"""The bars' file, relative to the data folder."""

_CASES: dict[str, dict[str, Any]] = {
    "default": {},
    "atr_stops": {"stop_loss_atr": 2.0, "take_profit_atr": 4.0},
}


def per_call_us(fn: Any, calls: int, repeat: int) -> float:
    """Best over ``repeat`` rounds of the mean wall time of ``calls`` calls of ``fn``, in µs."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, nargs="+", default=[300, 1_000],
                        help="window lengths in bars (default 300 1000)")
    parser.add_argument("--calls", type=int, default=200, help="calls per timed round")
    parser.add_argument("--repeat", type=int, default=15, help="timed rounds (best kept)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="real-data folder (default $QUANTUM_REAL_DATA or ../shared/data)")
    args = parser.parse_args(argv)
    if min(args.bars) < 1 or args.calls < 1 or args.repeat < 1:
        parser.error("--bars, --calls and --repeat must be >= 1")

    frame = pd.read_feather((args.data_dir or real_data_dir()) / SOURCE).set_index("date")
    frame = frame[["open", "high", "low", "close", "volume"]]
    summary: dict[str, float] = {}
    for n_bars in args.bars:
        if n_bars > len(frame):
            parser.error(f"--bars {n_bars} exceeds the {len(frame)} bars of {SOURCE}")
        window = frame.iloc[-n_bars:]
        for strategy in LIBRARY:
            for case, params in _CASES.items():
                if params and "stop_loss_atr" not in set(strategy.params):
                    continue
                us = per_call_us(lambda s=strategy, w=window, p=params: s.signals(w, **p),
                                 args.calls, args.repeat)
                key = f"{strategy.name}/{case}/{n_bars}"
                summary[key] = round(us, 1)
                print(json.dumps({"strategy": strategy.name, "params": case, "bars": n_bars,
                                  "us_per_call": round(us, 1)}), flush=True)
    print(json.dumps({
        "us_per_call": summary,
        "calls": args.calls,
        "repeat": args.repeat,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
